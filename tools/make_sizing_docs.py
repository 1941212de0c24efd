"""
Write docs/model-sizing.md: candidate architectures compared by cross-source accuracy.

The candidates are trained at one CPU budget and compared at the speed target.

Each candidate is a finished training run (``training/sizing/*.yaml``, trained with
``detrack-train``). For each one this script reads the run's curves and wall time, tracks the
cross-source **validation** split (the image pool's ``val`` part: objects and backgrounds no
training sequence uses, from other packages) with the onnxruntime backend, and times
``Tracker.track`` (median per-frame time, 2 threads) in the same run. The default model is
chosen on this page; the test split is scored once, in docs/tracking.md.

    python -m tools.make_sizing_docs --run runs/sizing_d6_64 --run runs/sizing_d9_64 ...
"""

import argparse
import csv
import datetime
import os
import pathlib
import platform
import sys
from typing import Any, Dict, List

from detrack_model.cli.evaluate import build_factory, parse_tracker
from detrack_model.data.synthetic import generate_dataset
from detrack_model.engine.recipe import load_recipe
from detrack_model.evaluation import evaluate
from detrack_model.evaluation.runner import run_benchmark
from detrack_model.evaluation.sequences import load_benchmark
from detrack_model.export.bundle import load_bundle, read_bundle_config
from detrack_model.modeling import create_model
from detrack_model.profiling import count_macs
from tools.bench_training_step import step_time
from tools.make_tracking_docs import median_fps
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
VAL_SEED = 11
# Tracker.track frames/s (median time, onnxruntime, 2 threads) a default must reach.
SPEED_TARGET = 150.0


def run_facts(run: pathlib.Path) -> Dict[str, Any]:
    """Return a run's architecture, pairs seen, wall time and final validation IoU."""
    bundle = run / 'model' if run.is_dir() else run
    document = read_bundle_config(bundle)
    model, meta = document['model'], document['metadata']
    recipe = meta['recipe']
    curve = []
    if (run / 'metrics.csv').is_file():
        with (run / 'metrics.csv').open(newline='') as handle:
            rows = list(csv.DictReader(handle))
        curve = [(int(r['step']) * recipe['optim']['batch_size'], float(r['val_mean_iou']))
                 for r in rows if r.get('val_mean_iou')]
    train = recipe['data']['train'][0]
    images = 'image pool' if train.get('pool') else 'scikit-image photographs only'
    encoder = model['encoder']
    grid = model['search_size'] // encoder['patch_size']
    return {
        'name': run.name, 'model': model, 'grid': grid, 'images': images, 'bundle': bundle,
        'shape': (f"{encoder['depth']} blocks x {encoder['dim']}, "
                  f"{model['template_size']}/{model['search_size']} px, patch "
                  f"{encoder['patch_size']} ({grid}x{grid} search grid)"),
        'pairs': int(meta['steps']) * recipe['optim']['batch_size'],
        'wall_min': float(meta.get('wall_time_s', float('nan'))) / 60.0,
        'val_iou': curve[-1][1] if curve else float('nan'), 'curve': curve,
    }


