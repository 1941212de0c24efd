"""
Write docs/pruning.md and its plots: the shipped model pruned to a sweep of budgets.

    python -m tools.make_pruning_docs        # about an hour on 2 CPU cores, resumable

The whole pipeline runs from the committed recipes, each stage skipped when its output exists
(delete ``runs/prune_tiny`` to start over): sparsity training of the shipped model
(training/prune_tiny_sparsity.yaml), slicing at budgets 0.75, 0.5, 0.25 and 0.1 (global) and
0.01 (layerwise), fine-tuning of every child (training/prune_tiny_finetune.yaml). Then, in one
run on this machine: MACs and parameters of every network; the median per-frame latency of
the whole tracker (crop, network, decoding) on the CPU with the onnxruntime and the PyTorch
backend, all models taking turns in blocks of frames so load changes hit them alike; and AO
and SR0.5 on the cross-source validation sequences of docs/model-sizing.md (the image pool's
``val`` part: files and packages that training never sees; ``make data``), after slicing (no
fine-tuning) and after fine-tuning. The test split stays reserved for docs/tracking.md.
"""

import argparse
import datetime
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from detrack_model.data.sequences import read_rgb
from detrack_model.data.synthetic import generate_dataset
from detrack_model.engine.recipe import recipe_from_dict
from detrack_model.evaluation import evaluate, Scores
from detrack_model.evaluation.runner import results_tag, run_benchmark
from detrack_model.evaluation.sequences import EvalSequence, load_benchmark
from detrack_model.export.bundle import bundle_paths, load_bundle, read_bundle_config
from detrack_model.export.onnx import export_onnx
from detrack_model.modeling import DETRack
from detrack_model.modeling.head_layout import uniform_head_widths
from detrack_model.profiling import count_macs, count_parameters, measure_latency
from detrack_model.shipped import default_model_path
from detrack_model.tracking import build_tracker, RuntimeConfig, Tracker, TrackerConfig
from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tools.make_sizing_docs import VAL_SEED
from tools.make_training_docs import last_stage_output, STAGES
import torch
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / 'docs'
BASE = ROOT / 'models' / 'detrack_tiny_pool'
SPARSITY_RECIPE = ROOT / 'training' / 'prune_tiny_sparsity.yaml'
FINETUNE_RECIPE = ROOT / 'training' / 'prune_tiny_finetune.yaml'
BUDGETS: Tuple[Tuple[float, str], ...] = ((0.75, 'global'), (0.5, 'global'), (0.25, 'global'),
                                          (0.1, 'global'), (0.01, 'layerwise'))
BACKENDS = ('onnxruntime', 'torch')
# Latency only: the 0.25 child run with its heads at their own widths instead of padded.
EXACT_ROW = 'exact heads'
# The shipped default file itself (half-precision weights), scored like every other row.
SHIPPED_ROW = 'shipped default'
# Tracker settings of the latency rows: one network run per frame for every model. With
# re-detection a model that loses the target runs its tiles too, and would look slower for
# tracking worse (the rows' AO uses the tracker's defaults).
LATENCY_CONFIG = TrackerConfig(redetect=False)
# Rounds in which every network takes its turn at the PyTorch stage timing, and runs per turn.
STAGE_ROUNDS, STAGE_RUNS = 10, 20


def tag(budget: float) -> str:
    """Return a file-name tag for a budget: 0.25 -> 'b0250'."""
    return f'b{round(budget * 1000):04d}'


