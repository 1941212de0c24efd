"""
Write docs/training.md: the default model's training run and the training benchmarks.

Reads the run directory of the default model's recipe, training/synthetic_cpu_pool.yaml (its
metrics.csv and the bundle's metadata), plots its curves to docs/default-model-training.png,
then times the data pipeline (tools/bench_data_pipeline.py) and training steps
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

from detrack_model.export.bundle import read_bundle_config
from tools import bench_training_step
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_summary(run: pathlib.Path) -> dict:
    """Read the validation IoUs, steps, pairs and wall time of a finished run."""
    with (run / 'metrics.csv').open(newline='') as handle:
        rows = list(csv.DictReader(handle))
    validation = [(int(r['step']), float(r['val_mean_iou'])) for r in rows
                  if r.get('val_mean_iou')]
    trained = [r for r in rows if r.get('loss')]
    document = read_bundle_config(run / 'model')
    recipe = document['metadata']['recipe']
    steps = int(document['metadata']['steps'])
    pairs = steps * recipe['optim']['batch_size']
    rate = float(trained[-1]['pairs_per_s'])
    # Runs record their wall time; for older ones the training loop's own rate gives it.
    wall = document['metadata'].get('wall_time_s', pairs / rate)
    return {'validation': validation, 'steps': steps, 'pairs': pairs, 'rate': rate,
            'wall_s': float(wall), 'recipe': recipe}


def main() -> int:
    """Gather everything and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--run', type=pathlib.Path, default=ROOT / 'runs' / 'synthetic_cpu_pool')
    parser.add_argument('--recipe', default='training/synthetic_cpu_pool.yaml',
                        help='the recipe the run was trained with (named on the page)')
    parser.add_argument('--output', type=pathlib.Path, default=ROOT / 'docs' / 'training.md')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    summary = run_summary(args.run)
    curve = args.output.parent / 'default-model-training.png'
    subprocess.run([sys.executable, '-m', 'tools.plot_training', str(args.run),
                    '--output', str(curve)], check=True, cwd=ROOT)
    pipeline = subprocess.run([sys.executable, str(ROOT / 'tools' / 'bench_data_pipeline.py'),
                               '--workers', '0', '1', '2'], check=True, capture_output=True,
                              text=True, cwd=ROOT).stdout
    steps = bench_training_step.run(batch=8, steps=5)

    lines = [
        '# Training',
        '',
        'Produced by `python -m tools.make_training_docs` '
        f'(PyTorch {torch.__version__}, {platform.machine()}, {args.threads} CPU threads, '
        f'{datetime.date.today().isoformat()}).',
        '',
        '## The shipped default model',
        '',
        f'Recipe `{args.recipe}`: {summary["steps"]} steps, '
        f'{summary["pairs"]} template/search pairs, trained from scratch on synthetic '
        "sequences made from the image pool's `train` part (`make data`). The validation "
        "pairs come from the pool's `val` part: objects and backgrounds from files and "
        'packages that training never sees (cross-source), another seed. Why this '
        'architecture, and what the wide pool gains over the 9 scikit-image photographs at '
        'an equal budget: [model-sizing.md](model-sizing.md).',
        '',
    ]
    if summary['wall_s']:
        lines.append(f'- Training wall time on this machine: {summary["wall_s"] / 60:.1f} min '
                     f'({summary["rate"]:.1f} pairs/s at the end, data loading included).')
    if summary['validation']:
        step, iou = summary['validation'][-1]
        batch = summary['recipe']['optim']['batch_size']
        lines.append(f'- Mean IoU of single template/search pairs on the cross-source '
                     f'validation split ({summary["recipe"]["data"]["val_pairs"]} pairs, search '
                     f'crops jittered as in training): **{iou:.3f}** after step {step} '
                     f'({step * batch} pairs).')
        lines.append('- Learning curve, validation mean IoU against pairs seen: ' + ', '.join(
            f'{v:.3f} ({s * batch // 1000}k)' for s, v in summary['validation']) + '.')
    lines += ['', f'![training curves]({curve.name})', '',
              '## Data pipeline throughput', '',
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
