"""
Measure the tracker node end to end on this machine and write docs/node.md + docs/node-latency.png.

Each run starts ``tracker_node`` as its own process with the shipped model and replays held-out
generated sequences (640x480 rgb8) over DDS with ``detrack_ros.demo.run_demo``: at a 30 Hz
camera (latency, overhead, drops) and flooded at 200 Hz (the most frames the node gets through).
Run inside the built workspace (``make build``, then source it, see README).
"""

import argparse
import pathlib
import platform
from typing import Dict, List

from detrack_ros.demo import DemoResult, run_demo
from detrack_ros.replay import generated_sequence
import matplotlib
import matplotlib.pyplot as plt
import numpy as np

matplotlib.use('Agg')

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _row(name: str, runs: List[DemoResult]) -> Dict[str, float]:
    latency = np.concatenate([run.latency_ms for run in runs])
    frames = sum(run.frames for run in runs)
    answered = sum(run.answered for run in runs)
    wall = sum(run.wall_sec for run in runs)
    model_ms = float(np.median([float(run.diagnostics['inference_ms_median']) for run in runs]))
    node_ms = float(np.median([float(run.diagnostics['node_latency_ms_median'])
                               for run in runs]))
    return {'name': name, 'frames': frames, 'answered': answered,
            'rate': answered / wall, 'model_ms': model_ms, 'model_fps': 1000.0 / model_ms,
            'median': float(np.median(latency)), 'p95': float(np.percentile(latency, 95)),
            'overhead': float(np.median(latency)) - model_ms, 'node_ms': node_ms,
            'dropped': 1.0 - answered / frames,
            'ao': float(np.mean([run.ao for run in runs])), 'latency': latency}


def main() -> None:
    """Run the measurements and write the page and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--sequences', type=int, default=3)
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--docs', default=str(ROOT / 'docs'))
    args = parser.parse_args()
    sequences = [generated_sequence(index, args.frames, fps=30.0)
                 for index in range(args.sequences)]
    settings = [('onnxruntime (default on CPU), 30 Hz camera', {'backend': 'onnxruntime'}, 30.0),
                ('PyTorch, 30 Hz camera', {'backend': 'torch'}, 30.0),
                ('onnxruntime, 200 Hz flood', {'backend': 'onnxruntime'}, 200.0)]
    rows = []
    for name, parameters, rate in settings:
        runs = [run_demo(sequence, dict(parameters, diagnostics_period='0.5'), rate,
                         log=lambda *_: None) for sequence in sequences]
        rows.append(_row(name, runs))
        print(f"{name}: {rows[-1]['rate']:.1f} frames/s, latency median "
              f"{rows[-1]['median']:.1f} ms p95 {rows[-1]['p95']:.1f} ms, dropped "
              f"{100 * rows[-1]['dropped']:.1f} %")
    docs = pathlib.Path(args.docs)
    _plot(rows[:2], docs / 'node-latency.png')
    (docs / 'node.md').write_text(_page(rows, args))


def _plot(rows, path: pathlib.Path) -> None:
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for row in rows:
        values = np.sort(row['latency'])
        axis.plot(values, np.arange(1, len(values) + 1) / len(values), label=row['name'])
    axis.set_xlabel('end-to-end latency, image stamp to detection received (ms)')
    axis.set_ylabel('fraction of frames')
    axis.set_title('tracker_node at a 30 Hz camera, 640x480, 2-core CPU')
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _page(rows, args) -> str:
    lines = [
        '# The tracker node, end to end', '',
        f'One run on this machine ({platform.processor() or platform.machine()}, 2 cores, no '
        'GPU): `tracker_node` as its own process with the shipped model, a replayed camera in '
        f'another process over DDS (Fast DDS, shared memory). {args.sequences} held-out '
        f'generated sequences of {args.frames} frames, 640x480 rgb8, best-effort images.', '',
        '| setting | frames | processed / s | model time (ms) | model alone (frames/s) | '
        'latency median (ms) | latency p95 (ms) | node overhead (ms) | dropped | AO |',
        '|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['frames']} | {row['rate']:.1f} | {row['model_ms']:.2f} | "
            f"{row['model_fps']:.0f} | {row['median']:.1f} | {row['p95']:.1f} | "
            f"{row['overhead']:.1f} | {100 * row['dropped']:.1f} % | {row['ao']:.3f} |")
    lines += [
        '', '![latency](node-latency.png)', '',
        '- **latency**: the camera stamps each image with its clock just before publishing; '
        'the client records when the `detection` for that stamp arrives. It includes DDS '
        'transport both ways, deserialisation, the newest-frame hand-over, conversion, the '
        'crop, the model and publishing.',
        "- **model time**: the node's own median of `Tracker.track` (crop + network + "
        'decoding), from its diagnostics; **node overhead** = latency median - model time '
        '(DDS, callbacks, thread hand-over, message building).',
        '- **dropped**: frames that got no `detection` (skipped by the newest-frame policy, or '
        'the target reported lost). At 200 Hz the camera outruns the model on purpose: the '
        'node skips to the newest frame and never builds a queue.',
        '- **AO**: GOT-10k average overlap of the published boxes (a frame without an answer '
        'keeps the previous box).', '',
        'Regenerate: `python -m tools.make_node_docs` inside the built workspace (see the '
        'README); it takes about two minutes.', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
