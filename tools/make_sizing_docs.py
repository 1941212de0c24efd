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
from detrack_model.evaluation import evaluate
from detrack_model.evaluation.runner import run_benchmark
from detrack_model.evaluation.sequences import load_benchmark
from detrack_model.export.bundle import load_bundle, read_bundle_config
from detrack_model.profiling import count_macs
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
VAL_SEED = 11


def run_facts(run: pathlib.Path) -> Dict[str, Any]:
    """Return a finished run's architecture, pairs seen, wall time and validation IoUs."""
    document = read_bundle_config(run / 'model')
    model, meta = document['model'], document['metadata']
    recipe = meta['recipe']
    with (run / 'metrics.csv').open(newline='') as handle:
        rows = list(csv.DictReader(handle))
    curve = [(int(r['step']) * recipe['optim']['batch_size'], float(r['val_mean_iou']))
             for r in rows if r.get('val_mean_iou')]
    encoder = model['encoder']
    grid = model['search_size'] // encoder['patch_size']
    return {
        'name': run.name, 'model': model, 'grid': grid,
        'shape': (f"{encoder['depth']} blocks x {encoder['dim']}, "
                  f"{model['template_size']}/{model['search_size']} px, patch "
                  f"{encoder['patch_size']} ({grid}x{grid} search grid)"),
        'pairs': int(meta['steps']) * recipe['optim']['batch_size'],
        'wall_min': float(meta.get('wall_time_s', float('nan'))) / 60.0,
        'val_iou': curve[-1][1] if curve else float('nan'),
    }


def main() -> int:
    """Score every run on the cross-source val split and write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--run', action='append', required=True, help='run directory')
    parser.add_argument('--sequences', type=int, default=30)
    parser.add_argument('--frames', type=int, default=80)
    parser.add_argument('--pool', default=str(ROOT / 'build' / 'data' / 'image_pool'))
    parser.add_argument('--data', default=str(ROOT / 'build' / 'data' / 'sizing_val'))
    parser.add_argument('--output', default=str(ROOT / 'build' / 'eval' / 'sizing'))
    parser.add_argument('--docs', default=str(ROOT / 'docs' / 'model-sizing.md'))
    args = parser.parse_args()
    data = pathlib.Path(args.data)
    if not (data / 'val' / 'list.txt').is_file():
        generate_dataset(str(data), 'val', args.sequences, args.frames, size=(480, 360),
                         seed=VAL_SEED, overwrite=True, pool=args.pool, workers=2)
    sequences = load_benchmark('got10k', str(data), split='val')[:args.sequences]
    rows: List[Dict[str, Any]] = []
    for run in map(pathlib.Path, args.run):
        facts = run_facts(run)
        bundle = run / 'model'
        spec = f'detrack:model={bundle},backend=onnxruntime,device=cpu,threads=2,name={run.name}'
        kind, options = parse_tracker(spec)
        name, factory = build_factory(kind, options)
        print(f'{name} ...', flush=True)
        results = run_benchmark(factory, sequences, os.path.join(args.output, 'results'), name,
                                resume=False)
        scores = evaluate(results, 'got10k')
        times = np.concatenate([np.asarray(r.times, float)[1:] for r in results])
        facts.update(ao=scores.ao, sr50=scores.sr50,
                     track_ms=1000.0 * float(np.median(times[times > 0])),
                     gmacs=count_macs(load_bundle(bundle))['total'].total / 1e9)
        rows.append(facts)
    for baseline in ('csrt',):
        kind, options = parse_tracker(baseline)
        name, factory = build_factory(kind, options)
        results = run_benchmark(factory, sequences, os.path.join(args.output, 'results'), name,
                                resume=False)
        scores = evaluate(results, 'got10k')
        times = np.concatenate([np.asarray(r.times, float)[1:] for r in results])
        rows.append({'name': name, 'shape': 'OpenCV CSRT', 'pairs': 0,
                     'wall_min': float('nan'), 'val_iou': float('nan'), 'ao': scores.ao,
                     'sr50': scores.sr50, 'gmacs': float('nan'),
                     'track_ms': 1000.0 * float(np.median(times[times > 0]))})
    pathlib.Path(args.docs).write_text(page(rows, len(sequences), args.frames))
    print(pathlib.Path(args.docs).read_text())
    return 0


def page(rows: List[Dict[str, Any]], count: int, frames: int) -> str:
    """Render docs/model-sizing.md."""
    lines = [
        '# Sizing the default model',
        '',
        'Generated by `python -m tools.make_sizing_docs` '
        f'({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPU '
        f'cores, torch {torch.__version__}, no GPU).',
        '',
        f'Cross-source **validation** split: {count} sequences of {frames} frames from the '
        "image pool's `val` part (seed "
        f'{VAL_SEED}); the test split is kept for docs/tracking.md. GOT-10k protocol, '
        'onnxruntime backend, 2 threads. "track ms" is the median time of one '
        '`Tracker.track` call (crop, network, decoding); "pairs" the template/search pairs '
        'the run trained on; "val IoU" the mean IoU of single jittered pairs on the '
        'validation split at the end of training.',
        '',
        '| run | architecture | GMACs | pairs | train min | val IoU | AO | SR0.5 | '
        'track ms | frames/s |',
        '|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|',
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['shape']} | {row['gmacs']:.2f} | {row['pairs']} | "
            f"{row['wall_min']:.0f} | {row['val_iou']:.3f} | {row['ao']:.3f} | "
            f"{row['sr50']:.3f} | {row['track_ms']:.2f} | {1000.0 / row['track_ms']:.0f} |")
    lines += ['', 'Regenerate: train the runs, then `python -m tools.make_sizing_docs --run '
              'RUN ...`.', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
