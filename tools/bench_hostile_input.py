"""
Measure what hostile input costs the tracker node: memory under bombs, answers under changes.

The bombs are decompression bombs, the changes ``decoder_layers`` changes. Run inside the
built workspace (``make build``, then source it, see README)::

    python -m tools.bench_hostile_input [--bombs 20] [--changes 4]

Each part starts ``tracker_node`` as its own process and talks to it over DDS, as a robot
would. The bomb replay sends JPEG and PNG frames of under 1 kB that claim 30000 x 30000 pixels
on ``image/compressed``, with a ``debug_image`` subscriber (the node builds overlays only
then), and reports the node's resident memory when idle and its peak during the replay
(``VmHWM`` after resetting it through ``/proc/<pid>/clear_refs``). The depth part replays a
320x240 camera at 30 Hz, switches ``decoder_layers`` back and forth, calls
``get_parameters`` every 50 ms meanwhile, and counts the frames that got no answer from the
request until the new depth runs (``/diagnostics``), against the rate of unanswered frames in
the settled stretch before the request (on a busy machine the node drops some anyway).
The test suite runs the same functions with its limits (test/ros/test_node_process.py).
"""

import argparse
from dataclasses import dataclass
import os
import pathlib
import threading
import time
from typing import Dict, List, Optional
import uuid

import cv2
from detrack_model.shipped import default_model_path
from detrack_model.tracking.factory import model_decoder_layers
from detrack_ros.demo import fastdds_profile, start_node, stop_node
from detrack_ros.detection_messages import header_at
from detrack_ros.image_conversion import array_to_image
from detrack_ros.replay import generated_sequence, ReplayClient
import numpy as np
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

START_TIMEOUT_SEC = 120.0
BOMB_SIDE = 30000
CAMERA_RATE = 30.0
CAMERA_SIZE = (320, 240)
# Camera time before each change whose unanswered frames set the baseline rate.
SETTLE_SEC = 6.0


def jpeg_bomb(side: int = BOMB_SIDE) -> bytes:
    """Return an 8x8 JPEG whose frame header claims side x side pixels."""
    data = bytearray(cv2.imencode('.jpg', np.full((8, 8, 3), 90, np.uint8))[1].tobytes())
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = side.to_bytes(2, 'big') * 2
    return bytes(data)


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """Return an 8x8 PNG whose IHDR (CRC fixed) claims side x side pixels."""
    import zlib
    data = bytearray(cv2.imencode('.png', np.full((8, 8, 3), 90, np.uint8))[1].tobytes())
    data[16:24] = side.to_bytes(4, 'big') * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, 'big')
    return bytes(data)


def memory_mb(pid: int, field: str = 'VmRSS') -> float:
    """Return a memory figure of process ``pid`` (VmRSS, VmHWM) in MiB."""
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f'no {field} for process {pid}')


