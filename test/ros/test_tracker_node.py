"""
The tracker node in a real rclpy graph: topics, init paths, services, lifecycle, parameters.

Each test talks to a TrackerNode through DDS from a client node of the same process (see
node_harness). Nodes live under namespaces of their own, so tests never hear each other; the
default-parameter node is shared by the tests of a module, and every test that uses it starts
its own target first, so the tests do not depend on each other's order.
"""

import math
import time

import cv2
from detrack_model.evaluation.metrics import rect_iou
from detrack_ros.detection_messages import detection_from_box
from detrack_ros.replay import generated_sequence, stamp_ns
from geometry_msgs.msg import Point, PointStamped
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import (box_of, compress, encode_image, FOLLOWING, fresh_diagnostics,
                          is_init, NodeHarness, raw_image, set_parameters, wait_until)
import numpy as np
import pytest
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

SIZE = (320, 240)
# Frame of the encoding tests: a few frames after the init one, so the target has moved.
ENCODING_FRAME = 4
RAW_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuv422_yuy2', 'uyvy',
                 'yuv422', 'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8')
# These carry the RGB pixels unchanged, so the box must be the rgb8 one.
LOSSLESS = ('rgb8', 'bgr8', 'rgba8', 'bgra8')
# These carry exactly the grey values of the RGB frame (mono16 in its high byte).
GREY = ('mono8', 'mono16')
# Pinhole camera of the clicked_point test: fx = fy = 200, principal point (160, 120).
FOCAL, CENTRE_U, CENTRE_V = 200.0, 160.0, 120.0
CAMERA_FRAME = 'cam_optical'


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def sequence():
    """Return a short synthetic sequence of a moving target with exact ground truth."""
    return generated_sequence(index=5, frames=40, size=SIZE)


@pytest.fixture(scope='module')
def shared(module_ros_context):
    """Yield an active tracker node with default parameters (diagnostics every 0.2 s)."""
    with NodeHarness(module_ros_context, {'diagnostics_period': 0.2}) as harness:
        yield harness


@pytest.fixture(scope='module')
def compressed_node(module_ros_context):
    """Yield an active tracker node that subscribes to image/compressed."""
    with NodeHarness(module_ros_context, {'image_transport': 'compressed'}) as harness:
        yield harness


@pytest.fixture(scope='module')
def tuned(module_ros_context):
    """Yield an active tracker node whose runtime parameters the tests change."""
    with NodeHarness(module_ros_context) as harness:
        yield harness


@pytest.fixture
def fresh(module_ros_context, request):
    """Yield a tracker node of this test alone (parameters and start flag via indirect)."""
    options = dict(getattr(request, 'param', {}))
    start = options.pop('start', True)
    with NodeHarness(module_ros_context, options, start=start) as harness:
        yield harness


@pytest.fixture(scope='module')
def reference_boxes(offline, sequence):
    """Return the offline box of ENCODING_FRAME after an init on frame 0, colour and grey."""
    frames = sequence.frames[:ENCODING_FRAME + 1]
    boxes = {}
    for kind, convert in (('rgb', None), ('grey', cv2.COLOR_RGB2GRAY)):
        images = [frame if convert is None else cv2.cvtColor(frame, convert) for frame in frames]
        offline.initialize(images[0], sequence.boxes[0])
        for image in images[1:]:
            box, _ = offline.track(image)
        boxes[kind] = np.asarray(box)
    return boxes


