"""
Time a lost frame's re-detection against a tracking frame: the tiles as one batch or in turn.

A lost frame runs the network on the widened search crop and then on ``redetect_tiles`` tiles
of the whole frame (docs/robust-tracking.md). ``Backend.infer_batch`` hands the tiles over as
one batch: one network run with PyTorch (on a GPU nearly the cost of one crop), one run per
tile with the batch-1 ONNX graph. Two measurements, both against a baseline measured in the
same run:

* **backend**: one search crop (a tracking frame's network run), N tiles one at a time, and N
  tiles as one batch, for each N of ``--tiles``, timed in alternating blocks;
* **tracker**: the tracker over held-out generated sequences in which the target leaves the
  view and comes back (the generator's val split), with the tiles batched and one at a time
  (a second copy of the backend behind a wrapper that runs the tiles in turn; the two take
  turns on every frame): the median time of frames tracked normally and of re-detection
  frames, the AO of both runs and the fraction of frames on which they give the same answer
  (a GPU's batched kernels round differently from its batch-1 ones, so a close call may go
  the other way there).

    python -m tools.bench_redetect [--device cpu|cuda] [--backend torch|onnxruntime] [--fp16]
        [--tiles 2 4 8] [--frames 100] [--sequences 4] [--json build/bench_redetect.json]
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

from detrack_model.data.synthetic import build_scene, render_frame, sequence_seed, SPLIT_SOURCES
from detrack_model.evaluation.metrics import rect_iou
from detrack_model.shipped import default_model_path
from detrack_model.tracking import build_tracker, RuntimeConfig, Tracker, TrackerConfig
from detrack_model.tracking.backends import Backend, Candidates, infer_each
import numpy as np
import torch

# Untimed runs at the start of every block, after the other variant ran.
BLOCK_WARMUP = 3
SEQUENCE_SEED = 7


class CountedBackend:
    """A backend that counts its batch calls (re-detection frames) and runs them as asked."""

    def __init__(self, backend: Backend, batched: bool) -> None:
        self.backend, self.batched, self.calls, self.crops = backend, batched, 0, 0
        self.template_size, self.search_size = backend.template_size, backend.search_size
        self.grid, self.name = backend.grid, backend.name

    def set_template(self, crop: np.ndarray) -> None:
        """Hand the template on."""
        self.backend.set_template(crop)

    def infer(self, crop: np.ndarray) -> Candidates:
        """Hand one crop on."""
        return self.backend.infer(crop)

    def infer_batch(self, crops: np.ndarray) -> Candidates:
        """Count the call; run the crops as one batch or in turn."""
        self.calls += 1
        self.crops += len(crops)
        return self.backend.infer_batch(crops) if self.batched else infer_each(self.backend,
                                                                               crops)

    def release(self) -> None:
        """Leave the wrapped backend to its owner."""


def median_ms(seconds: List[float]) -> float:
    """Return the median of ``seconds`` in milliseconds (nan for none)."""
    return float(np.median(seconds) * 1000.0) if seconds else float('nan')


def time_blocks(variants: Dict[str, Callable[[], object]], runs: int,
                rounds: int) -> Dict[str, float]:
    """Return each variant's median milliseconds, timed in ``rounds`` alternating blocks."""
    times: Dict[str, List[float]] = {name: [] for name in variants}
    for round_index in range(rounds):
        names = list(variants) if round_index % 2 == 0 else list(reversed(variants))
        for name in names:
            for step in range(BLOCK_WARMUP + runs):
                start = time.perf_counter()
                variants[name]()
                elapsed = time.perf_counter() - start
                if step >= BLOCK_WARMUP:
                    times[name].append(elapsed)
    return {name: median_ms(seconds) for name, seconds in times.items()}


def backend_figures(backend: Backend, tiles: List[int], runs: int,
                    rounds: int) -> List[Dict[str, float]]:
    """Time one crop, N crops in turn and N crops as a batch, for every N of ``tiles``."""
    rng = np.random.default_rng(0)
    size = backend.search_size
    backend.set_template(rng.integers(0, 256, (backend.template_size,) * 2 + (3,), np.uint8))
    crops = rng.integers(0, 256, (max(tiles), size, size, 3), np.uint8)
    rows = []
    for count in tiles:
        batch = crops[:count]
        figures = time_blocks({'one crop': lambda: backend.infer(crops[0]),
                               'in turn': lambda: infer_each(backend, batch),
                               'batched': lambda: backend.infer_batch(batch)}, runs, rounds)
        rows.append({'tiles': count, 'one_ms': figures['one crop'],
                     'in_turn_ms': figures['in turn'], 'batched_ms': figures['batched']})
    return rows


