"""
The tracker node's 3-D outputs: the target's bearing, and with ``depth`` its 3-D position.

Topics (relative):

- out, whenever the target is tracked and ``camera_info`` is usable: ``target_bearing``
  (``geometry_msgs/Vector3Stamped``), the unit ray through the box centre in the camera's
  optical frame, through K (pinhole, no lens distortion);
- with ``depth``: in ``depth/image`` (``sensor_msgs/Image``, 16UC1 millimetres or 32FC1
  metres, aligned to the colour image, ``depth_scale`` for other units), paired with the
  colour image by stamp; out ``target_point`` (``geometry_msgs/PointStamped``) and
  ``detection_3d`` (``vision_msgs/Detection3D``).

Every output carries the colour image's header. The maths (depth statistic, projection, size,
stamp pairing) is :mod:`detrack_model.tracking.target_3d`, the rules that pair, count and
fill fields :mod:`detrack_ros.target_3d_fields` (shared with the bag tool); this module only
builds the ROS messages, subscribes and publishes, and logs (throttled per cause).
"""

import collections
from typing import Any, Callable, Dict, List, Optional

from detrack_model.tracking.session import StepResult
from detrack_model.tracking.target_3d import Target3D
from detrack_ros.detection_messages import assign_fields, stamp_ns
from detrack_ros.log_throttle import KeyedThrottle
from detrack_ros.target_3d_fields import (bearing_fields, COUNTERS, detection_3d_fields,
                                          point_fields, Target3DEstimator)
from geometry_msgs.msg import PointStamped, Vector3Stamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection3D

LOG_THROTTLE_SEC = 5.0

__all__ = ['COUNTERS', 'detection_3d', 'diagnostics_values', 'Target3DOutput']


class Target3DOutput:
    """Publish the bearing (always) and the 3-D target (with ``depth``) of tracked frames."""

    def __init__(self, node: Any, publisher: Callable[..., Any],
                 counts: collections.Counter, live: Dict[str, Any],
                 camera_info: Callable[[], Optional[CameraInfo]]) -> None:
        self._node = node
        self._live = live
        self._camera_info = camera_info
        self.enabled = bool(node.get_parameter('depth').value)
        self._bearing_pub = publisher(Vector3Stamped, 'target_bearing')
        self._point_pub = self._detection_pub = None
        if self.enabled:
            self._point_pub = publisher(PointStamped, 'target_point')
            self._detection_pub = publisher(Detection3D, 'detection_3d')
        self._estimator = Target3DEstimator(counts, live, self._warn, 'camera_info')
        self._warnings = KeyedThrottle(LOG_THROTTLE_SEC)

    def subscriptions(self, qos: Any) -> List[Any]:
        """Subscribe ``depth/image`` with the colour image's ``qos`` (with ``depth``)."""
        self._estimator.history.clear()
        if not self.enabled:
            return []
        return [self._node.create_subscription(Image, 'depth/image',
                                               self._estimator.add_depth, qos)]

    def publish(self, result: StepResult, detection: Detection2D) -> None:
        """Publish the 3-D outputs of a tracked frame's result (``detection``: its 2-D one)."""
        header, box, estimator = result.item.msg.header, result.box, self._estimator
        height, width = result.frame.array.shape[:2]
        image_size = (width, height)
        # Without depth a missing camera_info only means no bearing: counted, not logged.
        intrinsics = estimator.intrinsics(self._camera_info(), image_size, tell=self.enabled)
        if intrinsics is None:
            return
        self._bearing_pub.publish(assign_fields(Vector3Stamped(header=header),
                                                bearing_fields(box, intrinsics)))
        if not self.enabled:
            return
        target = estimator.locate(stamp_ns(header), box, intrinsics, image_size,
                                  self._live['depth_wait'])
        if target is None:
            return
        self._point_pub.publish(assign_fields(PointStamped(header=header),
                                              point_fields(target)))
        self._detection_pub.publish(detection_3d(header, target, detection))
        estimator.counts['target_points'] += 1

    def _warn(self, counter: str, message: str) -> None:
        held = self._warnings.admit(counter)
        if held is not None:
            more = f' ({held} more like it since the last message)' if held else ''
            self._node.get_logger().warning(
                f'{message} ({self._estimator.counts[counter]} so far){more}')


def detection_3d(header: Header, target: Target3D, detection: Detection2D) -> Detection3D:
    """Return the Detection3D of ``target``, with the id and results of the 2-D ``detection``."""
    hypotheses = [(r.hypothesis.class_id, r.hypothesis.score) for r in detection.results]
    return assign_fields(Detection3D(header=header),
                         detection_3d_fields(target, detection.id, hypotheses))


def diagnostics_values(counters: collections.Counter) -> Dict[str, str]:
    """Return the 3-D outputs' counters as ``/diagnostics`` values."""
    return {name: str(counters[name]) for name in COUNTERS}
