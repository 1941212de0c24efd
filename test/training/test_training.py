"""
The trainer: smoke runs of both heads, exact resume after a kill, DDP against one process.

Every run here trains a two-block network on three tiny synthetic sequences generated once
per session, so the whole file stays well under two minutes on two CPU cores.
"""

import csv
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from detrack_model.engine.recipe import apply_overrides, load_recipe, recipe_from_dict
from detrack_model.engine.trainer import Trainer
from detrack_model.export import load_bundle
import pytest
from safetensors.torch import load_file
import torch
from toy_datasets import write_got10k
import yaml

TRAINING = pathlib.Path(__file__).resolve().parents[2] / 'training'
SHIPPED = TRAINING.parent / 'models' / 'detrack_tiny_pool.yaml'


@pytest.fixture(scope='module')
def recipe_file(tmp_path_factory):
    """Write a tiny recipe (its synthetic data is generated on first use) to a temp dir."""
    root = tmp_path_factory.mktemp('training')
    recipe = {
        'model': {'preset': 'vit_tiny', 'template_size': 64, 'search_size': 128,
                  'encoder': {'depth': 2, 'ce_layers': [1]},
                  'decoder': {'layers': 2, 'hidden': 64, 'heads': 4, 'points': 2,
                              'ffn_dim': 128, 'num_queries': 8}},
        'data': {'train': [{'type': 'synthetic', 'root': str(root / 'data'), 'split': 'train',
                            'sequences': 3, 'frames': 20, 'seed': 1, 'size': [160, 120]}],
                 'val': [{'type': 'synthetic', 'root': str(root / 'data'), 'split': 'val',
                          'sequences': 2, 'frames': 20, 'seed': 2, 'size': [160, 120]}],
                 'pairs_per_epoch': 32, 'val_pairs': 16, 'workers': 0, 'max_gap': 10},
        'optim': {'epochs': 2, 'batch_size': 8, 'threads': 1, 'ce_start_epoch': 1},
        'loss': {'denoising': True, 'dn_groups': 2},
        'checkpoint': {'every_steps': 2, 'keep_last': 2, 'log_every': 1},
        'output': str(root / 'run'),
    }
    path = root / 'recipe.yaml'
    path.write_text(yaml.safe_dump(recipe))
    return path


def train(recipe_file, output, *overrides, extra_args=(), env=None, background=False):
    """Run detrack-train in a subprocess (as users do)."""
    command = [sys.executable, '-m', 'detrack_model.cli.train', '--config', str(recipe_file),
               '--output', str(output), '--no-progress', *extra_args]
    for override in overrides:
        command += ['--set', override]
    environment = dict(os.environ, **(env or {}))
    if background:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    result = subprocess.run(command, env=environment, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def losses(run: pathlib.Path):
    """Step -> logged loss from a run's metrics.csv."""
    with (run / 'metrics.csv').open(newline='') as handle:
        return {int(row['step']): float(row['loss']) for row in csv.DictReader(handle)
                if row.get('loss')}


@pytest.mark.parametrize('head, denoising', [('decoder', True), ('decoder', False),
                                             ('conv', False)])
def test_smoke_both_heads(recipe_file, tmp_path, head, denoising):
    """A few steps train, checkpoint, validate and leave a loadable final bundle."""
    recipe = load_recipe(str(recipe_file))
    data = apply_overrides(recipe.to_dict(), [f'model.head={head}',
                                              f'loss.denoising={denoising}',
                                              'optim.epochs=1'])
    trainer = Trainer(recipe_from_dict(data), str(tmp_path), 'cpu', progress=False)
    bundle = trainer.fit()
    trainer.close()
    logged = losses(tmp_path)
    assert sorted(logged) == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(v)) for v in logged.values())
    model = load_bundle(bundle)
    assert model.config.head == head
    assert (tmp_path / 'checkpoints' / 'step_00000004' / 'model.safetensors').is_file()
    with (tmp_path / 'metrics.csv').open() as handle:
        rows = list(csv.DictReader(handle))
    assert any(row.get('val_mean_iou') for row in rows)
    if head == 'decoder':
        assert any(float(row['dn_qfl'] or 0) > 0 for row in rows) == denoising
    assert (tmp_path / 'tensorboard').is_dir()


