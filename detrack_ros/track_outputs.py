"""
What the tracker node publishes: the target per processed frame, the debug image, diagnostics.

``detection`` (Detection2D) only while the target is tracked; ``detections``
(Detection2DArray) every processed frame, empty while it is lost; ``debug_image`` only while
someone subscribes; ``/diagnostics`` on the node's timer. Every output of a frame carries
that image's header.
"""

from typing import Any, Dict, List, Optional

from detrack_model.tracking.session import StepResult
from detrack_ros.debug_overlay import draw_overlay
from detrack_ros.detection_messages import detection_array, detection_from_box
from detrack_ros.image_conversion import array_to_image
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D, Detection2DArray


class TrackOutputs:
    """The node's publishers, created on configure and destroyed on cleanup."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._publishers: List[Any] = []
        self.detection = self.publisher(Detection2D, 'detection')
        self.detections = self.publisher(Detection2DArray, 'detections')
        self.debug = self.publisher(Image, 'debug_image', 1)
        self.diagnostics = self.publisher(DiagnosticArray, '/diagnostics', 1)

    def publisher(self, msg_type: Any, topic: str, depth: int = 10) -> Any:
        """Create a publisher that :meth:`destroy` destroys with these."""
        publisher = self._node.create_publisher(msg_type, topic, depth)
        self._publishers.append(publisher)
        return publisher

    def publish(self, result: StepResult, class_id: str, debug: bool) -> Optional[Detection2D]:
        """
        Publish one processed frame's result (and its debug image when asked and heard).

        Return the Detection2D published, None while the target is lost.
        """
        header, detection = result.item.msg.header, None
        if result.lost:
            self.detections.publish(detection_array(header))
        else:
            detection = detection_from_box(result.box, header, class_id, result.score,
                                           result.track_id)
            self.detection.publish(detection)
            self.detections.publish(detection_array(header, [detection]))
        if debug and self.debug.get_subscription_count() > 0:
            overlay = draw_overlay(result.frame, result.box, result.score, result.lost,
                                   result.search_region)
            self.debug.publish(array_to_image(overlay, 'bgr8', header))
        return detection

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
        for publisher in self._publishers:
            self._node.destroy_publisher(publisher)
        self._publishers = []
