"""
The camera side of a tracker run: a sequence to replay, and a node that plays and records it.

Used by the demo command, the node's graph tests and the figures script: ``ReplayClient``
publishes images (as a camera driver would) and the initial box, and records every
``detection``/``detections`` message and the tracker's diagnostics as they arrive.
"""

from dataclasses import dataclass
import threading
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
from detrack_model.data.synthetic import build_scene, render_frame, sequence_seed, SPLIT_SOURCES
from detrack_model.data.synthetic.rgbd import rgbd_sequence
from detrack_ros.bag_io import (BagError, BagReader, COMPRESSED_IMAGE_TYPE, DETECTION_TYPE,
                                IMAGE_TYPE)
from detrack_ros.detection_messages import detection_from_box, header_at, stamp_ns
from detrack_ros.image_conversion import (array_to_image, compressed_to_array, image_to_array,
                                          ImageConversionError)
from detrack_ros.init_boxes import box_from_detection
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray


@dataclass
class ReplaySequence:
    """Frames to replay (RGB uint8), their ground truth (NaN rows: unknown) and frame rate."""

    name: str
    frames: List[np.ndarray]
    boxes: np.ndarray
    visible: np.ndarray
    fps: float
    # Aligned depth (uint16 millimetres) per frame and the camera's K: an RGB-D camera.
    depth_mm: Optional[List[np.ndarray]] = None
    k: Optional[Tuple[float, ...]] = None

    @property
    def size(self) -> Tuple[int, int]:
        """Return (width, height) of the frames."""
        return self.frames[0].shape[1], self.frames[0].shape[0]


def generated_sequence(index: int = 0, frames: int = 150, size: Tuple[int, int] = (640, 480),
                       fps: float = 30.0, seed: int = 7) -> ReplaySequence:
    """
    Render a held-out synthetic sequence with exact ground truth.

    The scene comes from the generator's ``val`` split (images the shipped model never saw in
    training) and is a pure function of ``seed`` and ``index``.
    """
    scene = build_scene(sequence_seed(seed, 'val', index), frames, size, SPLIT_SOURCES['val'])
    rendered = [render_frame(scene, t) for t in range(scene.num_frames)]
    return ReplaySequence(name=f'synthetic_val_{seed}_{index:03d}',
                          frames=[frame.image for frame in rendered],
                          boxes=np.array([frame.box for frame in rendered], np.float64),
                          visible=np.array([not frame.absent for frame in rendered]), fps=fps)


def generated_rgbd_sequence(index: int = 0, frames: int = 150,
                            size: Tuple[int, int] = (640, 480),
                            fps: float = 30.0) -> ReplaySequence:
    """Render an RGB-D sequence with aligned 16UC1 depth (see detrack_model's rgbd module)."""
    rendered = rgbd_sequence(index, frames, size, fps=fps)
    return ReplaySequence(name=rendered.name, frames=rendered.frames, boxes=rendered.boxes,
                          visible=rendered.visible, fps=fps, depth_mm=rendered.depth_mm,
                          k=rendered.k)


def video_sequence(path: str, box_xywh: Sequence[float], max_frames: int = 0,
                   fps: float = 0.0) -> ReplaySequence:
    """
    Read a video file (every frame, or the first ``max_frames``) with OpenCV.

    Only the first frame's box is known: the ground truth of the others is NaN, so a run on a
    video reports speed and latency but no accuracy. ``fps`` 0 takes the file's frame rate.
    """
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f'cannot open video {path!r} (missing file or unsupported codec)')
    rate = fps or capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while not max_frames or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise ValueError(f'video {path!r} has no readable frame')
    boxes = np.full((len(frames), 4), np.nan)
    boxes[0] = [float(v) for v in box_xywh]
    visible = np.zeros(len(frames), bool)
    visible[0] = True
    return ReplaySequence(name=path, frames=frames, boxes=boxes, visible=visible, fps=float(rate))