def run_stage(args: List[str]) -> None:
    """Run one detrack-prune stage in its own process (resumable if interrupted)."""
    command = [sys.executable, '-m', 'detrack_model.cli.prune'] + args
    print('+', ' '.join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def build_models(work: pathlib.Path, prune_decoder: bool,
                 budgets: Sequence[Tuple[float, str]] = BUDGETS) -> Dict[str, pathlib.Path]:
    """Run every missing pipeline stage; return bundle paths by row name."""
    models = {'unpruned': BASE}
    sparsity = work / 'sparsity'
    if not (sparsity / 'model.safetensors').is_file():
        run_stage(['sparsity', '--config', str(SPARSITY_RECIPE), '--output', str(sparsity),
                   '--resume', '--no-progress'])
    models['sparsity-trained'] = sparsity / 'model'
    for budget, mode in budgets:
        child = work / f'child_{tag(budget)}'
        if not child.with_suffix('.safetensors').is_file():
            run_stage(['slice', str(sparsity / 'model'), '--budget', str(budget), '--mode', mode,
                       '--output', str(child)] + (['--prune-decoder'] if prune_decoder else []))
        tuned = work / f'finetune_{tag(budget)}'
        if not (tuned / 'model.safetensors').is_file():
            run_stage(['finetune', '--config', str(FINETUNE_RECIPE), '--child', str(child),
                       '--output', str(tuned), '--resume', '--no-progress'])
        models[f'{budget:g} sliced'] = child
        models[f'{budget:g} fine-tuned'] = tuned / 'model'
    return models


def tracker_latency(trackers: Dict[str, Tracker], sequence: EvalSequence, frames: int,
                    rounds: int) -> Dict[str, float]:
    """Median per-frame ``Tracker.track`` time (ms), the trackers taking turns in blocks."""
    images = [read_rgb(path) for path in sequence.frames]
    first_box = sequence.anno[0]
    for tracker in trackers.values():
        tracker.initialize(images[0], first_box)
        for image in images[1:6]:
            tracker.track(image)
    samples: Dict[str, List[float]] = {name: [] for name in trackers}
    block = max(1, frames // rounds)
    for _ in range(rounds):
        for name, tracker in trackers.items():
            # Every model tracks the same frames from the same start in every block.
            tracker.initialize(images[0], first_box)
            for index in range(1, block + 1):
                image = images[index % len(images)]
                began = time.perf_counter()
                tracker.track(image)
                samples[name].append(time.perf_counter() - began)
    return {name: 1000.0 * statistics.median(values) for name, values in samples.items()}


def model_figures(path: pathlib.Path, model: DETRack, padded: DETRack) -> Dict[str, Any]:
    """
    Return MACs, parameters and pruning metadata of the bundle at ``path``.

    ``model`` is the network as loaded, ``padded`` the layout the tracker runs (heads padded to
    one width per block). ``encoder_macs`` counts the former (every head at its own width),
    ``encoder_macs_run`` the latter.
    """
    macs = count_macs(model)
    document = read_bundle_config(path)
    return {'macs': macs['total'].total, 'encoder_macs': macs['encoder'].total,
            'encoder_macs_run': count_macs(padded)['encoder'].total,
            'params': count_parameters(model)['total'],
            'pruning': document.get('metadata', {}).get('pruning')}


def stage_latency(networks: Dict[str, DETRack], rounds: int = STAGE_ROUNDS,
                  runs: int = STAGE_RUNS) -> Dict[str, Dict[str, float]]:
    """
    Return each network's PyTorch ``network_ms`` and ``encoder_ms``.

    The networks take turns, ``runs`` forwards each per round; a figure is the median of the
    rounds' medians, so a change in the machine's load hits every network alike.
    """
    samples: Dict[str, Dict[str, List[float]]] = {
        name: {'network_ms': [], 'encoder_ms': []} for name in networks}
    for index in range(rounds):
        for name, network in networks.items():
            stages = measure_latency(network, torch.device('cpu'), runs=runs,
                                     warmup=5 if index == 0 else 1)
            samples[name]['network_ms'].append(stages['total'])
            samples[name]['encoder_ms'].append(stages['encoder'])
    return {name: {key: statistics.median(values) for key, values in figures.items()}
            for name, figures in samples.items()}


def layer_plot(figures: Dict[str, Dict[str, Any]], path: pathlib.Path) -> Dict[str, Any]:
    """Plot the fraction of attention and MLP units every block keeps, per global budget."""
    figure = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=True)
    kept: Dict[str, Any] = {}
    for name, row in figures.items():
        pruning = row['pruning']
        if not name.endswith('sliced') or not pruning or pruning['mode'] != 'global':
            continue
        layers = pruning['layers']
        for axis, kind in zip(axes, ('attn', 'mlp')):
            names = sorted((n for n in layers if n.endswith('.' + kind)),
                           key=lambda n: int(n.split('.')[2]))
            fractions = [layers[n]['kept'] / layers[n]['of'] for n in names]
            kept.setdefault(name, {})[kind] = fractions
            axis.plot(range(len(names)), fractions, marker='o',
                      label=f'budget {pruning["budget"]:g}')
    for axis, title in zip(axes, ('attention (head x dim)', 'MLP hidden units')):
        axis.set_title(f'{title} kept per block')
        axis.set_xlabel('encoder block')
        axis.grid(alpha=0.3)
    axes[0].set_ylabel('fraction kept')
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return kept


def tradeoff_plot(rows: Dict[str, Dict[str, Any]], path: pathlib.Path) -> None:
    """Plot AO against encoder MACs and against tracker latency, sliced and fine-tuned."""
    figure = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=True)
    for stage, marker in (('sliced', 'x'), ('fine-tuned', 'o')):
        names = ['unpruned'] + [n for n in rows if n.endswith(stage)]
        for axis, key, scale in ((axes[0], 'encoder_macs', 1e6),
                                 (axes[1], 'latency_onnxruntime', 1.0)):
            axis.plot([rows[n][key] / scale for n in names], [rows[n]['ao'] for n in names],
                      marker=marker, label=stage)
    axes[0].set_xlabel('encoder MACs (M)')
    axes[1].set_xlabel('tracker latency, onnxruntime CPU (ms)')
    axes[0].set_ylabel('AO')
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle('Pruned DETRack (vit_tiny, 6 blocks) on the cross-source validation '
                    'sequences')
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def table(rows: Dict[str, Dict[str, Any]]) -> List[str]:
    """Render the Table-2-shaped summary."""
    base = rows['unpruned']
    lines = ['| model | budget | mode | encoder MACs (M) trained / run | all MACs (M) | '
             'params (M) | tracker ms ort | tracker ms torch | speed-up ort | '
             'encoder ms torch (speed-up) | AO | SR0.5 |',
             '|:--|--:|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|']
    for name, row in rows.items():
        pruning = row['pruning'] or {}
        budget = f'{pruning["budget"]:g}' if pruning else '-'
        mode = pruning.get('mode', '-')
        lines.append(
            f'| {name} | {budget} | {mode} | {row["encoder_macs"] / 1e6:.1f} / '
            f'{row["encoder_macs_run"] / 1e6:.1f} | '
            f'{row["macs"] / 1e6:.1f} | {row["params"] / 1e6:.2f} | '
            f'{row["latency_onnxruntime"]:.2f} | {row["latency_torch"]:.2f} | '
            f'{base["latency_onnxruntime"] / row["latency_onnxruntime"]:.2f}x | '
            f'{row["encoder_ms"]:.2f} ({base["encoder_ms"] / row["encoder_ms"]:.2f}x) | '
            f'{row["ao"]:.3f} | {row["sr50"]:.3f} |')
    return lines


