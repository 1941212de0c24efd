"""
Run a real TrackerNode and a client node in one process, each spun on a thread of its own.

The tracker node gets its own executor (as ``main()`` gives it), the client another, so that
a test body can publish, wait and call services while both spin in the background. Images
stay inside the process, which lifts Fast DDS's best-effort size limit between processes;
they are kept small anyway for speed.

What the tracker node logs is read from ``/rosout``, as rqt_console reads it, not from the
captured stderr: pytest's ``capfd`` loses lines written by another thread while it is being
read and reset, and the node logs from its own threads.

Some waits read the node's private state (what its image callback received, whether an init
is pending): a test that must show that nothing was published for an image needs to know
that the node did get the image, and a test of an init without a stamp must publish its
image only once the init is queued.
"""

import itertools
import threading
import time
from typing import Any, Dict, List, Optional, Sequence
import uuid

import cv2
from detrack_ros.detection_messages import header_at, stamp_ns
from detrack_ros.image_conversion import array_to_image
from detrack_ros.replay import ReplayClient
from detrack_ros.tracker_node import TrackerNode
from geometry_msgs.msg import Point, PointStamped
import numpy as np
from rcl_interfaces.msg import Log
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_rosout_default, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray

WAIT_SEC = 10.0
# How long to keep watching for a message that must not come, after the node took the image.
QUIET_SEC = 0.4
STAMP_START_NS = 1_000_000_000_000
STAMP_STEP_NS = 33_000_000


def wait_until(condition, timeout: float = WAIT_SEC, period: float = 0.002) -> bool:
    """Poll ``condition()`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(period)
    return True


def raw_image(data: bytes, encoding: str, width: int, height: int, step: int,
              big_endian: bool = False) -> Image:
    """Return an Image message with the given fields, no checks (for malformed input too)."""
    return Image(height=height, width=width, encoding=encoding, step=step,
                 is_bigendian=int(big_endian), data=bytes(data))


def encode_image(rgb: np.ndarray, encoding: str) -> Image:
    """
    Return ``rgb`` (H, W, 3 uint8) as an Image in ``encoding``, built with OpenCV or by hand.

    Colour encodings with an OpenCV conversion use it; mono16 puts the grey value in the high
    byte; Bayer mosaics take each pixel's colour from the site's filter colour.
    """
    height, width = rgb.shape[:2]
    if encoding in ('rgb8', 'bgr8'):
        pixels = rgb if encoding == 'rgb8' else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        return array_to_image(pixels, encoding)
    if encoding == 'mono8':
        return array_to_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 'mono8')
    if encoding == 'mono16':
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype('<u2') << 8
        return raw_image(grey.tobytes(), 'mono16', width, height, width * 2)
    four = {'rgba8': cv2.COLOR_RGB2RGBA, 'bgra8': cv2.COLOR_RGB2BGRA}
    if encoding in four:
        pixels = cv2.cvtColor(rgb, four[encoding])
        return raw_image(pixels.tobytes(), encoding, width, height, width * 4)
    yuv = {'yuv422_yuy2': cv2.COLOR_RGB2YUV_YUY2, 'yuyv': cv2.COLOR_RGB2YUV_YUY2,
           'uyvy': cv2.COLOR_RGB2YUV_UYVY, 'yuv422': cv2.COLOR_RGB2YUV_UYVY}
    if encoding in yuv:
        pixels = cv2.cvtColor(rgb, yuv[encoding])
        return raw_image(pixels.tobytes(), encoding, width, height, width * 2)
    if encoding.startswith('bayer_'):
        return raw_image(bayer_mosaic(rgb, encoding[6:10]).tobytes(), encoding, width, height,
                         width)
    raise ValueError(f'no test encoder for {encoding}')


def bayer_mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Return the Bayer mosaic of ``rgb`` for the ROS ``pattern`` (its top-left 2x2 cell)."""
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    channel = {'r': 0, 'g': 1, 'b': 2}
    for index, colour in enumerate(pattern):
        row, col = divmod(index, 2)
        mosaic[row::2, col::2] = rgb[row::2, col::2, channel[colour]]
    return mosaic


