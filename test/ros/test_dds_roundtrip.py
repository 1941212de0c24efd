"""Messages survive a real DDS round trip between two processes, every field intact."""

import pathlib
import subprocess
import sys

from geometry_msgs.msg import PoseWithCovariance
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_graph import assert_messages_equal, spin_until, unique_topic
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D, ObjectHypothesisWithPose

ECHO_NODE = pathlib.Path(__file__).resolve().parent / 'echo_node.py'


def make_detection():
    """Build a Detection2D with every field, nested ones included, away from its default."""
    detection = Detection2D()
    detection.header.stamp.sec = 1_700_000_123
    detection.header.stamp.nanosec = 456_789_012
    detection.header.frame_id = 'camera_color_optical_frame'
    for index, (class_id, score) in enumerate((('drone', 0.875), ('bird', 0.125))):
        result = ObjectHypothesisWithPose()
        result.hypothesis.class_id = class_id
        result.hypothesis.score = score
        pose = PoseWithCovariance()
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 1.5, -2.25, 3.0 + index
        pose.pose.orientation.x, pose.pose.orientation.y = 0.1, 0.2
        pose.pose.orientation.z, pose.pose.orientation.w = 0.3, 0.9
        pose.covariance = np.arange(36, dtype=np.float64) * 0.5 + index
        result.pose = pose
        detection.results.append(result)
    detection.bbox.center.position.x = 320.25
    detection.bbox.center.position.y = 240.75
    detection.bbox.center.theta = 0.125
    detection.bbox.size_x = 64.5
    detection.bbox.size_y = 48.25
    detection.id = 'track-7'
    return detection


def make_image():
    """Build a 640x480 rgb8 image of random pixels with a padded row stride."""
    height, width, step = 480, 640, 640 * 3 + 8
    image = Image()
    image.header.stamp.sec = 42
    image.header.stamp.nanosec = 7
    image.header.frame_id = 'camera'
    image.height, image.width, image.step = height, width, step
    image.encoding = 'rgb8'
    image.is_bigendian = 1
    image.data = np.random.default_rng(0).integers(0, 256, height * step, np.uint8).tobytes()
    return image


def round_trip(context, message):
    """
    Send ``message`` to an echo node in another process and return what comes back.

    The message crosses DDS twice (serialised, sent, received, deserialised each way), between
    two processes with a node each.
    """
    module = type(message).__module__.split('.')[0]
    type_name = f'{module}/msg/{type(message).__name__}'
    topic_out, topic_back = unique_topic('detrack_out'), unique_topic('detrack_back')
    echo = subprocess.Popen([sys.executable, str(ECHO_NODE), type_name, topic_out, topic_back],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    node = rclpy.create_node('roundtrip_sender', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received = []
    try:
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        publisher = node.create_publisher(type(message), topic_out, qos)
        subscription = node.create_subscription(type(message), topic_back, received.append, qos)
        matched = spin_until(executor, lambda: publisher.get_subscription_count() == 1
                             and subscription.get_publisher_count() == 1, timeout=30.0)
        assert matched, 'the echo node was never discovered: ' + finish(echo)
        publisher.publish(message)
        assert spin_until(executor, lambda: received), 'nothing came back: ' + finish(echo)
    finally:
        finish(echo)
        executor.shutdown()
        node.destroy_node()
    return received[0]


def finish(process: subprocess.Popen) -> str:
    """Stop ``process`` and return its error output (for failure messages)."""
    if process.poll() is None:
        process.terminate()
    try:
        _, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr or ''


def test_detection2d_round_trip(ros_context):
    """Every field of a Detection2D, nested results and bbox included, survives DDS."""
    sent = make_detection()
    received = round_trip(ros_context, sent)
    assert_messages_equal(sent, received)
    assert received.bbox.center.position.x == pytest.approx(320.25)
    assert received.results[1].hypothesis.class_id == 'bird'
    assert received.results[1].pose.covariance[35] == pytest.approx(35 * 0.5 + 1)


def test_image_round_trip(ros_context):
    """A 0.9 MB sensor_msgs/Image arrives byte for byte, with its geometry fields."""
    sent = make_image()
    received = round_trip(ros_context, sent)
    assert_messages_equal(sent, received)
    assert bytes(received.data) == bytes(sent.data)


def test_field_comparison_detects_a_difference():
    """The comparison the round trips rely on does fail when one nested field differs."""
    sent, changed = make_detection(), make_detection()
    changed.results[1].pose.covariance[7] += 1e-9
    with pytest.raises(AssertionError, match=r'results\[1\]\.pose\.covariance'):
        assert_messages_equal(sent, changed)