def test_training_with_target_absent_pairs(recipe_file, tmp_path):
    """Half the search crops without the target: the run trains; the conv head refuses it."""
    recipe = load_recipe(str(recipe_file))
    data = apply_overrides(recipe.to_dict(), ['data.absent_fraction=0.5', 'optim.epochs=1'])
    trainer = Trainer(recipe_from_dict(data), str(tmp_path), 'cpu', progress=False)
    present = [trainer.train_data[index]['present'] for index in range(32)]
    assert 4 < sum(present) < 28
    load_bundle(trainer.fit())
    trainer.close()
    logged = losses(tmp_path)
    assert sorted(logged) == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(v)) for v in logged.values())
    conv = apply_overrides(recipe.to_dict(), ['data.absent_fraction=0.5', 'model.head=conv'])
    with pytest.raises(ValueError, match='absent_fraction needs the decoder head'):
        recipe_from_dict(conv)
    with pytest.raises(ValueError, match=r'absent_fraction must be in \[0, 1\)'):
        recipe_from_dict(apply_overrides(recipe.to_dict(), ['data.absent_fraction=1.5']))


@pytest.mark.slow
def test_training_reduces_the_loss(recipe_file, tmp_path):
    """Forty steps on the same few sequences bring the loss down."""
    recipe = load_recipe(str(recipe_file))
    data = apply_overrides(recipe.to_dict(), ['optim.epochs=10', 'optim.lr=1e-3',
                                              'optim.lr_encoder=1e-3', 'data.val=[]',
                                              'checkpoint.every_steps=1000'])
    trainer = Trainer(recipe_from_dict(data), str(tmp_path), 'cpu', progress=False)
    trainer.fit()
    trainer.close()
    logged = losses(tmp_path)
    first = sum(logged[s] for s in range(1, 6)) / 5
    last = sum(logged[s] for s in range(36, 41)) / 5
    assert last < 0.8 * first