def leaving_scenes(count: int, frames: int, size: Tuple[int, int], limit: int = 300) -> List:
    """Return ``count`` rendered val-split sequences in which the target leaves and returns."""
    found = []
    for index in range(limit):
        scene = build_scene(sequence_seed(SEQUENCE_SEED, 'val', index), frames, size,
                            SPLIT_SOURCES['val'])
        rendered = [render_frame(scene, t) for t in range(scene.num_frames)]
        absent = np.array([frame.absent for frame in rendered])
        if absent.any() and not absent[-1]:
            found.append(rendered)
            if len(found) == count:
                return found
    raise RuntimeError(f'only {len(found)} of the first {limit} sequences leave and return')


class Run:
    """One tracker's record over the scenes: frame times, published boxes, overlaps."""

    def __init__(self, backend: Backend, config: TrackerConfig, batched: bool) -> None:
        self.counting = CountedBackend(backend, batched)
        self.tracker = Tracker(self.counting, config)
        self.tracking: List[float] = []
        self.redetecting: List[float] = []
        self.boxes: List[Optional[np.ndarray]] = []
        self.overlaps: List[float] = []

    def step(self, frame) -> None:
        """Track one frame and file its time as a tracking or a re-detection frame."""
        calls, was_lost = self.counting.calls, self.tracker.lost
        start = time.perf_counter()
        box, _ = self.tracker.track(frame.image)
        elapsed = time.perf_counter() - start
        published = None if self.tracker.lost else box
        self.boxes.append(published)
        if not frame.absent:
            # A visible target reported lost scores 0, as in the evaluation.
            self.overlaps.append(0.0 if published is None else
                                 float(rect_iou(published, frame.box)))
        if self.counting.calls > calls:
            self.redetecting.append(elapsed)
        elif not was_lost and not self.tracker.lost:
            self.tracking.append(elapsed)


def tracker_figures(backends: Tuple[Backend, Backend], scenes: List,
                    tiles: int) -> Dict[str, float]:
    """
    Track the scenes with the tiles batched and in turn; return medians, AO, agreement.

    Two trackers on two copies of the backend take turns on every frame, the first one
    changing from frame to frame, so the machine's load hits both alike.
    """
    config = TrackerConfig(redetect_tiles=tiles)
    runs = [Run(backends[0], config, batched=True), Run(backends[1], config, batched=False)]
    for run in runs:
        run.tracker.initialize(scenes[0][0].image, scenes[0][0].box)
        for frame in scenes[0][1:10]:
            run.tracker.track(frame.image)
        # The count goes on over initialisations: from here it counts the measured scenes.
        run.tracker.reacquisitions = 0
    for rendered in scenes:
        for run in runs:
            run.tracker.initialize(rendered[0].image, rendered[0].box)
        for index, frame in enumerate(rendered[1:]):
            for run in (runs if index % 2 == 0 else runs[::-1]):
                run.step(frame)
    batched, in_turn = runs
    same = [(a is None) == (b is None) and (a is None or np.allclose(a, b, atol=0.5))
            for a, b in zip(batched.boxes, in_turn.boxes)]
    return {'tiles': tiles,
            'tiles_run': batched.counting.crops / max(batched.counting.calls, 1),
            'tracking_ms': median_ms(batched.tracking + in_turn.tracking),
            'batched_ms': median_ms(batched.redetecting),
            'in_turn_ms': median_ms(in_turn.redetecting),
            'redetect_frames': len(batched.redetecting),
            'reacquisitions': batched.tracker.reacquisitions,
            'ao_batched': float(np.mean(batched.overlaps)),
            'ao_in_turn': float(np.mean(in_turn.overlaps)), 'same_answers': float(np.mean(same))}


