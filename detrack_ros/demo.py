"""
The end-to-end demo: the real tracker node, fed by a replayed camera, scored and timed.

``python -m detrack_ros.demo`` (``make demo``) starts ``tracker_node`` as its own process with
the shipped model, plays a generated sequence (or ``--video FILE --box x,y,w,h``, or the images
of an MCAP bag, ``--bag FILE --topic T --box x,y,w,h``) at its frame rate on ``image`` over
DDS, sends the first box on ``init_box`` stamped like the first image, records ``detection``,
and prints AO/SR0.5 against the ground truth, processing rate, end-to-end latency (image stamp
to detection received), the node's own model time, and the frames that got no answer; it
writes a video with the boxes drawn.
"""

import argparse
from dataclasses import dataclass, field
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence
import uuid

import cv2
from detrack_model.cli.common import box_argument  # first: sets the OpenMP wait policy
from detrack_model.evaluation.metrics import got10k_scores
from detrack_model.evaluation.results import SequenceResult
from detrack_model.shipped import default_model_path
from detrack_model.tracking.factory import build_tracker, RuntimeConfig
from detrack_model.tracking.session import OfflineSession
from detrack_ros.bag_io import BagError
from detrack_ros.debug_overlay import draw_box, TRACKING_COLOUR
from detrack_ros.detection_messages import stamp_ns
from detrack_ros.replay import (bag_sequence, generated_sequence, ReplayClient, ReplaySequence,
                                video_sequence)
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

NODE_START_TIMEOUT_SEC = 120.0


@dataclass
class DemoResult:
    """What one demo run measured."""

    frames: int
    answered: int
    boxes: np.ndarray
    latency_ms: np.ndarray
    wall_sec: float
    diagnostics: Dict[str, str]
    ao: float = float('nan')
    sr50: float = float('nan')
    # Image stamp to target_point received, for RGB-D sequences with the 3-D output on.
    point_latency_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    # Image stamp to an empty ``detections`` array received: frames the node answered "lost"
    # (with ``redetect``, the frames it searched the whole image on).
    lost_latency_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    # Frames without the target in view, and how many of them got no answer at all.
    absent: int = 0
    absent_unanswered: int = 0
    lines: List[str] = field(default_factory=list)

    @property
    def unanswered(self) -> int:
        """Return how many frames got no detection (dropped by the node, or target lost)."""
        return self.frames - self.answered

    def report(self) -> str:
        """Return the human-readable summary."""
        lat = self.latency_ms
        model_ms = _number(self.diagnostics.get('inference_ms_median'))
        node_ms = _number(self.diagnostics.get('node_latency_ms_median'))
        lines = [
            f'frames published       {self.frames} in {self.wall_sec:.1f} s',
            f'frames answered        {self.answered} ({self.unanswered} without a detection)',
            f'node dropped (newest-frame policy)  {self.diagnostics.get("frames_dropped", "?")}',
            f'processing rate        {self.answered / self.wall_sec:.1f} frames/s '
            f'(model alone: {1000.0 / model_ms:.0f} frames/s)' if model_ms else
            f'processing rate        {self.answered / self.wall_sec:.1f} frames/s',
            f'end-to-end latency     median {np.median(lat):.1f} ms, p95 '
            f'{np.percentile(lat, 95):.1f} ms (image stamp to detection received)'
            if len(lat) else 'end-to-end latency     no detection received',
            f'model time in the node median {model_ms:.2f} ms; receive-to-publish median '
            f'{node_ms:.2f} ms' if model_ms and node_ms else '',
        ]
        if np.isfinite(self.ao):
            lines.append(f'accuracy               AO {self.ao:.3f}, SR0.5 {self.sr50:.3f} '
                         '(GOT-10k protocol, first frame excluded)')
        return '\n'.join(line for line in lines + self.lines if line)


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def fastdds_profile() -> Optional[pathlib.Path]:
    """Return config/fastdds_large_images.xml of the source tree or the installed package."""
    name = pathlib.Path('config') / 'fastdds_large_images.xml'
    candidates = [pathlib.Path(__file__).resolve().parents[1] / name]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(pathlib.Path(get_package_share_directory('detrack_ros')) / name)
    except (ImportError, LookupError, ValueError):
        pass
    return next((path for path in candidates if path.is_file()), None)


