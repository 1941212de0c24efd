"""
The tracker node against hostile but fair input, on a real rclpy graph.

Every case here once went wrong in a way nobody was told about: a decompression bomb that
was decoded, a max_rate wait nothing could end, a configure failure without a reason, a
frame of another size that corrupted the track, boxes taken unclipped, a log flooded by
rejections, an init drawn on an image long gone. Each now ends in a clear refusal, or in a
logged and counted drop, and the node goes on tracking.
"""

import math
import time

from detrack_model.shipped import default_model_path
from detrack_ros.detection_messages import detection_from_box
from detrack_ros.replay import generated_sequence
from hostile_inputs import ALIAS_BOMB, copy_bundle, jpeg_bomb, png_bomb
from node_harness import (box_of, compress, encode_image, fresh_diagnostics, is_init,
                          NodeHarness, raw_image, set_parameters, wait_until)
import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray, ObjectHypothesisWithPose
import yaml

SIZE = (320, 240)


@pytest.fixture(scope='module')
def sequence():
    """Return a short synthetic sequence of a moving target with exact ground truth."""
    return generated_sequence(index=5, frames=40, size=SIZE)


@pytest.fixture(scope='module')
def node(module_ros_context):
    """Yield an active tracker node on raw images (diagnostics every 0.2 s)."""
    with NodeHarness(module_ros_context, {'diagnostics_period': 0.2,
                                          'lost_patience': 10000}) as harness:
        yield harness


@pytest.fixture(scope='module')
def compressed_node(module_ros_context):
    """Yield an active tracker node on image/compressed, with a debug_image subscriber."""
    with NodeHarness(module_ros_context, {'image_transport': 'compressed',
                                          'diagnostics_period': 0.2}) as harness:
        subscription = harness.client.create_subscription(Image, 'debug_image',
                                                          lambda msg: None, 1)
        assert wait_until(lambda: harness.node.outputs.debug.get_subscription_count() > 0)
        yield harness
        harness.client.destroy_subscription(subscription)


@pytest.fixture
def unstarted(module_ros_context, request):
    """Yield a tracker node of this test alone, not configured (parameters via indirect)."""
    with NodeHarness(module_ros_context, dict(request.param), start=False) as harness:
        yield harness


# -- 1. decoded-size limit -----------------------------------------------------------------


def test_decompression_bombs_are_refused_before_decoding(compressed_node, sequence):
    """A 600-byte JPEG and a PNG claiming 30000x30000 are bad images, never decoded."""
    harness, frames = compressed_node, sequence.frames
    target = harness.init_on(compress(frames[0], '.jpg'), sequence.boxes[0])
    bad = harness.node.counters['bad_images']
    processed = harness.node.counters['processed']
    mark = harness.client.log_position()
    headers = []
    for count, payload in enumerate((jpeg_bomb(), png_bomb()), 1):
        assert len(payload) < 1000
        headers.append(harness.publish(CompressedImage(format='jpeg', data=payload)))
        assert harness.wait_counter('bad_images', bad + count)
    assert harness.node.counters['processed'] == processed
    assert harness.track(compress(frames[1], '.jpg')).id == target.id
    assert all(harness.client.message(h) is None for h in headers)
    assert harness.logged('over the limit of 16777216', mark)
    values = fresh_diagnostics(harness)
    assert int(values['bad_images']) == bad + 2


def test_max_image_pixels_applies_to_raw_images_and_changes_at_run_time(node, sequence):
    """With max_image_pixels under one frame, raw frames are dropped; raised, tracked again."""
    target = node.init_on(sequence.frames[0], sequence.boxes[0])
    try:
        (result,) = set_parameters(node, max_image_pixels=SIZE[0] * SIZE[1] - 1)
        assert result.successful, result.reason
        bad = node.node.counters['bad_images']
        header = node.publish(encode_image(sequence.frames[1], 'rgb8'))
        assert node.wait_counter('bad_images', bad + 1)
        assert node.client.message(header) is None
    finally:
        set_parameters(node, max_image_pixels=4096 * 4096)
    assert node.track(sequence.frames[2]).id == target.id


# -- 2. max_rate waits ---------------------------------------------------------------------


def test_max_rate_wait_ends_when_max_rate_is_set_back(node, sequence):
    """max_rate 0.05 (a 20 s wait), then 0: the next frame is answered within a second."""
    frames = sequence.frames
    node.init_on(frames[0], sequence.boxes[0])
    try:
        assert set_parameters(node, max_rate=0.05)[0].successful
        node.track(frames[1])  # starts a 20 s wait
        header = node.publish(encode_image(frames[2], 'rgb8'))
        time.sleep(0.3)
        assert node.client.message(header) is None, 'max_rate did not hold the frame back'
        started = time.monotonic()
        assert set_parameters(node, max_rate=0.0)[0].successful
        assert node.wait_detection(header, timeout=5.0) is not None
        assert time.monotonic() - started < 1.0
    finally:
        set_parameters(node, max_rate=0.0)


