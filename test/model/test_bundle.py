"""Model bundles: round trip, half-precision storage, and clear errors for bad files."""

from detrack_model.config import preset
from detrack_model.export import BundleError, load_bundle, save_bundle
from detrack_model.export.bundle import bundle_paths
from detrack_model.modeling import create_model
import pytest
import torch
import yaml


def small_model():
    """Build a two-block vit_tiny network."""
    return create_model(preset('vit_tiny', encoder={'depth': 2, 'ce_layers': [1]}))


def test_round_trip_float32_and_float16(tmp_path):
    """Weights come back exactly in float32 and within half precision when stored as fp16."""
    model = small_model()
    save_bundle(model, tmp_path / 'full', metadata={'note': 'x'})
    save_bundle(model, tmp_path / 'half', dtype=torch.float16)
    full, half = load_bundle(tmp_path / 'full.safetensors'), load_bundle(tmp_path / 'half.yaml')
    for key, value in model.state_dict().items():
        torch.testing.assert_close(full.state_dict()[key], value)
        torch.testing.assert_close(half.state_dict()[key], value, rtol=1e-3, atol=1e-3)
    assert half.state_dict()['encoder.pos_embed_x'].dtype == torch.float32
    assert (tmp_path / 'half.safetensors').stat().st_size < \
        0.6 * (tmp_path / 'full.safetensors').stat().st_size


def test_missing_files_are_named(tmp_path):
    """A missing config or weights file is named in the error."""
    with pytest.raises(BundleError, match='bundle config not found: .*nothing.yaml'):
        load_bundle(tmp_path / 'nothing')
    save_bundle(small_model(), tmp_path / 'm')
    (tmp_path / 'm.safetensors').unlink()
    with pytest.raises(BundleError, match='bundle weights not found: .*m.safetensors'):
        load_bundle(tmp_path / 'm')


def test_corrupt_weights_are_named(tmp_path):
    """Garbage in the weights file gives an error naming the file, not a crash."""
    save_bundle(small_model(), tmp_path / 'm')
    (tmp_path / 'm.safetensors').write_bytes(b'not a safetensors file at all')
    with pytest.raises(BundleError, match='m.safetensors is not a readable safetensors file'):
        load_bundle(tmp_path / 'm')


def test_config_and_weights_mismatch(tmp_path):
    """Weights of one architecture under another's config: the mismatch is spelled out."""
    save_bundle(small_model(), tmp_path / 'm')
    document = yaml.safe_load((tmp_path / 'm.yaml').read_text())
    document['model']['encoder']['depth'] = 3
    document['model']['encoder']['dim'] = 384
    document['model']['encoder']['heads'] = 6
    (tmp_path / 'm.yaml').write_text(yaml.safe_dump(document))
    with pytest.raises(BundleError, match=r'does not match the architecture in .*m.yaml: '
                                          r'missing .*blocks\.2.*shape mismatch'):
        load_bundle(tmp_path / 'm')


def test_not_a_bundle_config(tmp_path):
    """A YAML file that is not a bundle config is refused by its format field."""
    (tmp_path / 'm.yaml').write_text('model: {}\n')
    with pytest.raises(BundleError, match='is not a detrack bundle config'):
        load_bundle(tmp_path / 'm')


def test_stem_with_a_dot_keeps_it(tmp_path):
    """A bundle named child_0.25 is child_0.25.safetensors + .yaml, not child_0.*."""
    weights, config = bundle_paths(tmp_path / 'child_0.25')
    assert (weights.name, config.name) == ('child_0.25.safetensors', 'child_0.25.yaml')
    assert bundle_paths(tmp_path / 'child_0.25.yaml') == (weights, config)
