"""Masked-autoencoder pretraining: masking, the loss, the loop, resume, and loading the result."""

import pathlib
import shutil
import subprocess
import sys

from detrack_model.config import config_from_spec
from detrack_model.data.pretrain_crops import PretrainCrops
from detrack_model.data.processing import PairProcessing
from detrack_model.data.synthetic import source_set
from detrack_model.engine.pretrain_recipe import load_pretrain_recipe, pretrain_recipe_from_dict
from detrack_model.engine.recipe import load_recipe
from detrack_model.modeling import create_model
from detrack_model.modeling.checkpoint import load_pretrained_encoder
from detrack_model.modeling.mae import (MaeConfig, MaskedAutoencoder, patchify, random_masking,
                                        unpatchify)
import pytest
from safetensors.torch import load_file
import torch
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = {'preset': 'vit_tiny', 'template_size': 64, 'search_size': 128,
         'encoder': {'depth': 2, 'ce_layers': [1]},
         'decoder': {'layers': 2, 'hidden': 64, 'heads': 4, 'points': 2, 'ffn_dim': 128,
                     'num_queries': 8}}
MAE = {'mask_ratio': 0.75, 'decoder_dim': 64, 'decoder_depth': 1, 'decoder_heads': 4}


def tiny_model():
    """Return a two-block MAE over 64/128 px crops and random crops for it."""
    torch.manual_seed(0)
    model = MaskedAutoencoder(config_from_spec(MODEL), MaeConfig(**MAE))
    return model, torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)


def test_masking_keeps_a_sorted_random_subset_per_sample():
    """A quarter of the tokens is kept, different per sample, the same for the same seed."""
    keep, mask = random_masking(8, 64, 0.75, torch.device('cpu'),
                                torch.Generator().manual_seed(1))
    assert keep.shape == (8, 16) and mask.shape == (8, 64)
    assert (mask.sum(dim=1) == 48).all()
    assert (keep.diff(dim=1) > 0).all()
    assert (mask.gather(1, keep) == 0).all()
    assert len({tuple(row.tolist()) for row in keep}) == 8
    again, _ = random_masking(8, 64, 0.75, torch.device('cpu'), torch.Generator().manual_seed(1))
    assert torch.equal(keep, again)
    # Even an extreme ratio leaves one token visible and one to predict.
    keep, mask = random_masking(2, 4, 0.99, torch.device('cpu'))
    assert keep.shape == (2, 1) and (mask.sum(dim=1) == 3).all()


def test_patchify_round_trips():
    """Patch rows hold each patch's pixels; unpatchify puts them back."""
    images = torch.randn(2, 3, 64, 64)
    patches = patchify(images, 16)
    assert patches.shape == (2, 16, 16 * 16 * 3)
    torch.testing.assert_close(patches[0, 1].view(16, 16, 3), images[0, :, :16, 16:32]
                               .permute(1, 2, 0))
    torch.testing.assert_close(unpatchify(patches, 16), images)


def test_the_encoder_sees_only_the_kept_tokens():
    """The encoder runs on the kept tokens alone: masked pixels cannot change its output."""
    model, template, search = tiny_model()
    seen = []
    model.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    keep_z, mask_z = random_masking(2, 16, 0.75, torch.device('cpu'),
                                    torch.Generator().manual_seed(3))
    keep_x, mask_x = random_masking(2, 64, 0.75, torch.device('cpu'),
                                    torch.Generator().manual_seed(4))
    latent = model.encode_visible(template, search, keep_z, keep_x)
    assert seen[0] == (2, 4 + 16, 192) and latent.shape == (2, 20, 192)
    # Scramble every masked patch: the encoding must not move.
    noisy_z = unpatchify(patchify(template, 16) + 5.0 * mask_z.unsqueeze(-1), 16)
    noisy_x = unpatchify(patchify(search, 16) + 5.0 * mask_x.unsqueeze(-1), 16)
    torch.testing.assert_close(model.encode_visible(noisy_z, noisy_x, keep_z, keep_x), latent)
    # ...while a kept patch does.
    kept_x = unpatchify(patchify(search, 16) + 5.0 * (1 - mask_x).unsqueeze(-1), 16)
    assert not torch.allclose(model.encode_visible(template, kept_x, keep_z, keep_x), latent)


def test_the_loss_covers_only_masked_patches():
    """The loss is the mean error of masked patches; visible patches get no gradient."""
    model, template, search = tiny_model()
    outputs = model(template, search, torch.Generator().manual_seed(5))
    for key in ('pred_z', 'pred_x'):
        outputs[key].retain_grad()
    outputs['loss'].backward()
    for pred, mask, images in (('pred_z', 'mask_z', template), ('pred_x', 'mask_x', search)):
        grad, masked = outputs[pred].grad, outputs[mask] > 0
        assert (grad[~masked] == 0).all()
        assert (grad[masked].abs().sum(dim=-1) > 0).all()
    errors = torch.cat([(outputs[p] - model.target(i)).pow(2).mean(-1)
                        for p, i in (('pred_z', template), ('pred_x', search))], dim=1)
    mask = torch.cat((outputs['mask_z'], outputs['mask_x']), dim=1) > 0
    torch.testing.assert_close(outputs['loss'], errors[mask].mean())
    # norm_pix_loss: every target patch has zero mean and unit variance.
    target = model.target(search)
    torch.testing.assert_close(target.mean(-1), torch.zeros(2, 64), atol=1e-5, rtol=0)