@pytest.mark.slow
def test_resume_after_a_kill_reproduces_the_uninterrupted_run(recipe_file, tmp_path):
    """SIGKILL mid-epoch, --resume: the loss curve equals the uninterrupted run's."""
    settings = ['optim.epochs=3', 'data.val=[]']
    train(recipe_file, tmp_path / 'straight', *settings)
    process = train(recipe_file, tmp_path / 'killed', *settings, 'checkpoint.every_steps=3',
                    background=True)
    checkpoint = tmp_path / 'killed' / 'checkpoints' / 'step_00000006'
    deadline = time.monotonic() + 120
    while not checkpoint.is_dir() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = max(losses(tmp_path / 'killed'))
    assert killed_at < 12, 'the run finished before it could be killed'
    train(recipe_file, tmp_path / 'killed', *settings, 'checkpoint.every_steps=3',
          extra_args=['--resume'])
    straight, resumed = losses(tmp_path / 'straight'), losses(tmp_path / 'killed')
    assert sorted(resumed) == sorted(straight) == list(range(1, 13))
    for step in straight:
        assert resumed[step] == pytest.approx(straight[step], rel=1e-6, abs=1e-7), step
    final_a = load_file(str(tmp_path / 'straight' / 'model.safetensors'))
    final_b = load_file(str(tmp_path / 'killed' / 'model.safetensors'))
    for key in final_a:
        torch.testing.assert_close(final_a[key], final_b[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint(recipe_file, tmp_path):
    """SIGTERM (as from a job scheduler) stops the run with a checkpoint and exit code 130."""
    process = train(recipe_file, tmp_path, 'optim.epochs=50', 'data.val=[]',
                    'checkpoint.every_steps=1000', background=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / 'metrics.csv').is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    checkpoints = list((tmp_path / 'checkpoints').glob('step_*'))
    assert len(checkpoints) == 1 and 'checkpoint saved' in output


@pytest.mark.slow
@pytest.mark.parametrize('sparsity', [False, True], ids=['plain', 'sparsity'])
def test_ddp_on_two_cpu_processes_equals_one_process(recipe_file, tmp_path, sparsity):
    """Run 2 gloo processes under torchrun: ranks agree and match one process."""
    overrides = ['data.val=[]']
    if sparsity:
        # Sparsity training (pruning masks + L1 penalty) is the same loop under DDP.
        overrides += ['model.masked=true', 'sparsity={attention: 0.01, mlp: 0.01, '
                      'decoder_ffn: 0.01, mask_lr: 0.01}']
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
               '--nproc_per_node', '2', '-m', 'detrack_model.cli.train',
               '--config', str(recipe_file), '--output', str(tmp_path / 'ddp'), '--no-progress']
    for override in overrides:
        command += ['--set', override]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    train(recipe_file, tmp_path / 'single', *overrides)
    ddp, single = losses(tmp_path / 'ddp'), losses(tmp_path / 'single')
    assert sorted(ddp) == sorted(single)
    for step in single:
        assert ddp[step] == pytest.approx(single[step], rel=1e-5), step
    weights_ddp = load_file(str(tmp_path / 'ddp' / 'model.safetensors'))
    weights_single = load_file(str(tmp_path / 'single' / 'model.safetensors'))
    assert any(key.endswith('prune_mask') for key in weights_single) == sparsity
    for key in weights_single:
        torch.testing.assert_close(weights_ddp[key], weights_single[key], rtol=1e-4, atol=1e-5)


def test_corrupt_training_data_is_skipped_and_counted(recipe_file, tmp_path):
    """
    Train on a GOT-10k split where three of four sequences are broken in a different way.

    One is listed but has no directory, one has boxes of 1e308, one has every JPEG cut in
    half. Training finishes; each kind of damage is skipped and counted under its reason.
    """
    root = tmp_path / 'got10k'
    names = list(write_got10k(str(root), 'train', num_sequences=4, num_frames=10, seed=5))
    shutil.rmtree(root / 'train' / names[1])
    (root / 'train' / names[2] / 'groundtruth.txt').write_text('0,0,1e308,1e308\n' * 10)
    for frame in (root / 'train' / names[3]).glob('*.jpg'):
        data = frame.read_bytes()
        frame.write_bytes(data[:len(data) // 2])
    recipe = load_recipe(str(recipe_file))
    data = apply_overrides(recipe.to_dict(), ['optim.epochs=1', 'data.val=[]',
                                              'checkpoint.every_steps=1000'])
    data['data']['train'] = [{'type': 'got10k', 'root': str(root), 'split': 'train'}]
    trainer = Trainer(recipe_from_dict(data), str(tmp_path / 'run'), 'cpu', progress=False)
    trainer.fit()
    trainer.close()
    counts = trainer.train_data.pairs.skip_counts
    for reason in ('bad_annotation', 'invalid_box', 'frame_error'):
        assert counts[reason] > 0, counts
    assert trainer.skipped == sum(counts.values()) - counts['no_visible_frames']
    with (tmp_path / 'run' / 'metrics.csv').open(newline='') as handle:
        logged = [int(float(row['skipped'])) for row in csv.DictReader(handle)
                  if row.get('skipped')]
    assert logged[-1] == trainer.skipped > 0


def damage(path: pathlib.Path, how: str) -> None:
    """Damage a checkpoint file: cut it in half, or replace it with garbage."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if how == 'truncated' else b'PK\x03\x04 garbage')


@pytest.mark.slow
@pytest.mark.parametrize('broken', ['model.safetensors', 'state.pt'])
@pytest.mark.parametrize('how', ['truncated', 'garbage'])
def test_resume_falls_back_to_the_newest_intact_checkpoint(recipe_file, tmp_path, broken, how):
    """The newest checkpoint is damaged: --resume continues from the one before, and says so."""
    settings = ['optim.epochs=2', 'data.val=[]', 'checkpoint.every_steps=2',
                'checkpoint.keep_last=3']
    train(recipe_file, tmp_path, *settings, 'optim.epochs=1')
    newest = tmp_path / 'checkpoints' / 'step_00000004'
    damage(newest / broken, how)
    result = train(recipe_file, tmp_path, *settings, extra_args=['--resume'])
    output = result.stdout + result.stderr
    assert 'skipping damaged checkpoint' in output and str(newest) in output, output
    assert 'resumed from' in output and 'step_00000002 at step 2' in output, output
    assert 'weights_only' not in output and 'Traceback' not in output
    assert sorted(losses(tmp_path))[-1] == 8


@pytest.mark.slow
def test_resume_from_a_named_damaged_checkpoint_is_an_error_line(recipe_file, tmp_path):
    """--resume naming a garbage state.pt: exit 1 with our message, never PyTorch's advice."""
    train(recipe_file, tmp_path, 'optim.epochs=1', 'data.val=[]', 'checkpoint.every_steps=2')
    checkpoint = tmp_path / 'checkpoints' / 'step_00000004'
    damage(checkpoint / 'state.pt', 'garbage')
    command = [sys.executable, '-m', 'detrack_model.cli.train', '--config', str(recipe_file),
               '--output', str(tmp_path), '--no-progress', '--resume', str(checkpoint)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert 'cannot resume' in result.stderr and 'not a training state' in result.stderr
    assert 'weights_only' not in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.parametrize('recipe', sorted(p.name for p in TRAINING.glob('*.yaml')))
def test_committed_recipes_parse(recipe):
    """Every recipe in training/ parses and builds a valid configuration."""
    data = yaml.safe_load((TRAINING / recipe).read_text())
    if 'model' not in data:
        # Fine-tuning recipes take their model from detrack-prune finetune --child.
        data['model'] = {'bundle': str(SHIPPED)}
    loaded = recipe_from_dict(data, recipe)
    assert loaded.optim.epochs > 0 and loaded.data.train
    if recipe.startswith(('got10k', 'full')):
        assert loaded.model.encoder.dim == 768
        assert (loaded.optim.lr, loaded.optim.lr_encoder) == (4e-4, 4e-5)
        assert (loaded.optim.weight_decay, loaded.optim.lr_drop) == (1e-4, 0.8)
        assert (loaded.optim.batch_size, loaded.data.pairs_per_epoch) == (128, 60000)
        assert loaded.optim.epochs == (20 if recipe.startswith('got10k') else 60)
        assert loaded.model.head == ('conv' if 'ostrack' in recipe else 'decoder')


def test_recipe_typos_are_named(tmp_path):
    """An unknown key anywhere in a recipe is an error that names it."""
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump({'model': {'preset': 'vit_tiny'},
                                    'optim': {'epochs': 1, 'learning_rate': 1}}))
    with pytest.raises(ValueError, match=r"optim: unknown keys \['learning_rate'\]"):
        load_recipe(str(path))
    path.write_text(yaml.safe_dump({'model': {'preset': 'vit_tiny'}, 'loss': {'top_k': 4}}))
    with pytest.raises(ValueError, match=r"loss: unknown keys \['top_k'\]"):
        load_recipe(str(path))


def test_recipe_numbers_written_without_a_dot_are_numbers(tmp_path):
    """YAML reads 1e-3 as a string; the recipe takes it as the number meant, else names it."""
    path = tmp_path / 'lr.yaml'
    path.write_text('model: {preset: vit_tiny}\noptim: {lr: 1e-3, epochs: 2}\n')
    assert load_recipe(str(path)).optim.lr == 1e-3
    path.write_text('model: {preset: vit_tiny}\noptim: {epochs: ten}\n')
    with pytest.raises(ValueError, match=r"optim: epochs: expected int, got 'ten'"):
        load_recipe(str(path))
