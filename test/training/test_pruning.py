"""Pruning pipeline: masks, sparsity loss, slicing, pruned bundles, training and export."""

import copy
import csv
import json
import math
import pathlib
import subprocess
import sys

from detrack_model.cli.profiler import main as profile_main
from detrack_model.config import ModelConfig
from detrack_model.engine.recipe import recipe_from_dict
from detrack_model.engine.trainer import Trainer
from detrack_model.export.bundle import (BundleError, init_from_bundle, load_bundle,
                                         read_bundle_config, save_bundle)
from detrack_model.export.onnx import export_onnx
from detrack_model.modeling import create_model
from detrack_model.modeling.head_layout import uniform_head_widths
from detrack_model.modeling.prune_masks import prune_masks
from detrack_model.modeling.vit import Attention
from detrack_model.profiling import count_macs
from detrack_model.pruning import (choose_kept, masked_child, prune_to_budget, slice_model,
                                   sparsity_penalty, SparsityWeights)
from detrack_model.tracking import build_tracker, RuntimeConfig
from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend
from detrack_model.tracking.backends.torch_backend import TorchBackend
import numpy as np
import onnx
import pytest
import torch
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMALL = {'template_size': 64, 'search_size': 128,
         'encoder': {'depth': 3, 'ce_layers': [1, 2]},
         'decoder': {'layers': 2, 'hidden': 64, 'heads': 4, 'points': 2, 'ffn_dim': 96,
                     'num_queries': 8}}


def small_model(masked: bool = True, head: str = 'decoder', seed: int = 0):
    """Return a small random network in eval mode."""
    torch.manual_seed(seed)
    return create_model('vit_tiny', masked=masked, head=head, **copy.deepcopy(SMALL)).eval()


def randomise_masks(model, seed: int = 1) -> None:
    """Give the masks spread values of both signs, as sparsity training leaves them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for group in prune_masks(model).values():
            for mask in group.values():
                mask.copy_(torch.rand(mask.shape, generator=generator) * 2.0 - 0.4)


def model_widths(model) -> list:
    """Return the q/k/v width of every head of every encoder block."""
    return [block.attn.head_widths for block in model.encoder.blocks]


def crops(batch: int = 2, seed: int = 3):
    """Return random template and search crops."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, 64, 64, generator=generator),
            torch.rand(batch, 3, 128, 128, generator=generator))


# -- masks ------------------------------------------------------------------------------------

@pytest.mark.parametrize('head', ['decoder', 'conv'])
def test_masks_at_one_leave_outputs_unchanged(head):
    """A masked network with masks of ones computes what the same network without masks does."""
    plain = small_model(masked=False, head=head)
    masked = create_model(ModelConfig.from_dict({**plain.config.to_dict(), 'masked': True}))
    missing, unexpected = masked.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.endswith('prune_mask') for k in missing)
    masked.eval()
    template, search = crops()
    with torch.no_grad():
        a, b = plain(template, search), masked(template, search)
    for key in ('boxes', 'scores'):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_masks_sit_on_every_attention_mlp_and_decoder_ffn():
    """Attention masks are (heads, head_dim); MLP and FFN masks cover their hidden units."""
    groups = prune_masks(small_model())
    assert sorted(groups['attention']) == [f'encoder.blocks.{i}.attn' for i in range(3)]
    assert all(m.shape == (3, 64) for m in groups['attention'].values())
    assert all(m.shape == (768,) for m in groups['mlp'].values())
    assert sorted(groups['decoder_ffn']) == ['decoder.layers.0', 'decoder.layers.1']
    assert all(m.shape == (96,) for m in groups['decoder_ffn'].values())
    assert all(bool((m == 1).all()) for g in groups.values() for m in g.values())


def test_attention_mask_multiplies_q_k_and_v():
    """Zeroing one head's mask removes exactly that head's contribution to the output."""
    model = small_model()
    attn = model.encoder.blocks[0].attn
    x = torch.randn(1, 10, 192)
    with torch.no_grad():
        attn.prune_mask[1] = 0.0
        out, _ = attn(x)
        # The same head removed by hand: its q, k, v rows and proj columns set to zero.
        attn.prune_mask.fill_(1.0)
        rows = torch.arange(64, 128)
        attn.qkv.weight[torch.cat([rows, rows + 192, rows + 384])] = 0.0
        attn.qkv.bias[torch.cat([rows, rows + 192, rows + 384])] = 0.0
        reference, _ = attn(x)
    torch.testing.assert_close(out, reference)