def test_reset_and_a_new_init_end_a_max_rate_wait(node, sequence):
    """During a 20 s max_rate wait, reset and an init start the new target at once."""
    frames = sequence.frames
    old = node.init_on(frames[0], sequence.boxes[0])
    try:
        assert set_parameters(node, max_rate=0.05)[0].successful
        node.track(frames[1])
        node.call(Trigger, 'reset', Trigger.Request())
        started = time.monotonic()
        detection = node.init_on(frames[2], sequence.boxes[2])
        assert detection.id != old.id
        assert time.monotonic() - started < 1.5
    finally:
        set_parameters(node, max_rate=0.0)


@pytest.mark.slow
def test_diagnostics_warn_when_images_arrive_but_none_is_processed(node, sequence):
    """Tracking while every image is dropped says so in /diagnostics, not just 'tracking'."""
    node.init_on(sequence.frames[0], sequence.boxes[0])
    height, width = sequence.frames[0].shape[:2]
    broken = raw_image(b'\x00' * 10, 'rgb8', width, height, width * 3)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        node.publish(broken)
        time.sleep(0.1)
    values = fresh_diagnostics(node)
    assert values['state'] == 'tracking'
    assert values['level'] == '1' and 'none was processed' in values['message'], values
    node.track(sequence.frames[1])
    values = fresh_diagnostics(node)
    assert values['level'] == '0', values['message']


# -- 4. configure failures name their cause --------------------------------------------------


def broken_bundle(tmp_path, case: str):
    """Return the model path of a broken model and the file to blame (``case`` says how)."""
    if case == 'garbage.onnx':
        path = tmp_path / 'garbage.onnx'
        path.write_bytes(b'\x08\x07garbage, not a protobuf' * 40)
        return path, path
    stem = copy_bundle(default_model_path(), tmp_path, 'broken')
    config = stem.with_name(stem.name + '.yaml')
    document = yaml.safe_load(config.read_text())
    if case == 'alias bomb':
        config.write_text(ALIAS_BOMB)
        return stem, config
    if case == 'model is a string':
        document['model'] = 'vit_tiny'
    elif case == 'model is a list':
        document['model'] = [1, 2]
    elif case == 'decoder is a list':
        document['model']['decoder'] = [1, 2]
    config.write_text(yaml.safe_dump(document))
    return stem, config


@pytest.mark.parametrize('case, reason', [
    ('model is a string', 'model must be a mapping'),
    ('model is a list', 'model must be a mapping'),
    ('decoder is a list', 'decoder: expected a mapping'),
    ('alias bomb', 'expands to more than'),
    ('garbage.onnx', 'not a readable ONNX model'),
])
def test_configure_failure_logs_its_cause(module_ros_context, tmp_path, case, reason):
    """A broken model fails configure with a log line that names the file and the cause."""
    path, blamed = broken_bundle(tmp_path, case)
    with NodeHarness(module_ros_context, {'model_path': str(path)}, start=False) as harness:
        assert harness.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert harness.node.state_label() == 'inactive'
        assert harness.logged('configure failed')
        errors = harness.client.log_lines('configure failed')
    assert len(errors) == 1 and reason in errors[0] and blamed.name in errors[0], errors


# -- 5. a frame of another size --------------------------------------------------------------


def test_one_odd_sized_frame_is_skipped_and_counted(node, sequence, offline):
    """A 1x1 and a 16x16 frame in the stream: skipped and counted, the track is unharmed."""
    frames, truth = sequence.frames, sequence.boxes
    start = node.init_on(frames[0], truth[0])
    before = node.node.counters['frame_size_changes']
    mark = node.client.log_position()
    boxes = []
    for index, frame in enumerate(frames[1:30], 1):
        if index in (5, 12):
            odd = np.full((1, 1, 3) if index == 5 else (16, 16, 3), 128, np.uint8)
            header = node.publish(encode_image(odd, 'rgb8'))
            assert node.wait_counter('frame_size_changes', before + (1 if index == 5 else 2))
            assert node.client.message(header) is None
        detection = node.track(frame)
        assert detection.id == start.id
        boxes.append(box_of(detection))
    # The second warning falls within the first one's throttle period; the count has both.
    assert node.logged('image skipped: frame is 1x1, the target is tracked in 320x240', mark)
    assert fresh_diagnostics(node)['frame_size_changes'] == str(before + 2)
    # The same frames without the odd ones, offline: the node's boxes must be these.
    offline.update_config(lost_patience=10000)
    offline.initialize(frames[0], truth[0])
    expected = [offline.track(frame)[0] for frame in frames[1:30]]
    np.testing.assert_allclose(boxes, expected, atol=1e-3)


def test_a_lasting_size_change_rescales_the_track(node, sequence):
    """The stream halves its resolution for good: one frame skipped, then tracked, rescaled."""
    frames = sequence.frames
    target = node.init_on(frames[0], sequence.boxes[0])
    node.track(frames[1])
    skipped = node.node.counters['frame_size_changes']
    mark = node.client.log_position()
    half = [np.ascontiguousarray(frame[::2, ::2]) for frame in frames[2:6]]
    header = node.publish(encode_image(half[0], 'rgb8'))
    assert node.wait_counter('frame_size_changes', skipped + 1)
    assert node.client.message(header) is None
    for frame in half[1:]:
        detection = node.track(frame)
        x, y, w, h = box_of(detection)
        assert detection.id == target.id and x + w <= 160.0 and y + h <= 120.0
    assert node.logged('images are 160x120 now: target box rescaled', mark)
    assert node.node.counters['frame_size_changes'] == skipped + 1