def bag_sequence(path: str, topic: str, box_xywh: Sequence[float], max_frames: int = 0,
                 fps: float = 0.0, reference_topic: str = '') -> ReplaySequence:
    """
    Read the images of ``topic`` (Image or CompressedImage) from an MCAP bag, as RGB.

    The first image's box is ``box_xywh``; the others are known where ``reference_topic``
    (Detection2D) has a box with the image's stamp, NaN elsewhere. ``fps`` 0 takes the median
    interval of the image stamps. Images the node would drop are left out, and counted in the
    sequence's name. Raise BagError for a bag or topic that cannot be read.
    """
    frames: List[np.ndarray] = []
    stamps: List[int] = []
    references: Dict[int, Tuple[float, float, float, float]] = {}
    dropped = 0
    with BagReader(path) as reader:
        kind = reader.require(topic, (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE), 'image topic')
        topics = [topic]
        if reference_topic:
            reader.require(reference_topic, (DETECTION_TYPE,), 'reference topic')
            topics.append(reference_topic)
        for message in reader.messages(topics):
            msg = message.message
            if message.topic == reference_topic:
                references[stamp_ns(msg.header)] = box_from_detection(msg)
                continue
            if max_frames and len(frames) >= max_frames:
                continue
            try:
                frame = (compressed_to_array(msg) if kind == COMPRESSED_IMAGE_TYPE
                         else image_to_array(msg))
            except ImageConversionError:
                dropped += 1
                continue
            code = (cv2.COLOR_GRAY2RGB if frame.array.ndim == 2 else
                    cv2.COLOR_BGR2RGB if frame.bgr else None)
            frames.append(cv2.cvtColor(frame.array, code) if code is not None
                          else np.array(frame.array))
            stamps.append(stamp_ns(msg.header))
    if not frames:
        raise BagError(f'image topic {topic!r} of bag {path} has no usable image '
                       f'({dropped} could not be converted)')
    boxes = np.array([references.get(s, (np.nan,) * 4) for s in stamps], np.float64)
    boxes[0] = [float(v) for v in box_xywh]
    intervals = np.diff(stamps)
    rate = fps or (1e9 / float(np.median(intervals)) if np.any(intervals > 0) else 30.0)
    name = f'{path}:{topic}' + (f' ({dropped} images dropped)' if dropped else '')
    return ReplaySequence(name=name, frames=frames, boxes=boxes,
                          visible=np.isfinite(boxes).all(axis=1), fps=float(rate))


class Received(NamedTuple):
    """A ``detection`` as the client got it."""

    box: np.ndarray
    score: float
    track_id: str
    # Client clock (ROS time, ns) at reception: minus the image stamp = end-to-end latency.
    received_ns: int


