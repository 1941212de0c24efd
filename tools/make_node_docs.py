"""
Measure the tracker node end to end on this machine and write docs/node.md + docs/node-latency.png.

Each run starts ``tracker_node`` as its own process with the shipped model and replays held-out
generated sequences (640x480 rgb8) over DDS with ``detrack_ros.demo.run_demo``: at a 30 Hz
camera (latency, overhead, drops) and flooded at 200 Hz (the most frames the node gets through);
and rendered RGB-D sequences (640x480 rgb8 + aligned 16UC1 depth + camera_info, 30 Hz) with the
3-D output on (``depth``), where the latency of ``target_point`` is measured too.
Run inside the built workspace (``make build``, then source it, see README);
``--only 'RGB-D'`` (repeatable, a part of a setting's name) runs only some settings.
"""

import argparse
import pathlib
import platform
from typing import Dict, List

from detrack_ros.demo import DemoResult, run_demo
from detrack_ros.replay import generated_rgbd_sequence, generated_sequence, ReplaySequence
import matplotlib
import matplotlib.pyplot as plt
import numpy as np

matplotlib.use('Agg')

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _row(name: str, runs: List[DemoResult]) -> Dict[str, float]:
    latency = np.concatenate([run.latency_ms for run in runs])
    points = np.concatenate([run.point_latency_ms for run in runs])
    frames = sum(run.frames for run in runs)
    answered = sum(run.answered for run in runs)
    wall = sum(run.wall_sec for run in runs)
    model_ms = float(np.median([float(run.diagnostics['inference_ms_median']) for run in runs]))
    node_ms = float(np.median([float(run.diagnostics['node_latency_ms_median'])
                               for run in runs]))
    lost = sum(len(run.lost_latency_ms) for run in runs)
    skipped = sum(int(run.diagnostics.get('frames_dropped', 0)) for run in runs)
    return {'name': name, 'frames': frames, 'answered': answered,
            'rate': (answered + lost) / wall, 'model_ms': model_ms, 'model_fps': 1000.0 / model_ms,
            'median': float(np.median(latency)), 'p95': float(np.percentile(latency, 95)),
            'overhead': float(np.median(latency)) - model_ms, 'node_ms': node_ms,
            'skipped': skipped / frames, 'reported_lost': lost / frames,
            'ao': float(np.mean([run.ao for run in runs])), 'latency': latency,
            'point_median': float(np.median(points)) if len(points) else None,
            'points': len(points), **_lost_columns(runs)}


def _lost_columns(runs: List[DemoResult]) -> Dict[str, float]:
    """Return the latency of the frames answered "lost" and the answers missed while absent."""
    lost = np.concatenate([run.lost_latency_ms for run in runs])
    absent = sum(run.absent for run in runs)
    return {'lost_frames': len(lost),
            'lost_median': float(np.median(lost)) if len(lost) else float('nan'),
            'lost_p95': float(np.percentile(lost, 95)) if len(lost) else float('nan'),
            'absent': absent,
            'absent_unanswered': sum(run.absent_unanswered for run in runs) / max(absent, 1),
            'reacquisitions': sum(int(run.diagnostics.get('reacquisitions', 0))
                                  for run in runs)}


def leaving_sequences(count: int, frames: int, limit: int = 200) -> List[ReplaySequence]:
    """Return the first ``count`` held-out generated sequences in which the target leaves."""
    found = []
    for index in range(limit):
        sequence = generated_sequence(index, frames, fps=30.0)
        if not sequence.visible.all():
            found.append(sequence)
            if len(found) == count:
                return found
    raise RuntimeError(f'only {len(found)} of the first {limit} sequences leave the view')


