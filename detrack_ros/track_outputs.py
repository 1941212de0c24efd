"""
What the tracker node publishes: the target per processed frame, the debug image, diagnostics.

``detection`` (Detection2D) only while the target is tracked; ``detections``
(Detection2DArray) every processed frame, empty while it is lost; ``debug_image`` only while
someone subscribes; ``/diagnostics`` on the node's timer. Every output of a frame carries
that image's header.
"""

from typing import Any, Dict, Optional, Sequence

from detrack_ros.debug_overlay import draw_overlay
from detrack_ros.detection_messages import detection_array, detection_from_box
from detrack_ros.image_conversion import array_to_image, Frame
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray


class TrackOutputs:
    """The node's publishers, created on configure and destroyed on cleanup."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.detection = node.create_publisher(Detection2D, 'detection', 10)
        self.detections = node.create_publisher(Detection2DArray, 'detections', 10)
        self.debug = node.create_publisher(Image, 'debug_image', 1)
        self.diagnostics = node.create_publisher(DiagnosticArray, '/diagnostics', 1)

    def publish(self, header: Header, frame: Frame, box: np.ndarray, score: float, lost: bool,
                track_id: str, class_id: str, debug: bool,
                search: Optional[Sequence[float]] = None) -> None:
        """Publish one processed frame's result (and its debug image when asked and heard)."""
        if lost:
            self.detections.publish(detection_array(header))
        else:
            detection = detection_from_box(box, header, class_id, score, track_id)
            self.detection.publish(detection)
            self.detections.publish(detection_array(header, [detection]))
        if debug and self.debug.get_subscription_count() > 0:
            overlay = draw_overlay(frame, box, score, lost, search)
            self.debug.publish(array_to_image(overlay, 'bgr8', header))

    def publish_diagnostics(self, warn: bool, message: str, hardware_id: str,
                            values: Dict[str, Any]) -> None:
        """Publish one status named after the node, with ``values`` as key/value pairs."""
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if warn else DiagnosticStatus.OK,
            name=f'{self._node.get_fully_qualified_name()}: tracker', message=message,
            hardware_id=hardware_id,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self.diagnostics.publish(array)

    def destroy(self) -> None:
        """Destroy the publishers."""
        for publisher in (self.detection, self.detections, self.debug, self.diagnostics):
            self._node.destroy_publisher(publisher)
