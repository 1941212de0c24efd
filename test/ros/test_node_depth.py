"""
The tracker node's 3-D outputs on a real rclpy graph, fed rendered RGB-D with known 3-D truth.

A client publishes colour, aligned depth and camera_info like an RGB-D driver and records
``target_point``, ``detection_3d`` and ``target_bearing``; the node runs the shipped model.
Bad depth input (wrong encodings, holes, NaN, other sizes, unsynchronised stamps, no
camera_info) must cost the frame its 3-D output, be counted, and leave tracking untouched.
"""

import threading
from typing import Dict, Optional

from detrack_model.data.synthetic.rgbd import rgbd_sequence, RgbdSequence
from detrack_ros.detection_messages import header_at, stamp_ns
from detrack_ros.image_conversion import array_to_image
from geometry_msgs.msg import PointStamped, Vector3Stamped
from node_harness import is_init, NodeHarness, raw_image, wait_until
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection3D

FRAME_ID = 'camera_color_optical_frame'
# Generous: the machine running the tests may be busy with other work.
WAIT_SEC = 20.0
SIZE = (320, 240)


@pytest.fixture(scope='module')
def sequence() -> RgbdSequence:
    """Return a short rendered RGB-D sequence, the target between 0.8 and 4 m."""
    return rgbd_sequence(2, frames=40, size=SIZE, near=0.8, far=4.0)


class Outputs:
    """The client's side of the 3-D topics: a depth publisher and what the node answers."""

    def __init__(self, harness: NodeHarness) -> None:
        client = harness.client
        self._lock = threading.Lock()
        self.points: Dict[int, PointStamped] = {}
        self.boxes: Dict[int, Detection3D] = {}
        self.bearings: Dict[int, Vector3Stamped] = {}
        self.depth_pub = client.create_publisher(Image, 'depth/image', qos_profile_sensor_data)
        client.create_subscription(PointStamped, 'target_point',
                                   lambda m: self._keep(self.points, m), 100)
        client.create_subscription(Detection3D, 'detection_3d',
                                   lambda m: self._keep(self.boxes, m), 100)
        client.create_subscription(Vector3Stamped, 'target_bearing',
                                   lambda m: self._keep(self.bearings, m), 100)
        self.harness = harness

    def _keep(self, store: Dict, msg) -> None:
        with self._lock:
            store[stamp_ns(msg.header)] = msg

    def get(self, store: Dict, header: Header):
        """Return what ``store`` received for the image with ``header``, if anything."""
        with self._lock:
            return store.get(stamp_ns(header))

    def wait(self, store: Dict, header: Header, timeout: float = WAIT_SEC):
        """Wait for the message of ``header`` on ``store``'s topic; return it or None."""
        wait_until(lambda: self.get(store, header) is not None, timeout)
        return self.get(store, header)

    def wait_connected(self, depth: bool = True) -> None:
        """Wait until the node and the client see each other on the 3-D topics."""
        client = self.harness.client
        topics = ['target_bearing'] + (['target_point', 'detection_3d'] if depth else [])
        subscriptions = [client.subscription_on(topic) for topic in topics]
        assert wait_until(lambda: all(s.get_publisher_count() > 0 for s in subscriptions)
                          and (not depth or self.depth_pub.get_subscription_count() > 0),
                          WAIT_SEC), 'the 3-D topics never connected'


