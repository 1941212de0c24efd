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
stamp pairing) is :mod:`detrack_model.tracking.target_3d`; this module only converts messages,
counts what it cannot answer and logs it (throttled per cause).
"""

import collections
from typing import Any, Callable, Dict, List, Optional, Tuple

from detrack_model.tracking.target_3d import (box_bearing, Intrinsics, locate_target,
                                              StampedHistory, Target3D, Target3DError)
from detrack_ros.detection_messages import stamp_ns
from detrack_ros.image_decoding import depth_image_to_array, DepthFrame, ImageConversionError
from detrack_ros.log_throttle import KeyedThrottle
from detrack_ros.parameters import depth_settings
from geometry_msgs.msg import PointStamped, Vector3Stamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection3D, ObjectHypothesisWithPose

LOG_THROTTLE_SEC = 5.0
# Depth images kept for pairing: half a second at 30 Hz, longer than a frame's stay in the
# node; each 640x480 16UC1 image is 600 kB.
DEPTH_HISTORY = 15

COUNTERS = ('target_points', 'depth_unmatched', 'depth_bad_images', 'depth_size_mismatch',
            'depth_too_few_valid', 'camera_info_unusable')
"""The node counters this module keeps (all in the node's diagnostics)."""

# Target3DError kinds and the counter each one goes to.
_COUNTER_OF = {'too_few_valid': 'depth_too_few_valid', 'outside': 'depth_too_few_valid',
               'camera_info': 'camera_info_unusable'}


class Target3DOutput:
    """Publish the bearing (always) and the 3-D target (with ``depth``) of tracked frames."""

    def __init__(self, node: Any, publisher: Callable[..., Any],
                 counts: collections.Counter, live: Dict[str, Any],
                 camera_info: Callable[[], Optional[CameraInfo]]) -> None:
        self._node = node
        self._counts = counts
        self._live = live
        self._camera_info = camera_info
        self.enabled = bool(node.get_parameter('depth').value)
        self._bearing_pub = publisher(Vector3Stamped, 'target_bearing')
        self._point_pub = self._detection_pub = None
        if self.enabled:
            self._point_pub = publisher(PointStamped, 'target_point')
            self._detection_pub = publisher(Detection3D, 'detection_3d')
        self._history: StampedHistory[DepthFrame] = StampedHistory(DEPTH_HISTORY)
        self._warnings = KeyedThrottle(LOG_THROTTLE_SEC)
        # (camera_info message, image size) -> its intrinsics, or why it cannot be used.
        self._calibration: Tuple[Any, Any, Any] = (None, None, None)

    def subscriptions(self, qos: Any) -> List[Any]:
        """Subscribe ``depth/image`` with the colour image's ``qos`` (with ``depth``)."""
        self._history.clear()
        if not self.enabled:
            return []
        return [self._node.create_subscription(Image, 'depth/image', self._on_depth, qos)]

    def _on_depth(self, msg: Image) -> None:
        try:
            frame = depth_image_to_array(msg, self._live['max_image_pixels'])
        except ImageConversionError as error:
            self._drop('depth_bad_images', f'depth image dropped: {error}')
            return
        self._history.add(stamp_ns(msg.header), frame)

    def publish(self, header: Header, box: Any, detection: Detection2D,
                image_size: Tuple[int, int]) -> None:
        """Publish the outputs of the tracked ``box`` on the colour image with ``header``."""
        intrinsics = self._intrinsics(image_size)
        if intrinsics is None:
            return
        bearing = Vector3Stamped(header=header)
        bearing.vector.x, bearing.vector.y, bearing.vector.z = box_bearing(box, intrinsics)
        self._bearing_pub.publish(bearing)
        if not self.enabled:
            return
        target = self._locate(header, box, intrinsics, image_size)
        if target is None:
            return
        point = PointStamped(header=header)
        point.point.x, point.point.y, point.point.z = target.position
        self._point_pub.publish(point)
        self._detection_pub.publish(detection_3d(header, target, detection))
        self._counts['target_points'] += 1

    def _intrinsics(self, image_size: Tuple[int, int]) -> Optional[Intrinsics]:
        info = self._camera_info()
        cached_info, cached_size, result = self._calibration
        if info is not cached_info or image_size != cached_size:
            if info is None:
                result = Target3DError("no camera_info received on 'camera_info' yet",
                                       'camera_info')
            else:
                try:
                    result = Intrinsics.from_k(info.k, (info.width, info.height), image_size)
                except Target3DError as error:
                    result = error
            self._calibration = (info, image_size, result)
        if isinstance(result, Target3DError):
            # Without depth a missing camera_info only means no bearing: counted, not logged.
            self._drop('camera_info_unusable', f'no 3-D output: {result}', log=self.enabled)
            return None
        return result

    def _locate(self, header: Header, box: Any, intrinsics: Intrinsics,
                image_size: Tuple[int, int]) -> Optional[Target3D]:
        live = self._live
        stamp = stamp_ns(header)
        tolerance = int(round(live['depth_sync_tolerance'] * 1e9))
        matched = self._history.match(stamp, tolerance, live['depth_wait'])
        if matched is None:
            self._drop('depth_unmatched', f'no 3-D output: no depth image within '
                       f"{live['depth_sync_tolerance']:g} s of the image stamped "
                       f'{stamp * 1e-9:.3f} ({len(self._history)} kept)')
            return None
        frame = matched[1]
        depth_size = (frame.array.shape[1], frame.array.shape[0])
        if depth_size != image_size:
            self._drop('depth_size_mismatch', f'no 3-D output: the depth image is '
                       f'{depth_size[0]}x{depth_size[1]}, the colour image '
                       f'{image_size[0]}x{image_size[1]}; depth must be aligned to colour')
            return None
        try:
            return locate_target(frame.array, live['depth_scale'] or frame.metres_per_unit, box,
                                 intrinsics, depth_settings(live))
        except Target3DError as error:
            self._drop(_COUNTER_OF.get(error.kind, 'depth_too_few_valid'),
                       f'no 3-D output: {error}')
            return None

    def _drop(self, counter: str, message: str, log: bool = True) -> None:
        self._counts[counter] += 1
        if not log:
            return
        held = self._warnings.admit(counter)
        if held is not None:
            more = f' ({held} more like it since the last message)' if held else ''
            self._node.get_logger().warning(
                f'{message} ({self._counts[counter]} so far){more}')


def detection_3d(header: Header, target: Target3D, detection: Detection2D) -> Detection3D:
    """
    Return the Detection3D of ``target``, with the id and results of the 2-D ``detection``.

    The box is axis-aligned with the optical frame (identity orientation); each result's pose
    is the target's centre. Covariances stay zero: the node does not estimate them.
    """
    msg = Detection3D(header=header, id=detection.id)
    x, y, z = target.position
    centre = msg.bbox.center
    centre.position.x, centre.position.y, centre.position.z = x, y, z
    centre.orientation.w = 1.0
    msg.bbox.size.x, msg.bbox.size.y, msg.bbox.size.z = target.size
    for result in detection.results:
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = result.hypothesis.class_id
        hypothesis.hypothesis.score = result.hypothesis.score
        hypothesis.pose.pose = centre
        msg.results.append(hypothesis)
    return msg


def diagnostics_values(counters: collections.Counter) -> Dict[str, str]:
    """Return this module's counters as ``/diagnostics`` values."""
    return {name: str(counters[name]) for name in COUNTERS}