def main(argv: Optional[List[str]] = None) -> int:
    """Parse arguments, run both measurements, print the tables (and write JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--model', default=str(default_model_path()), help='model bundle')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--backend', default='torch', choices=('torch', 'onnxruntime'))
    parser.add_argument('--fp16', action='store_true', help='half precision (GPU)')
    parser.add_argument('--threads', type=int, help="CPU threads (default: the library's)")
    parser.add_argument('--tiles', type=int, nargs='+', default=[2, 4, 8])
    parser.add_argument('--runs', type=int, default=30, help='timed runs per block')
    parser.add_argument('--rounds', type=int, default=4, help='blocks per variant, in turns')
    parser.add_argument('--sequences', type=int, default=4,
                        help='generated sequences in which the target leaves the view')
    parser.add_argument('--frames', type=int, default=100, help='frames per sequence')
    parser.add_argument('--json', type=pathlib.Path, help='also write the figures here')
    args = parser.parse_args(argv)
    if min(args.tiles) < 1 or args.runs < 1 or args.rounds < 1 or args.sequences < 1:
        parser.error('--tiles, --runs, --rounds and --sequences must be positive')
    runtime = RuntimeConfig(device=args.device, backend=args.backend, fp16=args.fp16,
                            threads=args.threads)
    backend = build_tracker(args.model, runtime).backend
    second = build_tracker(args.model, runtime).backend
    device = torch.cuda.get_device_name() if args.device.startswith('cuda') else \
        f'{platform.machine()}, {os.cpu_count()} CPU cores'
    print(f'{args.model}: backend {backend.name} on {device}; torch {torch.__version__}')

    rows = backend_figures(backend, args.tiles, args.runs, args.rounds)
    print('\nnetwork runs (median ms; ratio to one crop measured in the same run)')
    print(f'{"tiles":>5}{"one crop":>10}{"in turn":>10}{"batched":>10}{"in turn/1":>11}'
          f'{"batched/1":>11}{"speed-up":>10}')
    for row in rows:
        print(f'{row["tiles"]:>5}{row["one_ms"]:>10.2f}{row["in_turn_ms"]:>10.2f}'
              f'{row["batched_ms"]:>10.2f}{row["in_turn_ms"] / row["one_ms"]:>11.2f}'
              f'{row["batched_ms"] / row["one_ms"]:>11.2f}'
              f'{row["in_turn_ms"] / row["batched_ms"]:>10.2f}')

    scenes = leaving_scenes(args.sequences, args.frames, (640, 480))
    tracked = [tracker_figures((backend, second), scenes, tiles) for tiles in args.tiles]
    print(f'\ntracker over {args.sequences} generated sequences (640x480, the target leaves '
          'and returns; median ms per frame; "tiles run": mean tiles per re-detection frame, '
          'fewer than asked where fewer cover the frame; AO over visible frames, lost = 0)')
    print(f'{"tiles":>5}{"tiles run":>10}{"tracking":>10}{"lost, batched":>15}'
          f'{"lost, in turn":>15}{"batched/tracking":>18}{"frames":>8}{"found":>7}'
          f'{"AO batched":>12}{"AO in turn":>12}{"same answers":>14}')
    for row in tracked:
        print(f'{row["tiles"]:>5}{row["tiles_run"]:>10.1f}{row["tracking_ms"]:>10.2f}'
              f'{row["batched_ms"]:>15.2f}{row["in_turn_ms"]:>15.2f}'
              f'{row["batched_ms"] / row["tracking_ms"]:>18.2f}{row["redetect_frames"]:>8}'
              f'{row["reacquisitions"]:>7}{row["ao_batched"]:>12.3f}{row["ao_in_turn"]:>12.3f}'
              f'{row["same_answers"]:>14.0%}')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        command = 'python -m tools.bench_redetect ' + ' '.join(sys.argv[1:] if argv is None
                                                               else argv)
        args.json.write_text(json.dumps({
            'backend': backend.name, 'device': device, 'torch': torch.__version__,
            'date': datetime.date.today().isoformat(), 'command': command.strip(),
            'template_update': TrackerConfig().template_update,
            'lost_search_factor': TrackerConfig().lost_search_factor,
            'network': rows, 'tracker': tracked}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