# -- sparsity loss ----------------------------------------------------------------------------

def test_sparsity_penalty_value_and_gradients():
    """The penalty is w_attn*sum|attn| + w_mlp*sum|mlp| + w_dec*sum|ffn|; its gradient w*sign."""
    model = small_model()
    randomise_masks(model)
    groups = prune_masks(model)
    weights = SparsityWeights(attention=1.5e-4, mlp=7.5e-5, decoder_ffn=2e-5)
    penalty, sums = sparsity_penalty(model, weights)
    expected = {kind: sum(float(m.detach().abs().sum()) for m in group.values())
                for kind, group in groups.items()}
    for kind in expected:
        assert float(sums[kind].detach()) == pytest.approx(expected[kind], rel=1e-6)
    total = (1.5e-4 * expected['attention'] + 7.5e-5 * expected['mlp']
             + 2e-5 * expected['decoder_ffn'])
    assert float(penalty.detach()) == pytest.approx(total, rel=1e-6)
    penalty.backward()
    for kind, weight in (('attention', 1.5e-4), ('mlp', 7.5e-5), ('decoder_ffn', 2e-5)):
        for mask in groups[kind].values():
            torch.testing.assert_close(mask.grad, weight * mask.detach().sign())
    assert all(p.grad is None for n, p in model.named_parameters()
               if not n.endswith('prune_mask'))


def test_sparsity_penalty_defaults_are_the_papers():
    """Defaults: 1.5e-4 on attention masks, 7.5e-5 on MLP masks."""
    assert (SparsityWeights().attention, SparsityWeights().mlp) == (1.5e-4, 7.5e-5)


def test_sparsity_penalty_needs_masks():
    """A network without masks is refused with a message saying how to get them."""
    with pytest.raises(ValueError, match='masked: true'):
        sparsity_penalty(small_model(masked=False), SparsityWeights())


# -- slicing ----------------------------------------------------------------------------------

@pytest.mark.parametrize('budget, mode', [(0.75, 'global'), (0.5, 'global'), (0.25, 'global'),
                                          (0.1, 'global'), (0.01, 'layerwise'),
                                          (1.0, 'global')])
@pytest.mark.parametrize('prune_decoder', [False, True])
def test_sliced_network_reproduces_the_masked_one(budget, mode, prune_decoder):
    """Encoder and decoder: the physically smaller child equals the 0/1-masked parent."""
    parent = small_model()
    randomise_masks(parent)
    keep = choose_kept(parent, budget, mode, prune_decoder=prune_decoder)
    reference = masked_child(parent, keep).eval()
    child, report = slice_model(parent, keep)
    template, search = crops()
    with torch.no_grad():
        a, b = reference(template, search), child(template, search)
    assert torch.equal(a['search_index'], b['search_index'])
    for key in ('boxes', 'scores', 'token_boxes', 'token_logits'):
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5)
    assert not child.config.masked and not any(prune_masks(child)['attention'])
    enc = child.config.encoder
    for i in range(3):
        name = f'encoder.blocks.{i}.attn'
        # Exact per-head widths: the weights hold what is kept and nothing else; the zero
        # entries of the attention layout fill the heads up to the widest one.
        widths = enc.head_widths[i]
        assert sum(widths) == report.kept[name] == child.encoder.blocks[i].attn.proj.in_features
        assert len(widths) * max(widths) == report.kept[name] + report.padded[name]
        assert enc.mlp_dims[i] == report.kept[f'encoder.blocks.{i}.mlp']
    sizes = [p.numel() for p in child.parameters()]
    if budget < 1.0:
        assert sum(sizes) < sum(p.numel() for p in parent.parameters())
    if prune_decoder and budget < 1.0:
        assert max(child.config.decoder.ffn_dims) < 96
    else:
        assert child.config.decoder.ffn_dims == [96, 96]


def test_conv_head_network_slices_too():
    """The conv-head network has only encoder masks; its child matches as well."""
    parent = small_model(head='conv')
    randomise_masks(parent)
    keep = choose_kept(parent, 0.3)
    reference = masked_child(parent, keep).eval()
    child, _ = slice_model(parent, keep)
    template, search = crops()
    with torch.no_grad():
        a, b = reference(template, search), child(template, search)
    torch.testing.assert_close(b['boxes'], a['boxes'], rtol=0, atol=1e-5)
    torch.testing.assert_close(b['score_map'], a['score_map'], rtol=0, atol=1e-5)