def compress(rgb: np.ndarray, extension: str) -> CompressedImage:
    """Return ``rgb`` as a CompressedImage the way compressed_image_transport writes one."""
    ok, data = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok, f'OpenCV could not encode {extension}'
    name = 'jpeg' if extension == '.jpg' else extension.strip('.')
    return CompressedImage(format=f'rgb8; {name} compressed bgr8', data=data.tobytes())


class TrackerClient(ReplayClient):
    """A ReplayClient that also feeds every other input and keeps the raw detections."""

    def __init__(self, namespace: str, **kwargs) -> None:
        super().__init__(namespace=namespace, name=f'client_{uuid.uuid4().hex[:8]}', **kwargs)
        self.messages: Dict[int, Detection2D] = {}
        self.compressed_pub = self.create_publisher(CompressedImage, 'image/compressed',
                                                    qos_profile_sensor_data)
        self.roi_pub = self.create_publisher(RegionOfInterest, 'init_roi', 10)
        self.click_pub = self.create_publisher(Point, 'init_click', 10)
        self.clicked_point_pub = self.create_publisher(PointStamped, 'clicked_point', 10)
        self.camera_info_pub = self.create_publisher(CameraInfo, 'camera_info',
                                                     qos_profile_sensor_data)
        self.detector_pub = self.create_publisher(Detection2DArray, 'detector/detections', 10)
        self._logger_name: Optional[str] = None
        self._log: List[str] = []
        # The rosout publishers' own QoS (transient local): lines logged before this
        # subscription matched a node's publisher still arrive.
        self.create_subscription(Log, '/rosout', self._on_log, qos_profile_rosout_default)

    def watch_log_of(self, logger_name: str) -> None:
        """Keep the /rosout lines of the logger ``logger_name`` only (one node's)."""
        self._logger_name = logger_name

    def _on_log(self, msg: Log) -> None:
        if msg.name == self._logger_name:
            with self._lock:
                self._log.append(msg.msg)

    def log_position(self) -> int:
        """Return how many lines of the watched node's log have arrived (a mark for ``since``)."""
        with self._lock:
            return len(self._log)

    def log_lines(self, text: str = '', since: int = 0) -> List[str]:
        """Return the watched node's log lines after the first ``since`` that contain ``text``."""
        with self._lock:
            return [line for line in self._log[since:] if text in line]

    def _on_detection(self, msg: Detection2D) -> None:
        super()._on_detection(msg)
        with self._lock:
            self.messages[stamp_ns(msg.header)] = msg

    def message(self, header: Header) -> Optional[Detection2D]:
        """Return the last Detection2D received for the image with ``header``, if any."""
        with self._lock:
            return self.messages.get(stamp_ns(header))

    def array_size(self, header: Header) -> Optional[int]:
        """Return the size of the Detection2DArray received for ``header``, if one came."""
        with self._lock:
            return self.arrays.get(stamp_ns(header))

    def subscription_on(self, topic: str):
        """Return this node's subscription to the relative ``topic``."""
        name = self.resolve_topic_name(topic)
        return next(s for s in self.subscriptions if s.topic_name == name)


# The graph tests check what the node does with what it gets, not when a target counts as lost:
# they run with a lenient lost state, so that a frame of a generated sequence that the small
# model scores low does not end the track (tests of the lost state set their own values).
FOLLOWING = {'score_threshold': 0.25, 'lost_patience': 5, 'redetect': False,
             'recover_threshold': 0.0}