def iou(a, b) -> float:
    """Return the IoU of two (x, y, w, h) boxes."""
    return float(rect_iou(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def track_frames(harness: NodeHarness, frames, encoding: str = 'rgb8'):
    """Track ``frames`` one by one (each after the previous answer); return the detections."""
    return [harness.track(frame, encoding) for frame in frames]


# -- end to end ----------------------------------------------------------------------------


@pytest.mark.slow
def test_end_to_end_matches_offline_tracker(shared, sequence, offline):
    """Follow a moving target frame by frame; the node's boxes equal the model run offline."""
    frames, truth = sequence.frames, sequence.boxes
    previous = shared.node.session.track_id
    headers = [shared.next_header('camera_optical_frame')]
    shared.client.send_init(truth[0], headers[0])
    shared.publish(encode_image(frames[0], 'rgb8'), header=headers[0])
    first = shared.wait_detection(headers[0], lambda m: is_init(m) and m.id != previous)
    assert first is not None, 'no detection for the init frame'
    detections = [first]
    for frame in frames[1:]:
        headers.append(shared.next_header('camera_optical_frame'))
        shared.publish(encode_image(frame, 'rgb8'), header=headers[-1])
        detection = shared.wait_detection(headers[-1])
        assert detection is not None, f'no detection for frame {len(headers) - 1}'
        detections.append(detection)

    for index, (header, detection) in enumerate(zip(headers, detections)):
        assert stamp_ns(detection.header) == stamp_ns(header), index
        assert detection.header.frame_id == 'camera_optical_frame', index
        assert detection.id == first.id, f'track id changed at frame {index}'
        assert shared.client.array_size(header) == 1, index
    boxes = np.array([box_of(d) for d in detections])
    np.testing.assert_allclose(boxes[0], truth[0], atol=1e-9)
    visible = sequence.visible[1:]
    ious = rect_iou(boxes[1:][visible], truth[1:][visible])
    assert ious.mean() > 0.5, f'mean IoU {ious.mean():.3f}'

    assert offline.backend.name == shared.node.session.tracker.backend.name
    offline.initialize(frames[0], boxes[0])
    expected = np.array([offline.track(frame)[0] for frame in frames[1:]])
    np.testing.assert_allclose(boxes[1:], expected, atol=1e-3)


# -- init paths ----------------------------------------------------------------------------


def camera_info() -> CameraInfo:
    """Return the calibration of the test's pinhole camera, frame CAMERA_FRAME."""
    info = CameraInfo(width=SIZE[0], height=SIZE[1])
    info.header.frame_id = CAMERA_FRAME
    info.k = [FOCAL, 0.0, CENTRE_U, 0.0, FOCAL, CENTRE_V, 0.0, 0.0, 1.0]
    info.p = [FOCAL, 0.0, CENTRE_U, 0.0, 0.0, FOCAL, CENTRE_V, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def point_at(u: float, v: float, depth: float, frame_id: str = CAMERA_FRAME) -> PointStamped:
    """Return the camera-frame point at ``depth`` that projects onto pixel (u, v)."""
    msg = PointStamped()
    msg.header.frame_id = frame_id
    msg.point.x = (u - CENTRE_U) * depth / FOCAL
    msg.point.y = (v - CENTRE_V) * depth / FOCAL
    msg.point.z = depth
    return msg


def init_without_stamp(harness: NodeHarness, frame, track_ids, send) -> Detection2D:
    """Queue an init with ``send()``, publish ``frame``, return the init's detection."""
    send()
    harness.wait_pending_init()
    header = harness.publish(encode_image(frame, 'rgb8'))
    detection = harness.wait_detection(header, lambda m: m.id not in track_ids)
    assert detection is not None, 'the init did not start a new target'
    assert is_init(detection)
    track_ids.append(detection.id)
    return detection


def test_every_init_path_starts_a_new_target(shared, sequence):
    """init_box, init_roi, init_click and clicked_point each start a target with a new id."""
    client, frames = shared.client, sequence.frames
    track_ids = [shared.init_on(frames[0], sequence.boxes[0]).id]

    roi = RegionOfInterest(x_offset=40, y_offset=104, width=70, height=90)
    detection = init_without_stamp(shared, frames[1], track_ids,
                                   lambda: client.roi_pub.publish(roi))
    np.testing.assert_allclose(box_of(detection), (40, 104, 70, 90), atol=1e-9)

    def clicks():
        # Bottom-right corner first: the box must not depend on the order of the corners.
        client.click_pub.publish(Point(x=118.0, y=196.0))
        client.click_pub.publish(Point(x=44.0, y=108.0))
    detection = init_without_stamp(shared, frames[2], track_ids, clicks)
    np.testing.assert_allclose(box_of(detection), (44, 108, 74, 88), atol=1e-9)

    def camera_info_received():
        # camera_info is best effort: send it again until the node has it.
        client.camera_info_pub.publish(camera_info())
        return shared.node.inits.camera_info is not None
    assert wait_until(camera_info_received, period=0.05)

    def rviz_clicks():
        client.clicked_point_pub.publish(point_at(48.0, 112.0, 2.5))
        client.clicked_point_pub.publish(point_at(110.0, 198.0, 2.5))
    detection = init_without_stamp(shared, frames[3], track_ids, rviz_clicks)
    np.testing.assert_allclose(box_of(detection), (48.0, 112.0, 62.0, 86.0), atol=1e-6)
    assert len(set(track_ids)) == 4, f'a re-init kept an old id: {track_ids}'

    # A point in RViz's default fixed frame cannot be projected without tf: both clicks are
    # rejected, and the target stays the one from the last init.
    rejected = shared.node.counters['init_rejected']
    mark = client.log_position()
    client.clicked_point_pub.publish(point_at(48.0, 112.0, 2.5, frame_id='map'))
    client.clicked_point_pub.publish(point_at(110.0, 198.0, 2.5, frame_id='map'))
    assert shared.wait_counter('init_rejected', rejected + 2)
    detection = shared.track(frames[4])
    assert detection.id == track_ids[-1]
    assert shared.node.session.pending is None
    assert shared.logged('Fixed Frame', mark)


def test_init_applies_to_the_image_with_its_stamp(shared, sequence):
    """An init stamped with an older image starts on that image, not on the newest one."""
    frames = sequence.frames
    shared.call(Trigger, 'reset', Trigger.Request())
    headers = [shared.publish_received(encode_image(frame, 'rgb8')) for frame in frames[:3]]
    shared.settle()
    assert shared.node.state_label() == 'idle'
    shared.client.send_init(sequence.boxes[0], headers[0])
    detection = shared.wait_detection(headers[0], is_init)
    assert detection is not None, 'the init did not start on the image with its stamp'
    np.testing.assert_allclose(box_of(detection), sequence.boxes[0], atol=1e-9)
    assert all(shared.client.message(h) is None for h in headers[1:])
    assert shared.track(frames[3]).id == detection.id


@pytest.mark.slow
@pytest.mark.parametrize('fresh', [{'auto_init': True, 'auto_init_class_id': 'drone',
                                    'auto_init_min_score': 0.5}], indirect=True)
def test_auto_init_from_detector(fresh, sequence):
    """Only a detection of the right class and score starts tracking, and only when idle."""
    header = fresh.publish_received(encode_image(sequence.frames[0], 'rgb8'))

    def detector_array(*entries):
        array = Detection2DArray(header=header)
        for box, class_id, score in entries:
            detection = detection_from_box(box, header, class_id, score)
            array.detections.append(detection)
        return array

    wrong = detector_array(((60, 100, 50, 80), 'bird', 0.99), ((40, 100, 70, 90), 'drone', 0.3))
    fresh.client.detector_pub.publish(wrong)
    time.sleep(0.5)
    assert fresh.node.session.pending is None and fresh.node.counters['inits'] == 0
    assert fresh.client.message(header) is None
    assert fresh.node.state_label() == 'idle'

    box = tuple(sequence.boxes[0])
    right = detector_array(((60, 100, 50, 80), 'bird', 0.99), (box, 'drone', 0.8),
                           ((200, 30, 40, 40), 'drone', 0.6))
    fresh.client.detector_pub.publish(right)
    detection = fresh.wait_detection(header, is_init)
    assert detection is not None, 'the detector did not start tracking'
    np.testing.assert_allclose(box_of(detection), box, atol=1e-9)
    assert fresh.node.state_label() == 'tracking'

    # While the target is tracked, detector output does not re-initialise it.
    tracked = fresh.track(sequence.frames[1])
    fresh.client.detector_pub.publish(detector_array(((200, 30, 40, 40), 'drone', 0.9)))
    time.sleep(0.3)
    later = fresh.track(sequence.frames[2])
    assert later.id == tracked.id == detection.id
    assert fresh.node.counters['inits'] == 1


def test_init_before_any_image(fresh, sequence):
    """An init_box with a zero stamp waits for the first image and starts on it."""
    fresh.client.init_pub.publish(detection_from_box(sequence.boxes[0], Header()))
    fresh.wait_pending_init()
    assert fresh.node.state_label() == 'idle'
    header = fresh.publish(encode_image(sequence.frames[0], 'rgb8'))
    detection = fresh.wait_detection(header)
    assert detection is not None, 'the pending init never started'
    assert is_init(detection) and detection.id
    np.testing.assert_allclose(box_of(detection), sequence.boxes[0], atol=1e-9)
    assert fresh.track(sequence.frames[1]).id == detection.id


# -- services ------------------------------------------------------------------------------


def test_reset_and_enable_services(shared, sequence):
    """Clear the target with reset; enable false ignores images, enable true resumes."""
    frames = sequence.frames
    shared.init_on(frames[0], sequence.boxes[0])
    response = shared.call(Trigger, 'reset', Trigger.Request())
    assert response.success and response.message == 'target cleared'
    assert shared.node.state_label() == 'idle'
    header = shared.publish_received(encode_image(frames[1], 'rgb8'))
    shared.settle()
    assert shared.client.message(header) is None and shared.client.array_size(header) is None

    target = shared.init_on(frames[0], sequence.boxes[0])
    response = shared.call(SetBool, 'enable', SetBool.Request(data=False))
    assert response.success
    assert shared.node.state_label() == 'disabled'
    header = shared.publish_received(encode_image(frames[1], 'rgb8'))
    shared.settle()
    assert shared.client.message(header) is None and shared.client.array_size(header) is None

    response = shared.call(SetBool, 'enable', SetBool.Request(data=True))
    assert response.success
    assert shared.node.state_label() == 'tracking'
    detection = shared.track(frames[1])
    assert detection.id == target.id


# -- lifecycle -----------------------------------------------------------------------------


def lifecycle_state(harness: NodeHarness) -> int:
    """Return the node's primary state id through its get_state service."""
    return harness.call(GetState, f'{harness.fqn}/get_state', GetState.Request()).current_state.id


def transition(harness: NodeHarness, transition_id: int) -> bool:
    """Request a transition through the node's change_state service; return its success."""
    request = ChangeState.Request(transition=Transition(id=transition_id))
    return harness.call(ChangeState, f'{harness.fqn}/change_state', request).success


@pytest.mark.slow
@pytest.mark.parametrize('fresh', [{'start': False}], indirect=True)
def test_lifecycle_transitions(fresh, sequence):
    """Walk the lifecycle over its services; subscriptions follow active, the target stays."""
    client, frames = fresh.client, sequence.frames
    image_subscribers = client.image_pub.get_subscription_count
    detection_publishers = client.subscription_on('detection').get_publisher_count

    # The answer of get_state shows the node is discovered; client and node share one DDS
    # participant, so its topics would be known by now too.
    assert lifecycle_state(fresh) == State.PRIMARY_STATE_UNCONFIGURED
    assert fresh.node.state_label() == 'inactive'
    assert image_subscribers() == 0 and detection_publishers() == 0

    assert transition(fresh, Transition.TRANSITION_CONFIGURE)
    assert lifecycle_state(fresh) == State.PRIMARY_STATE_INACTIVE
    assert wait_until(lambda: detection_publishers() == 1)
    assert image_subscribers() == 0

    assert transition(fresh, Transition.TRANSITION_ACTIVATE)
    assert lifecycle_state(fresh) == State.PRIMARY_STATE_ACTIVE
    fresh.wait_connected()
    target = fresh.init_on(frames[0], sequence.boxes[0])
    assert fresh.track(frames[1]).id == target.id

    assert transition(fresh, Transition.TRANSITION_DEACTIVATE)
    assert lifecycle_state(fresh) == State.PRIMARY_STATE_INACTIVE
    assert wait_until(lambda: image_subscribers() == 0), 'still subscribed while inactive'
    assert fresh.node.state_label() == 'inactive'

    assert transition(fresh, Transition.TRANSITION_ACTIVATE)
    fresh.wait_connected()
    detection = fresh.track(frames[2])
    assert detection.id == target.id

    assert transition(fresh, Transition.TRANSITION_DEACTIVATE)
    assert transition(fresh, Transition.TRANSITION_CLEANUP)
    assert lifecycle_state(fresh) == State.PRIMARY_STATE_UNCONFIGURED
    assert wait_until(lambda: detection_publishers() == 0)
    assert transition(fresh, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert lifecycle_state(fresh) == State.PRIMARY_STATE_FINALIZED


@pytest.mark.parametrize('fresh', [{'start': False, 'model_path': '/nonexistent/detrack_none'}],
                         indirect=True)
def test_configure_fails_on_missing_model(fresh):
    """A missing model makes configure fail; the node stays unconfigured and answers."""
    assert not transition(fresh, Transition.TRANSITION_CONFIGURE)
    assert lifecycle_state(fresh) == State.PRIMARY_STATE_UNCONFIGURED
    assert not transition(fresh, Transition.TRANSITION_ACTIVATE)
    assert lifecycle_state(fresh) == State.PRIMARY_STATE_UNCONFIGURED
    assert fresh.client.subscription_on('detection').get_publisher_count() == 0


# -- image encodings -----------------------------------------------------------------------


@pytest.mark.parametrize('encoding', RAW_ENCODINGS)
def test_raw_encoding_is_tracked(shared, sequence, reference_boxes, encoding):
    """Frames in ``encoding`` give (nearly) the boxes the same frames give as rgb8."""
    frames = [encode_image(frame, encoding) for frame in sequence.frames[:ENCODING_FRAME + 1]]
    target = shared.init_on(frames[0], sequence.boxes[0])
    detections = [shared.track(frame, encoding) for frame in frames[1:]]
    assert all(d.id == target.id for d in detections)
    box = box_of(detections[-1])
    if encoding in LOSSLESS:
        np.testing.assert_allclose(box, reference_boxes['rgb'], atol=1e-3)
    if encoding in GREY:
        # The shipped model, trained on colour, follows this target poorly in grey (about 0.3
        # IoU with the colour box, offline too), so the check is against the same grey pixels
        # run offline: the conversion itself must lose nothing.
        np.testing.assert_allclose(box, reference_boxes['grey'], atol=1e-3)
    else:
        assert iou(box, reference_boxes['rgb']) > 0.5, f'{encoding}: {box} vs {reference_boxes}'


@pytest.mark.parametrize('extension', ['.jpg', '.png'])
def test_compressed_image_is_tracked(compressed_node, sequence, reference_boxes, extension):
    """JPEG and PNG CompressedImage messages are decoded and tracked like raw RGB."""
    frames = sequence.frames
    compressed_node.init_on(compress(frames[0], extension), sequence.boxes[0])
    for frame in frames[1:ENCODING_FRAME + 1]:
        detection = compressed_node.track(compress(frame, extension))
    box, reference = box_of(detection), reference_boxes['rgb']
    if extension == '.png':
        np.testing.assert_allclose(box, reference, atol=1e-3)
    assert iou(box, reference) > 0.5, f'{extension}: {box} vs {reference}'


# -- bad input -----------------------------------------------------------------------------


def malformed_images(frame):
    """Return malformed versions of ``frame`` (rgb8), one per kind of defect."""
    height, width = frame.shape[:2]
    data = frame.tobytes()
    return [
        raw_image(data, 'rgb9000', width, height, width * 3),
        raw_image(data, 'rgb8', width, height, width * 3 - 1),
        raw_image(data[:-width * 3], 'rgb8', width, height, width * 3),
        raw_image(b'', 'rgb8', 0, height, 0),
        raw_image(b'', 'rgb8', width, 0, width * 3),
    ]


def test_malformed_images_are_counted_and_skipped(shared, sequence):
    """Each bad image is dropped and counted once; the next good image is tracked."""
    target = shared.init_on(sequence.frames[0], sequence.boxes[0])
    bad_before = shared.node.counters['bad_images']
    headers = []
    for count, msg in enumerate(malformed_images(sequence.frames[1]), 1):
        headers.append(shared.publish(msg))
        assert shared.wait_counter('bad_images', bad_before + count), msg.encoding
    detection = shared.track(sequence.frames[1])
    assert detection.id == target.id
    # The detection topic is ordered: had a bad image been answered, it would be here by now.
    assert all(shared.client.message(h) is None for h in headers)
    assert shared.node.counters['bad_images'] == bad_before + len(headers)


def test_corrupt_compressed_image_is_skipped(compressed_node, sequence):
    """Garbage compressed bytes are dropped and counted; the next image is tracked."""
    frames = sequence.frames
    target = compressed_node.init_on(compress(frames[0], '.jpg'), sequence.boxes[0])
    bad_before = compressed_node.node.counters['bad_images']
    garbage = CompressedImage(format='jpeg', data=b'\xff\xd8 this is no jpeg' * 20)
    header = compressed_node.publish(garbage)
    assert compressed_node.wait_counter('bad_images', bad_before + 1)
    detection = compressed_node.track(compress(frames[1], '.jpg'))
    assert detection.id == target.id
    assert compressed_node.client.message(header) is None
    assert compressed_node.node.counters['bad_images'] == bad_before + 1


def test_bad_image_under_an_init_is_counted_once(shared, sequence):
    """A bad image that a pending init applies to is one bad image and one rejected init."""
    shared.init_on(sequence.frames[0], sequence.boxes[0])
    bad_before = shared.node.counters['bad_images']
    rejected = shared.node.counters['init_rejected']
    shared.client.roi_pub.publish(RegionOfInterest(x_offset=40, y_offset=104, width=70,
                                                   height=90))
    shared.wait_pending_init()
    shared.publish(malformed_images(sequence.frames[1])[0])
    assert shared.wait_counter('init_rejected', rejected + 1)
    shared.track(sequence.frames[1])
    assert shared.node.counters['bad_images'] == bad_before + 1


def test_bad_init_boxes_are_rejected(shared, sequence):
    """NaN, empty, outside and 1x1 boxes are rejected; the current target keeps its id."""
    frames = sequence.frames
    target = shared.init_on(frames[0], sequence.boxes[0])
    mark = shared.client.log_position()
    bad_boxes = [(math.nan, 100.0, 50.0, 60.0), (60.0, 100.0, 0.0, 0.0),
                 (400.0, 300.0, 50.0, 50.0), (80.0, 120.0, 1.0, 1.0)]
    rejected = shared.node.counters['init_rejected']
    for count, (frame, box) in enumerate(zip(frames[1:], bad_boxes), 1):
        detection = shared.track(frame)
        assert detection.id == target.id
        shared.client.send_init(box, detection.header)
        assert shared.wait_counter('init_rejected', rejected + count), f'{box} was accepted'
    detection = shared.track(frames[len(bad_boxes) + 1])
    assert detection.id == target.id
    assert shared.node.counters['init_rejected'] == rejected + len(bad_boxes)
    for reason in ('NaN', 'zero or negative area', 'entirely outside', 'too small'):
        assert shared.logged(reason, mark), f'no log line says {reason!r}'


# -- QoS -----------------------------------------------------------------------------------


def test_reliable_publisher_reaches_best_effort_subscription(shared, sequence):
    """A reliable camera publisher (many drivers) is heard by the default subscription."""
    client = shared.client
    publisher = client.create_publisher(
        Image, 'image', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    try:
        assert wait_until(lambda: publisher.get_subscription_count() == 1)
        target = shared.init_on(sequence.frames[0], sequence.boxes[0], publisher)
        for frame in sequence.frames[1:4]:
            assert shared.track(frame, publisher=publisher).id == target.id
    finally:
        client.destroy_publisher(publisher)


@pytest.mark.slow
@pytest.mark.parametrize('fresh', [{'start': False, 'qos_reliability': 'reliable'}],
                         indirect=True)
def test_reliable_subscription_refuses_best_effort_publisher(fresh, sequence):
    """
    Check that a reliable subscription never matches a best-effort publisher.

    DDS matches a reader only with writers that offer at least the reliability it requests:
    a RELIABLE reader and a BEST_EFFORT writer are incompatible, so the two never connect and
    no image reaches the node. That is why the default is best effort.
    """
    assert fresh.node.start()
    client = fresh.client
    assert wait_until(lambda: client.init_pub.get_subscription_count() == 1)
    reliable = client.create_publisher(
        Image, 'image', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    assert wait_until(lambda: reliable.get_subscription_count() == 1)
    assert client.image_pub.get_subscription_count() == 0
    for frame in sequence.frames[:3]:
        fresh.publish(encode_image(frame, 'rgb8'))
    time.sleep(0.5)
    assert fresh.received() == 0
    fresh.publish(encode_image(sequence.frames[0], 'rgb8'), publisher=reliable)
    assert wait_until(lambda: fresh.received() == 1), 'the subscription exists but heard nothing'


# -- parameters ----------------------------------------------------------------------------


def test_score_threshold_loses_and_recovers(tuned, sequence):
    """score_threshold 1 with lost_patience 1 loses the target; 0 brings it back."""
    frames = sequence.frames
    target = tuned.init_on(frames[0], sequence.boxes[0])
    tuned.track(frames[1])
    results = set_parameters(tuned, score_threshold=1.0, lost_patience=1)
    assert all(r.successful for r in results), [r.reason for r in results]
    header = tuned.publish(encode_image(frames[2], 'rgb8'))
    assert wait_until(lambda: tuned.client.array_size(header) is not None)
    time.sleep(0.2)
    assert tuned.client.array_size(header) == 0
    assert tuned.client.message(header) is None
    assert tuned.node.state_label() == 'lost'

    results = set_parameters(tuned, score_threshold=0.0, lost_patience=5)
    assert all(r.successful for r in results), [r.reason for r in results]
    detection = tuned.track(frames[3])
    assert detection.id == target.id
    assert tuned.client.array_size(detection.header) == 1
    assert tuned.node.state_label() == 'tracking'
    set_parameters(tuned, score_threshold=FOLLOWING['score_threshold'],
                   lost_patience=FOLLOWING['lost_patience'])


def test_decoder_layers_within_the_model(tuned, sequence):
    """decoder_layers 1 is taken at runtime; 3 is refused (the model has 2) with a reason."""
    frames = sequence.frames
    try:
        (result,) = set_parameters(tuned, decoder_layers=1)
        assert result.successful, result.reason
        target = tuned.init_on(frames[0], sequence.boxes[0])
        assert tuned.track(frames[1]).id == target.id
        (result,) = set_parameters(tuned, decoder_layers=3)
        assert not result.successful
        assert 'decoder' in result.reason and '2' in result.reason, result.reason
        assert tuned.node.get_parameter('decoder_layers').value == 1
        assert tuned.track(frames[2]).id == target.id
    finally:
        set_parameters(tuned, decoder_layers=0)


def test_refused_atomic_set_changes_nothing(tuned, sequence):
    """A set_parameters_atomically refused for decoder_layers leaves the tracker as it was."""
    frames = sequence.frames
    target = tuned.init_on(frames[0], sequence.boxes[0])
    request = SetParametersAtomically.Request(parameters=[
        Parameter(name, value=value).to_parameter_msg()
        for name, value in (('score_threshold', 1.0), ('lost_patience', 1),
                            ('decoder_layers', 3))])
    try:
        result = tuned.call(SetParametersAtomically, f'{tuned.fqn}/set_parameters_atomically',
                            request).result
        assert not result.successful and 'decoder' in result.reason
        threshold, patience = FOLLOWING['score_threshold'], FOLLOWING['lost_patience']
        assert tuned.node.get_parameter('score_threshold').value == threshold
        config = tuned.node.session.tracker.config
        assert (config.score_threshold, config.lost_patience) == (threshold, patience), config
        # The thresholds the parameters say: still tracked.
        detection = tuned.track(frames[1])
        assert detection.id == target.id
        assert tuned.node.state_label() == 'tracking'
    finally:
        # Setting the values the parameters hold runs the callback and restores the tracker.
        set_parameters(tuned, score_threshold=FOLLOWING['score_threshold'],
                       lost_patience=FOLLOWING['lost_patience'])


def test_read_only_parameters_are_refused(tuned):
    """model_path and device cannot change at runtime."""
    (result,) = set_parameters(tuned, model_path='/tmp/other_model')
    assert not result.successful and 'read-only' in result.reason, result.reason
    (result,) = set_parameters(tuned, device='gpu')
    assert not result.successful, result.reason
    assert tuned.node.get_parameter('model_path').value == ''
    assert tuned.node.get_parameter('device').value == 'auto'


def test_class_id_shows_in_the_next_detection(tuned, sequence):
    """A new class_id is the hypothesis class of the next detection."""
    try:
        tuned.init_on(sequence.frames[0], sequence.boxes[0])
        (result,) = set_parameters(tuned, class_id='drone')
        assert result.successful, result.reason
        detection = tuned.track(sequence.frames[1])
        assert [r.hypothesis.class_id for r in detection.results] == ['drone']
        assert isinstance(detection.results[0], ObjectHypothesisWithPose)
    finally:
        set_parameters(tuned, class_id='target')


def test_debug_image_follows_parameter(tuned, sequence):
    """With a subscriber, a bgr8 overlay of the input's size and stamp comes; none when off."""
    overlays = {}
    subscription = tuned.client.create_subscription(
        Image, 'debug_image', lambda msg: overlays.setdefault(stamp_ns(msg.header), msg), 10)
    try:
        (result,) = set_parameters(tuned, debug_image=True)
        assert result.successful
        assert wait_until(lambda: tuned.node.outputs.debug.get_subscription_count() > 0)
        tuned.init_on(sequence.frames[0], sequence.boxes[0])
        detection = tuned.track(sequence.frames[1])
        key = stamp_ns(detection.header)
        assert wait_until(lambda: key in overlays), 'no debug image'
        overlay = overlays[key]
        assert overlay.encoding == 'bgr8'
        assert (overlay.width, overlay.height) == SIZE and overlay.step == SIZE[0] * 3
        assert overlay.header.frame_id == detection.header.frame_id

        (result,) = set_parameters(tuned, debug_image=False)
        assert result.successful
        detection = tuned.track(sequence.frames[2])
        time.sleep(0.3)
        assert stamp_ns(detection.header) not in overlays
    finally:
        tuned.client.destroy_subscription(subscription)
        set_parameters(tuned, debug_image=True)


# -- diagnostics ---------------------------------------------------------------------------


@pytest.mark.slow
def test_diagnostics_report_the_state(shared, sequence):
    """Diagnostics under '<fqn>: tracker' tell the state and the frames processed."""
    shared.init_on(sequence.frames[0], sequence.boxes[0])
    track_frames(shared, sequence.frames[1:3])
    values = fresh_diagnostics(shared)
    assert values['state'] == shared.node.state_label() == 'tracking'
    assert values['frames_processed'] == str(shared.node.counters['processed'])
    assert values['frames_received'] == str(shared.received())
    assert values['level'] == '0', values['message']
    assert values['track_id'] == shared.node.session.track_id
    assert float(values['inference_ms_median']) > 0.0

    shared.call(Trigger, 'reset', Trigger.Request())
    values = fresh_diagnostics(shared)
    assert values['state'] == shared.node.state_label() == 'idle'
    assert values['track_id'] == ''