def main() -> None:
    """Run the measurements and write the page and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--sequences', type=int, default=3)
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--docs', default=str(ROOT / 'docs'))
    parser.add_argument('--only', action='append', default=[],
                        help='run only the settings whose name contains this (repeatable)')
    args = parser.parse_args()
    sequences = [generated_sequence(index, args.frames, fps=30.0)
                 for index in range(args.sequences)]
    rgbd = [generated_rgbd_sequence(index, args.frames, fps=30.0)
            for index in range(args.sequences)]
    leaving = leaving_sequences(args.sequences, args.frames)
    settings = [('onnxruntime (default on CPU), 30 Hz camera', {'backend': 'onnxruntime'}, 30.0,
                 sequences),
                ('PyTorch, 30 Hz camera', {'backend': 'torch'}, 30.0, sequences),
                ('onnxruntime, 200 Hz flood', {'backend': 'onnxruntime'}, 200.0, sequences),
                ('onnxruntime, 30 Hz RGB-D camera, 3-D off', {'backend': 'onnxruntime'}, 30.0,
                 rgbd),
                ('onnxruntime, 30 Hz RGB-D camera, 3-D on (depth)',
                 {'backend': 'onnxruntime', 'depth': 'true'}, 30.0, rgbd),
                ('onnxruntime, 30 Hz camera, target leaves the view, redetect off',
                 {'backend': 'onnxruntime', 'redetect': 'false'}, 30.0, leaving),
                ('onnxruntime, 30 Hz camera, target leaves the view, redetect on',
                 {'backend': 'onnxruntime', 'redetect': 'true'}, 30.0, leaving)]
    if args.only:
        settings = [s for s in settings if any(part in s[0] for part in args.only)]
    rows = []
    for name, parameters, rate, played in settings:
        runs = [run_demo(sequence, dict(parameters, diagnostics_period='0.5'), rate,
                         log=lambda *_: None) for sequence in played]
        rows.append(_row(name, runs))
        print(f"{name}: {rows[-1]['rate']:.1f} frames/s, latency median "
              f"{rows[-1]['median']:.1f} ms p95 {rows[-1]['p95']:.1f} ms, skipped "
              f"{100 * rows[-1]['skipped']:.1f} %, lost {100 * rows[-1]['reported_lost']:.1f} %")
    docs = pathlib.Path(args.docs)
    _plot([row for row in rows if '30 Hz' in row['name'] and 'leaves' not in row['name']],
          docs / 'node-latency.png')
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
        '| setting | frames | answered / s | model time (ms) | model alone (frames/s) | '
        'latency median (ms) | latency p95 (ms) | node overhead (ms) | skipped by the node | '
        'answered "lost" | AO | target_point latency median (ms) |',
        '|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ]
    for row in rows:
        point = f"{row['point_median']:.1f}" if row['point_median'] is not None else '-'
        lines.append(
            f"| {row['name']} | {row['frames']} | {row['rate']:.1f} | {row['model_ms']:.2f} | "
            f"{row['model_fps']:.0f} | {row['median']:.1f} | {row['p95']:.1f} | "
            f"{row['overhead']:.1f} | {100 * row['skipped']:.1f} % | "
            f"{100 * row['reported_lost']:.1f} % | {row['ao']:.3f} | "
            f'{point} |')
    leaving = [row for row in rows if 'leaves the view' in row['name']]
    if leaving:
        lines += [
            '', '### While the target is out of view', '',
            f'{args.sequences} held-out generated sequences in which the target leaves the '
            'image and comes back (the first such of the same generator), 30 Hz. A frame the '
            'node answers "lost" (an empty `detections` array) is one it searched: around the '
            'last box, or with `redetect` the whole image in tiles, the costliest frame the node '
            'runs.', '',
            '| setting | frames answered "lost" | their latency median (ms) | p95 (ms) | '
            'absent frames without an answer | re-acquisitions | AO |',
            '|:--|--:|--:|--:|--:|--:|--:|']
        lines += [f"| {row['name']} | {row['lost_frames']} | {row['lost_median']:.1f} | "
                  f"{row['lost_p95']:.1f} | {100 * row['absent_unanswered']:.1f} % of "
                  f"{row['absent']} | {row['reacquisitions']} | {row['ao']:.3f} |"
                  for row in leaving]
    lines += [
        '', '![latency](node-latency.png)', '',
        '- **latency**: the camera stamps each image with its clock just before publishing; '
        'the client records when the `detection` for that stamp arrives. It includes DDS '
        'transport both ways, deserialisation, the newest-frame hand-over, conversion, the '
        'crop, the model and publishing.',
        "- **model time**: the node's own median of `Tracker.track` (crop + network + "
        'decoding), from its diagnostics; **node overhead** = latency median - model time '
        '(DDS, callbacks, thread hand-over, message building).',
        '- **answered / s**: frames the node answered, with a `detection` or as "lost" (an '
        'empty `detections` array). **skipped by the node**: frames the newest-frame policy '
        "passed over (the node's `frames_dropped`). At 200 Hz the camera outruns the model on "
        'purpose: the node skips to the newest frame and never builds a queue. **answered '
        '"lost"**: frames on which the target was reported lost (no `detection`).',
        '- **AO**: GOT-10k average overlap of the published boxes (a frame without an answer '
        'keeps the previous box).',
        '- **RGB-D**: rendered sequences (`detrack_model.data.synthetic.rgbd`) with aligned '
        '16UC1 depth and camera_info published with each image; with `depth:=true` the node '
        'also pairs the depth image and publishes `target_bearing`, `target_point` and '
        '`detection_3d` after the detection. **target_point latency**: image stamp to '
        '`target_point` received (see [depth.md](depth.md) for its accuracy).', '',
        'Regenerate: `python -m tools.make_node_docs` inside the built workspace (see the '
        'README); it takes about eight minutes.', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