def test_crops_are_deterministic_and_use_only_their_split():
    """A sample is a function of (seed, epoch, index); its images are its split's."""
    sources = source_set('train')
    crops = PretrainCrops(sources, PairProcessing(64, 128), samples=16, seed=2)
    first = crops[5]
    assert first['template'].shape == (3, 64, 64) and first['search'].shape == (3, 128, 128)
    torch.testing.assert_close(crops[5]['search'], first['search'])
    crops.set_epoch(1)
    assert not torch.equal(crops[5]['search'], first['search'])
    with pytest.raises(ValueError, match='split must be train'):
        pretrain_recipe_from_dict({'model': MODEL, 'data': {'split': 'test'}})


@pytest.fixture(scope='module')
def recipe_file(tmp_path_factory):
    """Write a tiny pretraining recipe over the train photographs (no image pool needed)."""
    root = tmp_path_factory.mktemp('pretrain')
    recipe = {'model': MODEL, 'mae': MAE,
              'data': {'pool': None, 'samples_per_epoch': 16, 'val_samples': 4,
                       'workers': 0, 'per_image': 4},
              'optim': {'epochs': 2, 'batch_size': 4, 'threads': 1, 'warmup_epochs': 0.5},
              'checkpoint': {'every_steps': 2, 'keep_last': 10, 'log_every': 1},
              'output': str(root / 'run')}
    path = root / 'recipe.yaml'
    path.write_text(yaml.safe_dump(recipe))
    return path


def pretrain(recipe_file, output, *args):
    """Run detrack-pretrain in a subprocess (as users do)."""
    command = [sys.executable, '-m', 'detrack_model.cli.pretrain', '--config', str(recipe_file),
               '--output', str(output), '--no-progress', *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_pretraining_runs_resumes_exactly_and_loads_into_the_tracker(recipe_file, tmp_path):
    """Eight steps; a run resumed from step 4 ends identical; the tracker loads the encoder."""
    pretrain(recipe_file, tmp_path / 'straight')
    encoder_file = tmp_path / 'straight' / 'encoder.safetensors'
    weights = load_file(str(encoder_file))
    metrics = (tmp_path / 'straight' / 'metrics.csv').read_text()
    assert 'val_loss' in metrics and len(metrics.splitlines()) > 8
    assert yaml.safe_load(encoder_file.with_suffix('.yaml').read_text())['metadata']['steps'] == 8

    resumed = tmp_path / 'resumed'
    (resumed / 'checkpoints').mkdir(parents=True)
    shutil.copytree(tmp_path / 'straight' / 'checkpoints' / 'step_00000004',
                    resumed / 'checkpoints' / 'step_00000004')
    output = pretrain(recipe_file, resumed, '--resume')
    assert 'resumed from' in output.stderr
    again = load_file(str(resumed / 'encoder.safetensors'))
    for key in weights:
        torch.testing.assert_close(again[key], weights[key], rtol=1e-5, atol=1e-6)

    tracker = create_model(load_pretrain_recipe(str(recipe_file)).model)
    report = load_pretrained_encoder(tracker.encoder, str(encoder_file))
    assert report.missing == [] and report.unexpected == [] and not report.resized
    for key, value in tracker.encoder.state_dict().items():
        torch.testing.assert_close(value, weights[key])


@pytest.mark.parametrize('recipe', ['cpu.yaml', 'gpu.yaml'])
def test_committed_pretraining_recipes_match_their_tracking_models(recipe):
    """The committed recipes parse, and pretrain the encoder of the tracking recipe they feed."""
    loaded = load_pretrain_recipe(str(ROOT / 'training' / 'pretrain' / recipe))
    tracking = {'cpu.yaml': 'synthetic_cpu_pool.yaml', 'gpu.yaml': 'synthetic_gpu_pool_small.yaml'}
    assert loaded.model == load_recipe(str(ROOT / 'training' / tracking[recipe])).model
    assert loaded.data.split == 'train' and loaded.optim.epochs > 0


def test_both_kinds_of_recipe_take_overrides_and_name_the_bad_section():
    """Pretraining and tracking recipes read --set overrides alike; errors name the section."""
    pretraining = str(ROOT / 'training' / 'pretrain' / 'cpu.yaml')
    assert load_pretrain_recipe(pretraining, ['optim.epochs=3']).optim.epochs == 3
    with pytest.raises(ValueError, match=r'cpu.yaml: mae: mask_ratio must be in'):
        load_pretrain_recipe(pretraining, ['mae.mask_ratio=1.5'])
    tracking = str(ROOT / 'training' / 'synthetic_cpu_pool.yaml')
    assert load_recipe(tracking, ['loss.topk=0']).loss.topk == 0
    with pytest.raises(ValueError, match=r'pool.yaml: loss: assignment must be one of'):
        load_recipe(tracking, ['loss.assignment=one_to_one'])


def test_the_comparison_arms_differ_only_in_the_initial_encoder():
    """track_scratch and track_pretrained: same model, data and optimiser; one is pretrained."""
    folder = ROOT / 'training' / 'pretrain'
    scratch = load_recipe(str(folder / 'track_scratch.yaml')).to_dict()
    pretrained = load_recipe(str(folder / 'track_pretrained.yaml')).to_dict()
    assert scratch.pop('pretrained') is None
    assert pretrained.pop('pretrained') == 'runs/pretrain_cpu/encoder.safetensors'
    assert scratch.pop('output') != pretrained.pop('output')
    assert scratch == pretrained
    encoder = load_pretrain_recipe(str(folder / 'cpu.yaml'))
    assert encoder.model.to_dict() == scratch['model']
    assert encoder.output == 'runs/pretrain_cpu'