def start_node(namespace: str, parameters: Dict[str, str]) -> subprocess.Popen:
    """Start ``tracker_node`` in its own process under ``namespace``."""
    command = [sys.executable, '-m', 'detrack_ros.tracker_node', '--ros-args',
               '-r', f'__ns:={namespace}']
    for name, value in parameters.items():
        command += ['-p', f'{name}:={value}']
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def stop_node(process: subprocess.Popen) -> str:
    """Stop the node with Ctrl-C (killed after 20 s) and return its output."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output or ''


def run_demo(sequence: ReplaySequence, parameters: Optional[Dict[str, str]] = None,
             rate: Optional[float] = None, reliable: bool = False,
             log=print) -> DemoResult:
    """Run the node on ``sequence`` at ``rate`` frames/s (default the sequence's); see module."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    profile = fastdds_profile()
    if profile is not None:
        # The replayed camera publishes best effort like a driver; see the profile's comment.
        os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(profile))
    namespace = f'/detrack_demo_{uuid.uuid4().hex[:8]}'
    process = start_node(namespace, parameters or {})
    context = rclpy.Context()
    rclpy.init(context=context)
    client = ReplayClient(namespace=namespace, reliable=reliable, context=context)
    client.watch_diagnostics_of(f'{namespace}/tracker')
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        log(f'starting tracker_node in {namespace} ...')
        deadline = time.monotonic() + NODE_START_TIMEOUT_SEC
        while not client.connected():
            if process.poll() is not None:
                raise RuntimeError('tracker_node exited during start-up:\n' + stop_node(process))
            if time.monotonic() > deadline:
                raise RuntimeError('tracker_node did not subscribe within '
                                   f'{NODE_START_TIMEOUT_SEC:.0f} s:\n' + stop_node(process))
            time.sleep(0.05)
        return _play(client, sequence, rate or sequence.fps, log)
    finally:
        executor.shutdown()
        client.destroy_node()
        context.try_shutdown()
        output = stop_node(process)
        if process.returncode not in (0, -signal.SIGINT):
            log(f'tracker_node exited with {process.returncode}:\n{output}')


def _play(client: ReplayClient, sequence: ReplaySequence, rate: float, log) -> DemoResult:
    frames = sequence.frames
    log(f'playing {len(frames)} frames of {sequence.name} ({sequence.size[0]}x'
        f'{sequence.size[1]}) at {rate:g} Hz')
    if sequence.depth_mm is None:
        def publish(index: int):
            return client.publish_frame(frames[index])
    else:
        # Discovery of the depth and camera_info topics, before the first frame needs them.
        client.enable_rgbd()
        time.sleep(1.0)

        def publish(index: int):
            return client.publish_rgbd(frames[index], sequence.depth_mm[index], sequence.k)
    header = publish(0)
    client.send_init(sequence.boxes[0], header)
    if client.wait_for(header, 10.0) is None:
        # Discovery of init_box may lag the image topic: send both once more.
        header = publish(0)
        client.send_init(sequence.boxes[0], header)
        if client.wait_for(header, 10.0) is None:
            raise RuntimeError('the tracker did not answer the initial box within 20 s')
    headers = [header]
    started = time.monotonic()
    for index in range(1, len(frames)):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        headers.append(publish(index))
    wall = time.monotonic() - started
    if headers[1:]:
        client.wait_for(headers[-1], 1.0)
    time.sleep(0.2)
    count = client.diagnostics_count
    deadline = time.monotonic() + 3.0
    while client.diagnostics_count == count and time.monotonic() < deadline:
        time.sleep(0.05)
    return _score(client, sequence, headers, wall)


def _score(client: ReplayClient, sequence: ReplaySequence, headers, wall: float) -> DemoResult:
    boxes = np.empty((len(headers), 4))
    latency = []
    answered = 0
    last = np.asarray(sequence.boxes[0], np.float64)
    for index, header in enumerate(headers):
        found = client.result(header)
        if found is not None:
            last = found.box
            if index > 0:
                answered += 1
                latency.append((found.received_ns - stamp_ns(header)) * 1e-6)
        # A frame without a detection keeps the last box: what a consumer would act on.
        boxes[index] = last
    stamps = [stamp_ns(h) for h in headers[1:]]
    points = [(client.points[s] - s) * 1e-6 for s in stamps if s in client.points]
    lost = [(client.array_received[s] - s) * 1e-6 for s in stamps
            if client.arrays.get(s) == 0]
    absent = [s for s, seen in zip(stamps, sequence.visible[1:]) if not seen]
    result = DemoResult(frames=len(headers) - 1, answered=answered, boxes=boxes,
                        latency_ms=np.asarray(latency), wall_sec=wall,
                        diagnostics=dict(client.diagnostics),
                        point_latency_ms=np.asarray(points), lost_latency_ms=np.asarray(lost),
                        absent=len(absent),
                        absent_unanswered=sum(s not in client.arrays for s in absent))
    if np.isfinite(sequence.boxes[1:]).any():
        scores = _scores(sequence, boxes)
        result.ao, result.sr50 = scores.ao, scores.sr50
    return result


