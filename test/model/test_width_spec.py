"""
The encoder's per-layer widths: one form for dense and pruned models, old forms still load.

The golden check runs both shipped models through the tracker (PyTorch backend) on a fixed
sequence drawn from a seeded generator and compares every box and score with the values in
``width_spec_golden.json``. The way layer widths are written down must not change what the
network computes. ``python test/model/test_width_spec.py`` records the values again, for a
change that is meant to alter the outputs.
"""

import copy
import json
import math
import pathlib
from typing import List, Tuple

from detrack_model.config import LayerWidths, ModelConfig, preset
from detrack_model.export import load_bundle, save_bundle
from detrack_model.modeling import create_model
from detrack_model.modeling.head_layout import uniform_head_widths
from detrack_model.shipped import DEFAULT_MODEL_NAME
from detrack_model.tracking import build_tracker, RuntimeConfig, TrackerConfig
import numpy as np
import pytest
import torch
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = pathlib.Path(__file__).with_name('width_spec_golden.json')
# Named directly, not by default_model_path(): DETRACK_MODEL must not swap the model checked.
MODELS = {'default': ROOT / 'models' / DEFAULT_MODEL_NAME,
          'unpruned': ROOT / 'models' / 'detrack_tiny_pool'}
FRAMES = 20
# One frame of the sequence: the image and the target's x, y, w, h.
Frame = Tuple[np.ndarray, Tuple[int, int, int, int]]
# A model section as bundles wrote it before head_widths was the one form: block i had
# head_counts[i] heads of head_dims[i] each (None: dense), mlp_dims as today.
OLD_FORM = {
    'name': 'vit_tiny',
    'encoder': {'dim': 192, 'depth': 3, 'heads': 3, 'mlp_ratio': 4.0, 'patch_size': 16,
                'ce_layers': [1, 2], 'ce_keep_ratio': 0.7, 'drop_path': 0.0,
                'head_dims': [40, 64, 17], 'mlp_dims': [300, 768, 51],
                'head_counts': [2, 3, 1], 'head_widths': None},
    'head': 'decoder',
    'decoder': {'layers': 2, 'hidden': 64, 'heads': 4, 'points': 2, 'ffn_dim': 96,
                'num_queries': 8, 'dropout': 0.0, 'anchor_size': 0.25, 'ffn_dims': None,
                'dn_labels': False},
    'conv_head': {'channels': 256},
    'template_size': 64, 'search_size': 128, 'masked': False}
# The same widths in the one form.
NEW_WIDTHS = [[40, 40], [64, 64, 64], [17]]


def sequence_frames() -> List[Frame]:
    """
    Draw the fixed sequence: a coloured 40x48 ellipse gliding over a patchwork background.

    Only numpy's seeded generator draws it, so the frames stay the same whatever becomes of
    the synthetic-data renderer; every frame gets fresh sensor noise. Both shipped models
    follow the ellipse (IoU about 0.9), so the check runs the tracker's usual path.
    """
    rng = np.random.default_rng(2024)
    background = np.kron(rng.integers(60, 180, (15, 20, 3)), np.ones((16, 16, 1), np.int64))
    rows, cols = np.mgrid[0:48, 0:40]
    ellipse = ((cols - 19.5) / 20) ** 2 + ((rows - 23.5) / 24) ** 2 <= 1
    colour = rng.integers(0, 256, 3)
    frames = []
    for t in range(FRAMES):
        x, y = 100 + 5 * t, 80 + int(round(30 * np.sin(t / 4)))
        image = background.copy()
        image[y:y + 48, x:x + 40][ellipse] = colour
        image += rng.integers(-10, 11, image.shape)
        frames.append((np.clip(image, 0, 255).astype(np.uint8), (x, y, 40, 48)))
    return frames


def track(model: pathlib.Path, frames: List[Frame]) -> np.ndarray:
    """Return x, y, w, h and score of every frame after the first, one row each."""
    # The network's boxes as they are: no lost state, damping or re-detection, whose defaults
    # are tracking policy, not what this file pins.
    tracker = build_tracker(model, RuntimeConfig(device='cpu', backend='torch'),
                            TrackerConfig(score_threshold=0.0, size_rate=1.0,
                                          max_scale_step=math.inf, redetect=False))
    tracker.initialize(*frames[0])
    rows = []
    for image, _ in frames[1:]:
        box, score = tracker.track(image)
        rows.append([*map(float, box), float(score)])
    return np.array(rows)


@pytest.fixture(scope='module')
def frames() -> List[Frame]:
    """Draw the sequence once for the module."""
    return sequence_frames()


@pytest.mark.parametrize('name', sorted(MODELS))
def test_shipped_models_track_as_recorded(frames, name):
    """Boxes within 1e-4 relative and scores within 1e-4 of the recorded run: same ops."""
    golden = np.array(json.loads(GOLDEN.read_text())[name])
    tracked = track(MODELS[name], frames)
    assert tracked.shape == golden.shape == (FRAMES - 1, 5)
    np.testing.assert_allclose(tracked[:, :4], golden[:, :4], rtol=1e-4)
    np.testing.assert_allclose(tracked[:, 4], golden[:, 4], rtol=1e-4, atol=1e-6)


def new_form(old: dict) -> dict:
    """Return ``old`` with its encoder widths written as ``head_widths``."""
    data = copy.deepcopy(old)
    for key in ('head_dims', 'head_counts'):
        del data['encoder'][key]
    data['encoder']['head_widths'] = NEW_WIDTHS
    return data