def further_stage() -> Optional[Tuple[str, str, str]]:
    """
    Return how the shipped default was trained on after the pruning pipeline's child.

    From the stages of docs/training.md (``tools.make_training_docs.STAGES``, whose last bundle
    is the shipped default): the last stage's recipe, the bundle it started from and the
    bundle it wrote, as paths in the repository. None when that last stage is the pipeline's
    own fine-tuning.
    """
    _, recipe, _ = STAGES[-1]
    if ROOT / recipe == FINETUNE_RECIPE:
        return None
    return recipe, str(STAGES[-2][2].relative_to(ROOT)), f'{last_stage_output()}/model'


def noise_note(rows: Dict[str, Dict[str, Any]]) -> List[str]:
    """Say how far apart rows with the same architecture landed: the latency noise floor."""
    pairs = [(name, name.replace('fine-tuned', 'sliced')) for name in rows
             if name.endswith('fine-tuned') and name.replace('fine-tuned', 'sliced') in rows]
    record = rows.get(SHIPPED_ROW, {}).get('pruning')
    if record:
        pairs.append((SHIPPED_ROW, f'{record["budget"]:g} fine-tuned'))
    spreads = [abs(rows[a]['latency_onnxruntime'] / rows[b]['latency_onnxruntime'] - 1.0)
               for a, b in pairs if b in rows]
    if not spreads:
        return []
    return [f'Rows with the same architecture (a sliced child and its fine-tuned version, the '
            f'shipped default and its child) differ by up to {100 * max(spreads):.0f} % in '
            'onnxruntime latency in this run: that is the noise of this shared machine, and '
            'smaller latency differences mean nothing.', '']