# -- 6. init boxes clipped, scores checked ---------------------------------------------------


def test_oversized_init_roi_is_clipped_to_the_image(node, sequence):
    """An ROI of 4294967295 x 4294967295 starts a target on the whole image, clipped."""
    node.client.roi_pub.publish(RegionOfInterest(x_offset=0, y_offset=0, width=4294967295,
                                                 height=4294967295))
    node.wait_pending_init()
    header = node.publish(encode_image(sequence.frames[0], 'rgb8'))
    detection = node.wait_detection(header, is_init)
    assert detection is not None
    np.testing.assert_allclose(box_of(detection), (0, 0, SIZE[0], SIZE[1]), atol=1e-9)


def test_huge_init_box_is_clipped_not_an_error(node, sequence):
    """A 1e300 box at (-1e300, -1e300) is clipped to the image, not counted as an error."""
    errors = node.node.counters['errors']
    header = node.publish(encode_image(sequence.frames[1], 'rgb8'))
    node.client.init_pub.publish(detection_from_box((-1e300, -1e300, 2e300, 2e300), header))
    detection = node.wait_detection(header, is_init)
    assert detection is not None
    np.testing.assert_allclose(box_of(detection), (0, 0, SIZE[0], SIZE[1]), atol=1e-6)
    assert node.node.counters['errors'] == errors


@pytest.mark.parametrize('unstarted', [{'auto_init': True}], indirect=True)
def test_detector_hand_over_refuses_infinite_scores_and_clips_boxes(unstarted, sequence):
    """A detection scored inf is refused and counted; a 10**6-pixel one is clipped."""
    harness = unstarted
    assert harness.node.start()
    harness.wait_connected()

    def handover(box, score, header):
        msg = Detection2DArray(header=header)
        detection = detection_from_box(box, header)
        detection.results = [ObjectHypothesisWithPose()]
        detection.results[0].hypothesis.score = score
        msg.detections = [detection]
        harness.client.detector_pub.publish(msg)

    header = harness.publish_received(encode_image(sequence.frames[0], 'rgb8'))
    handover((100.0, 80.0, 40.0, 40.0), math.inf, header)
    assert harness.wait_counter('init_rejected', 1)
    assert harness.logged('detection score inf is not a finite number')
    header = harness.publish_received(encode_image(sequence.frames[1], 'rgb8'))
    handover((-1e6, -1e6, 2e6, 2e6), 0.9, header)
    detection = harness.wait_detection(header, is_init)
    assert detection is not None
    np.testing.assert_allclose(box_of(detection), (0, 0, SIZE[0], SIZE[1]), atol=1e-6)


# -- 7. throttled rejection warnings ---------------------------------------------------------


@pytest.mark.slow
def test_a_flood_of_bad_init_boxes_is_counted_but_barely_logged(node, sequence):
    """5000 NaN boxes at about 1000/s: each one counted (as received), a few log lines."""
    header = node.publish(encode_image(sequence.frames[0], 'rgb8'))
    mark = node.client.log_position()
    rejected = node.node.counters['init_rejected']
    box = detection_from_box((math.nan, 10.0, 20.0, 20.0), header)
    started = time.monotonic()
    for index in range(5000):
        node.client.init_pub.publish(box)
        if index % 100 == 99:
            time.sleep(max(0.0, started + (index + 1) / 1000.0 - time.monotonic()))
    counted = 0
    while wait_until(lambda: node.node.counters['init_rejected'] > rejected + counted, 1.0):
        counted = node.node.counters['init_rejected'] - rejected
    elapsed = time.monotonic() - started
    assert counted >= 200, f'only {counted} of 5000 boxes arrived'
    assert node.logged('init_box rejected', mark)
    lines = len(node.client.log_lines('init_box rejected', mark))
    assert 1 <= lines <= 2 + elapsed / 5.0, f'{lines} warnings for {counted} rejections'


# -- an init drawn on an image the node no longer has ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('unstarted', [{'init_history': 3}], indirect=True)
def test_init_stamped_before_the_history_is_logged_and_counted(unstarted, sequence):
    """With 3 images kept, an init stamped with the 1st of 6 starts on the newest, said so."""
    harness = unstarted
    assert harness.node.start()
    harness.wait_connected()
    headers = [harness.publish_received(encode_image(frame, 'rgb8'))
               for frame in sequence.frames[:6]]
    harness.settle()
    harness.client.send_init(sequence.boxes[0], headers[0])
    assert harness.wait_counter('init_stale', 1)
    assert harness.logged('is not among the 3 images kept (init_history)')
    assert harness.wait_detection(headers[5], is_init) is not None
    assert fresh_diagnostics(harness)['init_stale'] == '1'