def test_dense_and_pruned_widths_come_from_one_accessor():
    """Dense: heads of dim / heads and dim * mlp_ratio units; pruned: the listed widths."""
    dense = preset('vit_tiny', encoder={'depth': 4, 'ce_layers': [1]}).encoder
    assert dense.layer_widths() == [LayerWidths((64, 64, 64), 768)] * 4
    config = ModelConfig.from_dict(new_form(OLD_FORM))
    assert config.encoder.layer_widths() == [
        LayerWidths((40, 40), 300), LayerWidths((64, 64, 64), 768), LayerWidths((17,), 51)]
    model = create_model(config)
    for block, widths in zip(model.encoder.blocks, config.encoder.layer_widths()):
        assert tuple(block.attn.head_widths) == widths.heads
        assert block.mlp.fc1.out_features == widths.mlp


def test_old_form_config_is_the_same_config():
    """head_counts/head_dims become head_widths; to_dict writes the one form only."""
    config = ModelConfig.from_dict(OLD_FORM)
    assert config == ModelConfig.from_dict(new_form(OLD_FORM))
    assert config.encoder.head_widths == NEW_WIDTHS
    assert 'head_dims' not in config.to_dict()['encoder']
    assert 'head_counts' not in config.to_dict()['encoder']


@pytest.mark.parametrize('fields, widths', [
    ({'head_dims': None, 'head_counts': None}, None),
    ({'head_dims': [40, 64, 17], 'head_counts': None}, [[40] * 3, [64] * 3, [17] * 3]),
    ({'head_dims': None, 'head_counts': [2, 3, 1]}, [[64] * 2, [64] * 3, [64]]),
])
def test_old_form_with_either_list_dense(fields, widths):
    """A list left None meant dense: heads heads, dim // heads wide."""
    data = copy.deepcopy(OLD_FORM)
    data['encoder'].update(fields)
    assert ModelConfig.from_dict(data).encoder.head_widths == widths


@pytest.mark.parametrize('fields, message', [
    ({'head_counts': [2, 4, 1]}, 'head_counts needs 3 positive integers of at most 3'),
    ({'head_counts': [2, True, 1]}, 'head_counts needs 3'),
    ({'head_dims': [40, 0, 17]}, 'head_dims needs 3 positive integers'),
    ({'head_dims': 'wide'}, 'head_dims needs 3'),
    # A config claiming enormous blocks is refused before any list is expanded.
    ({'dim': 1 << 40, 'heads': 1 << 30, 'depth': 1, 'ce_layers': [0],
      'head_counts': [1 << 30], 'head_dims': [1], 'mlp_dims': [1]}, 'of at most 4096'),
])
def test_impossible_old_form_is_refused(fields, message):
    """The converter names the field at fault."""
    data = copy.deepcopy(OLD_FORM)
    data['encoder'].update(fields)
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(data)


def test_old_form_bundle_loads_the_same_network(tmp_path):
    """A bundle whose YAML has the old layout: same parameter shapes, same outputs."""
    torch.manual_seed(0)
    model = create_model(ModelConfig.from_dict(new_form(OLD_FORM))).eval()
    config_path = save_bundle(model, tmp_path / 'old')[1]
    document = yaml.safe_load(config_path.read_text())
    document['model'] = OLD_FORM
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    loaded = load_bundle(tmp_path / 'old')
    assert {k: v.shape for k, v in loaded.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    template = torch.randn(2, 3, 64, 64, generator=generator)
    search = torch.randn(2, 3, 128, 128, generator=generator)
    with torch.no_grad():
        expected, got = model(template, search), loaded(template, search)
    for key in ('boxes', 'scores', 'search_index'):
        assert torch.equal(got[key], expected[key]), key


def test_shipped_dense_yaml_in_the_old_form_loads(tmp_path):
    """The unpruned model's YAML as first shipped (head_dims/head_counts null) loads as dense."""
    stem = MODELS['unpruned']
    document = yaml.safe_load(stem.with_suffix('.yaml').read_text())
    document['model']['encoder'].update(head_dims=None, head_counts=None)
    (tmp_path / 'old.yaml').write_text(yaml.safe_dump(document, sort_keys=False))
    (tmp_path / 'old.safetensors').write_bytes(stem.with_suffix('.safetensors').read_bytes())
    old, shipped = load_bundle(tmp_path / 'old'), load_bundle(stem)
    assert old.config == shipped.config and old.config.encoder.head_widths is None
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(),
                                                 shipped.state_dict().values()))


def test_padded_layout_writes_the_one_form():
    """The runtime padding lists every head of a block at its widest width, nothing else."""
    model = load_bundle(MODELS['default'])
    padded = uniform_head_widths(model)
    enc = padded.config.encoder
    assert enc.head_widths == [[max(widths)] * len(widths)
                               for widths in model.config.encoder.head_widths]
    assert [w.mlp for w in enc.layer_widths()] == [w.mlp for w in
                                                   model.config.encoder.layer_widths()]
    assert all(len(set(w.heads)) == 1 for w in enc.layer_widths())


def record() -> None:
    """Write the golden values of the current code to ``width_spec_golden.json``."""
    frames = sequence_frames()
    blocks = []
    for name, path in sorted(MODELS.items()):
        rows = [json.dumps([round(v, 7) for v in row]) for row in track(path, frames).tolist()]
        blocks.append(f'  "{name}": [\n    ' + ',\n    '.join(rows) + '\n  ]')
    # One frame a line: a diff of the file shows which frames moved.
    GOLDEN.write_text('{\n' + ',\n'.join(blocks) + '\n}\n')


if __name__ == '__main__':
    record()
