"""
Write docs/training.md: how the shipped default was trained, and the training benchmarks.

The default is made in stages (the unpruned parent, sparsity training, the pruned child's
fine-tune, training it on, then on with target-absent pairs, twice on sequences from the
pool with photographs, then with the search crop jittered wider); each stage's bundle
records its steps, recipe and wall time, which the page's table reads (a stage whose bundle
is not on this machine, or is from another run of the pruning pipeline, keeps the figures
the page had). The learning curves come from the run directories (``metrics.csv``) where
they are on this machine: the parent's, training/synthetic_cpu_pool.yaml (``--run``), and
the last stage's (``--last-run``, by default the output its recipe names). Then it times the
data pipeline (tools/bench_data_pipeline.py) and training steps
(tools/bench_training_step.py) on this machine. Run it when nothing else loads the CPU.

    python -m tools.make_training_docs [--run runs/synthetic_cpu_pool]
"""

import argparse
import csv
import datetime
import pathlib
import platform
import subprocess
import sys
from typing import Any, Dict, List, Optional, Set

from detrack_model.export.bundle import bundle_paths, read_bundle_config
from detrack_model.shipped import default_model_path
from tools import bench_training_step
import torch
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The stages that make the shipped default, the last one's bundle being it: (what, the recipe,
# the bundle it wrote).
STAGES = (('unpruned parent (`models/detrack_tiny_pool`)', 'training/synthetic_cpu_pool.yaml',
           ROOT / 'models' / 'detrack_tiny_pool'),
          ('sparsity training (masks on every layer)', 'training/prune_tiny_sparsity.yaml',
           ROOT / 'runs' / 'prune_tiny' / 'sparsity' / 'model'),
          ('the budget-0.25 child, fine-tuned', 'training/prune_tiny_finetune.yaml',
           ROOT / 'runs' / 'prune_tiny' / 'finetune_b0250' / 'model'),
          ('trained on, on twice the generated sequences',
           'training/prune_tiny_finetune_long.yaml', ROOT / 'runs' / 'finetune_long' / 'model'),
          ('trained on with target-absent pairs (off the target, over it while hidden, on '
           'look-alikes)',
           'training/prune_tiny_finetune_absent.yaml',
           ROOT / 'runs' / 'finetune_absent' / 'model'),
          ('trained on with a third set of sequences from the pool with photographs of real '
           'scenes', 'training/prune_tiny_finetune_photos.yaml',
           ROOT / 'runs' / 'finetune_photos' / 'model'),
          ('trained on with a second such set in place of the seed-12 set',
           'training/prune_tiny_finetune_photos_more.yaml',
           ROOT / 'runs' / 'finetune_photos_more' / 'model'),
          ('trained on with the search crop jittered up to its edge',
           'training/prune_tiny_finetune_jitter.yaml', default_model_path()))
# A row of the stage table: | what | `recipe` | steps | pairs | minutes |
ROW_FIELDS = 5


def last_stage_output() -> str:
    """Return the run directory the last stage's recipe writes, relative to the checkout."""
    return yaml.safe_load((ROOT / STAGES[-1][1]).read_text())['output']


def run_summary(run: pathlib.Path) -> dict:
    """Read the validation IoUs, steps, pairs and wall time of a finished run."""
    with (run / 'metrics.csv').open(newline='') as handle:
        rows = list(csv.DictReader(handle))
    validation = [(int(r['step']), float(r['val_mean_iou'])) for r in rows
                  if r.get('val_mean_iou')]
    trained = [r for r in rows if r.get('loss')]
    summary = bundle_summary(run / 'model')
    rate = float(trained[-1]['pairs_per_s'])
    # Runs record their wall time; for older ones the training loop's own rate gives it.
    wall = summary['wall_s'] or summary['pairs'] / rate
    return {**summary, 'validation': validation, 'rate': rate, 'wall_s': float(wall)}


def bundle_summary(bundle: pathlib.Path) -> Dict[str, Any]:
    """Return the steps, pairs, wall time (0: not recorded) and recipe a bundle records."""
    metadata = read_bundle_config(bundle)['metadata']
    recipe = metadata['recipe']
    steps = int(metadata['steps'])
    return {'steps': steps, 'pairs': steps * recipe['optim']['batch_size'],
            'wall_s': float(metadata.get('wall_time_s') or 0.0), 'recipe': recipe}