class NodeHarness:
    """A TrackerNode under a namespace of its own, a TrackerClient, and two spinning threads."""

    def __init__(self, context, parameters: Optional[Dict[str, Any]] = None,
                 start: bool = True) -> None:
        self.context = context
        self.namespace = f'/t_{uuid.uuid4().hex[:8]}'
        values = {**FOLLOWING, **(parameters or {})}
        overrides = [Parameter(name, value=value) for name, value in values.items()]
        self.node = TrackerNode('tracker', namespace=self.namespace, context=context,
                                parameter_overrides=overrides)
        self.fqn = self.node.get_fully_qualified_name()
        self.client = TrackerClient(self.namespace, context=context)
        self.client.watch_diagnostics_of(self.fqn)
        self.client.watch_log_of(self.node.get_logger().name)
        self._stamps = itertools.count(STAMP_START_NS, STAMP_STEP_NS)
        self._service_clients: Dict[str, Any] = {}
        self._executors = []
        self._threads = []
        for node in (self.node, self.client):
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, daemon=True,
                                      name=f'spin-{node.get_name()}')
            thread.start()
            self._executors.append(executor)
            self._threads.append(thread)
        if start:
            assert self.node.start(), 'the tracker node did not become active'
            self.wait_connected((parameters or {}).get('image_transport') == 'compressed')

    # -- graph -----------------------------------------------------------------------------

    def wait_connected(self, compressed: bool = False) -> None:
        """Wait until the node subscribes to every input and the client hears every output."""
        client = self.client
        publishers = [client.compressed_pub if compressed else client.image_pub,
                      client.init_pub, client.roi_pub, client.click_pub,
                      client.clicked_point_pub, client.camera_info_pub, client.detector_pub]
        outputs = [client.subscription_on('detection'), client.subscription_on('detections')]
        assert wait_until(lambda: all(p.get_subscription_count() > 0 for p in publishers)
                          and all(s.get_publisher_count() > 0 for s in outputs)), \
            'the tracker node and the client never discovered each other'

    def __enter__(self) -> 'NodeHarness':
        """Use the harness in a with block; it is closed at the end."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Close the harness, whatever ended the block."""
        self.close()

    def close(self) -> None:
        """Stop spinning, stop the node's inference thread, destroy both nodes."""
        for executor in self._executors:
            executor.shutdown(timeout_sec=5.0)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self.node.release()
        self.node.destroy_node()
        self.client.destroy_node()
        # Drop every reference to the nodes: what pytest keeps of a finished test (the fixture
        # values) must not hold them, so that the garbage collector frees them now, in this
        # process, and not in a child forked later (multiprocessing), where freeing the last
        # user of the DDS participant crashes.
        self.node = self.client = self.context = None
        self._executors, self._threads, self._service_clients = [], [], {}

    # -- images ----------------------------------------------------------------------------

    def next_header(self, frame_id: str = 'camera') -> Header:
        """Return a header with a stamp no other image of this harness had."""
        return header_at(next(self._stamps), frame_id)

    def received(self) -> int:
        """Return how many images the node's image callback has taken so far."""
        return self.node.worker.mailbox.received

    def publish(self, msg, publisher=None, header: Optional[Header] = None) -> Header:
        """Stamp ``msg`` (a fresh stamp unless ``header``) and publish it; return its header."""
        msg.header = header or self.next_header()
        if publisher is None:
            compressed = isinstance(msg, CompressedImage)
            publisher = self.client.compressed_pub if compressed else self.client.image_pub
        publisher.publish(msg)
        return msg.header

    def publish_frame(self, frame: np.ndarray, encoding: str = 'rgb8', publisher=None,
                      header: Optional[Header] = None) -> Header:
        """Publish the RGB ``frame`` as ``encoding``; return the header used."""
        return self.publish(encode_image(frame, encoding), publisher, header)

    def publish_received(self, msg, publisher=None) -> Header:
        """Publish an image and wait until the node's image callback took it."""
        before = self.received()
        header = self.publish(msg, publisher)
        assert wait_until(lambda: self.received() > before), 'the node never got the image'
        return header

    def settle(self) -> None:
        """Wait until the inference thread took the newest image, then a little longer."""
        assert wait_until(lambda: self.node.worker.mailbox._item is None)
        time.sleep(QUIET_SEC)

    # -- results ---------------------------------------------------------------------------

    def wait_detection(self, header: Header, condition=None,
                       timeout: float = WAIT_SEC) -> Optional[Detection2D]:
        """
        Wait for the Detection2D of the image with ``header`` (that meets ``condition``).

        The Detection2DArray of that image is awaited too, so that a test can read both.
        """
        def found():
            msg = self.client.message(header)
            if msg is None or (condition is not None and not condition(msg)):
                return False
            return self.client.array_size(header) is not None
        if not wait_until(found, timeout):
            return None
        return self.client.message(header)

    def track(self, image, encoding: str = 'rgb8', publisher=None) -> Detection2D:
        """Publish an image (RGB array or message) and return its detection, or fail."""
        header = self.publish(as_message(image, encoding), publisher)
        detection = self.wait_detection(header)
        assert detection is not None, f'no detection for the {encoding} image'
        return detection

    def init_on(self, image, box: Sequence[float], publisher=None) -> Detection2D:
        """Publish an image, start a target from ``box`` stamped with it; return its detection."""
        previous = self.node.session.track_id
        header = self.publish(as_message(image), publisher)
        self.client.send_init(box, header)
        detection = self.wait_detection(header, lambda m: m.id != previous and is_init(m))
        assert detection is not None, 'the node did not start the target'
        return detection

    def wait_pending_init(self) -> None:
        """Wait until an init without an image stamp is queued for the inference thread."""
        assert wait_until(lambda: self.node.session.pending is not None), 'no init was queued'

    def logged(self, text: str, since: int = 0, timeout: float = WAIT_SEC) -> bool:
        """Wait until a line of the node's log after the first ``since`` contains ``text``."""
        return wait_until(lambda: bool(self.client.log_lines(text, since)), timeout,
                          period=0.02)

    def wait_counter(self, name: str, value: int) -> bool:
        """Wait until ``node.counters[name]`` reaches ``value``."""
        return wait_until(lambda: self.node.counters[name] >= value)

    # -- services --------------------------------------------------------------------------

    def call(self, srv_type, name: str, request, timeout: float = WAIT_SEC):
        """Call the service ``name`` (relative to the namespace) and return its response."""
        client = self._service_clients.get(name)
        if client is None:
            client = self.client.create_client(srv_type, name)
            self._service_clients[name] = client
        assert client.wait_for_service(timeout_sec=timeout), f'service {name} never appeared'
        future = client.call_async(request)
        assert wait_until(future.done, timeout), f'service {name} did not answer'
        return future.result()