def camera_info(sequence: RgbdSequence, k=None, size=None) -> CameraInfo:
    """Return the sequence's CameraInfo (plumb-bob, no distortion)."""
    width, height = size or sequence.size
    msg = CameraInfo(width=width, height=height, distortion_model='plumb_bob',
                     d=[0.0] * 5, k=list(k or sequence.k))
    msg.header.frame_id = FRAME_ID
    msg.p = [msg.k[0], 0.0, msg.k[2], 0.0, 0.0, msg.k[4], msg.k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def send_camera_info(harness: NodeHarness, msg: CameraInfo) -> None:
    """Publish camera_info until the node has this very calibration."""
    def arrived():
        info = harness.node.inits.camera_info
        return info is not None and list(info.k) == list(msg.k) and info.width == msg.width
    for _ in range(50):
        harness.client.camera_info_pub.publish(msg)
        if wait_until(arrived, 0.2):
            return
    raise AssertionError('the node never received camera_info')


def depth_message(depth: np.ndarray, encoding: str = '16UC1') -> Image:
    """Return a depth array as an Image (16UC1 from uint16, 32FC1 from float32)."""
    height, width = depth.shape
    return raw_image(np.ascontiguousarray(depth).tobytes(), encoding, width, height,
                     width * depth.itemsize)


def publish_rgbd(harness: NodeHarness, outputs: Outputs, colour: np.ndarray,
                 depth: Optional[Image], depth_offset_ns: int = 0) -> Header:
    """Publish depth (stamped ``depth_offset_ns`` off), then colour; return the colour header."""
    header = harness.next_header(FRAME_ID)
    if depth is not None:
        depth.header = header_at(stamp_ns(header) + depth_offset_ns, FRAME_ID)
        outputs.depth_pub.publish(depth)
    harness.publish(array_to_image(colour, 'rgb8'), header=header)
    return header


def start(harness: NodeHarness, outputs: Outputs, sequence: RgbdSequence) -> None:
    """Give the node the calibration and the target on the sequence's first frame."""
    send_camera_info(harness, camera_info(sequence))
    init_rgbd(harness, outputs, sequence)


def init_rgbd(harness: NodeHarness, outputs: Outputs, sequence: RgbdSequence) -> Header:
    """Start the target on the first frame, published with its depth; return its header."""
    header = publish_rgbd(harness, outputs, sequence.frames[0],
                          depth_message(sequence.depth_mm[0]))
    harness.client.send_init(sequence.boxes[0], header)
    assert harness.wait_detection(header, is_init, WAIT_SEC) is not None, 'no start'
    return header


@pytest.mark.slow
def test_target_point_follows_the_true_3d_position(module_ros_context, sequence):
    """
    Track the rendered sequence; every frame's target_point is near the true 3-D centre.

    The bound is the tracker's box error (a few pixels, z / f metres each) plus the depth
    noise; the measured errors are printed.
    """
    intrinsics_f = sequence.k[0]
    with NodeHarness(module_ros_context, {'depth': True, 'lost_patience': 10000}) as harness:
        outputs = Outputs(harness)
        outputs.wait_connected()
        start(harness, outputs, sequence)
        errors, distances = [], []
        for index in range(1, len(sequence.frames)):
            header = publish_rgbd(harness, outputs, sequence.frames[index],
                                  depth_message(sequence.depth_mm[index]))
            detection = harness.wait_detection(header, timeout=WAIT_SEC)
            point = outputs.wait(outputs.points, header)
            box = outputs.wait(outputs.boxes, header)
            bearing = outputs.wait(outputs.bearings, header)
            assert detection is not None and point is not None and box is not None, index
            assert point.header.frame_id == FRAME_ID == box.header.frame_id
            assert box.id == detection.id and box.id
            assert box.results[0].hypothesis.score == detection.results[0].hypothesis.score
            assert box.results[0].hypothesis.class_id == 'target'
            position = np.array([point.point.x, point.point.y, point.point.z])
            centre = box.bbox.center.position
            assert np.allclose([centre.x, centre.y, centre.z], position)
            assert box.bbox.size.x == pytest.approx(detection.bbox.size_x * position[2]
                                                    / intrinsics_f, rel=1e-6)
            ray = np.array([bearing.vector.x, bearing.vector.y, bearing.vector.z])
            assert np.linalg.norm(ray) == pytest.approx(1.0)
            assert np.allclose(ray, position / np.linalg.norm(position), atol=1e-9)
            errors.append(float(np.linalg.norm(position - sequence.positions[index])))
            distances.append(float(sequence.positions[index][2]))
        errors = np.array(errors)
        print(f'\n3-D position error over {len(errors)} frames at 0.8-4 m: median '
              f'{np.median(errors) * 100:.1f} cm, max {errors.max() * 100:.1f} cm; '
              f'relative to distance median {np.median(errors / distances) * 100:.2f} %')
        assert np.median(errors) < 0.05
        # A box error of 10 % of the target's 0.4 m width at most, at any distance.
        assert errors.max() < 0.10
        assert harness.node.counters['target_points'] == len(errors) + 1
        for name in ('depth_unmatched', 'depth_bad_images', 'depth_too_few_valid',
                     'depth_size_mismatch', 'camera_info_unusable'):
            assert harness.node.counters[name] == 0, name


def test_32fc1_with_nan_holes_and_a_custom_16bit_scale_agree(module_ros_context, sequence):
    """The same frame as 16UC1 mm, 32FC1 m with NaN holes and 16-bit 0.1 mm with depth_scale."""
    index = 5
    millimetres = sequence.depth_mm[index]
    metres = millimetres.astype(np.float32) / 1000.0
    metres[millimetres == 0] = np.nan
    metres[::7, ::3] = np.nan
    tenths = (millimetres.astype(np.uint32) * 10).clip(0, 65535).astype(np.uint16)
    with NodeHarness(module_ros_context, {'depth': True, 'lost_patience': 10000}) as harness:
        outputs = Outputs(harness)
        outputs.wait_connected()
        start(harness, outputs, sequence)
        depths = []
        for message, scale in ((depth_message(millimetres), 0.0),
                               (depth_message(metres, '32FC1'), 0.0),
                               (depth_message(tenths), 0.0001)):
            harness.node.set_parameters([Parameter('depth_scale', value=scale)])
            header = publish_rgbd(harness, outputs, sequence.frames[index], message)
            point = outputs.wait(outputs.points, header)
            assert point is not None, message.encoding
            depths.append(point.point.z)
        assert depths == pytest.approx([depths[0]] * 3, abs=0.002)
        assert depths[0] == pytest.approx(sequence.positions[index][2], abs=0.02)


@pytest.mark.slow
def test_bad_depth_input_is_counted_and_tracking_goes_on(module_ros_context, sequence):
    """Wrong encodings, holes, other sizes, unsynchronised stamps: no 3-D output, counted."""
    frame = sequence.frames[3]
    good = sequence.depth_mm[3]
    holes = good.copy()
    x, y, w, h = (int(v) for v in sequence.boxes[3])
    holes[y:y + h, x:x + w] = 0
    parameters = {'depth': True, 'lost_patience': 10000, 'depth_wait': 0.0,
                  'diagnostics_period': 0.2}
    with NodeHarness(module_ros_context, parameters) as harness:
        outputs = Outputs(harness)
        outputs.wait_connected()
        start(harness, outputs, sequence)
        counters = harness.node.counters
        cases = [
            ('depth_bad_images', array_to_image(np.zeros((240, 320, 3), np.uint8), 'rgb8'), 0),
            ('depth_bad_images', raw_image(b'\0' * 100, '16UC1', 320, 240, 640), 0),
            ('depth_too_few_valid', depth_message(holes), 0),
            ('depth_size_mismatch', depth_message(good[:120, :160]), 0),
            ('depth_unmatched', depth_message(good), 500_000_000),
            ('depth_unmatched', None, 0),
        ]
        for counter, message, offset in cases:
            before = counters[counter]
            header = publish_rgbd(harness, outputs, frame, message, offset)
            assert harness.wait_detection(header, timeout=WAIT_SEC) is not None, counter
            assert harness.wait_counter(counter, before + 1), counter
            assert outputs.wait(outputs.bearings, header) is not None, counter
            harness.settle()
            assert outputs.get(outputs.points, header) is None, counter
            assert outputs.get(outputs.boxes, header) is None, counter
        # Good depth again: the 3-D output is back.
        header = publish_rgbd(harness, outputs, frame, depth_message(good))
        assert outputs.wait(outputs.points, header) is not None
        # Every cause appears in the diagnostics.
        expected = {'depth_bad_images': 2, 'depth_too_few_valid': 1, 'depth_size_mismatch': 1,
                    'depth_unmatched': 2}
        assert wait_until(lambda: all(
            int(harness.client.diagnostics.get(key, -1)) >= value
            for key, value in expected.items()), WAIT_SEC), harness.client.diagnostics
        assert harness.node.state_label() == 'tracking'
        assert harness.node.counters['errors'] == 0


def test_late_depth_is_waited_for(module_ros_context, sequence):
    """Depth published after its colour image still pairs (within depth_wait)."""
    with NodeHarness(module_ros_context, {'depth': True, 'depth_wait': 1.0}) as harness:
        outputs = Outputs(harness)
        outputs.wait_connected()
        start(harness, outputs, sequence)
        header = harness.next_header(FRAME_ID)
        harness.publish(array_to_image(sequence.frames[1], 'rgb8'), header=header)
        # Let the colour image reach the node and the node reach its wait.
        assert harness.wait_detection(header, timeout=WAIT_SEC) is not None
        depth = depth_message(sequence.depth_mm[1])
        depth.header = header
        outputs.depth_pub.publish(depth)
        point = outputs.wait(outputs.points, header)
        assert point is not None
        assert point.point.z == pytest.approx(sequence.positions[1][2], abs=0.05)


@pytest.mark.slow
def test_camera_info_missing_then_unusable_then_given(module_ros_context, sequence):
    """No camera_info: no bearing, counted; K for another size: counted; the right one: out."""
    with NodeHarness(module_ros_context, {'depth': True, 'lost_patience': 10000}) as harness:
        outputs = Outputs(harness)
        outputs.wait_connected()
        init_rgbd(harness, outputs, sequence)
        counters = harness.node.counters
        header = publish_rgbd(harness, outputs, sequence.frames[1],
                              depth_message(sequence.depth_mm[1]))
        assert harness.wait_detection(header, timeout=WAIT_SEC) is not None
        assert harness.wait_counter('camera_info_unusable', 2)   # the first frame's, this one's
        harness.settle()
        assert outputs.get(outputs.bearings, header) is None
        assert outputs.get(outputs.points, header) is None
        send_camera_info(harness, camera_info(sequence, size=(640, 480)))
        before = counters['camera_info_unusable']
        header = publish_rgbd(harness, outputs, sequence.frames[2],
                              depth_message(sequence.depth_mm[2]))
        assert harness.wait_counter('camera_info_unusable', before + 1)
        harness.settle()
        assert outputs.get(outputs.bearings, header) is None
        send_camera_info(harness, camera_info(sequence))
        header = publish_rgbd(harness, outputs, sequence.frames[3],
                              depth_message(sequence.depth_mm[3]))
        assert outputs.wait(outputs.bearings, header) is not None
        assert outputs.wait(outputs.points, header) is not None


def test_bearing_without_depth(module_ros_context, sequence):
    """With depth off (the default) the bearing is published and no 3-D topic exists."""
    with NodeHarness(module_ros_context) as harness:
        outputs = Outputs(harness)
        outputs.wait_connected(depth=False)
        send_camera_info(harness, camera_info(sequence))
        harness.init_on(sequence.frames[0], sequence.boxes[0])
        header = harness.publish(array_to_image(sequence.frames[1], 'rgb8'),
                                 header=harness.next_header(FRAME_ID))
        bearing = outputs.wait(outputs.bearings, header)
        detection = harness.wait_detection(header)
        assert bearing is not None and bearing.header.frame_id == FRAME_ID
        ray = np.array([bearing.vector.x, bearing.vector.y, bearing.vector.z])
        # Through K, the ray lands on the detection's centre (pixel centres at integers).
        fx, _, cx, _, fy, cy = sequence.k[:6]
        centre = detection.bbox.center.position
        assert fx * ray[0] / ray[2] + cx == pytest.approx(centre.x - 0.5)
        assert fy * ray[1] / ray[2] + cy == pytest.approx(centre.y - 0.5)
        # And towards the target: off by the tracker's box-centre error only.
        true = sequence.positions[1] / np.linalg.norm(sequence.positions[1])
        assert np.degrees(np.arccos(np.clip(ray @ true, -1, 1))) < 3.0
        assert harness.client.subscription_on('target_point').get_publisher_count() == 0
        assert outputs.depth_pub.get_subscription_count() == 0


@pytest.mark.slow
def test_depth_min_above_depth_max_is_refused(module_ros_context):
    """Each value in range but the pair impossible: the set is refused, nothing changes."""
    with NodeHarness(module_ros_context, {'depth': True}) as harness:
        results = harness.node.set_parameters_atomically(
            [Parameter('depth_min', value=5.0), Parameter('depth_max', value=2.0)])
        assert not results.successful and 'depth_max' in results.reason
        assert harness.node.get_parameter('depth_min').value == 0.1
