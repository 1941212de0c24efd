"""
Time one tracking frame on the CPU: the PyTorch backend against the onnxruntime backend.

Loads a model bundle (default: the shipped default model), exports it to ONNX with the same decoder
layers and candidate elimination, and runs both backends through the tracker's Backend
interface (set_template once, then infer per frame) on the same pre-generated crops. The two
backends take turns in blocks of frames (``--rounds``), so a change in machine load hits both
alike. Prints the median and 90th percentile per-frame latency after warm-up, their ratio,
and the load average, since other work on the machine moves these figures.

    python -m tools.bench_backends [--frames 200] [--threads 2] [--decoder-layers 1]
        [--json build/bench_backends.json]
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
from typing import Dict, List, Optional

from detrack_model.export.bundle import load_bundle
from detrack_model.export.onnx import export_onnx
from detrack_model.shipped import default_model_path
from detrack_model.tracking.backends import Backend
from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend
from detrack_model.tracking.backends.torch_backend import TorchBackend
import numpy as np
import onnxruntime
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_MODEL = default_model_path()
# Distinct search crops cycled through, so the timings do not rest on a single input.
CROPS = 16
# Untimed frames at the start of every block, after the other backend ran.
BLOCK_WARMUP = 3


def summarise(seconds: List[float]) -> Dict[str, float]:
    """Return median, 90th percentile and mean in milliseconds, and frames per second."""
    ms = np.asarray(seconds) * 1000.0
    median = float(np.median(ms))
    return {'median_ms': median, 'p90_ms': float(np.percentile(ms, 90)),
            'mean_ms': float(ms.mean()), 'fps': 1000.0 / median}


def time_backends(backends: List[Backend], template: np.ndarray, searches: List[np.ndarray],
                  frames: int, warmup: int, rounds: int) -> List[List[float]]:
    """
    Return per-frame seconds of each backend, timed in ``rounds`` alternating blocks.

    Each backend first runs ``warmup`` untimed frames; every block then starts with a few
    untimed frames, because the other backend's thread pool has just had the cores.
    """
    for backend in backends:
        backend.set_template(template)
        for frame in range(warmup):
            backend.infer(searches[frame % len(searches)])
    times: List[List[float]] = [[] for _ in backends]
    per_round = [frames // rounds + (1 if r < frames % rounds else 0) for r in range(rounds)]
    frame = 0
    for round_index, count in enumerate(per_round):
        # Blocks rather than single frames: two thread pools taking turns frame by frame
        # spin against each other and time that, not the backends.
        order = list(range(len(backends)))
        if round_index % 2:
            order.reverse()
        for index in order:
            for step in range(BLOCK_WARMUP + count):
                search = searches[(frame + step) % len(searches)]
                start = time.perf_counter()
                backends[index].infer(search)
                elapsed = time.perf_counter() - start
                if step >= BLOCK_WARMUP:
                    times[index].append(elapsed)
        frame += count
    return times


def main(argv: Optional[List[str]] = None) -> int:
    """Parse arguments, run the benchmark, print the table (and write JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--model', default=str(DEFAULT_MODEL), help='model bundle')
    parser.add_argument('--frames', type=int, default=200, help='timed frames per backend')
    parser.add_argument('--warmup', type=int, default=20, help='untimed frames first')
    parser.add_argument('--rounds', type=int, default=5,
                        help='blocks per backend, taken in turns')
    parser.add_argument('--threads', type=int,
                        help='CPU threads for both backends (default: the PyTorch default)')
    parser.add_argument('--decoder-layers', type=int, help='decoder layers to run (1..L)')
    parser.add_argument('--no-candidate-elimination', action='store_true')
    parser.add_argument('--json', type=pathlib.Path, help='also write the figures here')
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 0 or not 1 <= args.rounds <= args.frames:
        parser.error('--frames must be positive, --warmup not negative and --rounds in '
                     '1..frames')
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    elimination = not args.no_candidate_elimination

    model = load_bundle(args.model)
    config = model.config
    layers = args.decoder_layers or (config.decoder.layers if config.head == 'decoder' else 0)
    with tempfile.TemporaryDirectory(prefix='detrack-bench-') as workdir:
        path = export_onnx(model, pathlib.Path(workdir) / 'model.onnx', args.decoder_layers,
                           elimination)
        onnx_backend = OnnxBackend(path, threads=threads)
    torch_backend = TorchBackend(model, torch.device('cpu'), args.decoder_layers, elimination)

    rng = np.random.default_rng(0)
    template = rng.integers(0, 256, (config.template_size, config.template_size, 3), np.uint8)
    searches = [rng.integers(0, 256, (config.search_size, config.search_size, 3), np.uint8)
                for _ in range(CROPS)]
    backends = [torch_backend, onnx_backend]
    load_before = os.getloadavg()[0]
    times = time_backends(backends, template, searches, args.frames, args.warmup, args.rounds)
    load = max(load_before, os.getloadavg()[0])
    results = {backend.name: summarise(seconds) for backend, seconds in zip(backends, times)}
    torch_stats, onnx_stats = results[torch_backend.name], results[onnx_backend.name]
    speedup = torch_stats['median_ms'] / onnx_stats['median_ms']

    print(f'{args.model}: {config.name} {config.template_size}/{config.search_size}, '
          f'{config.head} head, decoder layers {layers or "-"}, candidate elimination '
          f'{"on" if elimination else "off"}')
    print(f'{os.cpu_count()} CPU cores; torch {torch.__version__} intra-op threads {threads} '
          f'(inter-op {torch.get_num_interop_threads()}); onnxruntime '
          f'{onnxruntime.__version__} intra-op threads {threads}; {args.frames} frames in '
          f'{args.rounds} rounds after {args.warmup} warm-up; 1-min load average {load:.2f}')
    print(f'{"backend":<18}{"median ms":>11}{"p90 ms":>9}{"frames/s":>10}')
    for name, stats in results.items():
        print(f'{name:<18}{stats["median_ms"]:>11.2f}{stats["p90_ms"]:>9.2f}'
              f'{stats["fps"]:>10.1f}')
    print(f'median latency torch / onnxruntime: {speedup:.2f}x')

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            'model': str(args.model), 'config': config.to_dict(), 'decoder_layers': layers,
            'candidate_elimination': elimination, 'frames': args.frames,
            'warmup': args.warmup, 'rounds': args.rounds, 'threads': threads,
            'load_average_1min': load,
            'torch_interop_threads': torch.get_num_interop_threads(),
            'cpu_count': os.cpu_count(), 'machine': platform.machine(),
            'processor': platform.processor(), 'torch_version': torch.__version__,
            'onnxruntime_version': onnxruntime.__version__,
            'backends': results, 'speedup_torch_over_onnxruntime': speedup,
        }
        args.json.write_text(json.dumps(document, indent=2) + '\n')
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