def test_dead_heads_are_removed_and_uneven_heads_keep_their_widths():
    """Hand-made keep: head 0 empty, heads 1 and 2 keep 5 and 2 dims -> widths [5, 2]."""
    parent = small_model()
    randomise_masks(parent)
    keep = choose_kept(parent, 1.0)
    name = 'encoder.blocks.0.attn'
    kept = torch.zeros(3, 64, dtype=torch.bool)
    kept[1, [0, 7, 9, 30, 63]] = True
    kept[2, [4, 5]] = True
    keep[name] = kept
    reference = masked_child(parent, keep).eval()
    child, report = slice_model(parent, keep)
    assert (report.heads[name], report.head_dims[name], report.padded[name]) == (2, 5, 3)
    assert child.config.encoder.head_widths[0] == report.head_widths[name] == [5, 2]
    attn = child.encoder.blocks[0].attn
    assert attn.qkv.weight.shape == (3 * 7, 192) and attn.proj.weight.shape == (192, 7)
    template, search = crops()
    with torch.no_grad():
        a, b = reference(template, search), child(template, search)
    assert torch.equal(a['search_index'], b['search_index'])
    torch.testing.assert_close(b['boxes'], a['boxes'], rtol=0, atol=1e-5)


def test_heads_of_different_widths_equal_attention_head_by_head():
    """One fused call over the zero-padded layout = each head attending at its own width."""
    torch.manual_seed(0)
    widths = [5, 12, 1]
    attention = Attention(dim=48, heads=4, head_widths=widths).double()
    assert attention.qkv.out_features == 3 * 18 and attention.proj.in_features == 18
    x = torch.randn(2, 20, 48, dtype=torch.double)
    probe = torch.tensor([3, 4])
    out, probe_attention = attention(x, probe)
    q, k, v = attention.qkv(x).split(18, dim=-1)
    starts = [0, 5, 17]
    outputs, weights = [], []
    for start, width in zip(starts, widths):
        part = slice(start, start + width)
        # The fused call scales every head by the layer's widest width.
        w = (q[..., part] @ k[..., part].transpose(-2, -1) / math.sqrt(12)).softmax(-1)
        outputs.append(w @ v[..., part])
        weights.append(w)
    torch.testing.assert_close(out, attention.proj(torch.cat(outputs, -1)))
    expected = torch.stack(weights, 1)[:, :, [3, 4]].mean(dim=(1, 2))
    torch.testing.assert_close(probe_attention, expected)


@pytest.mark.parametrize('change, message', [
    ({'head_widths': [[4, 2], [3]]}, 'one list of head widths per block'),
    ({'head_widths': [[4, 2], [3], [1, 1, 1, 1]]}, r'head_widths\[2\] must list 1..3'),
    ({'head_widths': [[4, 0], [3], [2]]}, r'head_widths\[0\]'),
    ({'head_widths': [[4, 2], [3], [2]], 'head_dims': [4, 3, 2]}, 'give one or the other'),
    ({'head_widths': [[4, 2], [3], [2]], 'masked': True}, 'block 0 has widths'),
])
def test_head_widths_are_checked(change, message):
    """Impossible per-head widths are refused by the config, naming the block."""
    data = small_model(masked=False).config.to_dict()
    masked = change.pop('masked', False)
    data['encoder'].update(change)
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict({**data, 'masked': masked})