def main() -> int:
    """Score every run on the cross-source val split and write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--run', action='append', required=True,
                        help='run directory, or a bundle (no curve then)')
    parser.add_argument('--sequences', type=int, default=30)
    parser.add_argument('--frames', type=int, default=80)
    parser.add_argument('--pool', default=str(ROOT / 'build' / 'data' / 'image_pool'))
    parser.add_argument('--data', default=str(ROOT / 'build' / 'data' / 'sizing_val'))
    parser.add_argument('--output', default=str(ROOT / 'build' / 'eval' / 'sizing'))
    parser.add_argument('--untrained', action='append', default=[],
                        help='a candidate recipe that was not trained: cost figures only')
    parser.add_argument('--docs', default=str(ROOT / 'docs' / 'model-sizing.md'))
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = pathlib.Path(args.data)
    if not (data / 'val' / 'list.txt').is_file():
        generate_dataset(str(data), 'val', args.sequences, args.frames, size=(480, 360),
                         seed=VAL_SEED, overwrite=True, pool=args.pool, workers=2)
    sequences = load_benchmark('got10k', str(data), split='val')[:args.sequences]
    rows: List[Dict[str, Any]] = []
    for run in map(pathlib.Path, args.run):
        facts = run_facts(run)
        bundle = facts['bundle']
        spec = f'detrack:model={bundle},backend=onnxruntime,device=cpu,threads=2,name={run.name}'
        kind, options = parse_tracker(spec)
        name, factory = build_factory(kind, options)
        print(f'{name} ...', flush=True)
        results = run_benchmark(factory, sequences, os.path.join(args.output, 'results'), name,
                                resume=False)
        scores = evaluate(results, 'got10k')
        # The same network without box dynamics: how much of a row is the tracker's damping.
        _, plain = build_factory(*parse_tracker(f'{spec},size_rate=1,max_step=inf,'
                                                f'name={run.name}-plain'))
        undamped = evaluate(run_benchmark(plain, sequences, os.path.join(args.output, 'results'),
                                          f'{run.name}-plain', resume=False), 'got10k')
        facts['ao_plain'] = undamped.ao
        network = load_bundle(bundle)
        facts.update(ao=scores.ao, sr50=scores.sr50,
                     track_ms=1000.0 / median_fps(results),
                     gmacs=count_macs(network)['total'].total / 1e9,
                     step_ms=1000.0 * step_time(network.config, 16, 3, True))
        rows.append(facts)
    for baseline in ('csrt',):
        kind, options = parse_tracker(baseline)
        name, factory = build_factory(kind, options)
        results = run_benchmark(factory, sequences, os.path.join(args.output, 'results'), name,
                                resume=False)
        scores = evaluate(results, 'got10k')
        rows.append({'name': name, 'shape': 'OpenCV CSRT', 'pairs': 0, 'images': '',
                     'wall_min': float('nan'), 'val_iou': float('nan'), 'ao': scores.ao,
                     'ao_plain': scores.ao,
                     'sr50': scores.sr50, 'gmacs': float('nan'), 'step_ms': float('nan'),
                     'track_ms': 1000.0 / median_fps(results)})
    costs = []
    for path in args.untrained:
        config = load_recipe(path).model
        costs.append({'recipe': path, 'grid': config.search_grid,
                      'gmacs': count_macs(create_model(config))['total'].total / 1e9,
                      'step_ms': 1000.0 * step_time(config, 16, 3, True)})
    docs = pathlib.Path(args.docs)
    plot_curves(rows, docs.with_name(docs.stem + '-curves.png'))
    docs.write_text(page(rows, costs, len(sequences), args.frames))
    print(pathlib.Path(args.docs).read_text())
    return 0


def plot_curves(rows: List[Dict[str, Any]], path: pathlib.Path) -> None:
    """Plot each run's cross-source validation IoU against the pairs it had seen."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.2))
    for row in rows:
        if row.get('curve'):
            pairs, ious = zip(*row['curve'])
            axes.plot(pairs, ious, marker='o', label=f"{row['name']} ({row['images']})")
    axes.set_xlabel('template/search pairs seen')
    axes.set_ylabel('mean IoU, cross-source val pairs')
    axes.set_title('Learning curves on the cross-source validation split')
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def page(rows: List[Dict[str, Any]], costs: List[Dict[str, Any]], count: int,
         frames: int) -> str:
    """Render docs/model-sizing.md."""
    lines = [
        '# Sizing the default model',
        '',
        'Generated by `python -m tools.make_sizing_docs` '
        f'({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPU '
        f'cores, torch {torch.__version__}, no GPU; 1-min load average '
        f'{os.getloadavg()[0]:.1f} at the end: times measured under load are longer).',
        '',
        f'Cross-source **validation** split: {count} sequences of {frames} frames from the '
        "image pool's `val` part (seed "
        f'{VAL_SEED}); the test split is kept for docs/tracking.md. GOT-10k protocol, '
        'onnxruntime backend, 2 threads. "track ms" is the median time of one '
        '`Tracker.track` call (crop, network, decoding); "pairs" the template/search pairs '
        'the run trained on; "val IoU" the mean IoU of single jittered pairs on the '
        'validation split at the end of training. "AO" tracks with the default '
        '`TrackerConfig` (box dynamics on: size changes damped by confidence and bounded per '
        'frame); "AO plain" with the network\'s boxes as they are.',
        '',
        '| run | architecture | training images | GMACs | train ms/step | pairs | train min | '
        'val IoU | AO | AO plain | SR0.5 | track ms | frames/s |',
        '|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['shape']} | {row['images']} | {row['gmacs']:.2f} | "
            f"{row['step_ms']:.0f} | {row['pairs']} | {row['wall_min']:.0f} | "
            f"{row['val_iou']:.3f} | {row['ao']:.3f} | {row['ao_plain']:.3f} | "
            f"{row['sr50']:.3f} | "
            f"{row['track_ms']:.2f} | {1000.0 / row['track_ms']:.0f} |")
    if costs:
        lines += ['', 'Candidates not trained here (cost only; "train ms/step" is one training '
                  'step of batch 16, forward, loss with denoising, backward and AdamW, median of '
                  '3, in this run):', '', '| recipe | search grid | GMACs | train ms/step |',
                  '|:--|--:|--:|--:|']
        for cost in costs:
            lines.append(f"| `{cost['recipe']}` | {cost['grid']}x{cost['grid']} | "
                         f"{cost['gmacs']:.2f} | {cost['step_ms']:.0f} |")
    lines += ['', '![learning curves](model-sizing-curves.png)']
    trained = [row for row in rows if row['pairs'] and row['images'] == 'image pool']
    fast = [row for row in trained if 1000.0 / row['track_ms'] >= SPEED_TARGET]
    if fast:
        best = max(fast, key=lambda row: row['ao'])
        lines += ['', f'Of the image-pool runs that track at {SPEED_TARGET:.0f} frames/s or '
                  f"faster, **{best['name']}** ({best['shape']}) has the highest cross-source "
                  f"val AO ({best['ao']:.3f})."]
    by_images = {row['images']: row for row in rows if row['pairs'] == 98304
                 and row['shape'].startswith('6 blocks') and '8x8' in row['shape']}
    pool, photos = by_images.get('image pool'), by_images.get('scikit-image photographs only')
    if pool and photos:
        lines += ['', '**Data ablation** (same generator, architecture and 98,304 pairs): the '
                  f"image pool {pool['ao']:.3f} AO ({pool['ao_plain']:.3f} plain, val pair IoU "
                  f"{pool['val_iou']:.3f}) against the 9 photographs {photos['ao']:.3f} "
                  f"({photos['ao_plain']:.3f} plain, {photos['val_iou']:.3f}). Differences "
                  'under about 0.03 AO are within the spread of 30 sequences.']
    lines += ['', 'Regenerate: train the runs, then `python -m tools.make_sizing_docs --run '
              'RUN ...`.', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