def recorded_stages(page: pathlib.Path) -> Dict[str, List[str]]:
    """Return the steps, pairs and minutes of each recipe's row on an earlier page."""
    if not page.is_file():
        return {}
    rows = {}
    for line in page.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if len(cells) == ROW_FIELDS and cells[1].startswith('`training/'):
            rows[cells[1].strip('`')] = [cells[2], cells[3], cells[4].rstrip(' *')]
    return rows


def other_pruning_runs() -> Set[pathlib.Path]:
    """
    Return the stage bundles here that come from another run of the pruning pipeline.

    Every pruned stage of the default has its widths; a pruned bundle here with other widths
    was made by another run (``make_pruning_docs`` runs the pipeline again where it is
    missing), and so was the sparsity-trained bundle it was sliced from, which the default
    names as its pruning source.
    """
    if not bundle_paths(STAGES[-1][2])[1].is_file():
        return set()
    default = read_bundle_config(STAGES[-1][2])
    source = default['metadata'].get('pruning', {}).get('source')
    others = set()
    for _, _, bundle in STAGES:
        if not bundle_paths(bundle)[1].is_file():
            continue
        config = read_bundle_config(bundle)
        if 'pruning' in config['metadata'] and config['model'] != default['model']:
            others.add(bundle)
            if source:
                others.add(ROOT / source)
    return others


def stage_table(previous: Optional[pathlib.Path] = None) -> List[str]:
    """
    Return the table of the default's stages, from the bundles that are on this machine.

    A stage whose bundle is not here, or is from another run (:func:`other_pruning_runs`),
    keeps the figures ``previous`` (the page as generated before) gave it, marked.
    """
    lines = ['| stage | recipe | steps | pairs | wall time (min) |', '|:--|:--|--:|--:|--:|']
    total, missing, carried = 0.0, [], 0
    recorded = recorded_stages(previous) if previous else {}
    others = other_pruning_runs()
    for index, (what, recipe, bundle) in enumerate(STAGES):
        label = what + (': the shipped default' if index == len(STAGES) - 1 else '')
        if not bundle_paths(bundle)[1].is_file() or bundle in others:
            if recipe in recorded:
                lines.append(f'| {label} | `{recipe}` | ' + ' | '.join(recorded[recipe])
                             + ' * |')
                total += 60 * float(recorded[recipe][2])
                carried += 1
            else:
                missing.append(what)
            continue
        summary = bundle_summary(bundle)
        total += summary['wall_s']
        lines.append(f'| {label} | `{recipe}` | {summary["steps"]} | {summary["pairs"]} | '
                     f'{summary["wall_s"] / 60:.1f} |')
    lines.append(f'| **all stages** | | | | **{total / 60:.1f}** |')
    if carried:
        lines += ['', '\\* Its bundle is not on this machine (or the one here is from another '
                  "run of the pruning pipeline, with other widths than the default's): the "
                  'figures are those an earlier run of this script read from it (`git log -p '
                  'docs/training.md`).']
    if missing:
        lines += ['', 'Not on this machine (their bundles are made by `detrack-prune`, see '
                  '[pruning.md](pruning.md)), so not in the total: ' + '; '.join(missing) + '.']
    return lines


def curve_lines(summary: Optional[dict], name: str, recipe: str) -> List[str]:
    """Return the bullet lines of one run's wall time and validation curve."""
    if summary is None:
        return [f'- The run directory of `{recipe}` is not on this machine, so its learning '
                f"curve is not shown; the command in the recipe's first lines makes it again."]
    lines = [f'- {name}: {summary["steps"]} steps, {summary["pairs"]} template/search pairs, '
             f'{summary["wall_s"] / 60:.1f} min on this machine ({summary["rate"]:.1f} pairs/s '
             'at the end, data loading included).']
    if summary['validation']:
        step, iou = summary['validation'][-1]
        batch = summary['recipe']['optim']['batch_size']
        lines.append(f'- Mean IoU of single template/search pairs on the cross-source '
                     f'validation split ({summary["recipe"]["data"]["val_pairs"]} pairs, search '
                     f'crops jittered as in training): **{iou:.3f}** after step {step} '
                     f'({step * batch} pairs).')
        lines.append('- Learning curve, validation mean IoU against pairs seen: ' + ', '.join(
            f'{v:.3f} ({s * batch // 1000}k)' for s, v in summary['validation']) + '.')
    return lines