def test_slicing_refuses_keeps_that_do_not_fit():
    """A keep of the wrong shape, an unknown name or an empty layer is a clear error."""
    parent = small_model()
    with pytest.raises(ValueError, match='shape'):
        slice_model(parent, {'encoder.blocks.0.attn': torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match='no masks named'):
        slice_model(parent, {'encoder.blocks.9.attn': torch.ones(3, 64, dtype=torch.bool)})
    with pytest.raises(ValueError, match='keeps nothing'):
        slice_model(parent, {'encoder.blocks.0.mlp': torch.zeros(768, dtype=torch.bool)})
    with pytest.raises(ValueError, match='no pruning masks'):
        slice_model(small_model(masked=False), {})


def test_global_budget_keeps_the_fraction_overall():
    """Over the encoder's masks, a global budget keeps int-rounded b of all entries."""
    parent = small_model()
    randomise_masks(parent)
    for budget in (0.75, 0.5, 0.25, 0.1):
        keep = choose_kept(parent, budget)
        encoder = [v for k, v in keep.items() if k.startswith('encoder')]
        kept = sum(int(v.sum()) for v in encoder)
        total = sum(v.numel() for v in encoder)
        assert abs(kept - budget * total) <= 3 + 0.01 * total  # ties and the minimum barrier


@pytest.mark.parametrize('budget', [0.0, -0.1, 1.5, float('nan')])
def test_budget_outside_the_range_is_refused(budget):
    """A budget outside (0, 1] is a ValueError naming the valid range."""
    with pytest.raises(ValueError, match=r'\(0, 1\]'):
        prune_to_budget(small_model(), budget)


# -- bundles ----------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def child_bundle(tmp_path_factory):
    """Write a pruned child of a small random network as a bundle."""
    parent = small_model()
    randomise_masks(parent)
    child, _ = prune_to_budget(parent, 0.25, prune_decoder=True)
    path = tmp_path_factory.mktemp('pruned') / 'child'
    save_bundle(child, path)
    return path


def test_pruned_bundle_round_trips_with_its_architecture(child_bundle):
    """The per-layer widths are in the bundle's config; loading rebuilds the same network."""
    document = yaml.safe_load(child_bundle.with_suffix('.yaml').read_text())
    encoder = document['model']['encoder']
    assert len(encoder['head_widths']) == len(encoder['mlp_dims']) == 3
    # The one per-layer form; the retired head_dims/head_counts are not written.
    assert 'head_dims' not in encoder and 'head_counts' not in encoder
    assert document['model']['masked'] is False
    assert model_widths(load_bundle(child_bundle)) == encoder['head_widths']
    model = load_bundle(child_bundle)
    assert model.config.encoder.mlp_dims == encoder['mlp_dims']
    assert model.config.decoder.ffn_dims == document['model']['decoder']['ffn_dims']


def test_bundle_whose_config_and_weights_disagree_is_refused(child_bundle, tmp_path):
    """Widen one layer in the YAML only: loading names the mismatching tensors."""
    for suffix in ('.safetensors', '.yaml'):
        (tmp_path / f'bad{suffix}').write_bytes(child_bundle.with_suffix(suffix).read_bytes())
    document = yaml.safe_load((tmp_path / 'bad.yaml').read_text())
    document['model']['encoder']['mlp_dims'][1] += 1
    (tmp_path / 'bad.yaml').write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(BundleError, match=r'blocks\.1\.mlp\.fc1\.weight'):
        load_bundle(tmp_path / 'bad')
    with pytest.raises(BundleError, match='cannot initialise'):
        init_from_bundle(small_model(), child_bundle)


def test_init_from_bundle_accepts_missing_masks_only(tmp_path):
    """A trained (unmasked) bundle initialises a masked network; its masks start at one."""
    plain = small_model(masked=False, seed=4)
    save_bundle(plain, tmp_path / 'plain')
    masked = small_model(masked=True, seed=9)
    init_from_bundle(masked, tmp_path / 'plain')
    torch.testing.assert_close(masked.encoder.blocks[0].mlp.fc1.weight,
                               plain.encoder.blocks[0].mlp.fc1.weight)
    assert all(bool((m == 1).all()) for g in prune_masks(masked).values() for m in g.values())


def test_pruned_bundle_runs_in_the_tracker_on_both_backends(child_bundle):
    """The Tracker loads a pruned bundle like any other; both backends agree on the box."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = {}
    for backend in ('torch', 'onnxruntime'):
        tracker = build_tracker(child_bundle, RuntimeConfig(device='cpu', backend=backend))
        tracker.initialize(frame, (100, 80, 60, 40))
        box, score = tracker.track(frame)
        assert np.all(np.isfinite(box)) and 0.0 <= score <= 1.0
        boxes[backend] = np.asarray(box)
    np.testing.assert_allclose(boxes['torch'], boxes['onnxruntime'], atol=1e-2)


@pytest.mark.parametrize('pad_heads', [True, False])
def test_onnx_export_of_a_sliced_network_matches_torch(child_bundle, tmp_path, pad_heads):
    """Both head layouts export with standard operators; onnxruntime reproduces PyTorch."""
    model = load_bundle(child_bundle)
    # The interesting case: heads of different widths in one block.
    assert any(len(set(widths)) > 1 for widths in model_widths(model))
    path = export_onnx(model, tmp_path / 'child.onnx', pad_heads=pad_heads)
    rng = np.random.default_rng(1)
    template = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    search = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    results = []
    for backend in (TorchBackend(model, torch.device('cpu')), OnnxBackend(path)):
        backend.set_template(template)
        results.append([np.array(part) for part in backend.infer(search)])
    for torch_part, onnx_part in zip(*results):
        np.testing.assert_allclose(torch_part, onnx_part, atol=1e-5)


def test_padded_head_layout_is_the_same_network_with_fewer_operators(child_bundle, tmp_path):
    """Padding heads to one width per block changes neither outputs nor the kept weights."""
    model = load_bundle(child_bundle)
    padded = uniform_head_widths(model)
    assert uniform_head_widths(padded) is padded
    # The padded config is the same one spec: each block's heads at the block's widest width.
    assert padded.config.encoder.head_widths == [
        [max(widths)] * len(widths) for widths in model.config.encoder.head_widths]
    assert padded.config.encoder.mlp_dims == model.config.encoder.mlp_dims
    for block, exact in zip(padded.encoder.blocks, model.encoder.blocks):
        assert block.attn.pad_index is None
        assert block.attn.heads == exact.attn.heads and block.attn.head_dim == exact.attn.head_dim
        # The exact weights are all there, the rest are zeros.
        assert torch.count_nonzero(block.attn.qkv.weight) == \
            torch.count_nonzero(exact.attn.qkv.weight)
        assert torch.count_nonzero(block.attn.proj.weight) == \
            torch.count_nonzero(exact.attn.proj.weight)
    template, search = crops()
    with torch.no_grad():
        a, b = model(template, search), padded(template, search)
    assert torch.equal(a['search_index'], b['search_index'])
    torch.testing.assert_close(b['boxes'], a['boxes'], rtol=0, atol=1e-5)
    assert count_macs(padded)['encoder'].total > count_macs(model)['encoder'].total
    nodes = {}
    for pad_heads in (True, False):
        path = export_onnx(model, tmp_path / f'{pad_heads}.onnx', pad_heads=pad_heads)
        nodes[pad_heads] = len(onnx.load(str(path)).graph.node)
    assert nodes[True] < nodes[False]


def test_profile_tool_reads_a_pruned_bundle(child_bundle, capsys):
    """detrack-profile takes the bundle's YAML and counts the smaller network."""
    assert profile_main(['--config', str(child_bundle.with_suffix('.yaml')), '--runs', '2',
                         '--json']) == 0
    report = json.loads(capsys.readouterr().out)
    full = create_model('vit_tiny', **copy.deepcopy(SMALL))
    assert report['stages']['encoder']['macs'] < 0.5 * count_macs(full)['encoder'].total


# -- training ---------------------------------------------------------------------------------

def tiny_recipe(root: pathlib.Path, model, **extra):
    """Return a recipe dict of a few steps on generated synthetic data."""
    data = root.parent / 'data'
    return {
        'model': model,
        'data': {'train': [{'type': 'synthetic', 'root': str(data), 'split': 'train',
                            'sequences': 3, 'frames': 20, 'seed': 1, 'size': [160, 120]}],
                 'val': [], 'pairs_per_epoch': 16, 'workers': 0, 'max_gap': 10},
        'optim': {'epochs': 1, 'batch_size': 8, 'threads': 1, 'lr': 1e-3},
        'loss': {'denoising': True, 'dn_groups': 2},
        'checkpoint': {'every_steps': 1, 'keep_last': 2, 'log_every': 1},
        'output': str(root),
        **extra,
    }


def logged(run: pathlib.Path):
    """Rows of a run's metrics.csv."""
    with (run / 'metrics.csv').open(newline='') as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_sparsity_training_steps_move_the_masks_and_resume(tmp_path):
    """Masks train (no weight decay), the penalty is logged, and a resumed run continues."""
    parent = small_model(masked=False)
    save_bundle(parent, tmp_path / 'trained')
    spec = {'bundle': str(tmp_path / 'trained'), 'masked': True}
    recipe = recipe_from_dict(tiny_recipe(
        tmp_path / 'run', spec, init=str(tmp_path / 'trained'),
        sparsity={'attention': 1e-2, 'mlp': 1e-2, 'decoder_ffn': 1e-2, 'mask_lr': 1e-2}))
    trainer = Trainer(recipe, progress=False, device='cpu')
    torch.testing.assert_close(trainer.model.encoder.blocks[0].mlp.fc1.weight,
                               parent.encoder.blocks[0].mlp.fc1.weight)
    groups = trainer.optimizer.param_groups
    assert groups[-1]['weight_decay'] == 0.0 and groups[-1]['lr'] == 1e-2
    trainer.fit()
    trainer.close()
    rows = logged(tmp_path / 'run')
    assert [int(r['step']) for r in rows] == [1, 2]
    assert all(float(r['sparsity']) > 0 for r in rows)
    assert float(rows[1]['mask_l1_mlp']) < float(rows[0]['mask_l1_mlp'])
    masked = load_bundle(tmp_path / 'run' / 'model')
    assert masked.config.masked
    mlp = prune_masks(masked)['mlp']['encoder.blocks.0.mlp']
    assert float(mlp.detach().mean()) < 1.0
    # A second invocation with two epochs resumes from step 2 with the masks it left.
    longer = recipe_from_dict({**tiny_recipe(
        tmp_path / 'run', spec, init=str(tmp_path / 'trained'),
        sparsity={'attention': 1e-2, 'mlp': 1e-2, 'mask_lr': 1e-2}),
        'optim': {'epochs': 2, 'batch_size': 8, 'threads': 1, 'lr': 1e-3}})
    resumed = Trainer(longer, progress=False, device='cpu')
    assert resumed.resume()
    assert resumed.step == 2
    torch.testing.assert_close(
        prune_masks(resumed.model)['mlp']['encoder.blocks.0.mlp'], mlp)
    resumed.close()


def test_sparsity_section_needs_a_masked_model(tmp_path):
    """A recipe with a sparsity section and an unmasked model is refused at once."""
    with pytest.raises(ValueError, match='masked: true'):
        recipe_from_dict(tiny_recipe(tmp_path, {'preset': 'vit_tiny', **SMALL},
                                     sparsity={'attention': 1e-4}))


@pytest.mark.slow
def test_cli_slices_and_finetunes_a_child(tmp_path):
    """detrack-prune slice writes a smaller bundle; finetune trains it with the normal loss."""
    parent = small_model()
    randomise_masks(parent)
    save_bundle(parent, tmp_path / 'masked')
    command = [sys.executable, '-m', 'detrack_model.cli.prune']
    result = subprocess.run(command + ['slice', str(tmp_path / 'masked'), '--budget', '0.25',
                                       '--output', str(tmp_path / 'child_0.25')],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert 'fewer' in result.stdout and 'encoder.blocks.0.attn' in result.stdout
    document = yaml.safe_load((tmp_path / 'child_0.25.yaml').read_text())
    assert document['metadata']['pruning']['budget'] == 0.25
    recipe = tiny_recipe(tmp_path / 'tuned', None)
    del recipe['model']
    (tmp_path / 'finetune.yaml').write_text(yaml.safe_dump(recipe))
    result = subprocess.run(command + ['finetune', '--config', str(tmp_path / 'finetune.yaml'),
                                       '--child', str(tmp_path / 'child_0.25'),
                                       '--no-progress', '--device', 'cpu'],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    tuned = load_bundle(tmp_path / 'tuned' / 'model')
    child = load_bundle(tmp_path / 'child_0.25')
    assert tuned.config == child.config
    assert not torch.equal(tuned.encoder.blocks[0].mlp.fc1.weight,
                           child.encoder.blocks[0].mlp.fc1.weight)
    assert 'sparsity' not in logged(tmp_path / 'tuned')[0]
    # The fine-tuned network keeps the child's structure, so it keeps its pruning record.
    tuned_record = read_bundle_config(tmp_path / 'tuned' / 'model')['metadata']['pruning']
    assert tuned_record == document['metadata']['pruning']


@pytest.mark.slow
@pytest.mark.parametrize('budget', ['0', '1.2', 'abc'])
def test_cli_refuses_a_bad_budget(tmp_path, budget):
    """detrack-prune slice exits with a usage error naming the range."""
    result = subprocess.run([sys.executable, '-m', 'detrack_model.cli.prune', 'slice', 'x',
                             '--budget', budget, '--output', str(tmp_path / 'c')],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2
    assert 'budget' in result.stderr


def test_slice_refuses_to_write_over_its_input(tmp_path, capsys):
    """detrack-prune slice X --output X would replace the sparsity-trained bundle: refused."""
    from detrack_model.cli.prune import main as prune_main
    masked = tmp_path / 'masked'
    for suffix in ('.safetensors', '.yaml'):
        (tmp_path / f'masked{suffix}').write_bytes(b'the input bundle')
    for output in (masked, tmp_path / 'masked.safetensors'):
        with pytest.raises(SystemExit) as exit_info:
            prune_main(['slice', str(masked), '--budget', '0.5', '--output', str(output)])
        assert exit_info.value.code == 2
        assert 'refusing to overwrite' in capsys.readouterr().err
    assert (tmp_path / 'masked.safetensors').read_bytes() == b'the input bundle'