class ReplayClient(Node):
    """
    Play images to a tracker node and record what it answers.

    Topics are relative to ``namespace`` (the tracker's namespace). ``reliable`` publishes
    images with reliable QoS, as many camera drivers do; the default is sensor-data QoS.
    """

    def __init__(self, namespace: str = '', reliable: bool = False,
                 name: str = 'detrack_replay', **kwargs) -> None:
        super().__init__(name, namespace=namespace, **kwargs)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable \
            else qos_profile_sensor_data
        self.image_pub = self.create_publisher(Image, 'image', qos)
        self.init_pub = self.create_publisher(Detection2D, 'init_box', 10)
        self._lock = threading.Lock()
        self.detections: Dict[int, Received] = {}
        # Image stamp -> client clock (ns) when its target_point arrived.
        self.points: Dict[int, int] = {}
        self._rgbd_pubs: Optional[Tuple[object, object]] = None
        # Image stamp -> detections in its Detection2DArray (0: the target was lost), and the
        # client clock (ns) when that array arrived.
        self.arrays: Dict[int, int] = {}
        self.array_received: Dict[int, int] = {}
        self.diagnostics: Dict[str, str] = {}
        self.diagnostics_count = 0
        self.create_subscription(Detection2D, 'detection', self._on_detection, 100)
        self.create_subscription(Detection2DArray, 'detections', self._on_detections, 100)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.create_subscription(PointStamped, 'target_point', self._on_point, 100)
        self._tracker_name: Optional[str] = None

    def watch_diagnostics_of(self, node_fqn: str) -> None:
        """Record only the diagnostics of the tracker node ``node_fqn``."""
        self._tracker_name = f'{node_fqn}: tracker'

    def connected(self) -> bool:
        """Tell whether a tracker subscribes to the images and to ``init_box``."""
        return (self.image_pub.get_subscription_count() > 0
                and self.init_pub.get_subscription_count() > 0)

    def publish_frame(self, frame: np.ndarray, stamp: Optional[int] = None,
                      encoding: str = 'rgb8', frame_id: str = 'camera') -> Header:
        """Publish ``frame`` stamped ``stamp`` ns (default: now); return the header used."""
        header = header_at(self.get_clock().now().nanoseconds if stamp is None else stamp,
                           frame_id)
        self.image_pub.publish(array_to_image(frame, encoding, header))
        return header

    def enable_rgbd(self) -> None:
        """Create the depth/image and camera_info publishers of an RGB-D camera."""
        if self._rgbd_pubs is None:
            qos = qos_profile_sensor_data
            self._rgbd_pubs = (self.create_publisher(Image, 'depth/image', qos),
                               self.create_publisher(CameraInfo, 'camera_info', qos))

    def publish_rgbd(self, frame: np.ndarray, depth_mm: np.ndarray, k: Sequence[float],
                     stamp: Optional[int] = None, frame_id: str = 'camera') -> Header:
        """Publish camera_info, 16UC1 depth and the rgb8 ``frame`` with one header."""
        self.enable_rgbd()
        header = header_at(self.get_clock().now().nanoseconds if stamp is None else stamp,
                           frame_id)
        height, width = depth_mm.shape
        info = CameraInfo(header=header, width=width, height=height, k=[float(v) for v in k])
        depth = Image(header=header, height=height, width=width, encoding='16UC1',
                      is_bigendian=0, step=width * 2, data=depth_mm.astype('<u2').tobytes())
        self._rgbd_pubs[1].publish(info)
        self._rgbd_pubs[0].publish(depth)
        self.image_pub.publish(array_to_image(frame, 'rgb8', header))
        return header

    def send_init(self, box_xywh: Sequence[float], header: Header) -> None:
        """Send the initial box drawn on the image with ``header``."""
        self.init_pub.publish(detection_from_box(box_xywh, header))

    def result(self, header: Header) -> Optional[Received]:
        """Return the detection received for the image with ``header``, if any."""
        with self._lock:
            return self.detections.get(stamp_ns(header))

    def wait_for(self, header: Header, timeout: float) -> Optional[Received]:
        """Wait (the client spinning elsewhere) for the detection of an image."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.result(header)
            if found is not None:
                return found
            time.sleep(0.002)
        return None

    def _on_detection(self, msg: Detection2D) -> None:
        xywh = np.array(box_from_detection(msg))
        score = msg.results[0].hypothesis.score if msg.results else float('nan')
        with self._lock:
            self.detections[stamp_ns(msg.header)] = Received(
                xywh, score, msg.id, self.get_clock().now().nanoseconds)

    def _on_point(self, msg: PointStamped) -> None:
        with self._lock:
            self.points[stamp_ns(msg.header)] = self.get_clock().now().nanoseconds

    def _on_detections(self, msg: Detection2DArray) -> None:
        with self._lock:
            self.arrays[stamp_ns(msg.header)] = len(msg.detections)
            self.array_received[stamp_ns(msg.header)] = self.get_clock().now().nanoseconds

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if self._tracker_name is None or status.name == self._tracker_name:
                with self._lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diagnostics['level'] = str(int.from_bytes(status.level, 'little')
                                                    if isinstance(status.level, bytes)
                                                    else status.level)
                    self.diagnostics['message'] = status.message
                    self.diagnostics_count += 1