def plot(run: pathlib.Path, path: pathlib.Path) -> None:
    """Plot a run's curves with tools/plot_training.py."""
    subprocess.run([sys.executable, '-m', 'tools.plot_training', str(run), '--output',
                    str(path)], check=True, cwd=ROOT)


def main() -> int:
    """Gather everything and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--run', type=pathlib.Path, default=ROOT / 'runs' / 'synthetic_cpu_pool',
                        help="the unpruned parent's run directory")
    parser.add_argument('--last-run', type=pathlib.Path, default=ROOT / last_stage_output(),
                        help="the last stage's run directory")
    parser.add_argument('--output', type=pathlib.Path, default=ROOT / 'docs' / 'training.md')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parent = run_summary(args.run) if (args.run / 'metrics.csv').is_file() else None
    last = run_summary(args.last_run) if (args.last_run / 'metrics.csv').is_file() else None
    parent_curve = args.output.parent / 'default-model-training.png'
    last_curve = args.output.parent / 'default-model-last-stage.png'
    if parent is not None:
        plot(args.run, parent_curve)
    if last is not None:
        plot(args.last_run, last_curve)
    pipeline = subprocess.run([sys.executable, str(ROOT / 'tools' / 'bench_data_pipeline.py'),
                               '--workers', '0', '1', '2'], check=True, capture_output=True,
                              text=True, cwd=ROOT).stdout
    steps = bench_training_step.run(batch=8, steps=5)
    default = default_model_path()
    name = default.relative_to(ROOT) if default.is_relative_to(ROOT) else default

    lines = [
        '# Training',
        '',
        'Produced by `python -m tools.make_training_docs` '
        f'(PyTorch {torch.__version__}, {platform.machine()}, {args.threads} CPU threads, '
        f'{datetime.date.today().isoformat()}).',
        '',
        '## The shipped default model',
        '',
        f'`{name}` is made in stages on a 2-core CPU, each trained on synthetic sequences made '
        "from the image pool's `train` part (`make data`); the validation pairs come from the "
        "pool's `val` part: objects and backgrounds from files and packages that training never "
        'sees (cross-source), another seed. Why this architecture, and what the wide pool '
        'gains over the 9 scikit-image photographs at an equal budget: '
        '[model-sizing.md](model-sizing.md); the pruning stages: [pruning.md](pruning.md). '
        'Wall times as each bundle recorded them (slicing takes seconds; generating the '
        'sequences once, about 4 minutes per 1,600, is not included):',
        '',
        *stage_table(args.output),
        '',
        '### The unpruned parent, from scratch',
        '',
        *curve_lines(parent, 'Training', 'training/synthetic_cpu_pool.yaml'),
    ]
    if parent is not None:
        lines += ['', f'![training curves]({parent_curve.name})']
    elif parent_curve.is_file():
        lines += ['', f'Its curves as this script plotted them while the run directory was here: '
                  f'![training curves]({parent_curve.name})']
    what, recipe, _ = STAGES[-1]
    lines += ['', '### The last stage: the pruned child trained on', '',
              *curve_lines(last, f'The last stage ({what}, `{recipe}`)',
                           recipe)]
    if last is not None:
        lines += ['', f'![last stage curves]({last_curve.name})']
    lines += ['', '## Data pipeline throughput', '',
              'From `tools/bench_data_pipeline.py` (GOT-10k layout, 640x480 JPEG frames):', '',
              '```', pipeline.strip(), '```', '',
              '## Training step time', '',
              'From `tools/bench_training_step.py`: forward, loss (denoising on for the decoder '
              'head), backward and AdamW on random crops, batch 8, median of 5 steps.', '',
              '| model | head | ms / step | pairs / s |', '|---|---|---:|---:|']
    for row in steps:
        lines.append(f'| {row["model"]} | {row["head"]} | {row["step_s"] * 1000:.0f} | '
                     f'{row["pairs_per_s"]:.1f} |')
    lines.append('')
    args.output.write_text('\n'.join(lines))
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