def _scores(sequence: ReplaySequence, boxes: np.ndarray):
    """Score ``boxes`` on ``sequence`` under the GOT-10k protocol."""
    return got10k_scores([SequenceResult(sequence.name, np.asarray(boxes), sequence.boxes,
                                         sequence.visible, np.zeros(len(boxes)),
                                         sequence.size)])


def write_video(sequence: ReplaySequence, boxes: np.ndarray, path: pathlib.Path) -> None:
    """Write the frames with the ground truth (blue) and the tracker's box (green) drawn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = sequence.size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), sequence.fps,
                             (width, height))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write {path}')
    try:
        for frame, truth, box in zip(sequence.frames, sequence.boxes, boxes):
            canvas = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            for rect, colour, thickness in ((truth, (255, 128, 0), 1), (box, TRACKING_COLOUR, 2)):
                if np.isfinite(rect).all():
                    draw_box(canvas, rect, colour, thickness)
            writer.write(canvas)
    finally:
        writer.release()


def offline_ao(sequence: ReplaySequence, parameters: Dict[str, str]) -> float:
    """Return the AO of the same model run directly on every frame, for comparison."""
    runtime = RuntimeConfig(device=parameters.get('device', 'auto'),
                            backend=parameters.get('backend', 'auto'))
    # The node's session, driven frame by frame without ROS.
    tracker = OfflineSession(build_tracker(parameters.get('model_path') or default_model_path(),
                                           runtime))
    tracker.initialize(sequence.frames[0], sequence.boxes[0])
    boxes = [sequence.boxes[0]]
    for frame in sequence.frames[1:]:
        box = tracker.track(frame)[0]
        # What the node publishes: no box while the target is reported lost (the last holds).
        boxes.append(boxes[-1] if tracker.lost else box)
    return _scores(sequence, boxes).ao


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line, run the demo, print the summary; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--video', help='video file to replay instead of a generated sequence')
    parser.add_argument('--bag', help='MCAP bag whose images (--topic) are replayed')
    parser.add_argument('--topic', help='image topic of --bag (Image or CompressedImage)')
    parser.add_argument('--reference-topic', default='',
                        help='Detection2D boxes of --bag to score against')
    parser.add_argument('--box', type=box_argument,
                        help='initial box x,y,w,h in pixels (with --video or --bag)')
    parser.add_argument('--frames', type=int, default=300,
                        help='frames to play (generated: length; video, bag: at most, 0 = all)')
    # Sequence 3's offline AO (0.80) is close to the mean of the first eight (0.72).
    parser.add_argument('--sequence', type=int, default=3, help='generated sequence index')
    parser.add_argument('--rate', type=float, default=0.0,
                        help="camera rate in Hz (default: 30, the video file's or the bag's rate)")
    parser.add_argument('--reliable', action='store_true',
                        help='publish images with reliable QoS (as many camera drivers do)')
    parser.add_argument('--model', default='', help='model bundle or .onnx (default: shipped)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--backend', default='auto', choices=('auto', 'torch', 'onnxruntime'))
    parser.add_argument('--output', default='build/demo', help='where the video goes')
    parser.add_argument('--no-video', action='store_true', help='do not write the video')
    args = parser.parse_args(argv)
    if args.video and args.bag:
        parser.error('--video and --bag are two sources: give one')
    if bool(args.video or args.bag) != bool(args.box):
        parser.error('--video and --bag need --box, and --box needs one of them')
    if bool(args.bag) != bool(args.topic):
        parser.error('--bag and --topic go together')
    if args.bag:
        try:
            sequence = bag_sequence(args.bag, args.topic, args.box, args.frames, args.rate,
                                    args.reference_topic)
        except BagError as error:
            parser.exit(1, f'demo failed: {error}\n')
    elif args.video:
        sequence = video_sequence(args.video, args.box, args.frames, args.rate)
    else:
        sequence = generated_sequence(args.sequence, args.frames, fps=args.rate or 30.0)
    parameters = {'device': args.device, 'backend': args.backend}
    if args.model:
        parameters['model_path'] = str(pathlib.Path(args.model).resolve())
    try:
        result = run_demo(sequence, parameters, args.rate or sequence.fps, args.reliable)
    except RuntimeError as error:
        print(f'demo failed: {error}', file=sys.stderr)
        return 1
    print(result.report())
    if np.isfinite(result.ao):
        offline = offline_ao(sequence, parameters)
        print(f'same model offline      AO {offline:.3f} (no ROS in between; no box while lost)')
    if not args.no_video:
        path = pathlib.Path(args.output) / f'{pathlib.Path(sequence.name).stem}_tracked.mp4'
        write_video(sequence, result.boxes, path)
        print(f'annotated video        {path}')
    return 0 if result.answered else 1


if __name__ == '__main__':
    sys.exit(main())
