"""
The tracker node's camera input: one subscription, raw or compressed, and its conversion.

The callback only time-stamps the message and hands it on; conversion to an array happens on
the inference thread, for the newest message only. An image that cannot be converted is
counted as ``bad_images`` and logged (throttled), never tracked.
"""

import collections
import time
from typing import Any, Callable, Dict, NamedTuple, Optional

from detrack_model.tracking.session import FrameData
from detrack_ros.image_decoding import (compressed_to_array, image_to_array,
                                        ImageConversionError)
from detrack_ros.session_log import LOG_THROTTLE_SEC
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image


class Received(NamedTuple):
    """An image message as the callback stored it."""

    msg: Any
    compressed: bool
    monotonic: float


class ImageInput:
    """Subscribe to ``image`` or ``image/compressed``; convert what the node tracks."""

    def __init__(self, node: Node, live: Dict[str, Any], counts: collections.Counter,
                 receive: Callable[[Received], None]) -> None:
        self._node, self._live, self._counts, self._receive = node, live, counts, receive

    @property
    def compressed(self) -> bool:
        """Tell whether the node takes compressed images."""
        return self._node.get_parameter('image_transport').value == 'compressed'

    def topic(self) -> str:
        """Return the resolved name of the image topic."""
        return self._node.resolve_topic_name('image/compressed' if self.compressed else 'image')

    def qos(self) -> QoSProfile:
        """Return the QoS the parameters ask for (camera streams: the depth image too)."""
        parameter = self._node.get_parameter
        reliability = (ReliabilityPolicy.RELIABLE
                       if parameter('qos_reliability').value == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=parameter('qos_depth').value,
                          reliability=reliability,
                          durability=qos_profile_sensor_data.durability)

    def subscribe(self) -> Any:
        """Create the image subscription with :meth:`qos`."""
        qos = self.qos()
        if self.compressed:
            return self._node.create_subscription(
                CompressedImage, 'image/compressed',
                lambda msg: self._receive(Received(msg, True, time.monotonic())), qos)
        return self._node.create_subscription(
            Image, 'image', lambda msg: self._receive(Received(msg, False, time.monotonic())),
            qos)

    def convert(self, item: Received) -> Optional[FrameData]:
        """Return the frame of a message, or None after counting and logging a bad one."""
        try:
            if item.compressed:
                return compressed_to_array(item.msg, self._live['max_image_pixels'])
            return image_to_array(item.msg, self._live['mono16_shift'],
                                  self._live['max_image_pixels'])
        except ImageConversionError as error:
            self._counts['bad_images'] += 1
            self._node.get_logger().warning(
                f'image dropped ({self._counts["bad_images"]} so far): {error}',
                throttle_duration_sec=LOG_THROTTLE_SEC)
            return None