def page(rows: Dict[str, Dict[str, Any]], kept: Dict[str, Any], count: int, frames: int,
         load: Sequence[float], exact_heads_ms: Optional[float],
         steps: Tuple[int, int, int]) -> str:
    """Render docs/pruning.md."""
    base, target = rows['unpruned'], rows.get('0.25 fine-tuned')
    sparsity = recipe_from_dict(yaml.safe_load(SPARSITY_RECIPE.read_text())).sparsity
    weights = (f'L1 weights {sparsity.attention:g} attention, {sparsity.mlp:g} MLP, '
               f'{sparsity.decoder_ffn:g} decoder FFN, mask learning rate {sparsity.mask_lr:g}')
    lines = [
        '# Structured pruning: budgets, speed and accuracy',
        '',
        'Generated by `python -m tools.make_pruning_docs` '
        f'({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPU '
        f'cores, torch {torch.__version__}, no GPU; 1-min load average {load[0]:.1f}). Every '
        'number below comes from one run on one machine.',
        '',
        f'**Pipeline** (`detrack-prune`): the unpruned model `{BASE.relative_to(ROOT)}` is '
        'sparsity-trained with masks on every encoder attention (per head and head dimension, '
        'multiplying q, k and v) and MLP, and on the decoder FFNs '
        f'(`training/prune_tiny_sparsity.yaml`: {weights}); sliced to each budget (global: '
        'one threshold over all encoder masks; layerwise at 0.01; minimum barrier max(1, 1 %) '
        'per layer; decoder FFNs layerwise at the same budget); then fine-tuned without masks '
        '(`training/prune_tiny_finetune.yaml`). Rows "sliced" are children straight after '
        'slicing, "fine-tuned" the same children after fine-tuning.',
        '',
        f'Every pruned network trained longer than the unpruned one (its {steps[0]} steps plus '
        f'{steps[1]} of sparsity training and {steps[2]} of fine-tuning), which is part of why '
        'fine-tuned children can score above it; the sparsity-trained row (same architecture, '
        f'{steps[1]} more steps) shows how much of that is extra training.',
        '',
        f'**Data**: {count} cross-source validation sequences of {frames} frames (the image '
        f"pool's `val` part, seed {VAL_SEED}: the sequences of docs/model-sizing.md; objects "
        'and backgrounds from files and packages training never sees), GOT-10k protocol, '
        'onnxruntime backend. '
        '**Latency**: median per-frame time of `Tracker.track` (crop, network, decoding; batch '
        '1, 2 threads; re-detection off, so that every model runs one network per frame '
        'whether it keeps the target or not), every model taking turns on the same frames. '
        '**Encoder MACs**: '
        '"trained" counts the network as sliced and trained, every head at its own width; '
        '"run" the layout the tracker executes, heads padded with zero weights to one width '
        'per block (see below). **Encoder ms**: the encoder stage alone in PyTorch '
        f'(`detrack_model.profiling.measure_latency`, 2 threads), the median of {STAGE_ROUNDS} '
        f'rounds in which every network runs {STAGE_RUNS} forwards in turn.',
        '',
    ] + table(rows) + [''] + noise_note(rows)
    if target is not None:
        macs_ratio = base['encoder_macs'] / target['encoder_macs']
        ort_ratio = base['latency_onnxruntime'] / target['latency_onnxruntime']
        torch_ratio = base['latency_torch'] / target['latency_torch']
        loss = 100.0 * (base['ao'] - target['ao']) / base['ao']
        floor = rows.get('0.01 fine-tuned')
        run_ratio = base['encoder_macs'] / target['encoder_macs_run']
        encoder_ratio = base['encoder_ms'] / target['encoder_ms']
        lines += [
            '## Budget 0.25 against the targets',
            '',
            f'- Encoder MACs: {macs_ratio:.2f}x fewer (target at least 3x: '
            f'{"met" if macs_ratio >= 3 else "missed"}); {run_ratio:.2f}x in the padded '
            'layout the tracker runs.',
            f'- Whole-tracker CPU latency: {ort_ratio:.2f}x lower with onnxruntime, '
            f'{torch_ratio:.2f}x with PyTorch (target at least 2.5x: '
            f'{"met" if max(ort_ratio, torch_ratio) >= 2.5 else "missed"}).',
            f'- AO {target["ao"]:.3f} against {base["ao"]:.3f} unpruned: '
            f'{loss:+.1f} % relative loss (target at most 4 %: '
            f'{"met" if loss <= 4 else "missed"}).',
            '',
            f'Why the latency lags the MACs: the encoder alone runs {encoder_ratio:.2f}x faster, '
            'but this network is small enough that a fixed part of every frame does not shrink '
            "with the encoder's channels: the patch embedding, the deformable decoder and query "
            'selection, the crop, and a per-operator overhead of the runtimes that does not '
            'depend on tensor widths. '
            + (f'Even the 0.01 layerwise child, which keeps 1 % of the encoder channels, is '
               f'only {base["latency_onnxruntime"] / floor["latency_onnxruntime"]:.2f}x faster '
               'than the unpruned tracker with onnxruntime: that bounds what channel pruning can '
               'give this model on this CPU.' if floor else ''),
            '',
        ]
        if exact_heads_ms is not None:
            padded = sum(layer.get('padded', 0) for layer in target['pruning']['layers'].values())
            kept_entries = sum(layer['kept'] for layer in target['pruning']['layers'].values()
                               if 'padded' in layer)
            lines += [
                '**Head layout.** Slicing keeps every head at its own width. Inside attention '
                'the heads of a block must share one width, so the narrower ones are padded '
                f'with zeros (at 0.25: {padded} zero (head, dim) entries beside the '
                f'{kept_entries} kept). The trained network does this with gathers, so the '
                'padding costs only in the two attention products; the tracker instead puts '
                'the padding into the weights (zero rows, no gathers), which adds linear-layer '
                f'work but four fewer operators per block. For the 0.25 child with onnxruntime: '
                f'{target["latency_onnxruntime"]:.2f} ms padded in the weights against '
                f'{exact_heads_ms:.2f} ms with gathers (`detrack-export --exact-heads`). Larger '
                'networks, where a padded entry costs more than an operator, should run the '
                'exact layout.',
                '',
            ]
    # The shipped default records the budget of the child it was fine-tuned from.
    shipped = default_model_path()
    record = read_bundle_config(shipped).get('metadata', {}).get('pruning')
    default = rows.get(SHIPPED_ROW)
    if default is not None and record:
        name = shipped.relative_to(ROOT) if shipped.is_relative_to(ROOT) else shipped
        metadata = read_bundle_config(shipped)['metadata']
        stage = further_stage()
        source = (f'runs/prune_tiny/finetune_{tag(record["budget"])}/model' if stage is None
                  else stage[2])
        made = (f'the {record["budget"]:g} fine-tuned child' if stage is None else
                f'the {record["budget"]:g} fine-tuned child trained on in further stages, the '
                f'last {metadata["steps"]} steps by `{stage[0]}` (`detrack-prune finetune '
                f'--config {stage[0]} --child {stage[1]}`; every stage, its command and wall '
                'time in [training.md](training.md))')
        lines += [
            '## The shipped default',
            '',
            f'The default model `{name}` (row "{SHIPPED_ROW}") is {made} (`python -m '
            f'tools.ship_model {source} --output {name}`, half-precision weights): AO '
            f'{default["ao"]:.3f} against {base["ao"]:.3f} unpruned, '
            f'{base["latency_onnxruntime"] / default["latency_onnxruntime"]:.2f}x lower '
            'tracker latency with onnxruntime, '
            f'{base["encoder_macs"] / default["encoder_macs"]:.1f}x fewer encoder MACs, '
            f'{default["params"] / 1e6:.2f} M parameters.',
            '',
        ]
        if stage is not None:
            lines += [f'Against the "{record["budget"]:g} fine-tuned" row (the same network '
                      'before the further stages) the shipped default has trained on longer: '
                      'the gap between the two rows is what that further training gives. The '
                      'unpruned network has not been trained as long, so the shipped default '
                      'scoring above it says nothing about pruning.', '']
        within = [n for n, row in rows.items()
                  if n.endswith('fine-tuned') and row['ao'] >= 0.99 * base['ao']]
        if within:
            smallest = min(within, key=lambda n: rows[n]['encoder_macs'])
            lines += [f'Fine-tuned children within 1 % of the unpruned AO in this run: '
                      f'{", ".join(within)}; the smallest is {smallest}.', '']
    lines += ['## Which layers the global budget prunes hardest', '',
              '| budget | attention kept per block | MLP kept per block |', '|:--|:--|:--|']
    for name, parts in kept.items():
        lines.append(f'| {name.split()[0]} | '
                     + ' | '.join(' '.join(f'{v:.2f}' for v in parts[k])
                                  for k in ('attn', 'mlp')) + ' |')
    if kept:
        first = {name: min(range(len(parts['attn'])), key=parts['attn'].__getitem__)
                 for name, parts in kept.items()}
        deeper = sum(parts['mlp'][-1] < parts['mlp'][0] for parts in kept.values())
        lines += ['', 'Attention pruned hardest in block(s) '
                  + ', '.join(f'{b} (budget {n.split()[0]})' for n, b in first.items())
                  + f'; the last MLP keeps less than the first at {deeper} of {len(kept)} '
                  'budgets. The pruning paper finds the same for OSTrack: early attention '
                  'goes first, and MLPs are pruned more in deeper layers.']
    lines += ['', '![layers](pruning-layers.png)', '', '![trade-off](pruning.png)', '',
              'Regenerate: `python -m tools.make_pruning_docs` (stages already in '
              '`runs/prune_tiny` are reused; delete it to start over).', '']
    return '\n'.join(lines)