class NodeUnderTest:
    """``tracker_node`` in a process of its own and a client node spinning on a thread."""

    def __init__(self, parameters: Dict[str, str]) -> None:
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        profile = fastdds_profile()
        if profile is not None:
            os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(profile))
        self.namespace = f'/hostile_{uuid.uuid4().hex[:8]}'
        self.process = start_node(self.namespace, parameters)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.client = ReplayClient(namespace=self.namespace, context=self.context,
                                   name=f'bench_{uuid.uuid4().hex[:6]}')
        self.client.watch_diagnostics_of(f'{self.namespace}/tracker')
        self.compressed_pub = self.client.create_publisher(CompressedImage, 'image/compressed',
                                                           qos_profile_sensor_data)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.output = ''
        self._services: Dict[str, object] = {}

    def __enter__(self) -> 'NodeUnderTest':
        """Use in a with block; the node is stopped at the end."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Stop the node and the client."""
        self.close()

    def wait_subscribed(self, publisher) -> None:
        """Wait until the node subscribes to ``publisher``'s topic and to init_box."""
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while not (publisher.get_subscription_count() > 0
                   and self.client.init_pub.get_subscription_count() > 0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('tracker_node did not start:\n' + self.close())
            time.sleep(0.05)

    def diagnostics(self, fresh: bool = True, timeout: float = 10.0) -> Dict[str, str]:
        """Return the latest diagnostics values (from a message sent after this call if fresh)."""
        count = self.client.diagnostics_count
        deadline = time.monotonic() + timeout
        while fresh and self.client.diagnostics_count < count + 2:
            if time.monotonic() > deadline:
                raise RuntimeError('no diagnostics from the node')
            time.sleep(0.01)
        with self.client._lock:
            return dict(self.client.diagnostics)

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        """Call a service of the node; return (response, seconds it took)."""
        client = self._services.get(name)
        if client is None:
            client = self.client.create_client(srv_type, f'{self.namespace}/tracker/{name}')
            if not client.wait_for_service(timeout_sec=timeout):
                raise RuntimeError(f'no service {name}')
            self._services[name] = client
        started = time.monotonic()
        future = client.call_async(request)
        while not future.done():
            if time.monotonic() - started > timeout:
                raise RuntimeError(f'{name} not answered within {timeout} s')
            time.sleep(0.0005)
        return future.result(), time.monotonic() - started

    def close(self) -> str:
        """Stop the node and the client; return the node's output."""
        if self.process is not None:
            self.output = stop_node(self.process)
            self.process = None
            self.executor.shutdown()
            self.client.destroy_node()
            self.context.try_shutdown()
        return self.output


# -- decompression bombs -------------------------------------------------------------------


@dataclass
class BombResult:
    """Memory of the node around a bomb replay (MiB) and how it counted the bombs."""

    idle_mb: float
    peak_mb: float
    sent: int
    bad_images: int
    processed_during: int

    @property
    def growth_mb(self) -> float:
        """Return the peak over the idle resident memory."""
        return self.peak_mb - self.idle_mb


def bomb_replay(bombs: int = 20, log=print) -> BombResult:
    """Send ``bombs`` JPEG and PNG bombs (alternating) to a tracking node; measure its memory."""
    sequence = generated_sequence(1, 3, size=CAMERA_SIZE)
    with NodeUnderTest({'image_transport': 'compressed', 'diagnostics_period': '0.2'}) as node:
        node.wait_subscribed(node.compressed_pub)
        debug = node.client.create_subscription(Image, 'debug_image', lambda msg: None, 1)
        frame = cv2.imencode('.jpg', cv2.cvtColor(sequence.frames[0], cv2.COLOR_RGB2BGR))[1]
        _start_tracking(node, lambda: _publish_compressed(node, frame.tobytes()),
                        sequence.boxes[0])
        time.sleep(2.0)
        before = node.diagnostics()
        idle = memory_mb(node.process.pid)
        pathlib.Path(f'/proc/{node.process.pid}/clear_refs').write_text('5')
        payloads = [jpeg_bomb(), png_bomb()]
        for index in range(bombs):
            _publish_compressed(node, payloads[index % 2])
            time.sleep(0.1)
        time.sleep(1.0)
        after = node.diagnostics()
        peak = memory_mb(node.process.pid, 'VmHWM')
        node.client.destroy_subscription(debug)
        result = BombResult(idle, peak, bombs,
                            int(after['bad_images']) - int(before['bad_images']),
                            int(after['frames_processed']) - int(before['frames_processed']))
    log(f'bomb replay: {bombs} frames of {len(payloads[0])}/{len(payloads[1])} bytes claiming '
        f'{BOMB_SIDE}x{BOMB_SIDE}: idle RSS {result.idle_mb:.0f} MiB, peak during the replay '
        f'{result.peak_mb:.0f} MiB (+{result.growth_mb:.1f} MiB); {result.bad_images} counted '
        f'as bad images, {result.processed_during} processed')
    return result


def _start_tracking(node: NodeUnderTest, publish, box) -> None:
    """Publish an image with ``publish()`` and init on it until the node answers."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        # A best-effort image sent right after discovery may still be lost: send again.
        header = publish()
        node.client.send_init(box, header)
        if node.client.wait_for(header, 2.0) is not None:
            return
    raise RuntimeError('the node did not start tracking:\n' + node.close())


def _publish_compressed(node: NodeUnderTest, data: bytes):
    header = header_at(node.client.get_clock().now().nanoseconds)
    node.compressed_pub.publish(CompressedImage(header=header, format='jpeg', data=data))
    return header


# -- decoder_layers changes ----------------------------------------------------------------


@dataclass
class ChangeResult:
    """One decoder_layers change at 30 Hz."""

    layers: int
    switch_s: float
    get_parameters_s: List[float]
    published: int
    unanswered: int
    baseline_published: int
    baseline_unanswered: int

    @property
    def slowest_get_parameters_s(self) -> float:
        """Return the longest get_parameters round trip during the change."""
        return max(self.get_parameters_s)

    @property
    def excess_unanswered(self) -> float:
        """Return the unanswered frames beyond what the baseline rate gives for the window."""
        rate = self.baseline_unanswered / max(self.baseline_published, 1)
        return self.unanswered - rate * self.published


class Camera:
    """Publish frames at a fixed rate on a thread; remember what was sent when."""

    def __init__(self, node: NodeUnderTest, frames, rate: float = CAMERA_RATE) -> None:
        self.node, self.rate = node, rate
        self.messages = [array_to_image(frame, 'rgb8') for frame in frames]
        self.sent: List[tuple] = []  # (monotonic time, stamp ns)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Start publishing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started, index = time.monotonic(), 0
        while not self._stop.is_set():
            delay = started + index / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            msg = self.messages[index % len(self.messages)]
            now = self.node.client.get_clock().now().nanoseconds
            msg.header = header_at(now)
            self.node.client.image_pub.publish(msg)
            self.sent.append((time.monotonic(), now))
            index += 1

    def unanswered(self, start: float, end: float) -> tuple:
        """Return (published, unanswered) for the frames sent between two monotonic times."""
        stamps = [stamp for sent, stamp in self.sent if start <= sent < end]
        with self.node.client._lock:
            missing = sum(stamp not in self.node.client.arrays for stamp in stamps)
        return len(stamps), missing


def decoder_layers_changes(changes: int = 4, log=print) -> List[ChangeResult]:
    """Switch decoder_layers ``changes`` times (1, all, 1, ...) under a 30 Hz camera."""
    sequence = generated_sequence(1, 60, size=CAMERA_SIZE)
    parameters = {'diagnostics_period': '0.2', 'lost_patience': '10000'}
    results = []
    with NodeUnderTest(parameters) as node:
        node.wait_subscribed(node.client.image_pub)
        _start_tracking(node, lambda: node.client.publish_frame(sequence.frames[0]),
                        sequence.boxes[0])
        total = model_decoder_layers(default_model_path())
        for name, srv_type in (('get_parameters', GetParameters),
                               ('set_parameters', SetParameters)):
            node.call(srv_type, name, srv_type.Request())  # clients made before the probing
        camera = Camera(node, sequence.frames)
        camera.start()
        try:
            for index in range(changes):
                time.sleep(SETTLE_SEC)
                layers = 1 if index % 2 == 0 else total
                result = _change(node, camera, layers, total)
                results.append(result)
                log(f'decoder_layers -> {layers}: running after {result.switch_s:.2f} s; '
                    f'get_parameters slowest {result.slowest_get_parameters_s * 1e3:.1f} ms '
                    f'of {len(result.get_parameters_s)} calls; {result.unanswered} of '
                    f'{result.published} frames unanswered ({result.excess_unanswered:+.1f} '
                    f'over the {result.baseline_unanswered} of {result.baseline_published} '
                    f'in the {SETTLE_SEC:g} s before)')
        finally:
            camera.stop()
    return results


def _change(node: NodeUnderTest, camera: Camera, layers: int, total: int) -> ChangeResult:
    """Ask for ``layers`` while get_parameters is probed; wait until the new depth runs."""
    value = ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                           integer_value=0 if layers == total else layers)
    request = SetParameters.Request(parameters=[ParameterMsg(name='decoder_layers',
                                                             value=value)])
    probes: List[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            _, seconds = node.call(GetParameters, 'get_parameters',
                                   GetParameters.Request(names=['decoder_layers']), 60.0)
            probes.append(seconds)
            time.sleep(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    time.sleep(0.2)
    started = time.monotonic()
    try:
        response, _ = node.call(SetParameters, 'set_parameters', request, 60.0)
        if not response.results[0].successful:
            raise RuntimeError(f'decoder_layers {layers} refused: {response.results[0].reason}')
        deadline = started + 120.0
        # Running once the diagnostics say so (a node that switches inside the parameter
        # call reports nothing: it runs the new depth when the call returns).
        while node.diagnostics(fresh=False).get('decoder_layers', str(layers)) != str(layers) \
                or time.monotonic() - started < 0.3:
            if time.monotonic() > deadline:
                raise RuntimeError(f'decoder_layers {layers} not running after 120 s')
            time.sleep(0.02)
        switched = time.monotonic() - started
    finally:
        stop.set()
        prober.join()
    time.sleep(1.0)  # answers of the last frames in the window are on their way
    published, unanswered = camera.unanswered(started, started + switched)
    base_published, base_unanswered = camera.unanswered(started - SETTLE_SEC, started)
    return ChangeResult(layers, switched, probes, published, unanswered, base_published,
                        base_unanswered)


def main(argv: Optional[List[str]] = None) -> int:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--bombs', type=int, default=20, help='bomb frames to send')
    parser.add_argument('--changes', type=int, default=4, help='decoder_layers changes')
    args = parser.parse_args(argv)
    bomb_replay(args.bombs)
    results = decoder_layers_changes(args.changes)
    probes = [s for result in results for s in result.get_parameters_s]
    print(f'decoder_layers, {len(results)} changes: get_parameters slowest '
          f'{max(probes) * 1e3:.1f} ms, median {np.median(probes) * 1e3:.1f} ms; unanswered '
          f'frames per change {[r.unanswered for r in results]}, beyond the rate before it '
          f'{[round(r.excess_unanswered, 1) for r in results]}; switch time '
          f'{[round(r.switch_s, 2) for r in results]} s')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
