"""
Measure how many training pairs per second the data pipeline delivers on this machine.

Times ``TrackingPairDataset`` (frame decode, crop, augmentation, normalisation) in one process
and through a ``DataLoader`` with worker processes, and prints the median over a few runs.
Without ``--root`` it first generates a small GOT-10k-layout split (5 synthetic sequences of
30 640x480 JPEG frames, :func:`detrack_model.data.synthetic.generate_dataset`) in a temporary
directory. DataLoader rates are timed from the first batch on, so worker start-up is left out.
A single-process breakdown splits a pair's time into decoding and processing.

    python tools/bench_data_pipeline.py [--root GOT10K_ROOT] [--workers 0 2] [--pairs 256]
"""

import argparse
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Sequence, TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from detrack_model.data import Got10k, PairProcessing, TrackingPairDataset

ROOT = pathlib.Path(__file__).resolve().parent.parent


def time_single_process(pairs: 'TrackingPairDataset', count: int, run: int) -> float:
    """Return pairs/s of ``count`` items read in this process."""
    pairs.set_epoch(run)
    start = time.perf_counter()
    for index in range(count):
        pairs[index]
    return count / (time.perf_counter() - start)


def time_loader(pairs: 'TrackingPairDataset', count: int, workers: int, batch: int,
                run: int) -> float:
    """Return pairs/s through a DataLoader, timed from the first batch on."""
    pairs.set_epoch(run)
    subset = torch.utils.data.Subset(pairs, range(count))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch, num_workers=workers)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    received = sum(len(item['search']) for item in iterator)
    return received / (time.perf_counter() - start)


def breakdown(dataset: 'Got10k', processing: 'PairProcessing', count: int) -> Dict[str, float]:
    """Return milliseconds per pair spent decoding two frames and processing them."""
    rng = np.random.default_rng(0)
    decode = process = 0.0
    for i in range(count):
        sequence = i % len(dataset)
        info = dataset.sequence_info(sequence)
        a, b = rng.integers(len(info), size=2)
        start = time.perf_counter()
        template, search = dataset.frame(sequence, int(a)), dataset.frame(sequence, int(b))
        middle = time.perf_counter()
        processing(template, info.boxes[a], search, info.boxes[b], rng)
        decode += middle - start
        process += time.perf_counter() - middle
    return {'decode 2 frames': 1e3 * decode / count, 'crop + augment': 1e3 * process / count}


def run(root: str, split: str, workers: Sequence[int], count: int, runs: int,
        batch: int) -> List[str]:
    """Time every configuration; return the table's lines."""
    from detrack_model.data import (Got10k, limit_opencv_threads, PairProcessing,
                                    TrackingPairDataset)
    dataset = Got10k(root, split)
    processing = PairProcessing()
    pairs = TrackingPairDataset([dataset], pairs_per_epoch=max(count, 1), processing=processing)
    # As a trainer would: one thread per process, the workers give the parallelism.
    torch.set_num_threads(1)
    limit_opencv_threads()
    lines = [f'dataset: {dataset!r}, {count} pairs per run, median of {runs} runs, '
             'one torch and OpenCV thread per process',
             '', '| workers | pairs/s | ms/pair |', '|--------:|--------:|--------:|']
    for worker_count in workers:
        if worker_count == 0:
            rates = [time_single_process(pairs, count, r) for r in range(runs)]
        else:
            rates = [time_loader(pairs, count, worker_count, batch, r) for r in range(runs)]
        rate = statistics.median(rates)
        lines.append(f'| {worker_count:7d} | {rate:7.1f} | {1e3 / rate:7.2f} |')
    lines += ['', 'single process, per pair:']
    for name, value in breakdown(dataset, processing, min(count, 64)).items():
        lines.append(f'  {name:16s} {value:6.2f} ms')
    return lines


def main(argv=None) -> int:
    """Parse arguments, generate the dataset if needed, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--root',
                        help='GOT-10k root (default: a temporary generated synthetic split)')
    parser.add_argument('--split', default='train')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    parser.add_argument('--pairs', type=int, default=256, help='pairs per timed run')
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--batch', type=int, default=16)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # run as a script from anywhere in the checkout
    from detrack_model.data.synthetic import generate_dataset
    if args.root:
        lines = run(args.root, args.split, args.workers, args.pairs, args.runs, args.batch)
    else:
        with tempfile.TemporaryDirectory(prefix='detrack_bench_') as root:
            generate_dataset(root, 'train', num_sequences=5, frames=30, size=(640, 480))
            lines = run(root, 'train', args.workers, args.pairs, args.runs, args.batch)
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