def main() -> int:
    """Build every model of the sweep, measure them, write the page and the plots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--work', default=str(ROOT / 'runs' / 'prune_tiny'))
    parser.add_argument('--sequences', type=int, default=30)
    parser.add_argument('--frames', type=int, default=80)
    parser.add_argument('--pool', default=str(ROOT / 'build' / 'data' / 'image_pool'))
    parser.add_argument('--data', default=str(ROOT / 'build' / 'data' / 'sizing_val'))
    parser.add_argument('--budgets', type=float, nargs='+',
                        default=[budget for budget, _ in BUDGETS],
                        help='budgets of the sweep to build and measure (default: all)')
    parser.add_argument('--latency-frames', type=int, default=200)
    parser.add_argument('--no-prune-decoder', action='store_true',
                        help='keep the decoder FFNs whole')
    parser.add_argument('--docs', default=str(DOCS))
    args = parser.parse_args()
    work = pathlib.Path(args.work)
    modes = dict(BUDGETS)
    unknown = sorted(set(args.budgets) - set(modes))
    if unknown:
        parser.error(f'--budgets: {unknown} not in the sweep {sorted(modes)}')
    models = build_models(work, not args.no_prune_decoder,
                          [(budget, modes[budget]) for budget in args.budgets])
    models[SHIPPED_ROW] = default_model_path()
    data = pathlib.Path(args.data)
    if not (data / 'val' / 'list.txt').is_file():
        generate_dataset(str(data), 'val', args.sequences, args.frames, size=(480, 360),
                         seed=VAL_SEED, overwrite=True, pool=args.pool, workers=2)
    sequences = load_benchmark('got10k', str(data), split='val')[:args.sequences]
    networks = {name: load_bundle(path) for name, path in models.items()}
    # The layout the tracker runs: its MACs, and the one the PyTorch stage times are of.
    padded = {name: uniform_head_widths(network) for name, network in networks.items()}
    rows = {name: model_figures(path, networks[name], padded[name])
            for name, path in models.items()}
    for name, figures in stage_latency(padded).items():
        rows[name].update(figures)
    # A fine-tuned child shows its slice's record; the shipped file carries its own copy.
    for name, row in rows.items():
        if name.endswith('fine-tuned'):
            row['pruning'] = rows[name.replace('fine-tuned', 'sliced')]['pruning']
    for name, path in models.items():
        tracker = build_tracker(path, RuntimeConfig(device='cpu', backend='onnxruntime'))
        print(f'{name} ...', flush=True)
        stamp = results_tag(bundle_paths(path)[0], tracker.config)
        results = run_benchmark(lambda: tracker, sequences, str(work / 'results'),
                                f'{name.replace(" ", "_")}-{stamp}', resume=True)
        scores: Scores = evaluate(results, 'got10k')
        rows[name].update(ao=scores.ao, sr50=scores.sr50)
    exact_heads_ms = None
    for backend in BACKENDS:
        runtime = RuntimeConfig(device='cpu', backend=backend, threads=2)
        trackers = {name: build_tracker(path, runtime, LATENCY_CONFIG)
                    for name, path in models.items()}
        if backend == 'onnxruntime' and '0.25 fine-tuned' in models:
            # The same network with its heads at their own widths (gathers in the graph).
            exact = export_onnx(load_bundle(models['0.25 fine-tuned']),
                                work / 'b0250_exact_heads.onnx', pad_heads=False)
            trackers[EXACT_ROW] = Tracker(OnnxBackend(exact, threads=2), LATENCY_CONFIG)
        latency = tracker_latency(trackers, sequences[0], args.latency_frames, rounds=10)
        exact_heads_ms = latency.pop(EXACT_ROW, exact_heads_ms)
        for name, value in latency.items():
            rows[name][f'latency_{backend}'] = value
    docs = pathlib.Path(args.docs)
    kept = layer_plot(rows, docs / 'pruning-layers.png')
    tradeoff_plot(rows, docs / 'pruning.png')
    steps = tuple(int(read_bundle_config(path)['metadata']['steps']) for path in (
        BASE, models['sparsity-trained'],
        models[f'{args.budgets[0]:g} fine-tuned'])) if args.budgets else (0, 0, 0)
    (docs / 'pruning.md').write_text(page(rows, kept, len(sequences), args.frames,
                                          os.getloadavg(), exact_heads_ms, steps))
    print((docs / 'pruning.md').read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