def as_message(image, encoding: str = 'rgb8'):
    """Return ``image`` as a message: an RGB array is encoded, a message is returned as is."""
    return encode_image(image, encoding) if isinstance(image, np.ndarray) else image


def is_init(msg: Detection2D) -> bool:
    """Tell whether a detection is the node's answer to an init (score exactly 1)."""
    return bool(msg.results) and msg.results[0].hypothesis.score == 1.0


def box_of(msg: Detection2D) -> np.ndarray:
    """Return the top-left (x, y, w, h) box of a Detection2D."""
    w, h = msg.bbox.size_x, msg.bbox.size_y
    return np.array([msg.bbox.center.position.x - w / 2, msg.bbox.center.position.y - h / 2,
                     w, h])


def set_parameters(harness: NodeHarness, **values):
    """Set parameters through the node's set_parameters service; return one result each."""
    request = SetParameters.Request(parameters=[
        Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
    return harness.call(SetParameters, f'{harness.fqn}/set_parameters', request).results


def fresh_diagnostics(harness: NodeHarness):
    """Return the tracker's diagnostics values from a message sent after this call."""
    count = harness.client.diagnostics_count
    assert wait_until(lambda: harness.client.diagnostics_count >= count + 2), 'no diagnostics'
    with harness.client._lock:
        return dict(harness.client.diagnostics)
