"""
The rules of the 3-D outputs, without ROS.

Which depth image goes with a frame, what counts as a usable calibration, which counter a
frame without an answer goes to, and the fields of the messages.

The node (:mod:`detrack_ros.target_3d_messages`, with the ROS Python classes) and the bag tool
(:mod:`detrack_ros.bag_target_3d`, with messages decoded from and encoded to MCAP files) apply
these same rules; the maths is :mod:`detrack_model.tracking.target_3d`. Messages are read by
field name; fields are written as plain nested dictionaries, headers left out.
"""

import collections
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from detrack_model.tracking.target_3d import (box_bearing, Intrinsics, locate_target,
                                              StampedHistory, Target3D, Target3DError)
from detrack_ros.detection_fields import stamp_ns
from detrack_ros.image_decoding import depth_image_to_array, DepthFrame, ImageConversionError
from detrack_ros.parameters import depth_settings

# Depth images kept for pairing: half a second at 30 Hz, longer than a frame's stay in the
# node; each 640x480 16UC1 image is 600 kB.
DEPTH_HISTORY = 15

COUNTERS = ('target_points', 'depth_unmatched', 'depth_bad_images', 'depth_size_mismatch',
            'depth_too_few_valid', 'camera_info_unusable')
"""The counters of the 3-D outputs (all in the node's diagnostics)."""

LIVE_PARAMETERS = ('max_image_pixels', 'depth_scale', 'depth_sync_tolerance', 'depth_min',
                   'depth_max', 'depth_percentile', 'depth_roi_fraction',
                   'depth_min_valid_pixels')
"""The node parameters :class:`Target3DEstimator` reads."""

# Target3DError kinds and the counter each one goes to.
_COUNTER_OF = {'too_few_valid': 'depth_too_few_valid', 'outside': 'depth_too_few_valid',
               'camera_info': 'camera_info_unusable'}


def bearing_fields(box: Sequence[float], intrinsics: Intrinsics) -> Dict[str, Any]:
    """Return the fields of a ``geometry_msgs/Vector3Stamped`` bearing of ``box``."""
    x, y, z = box_bearing(box, intrinsics)
    return {'vector': {'x': x, 'y': y, 'z': z}}


def point_fields(target: Target3D) -> Dict[str, Any]:
    """Return the fields of the ``geometry_msgs/PointStamped`` of ``target``'s centre."""
    x, y, z = target.position
    return {'point': {'x': x, 'y': y, 'z': z}}


def detection_3d_fields(target: Target3D, track_id: str,
                        hypotheses: Sequence[Tuple[str, float]]) -> Dict[str, Any]:
    """
    Return the fields of the ``vision_msgs/Detection3D`` of ``target``.

    ``track_id`` and ``hypotheses`` (class id, score) are those of the 2-D detection of the
    same frame. The box is axis-aligned with the optical frame (identity orientation); each
    result's pose is the target's centre. Covariances stay zero: nothing estimates them.
    """
    x, y, z = target.position
    centre = {'position': {'x': x, 'y': y, 'z': z},
              'orientation': {'x': 0.0, 'y': 0.0, 'z': 0.0, 'w': 1.0}}
    width, height, extent = target.size
    return {'id': track_id,
            'bbox': {'center': centre, 'size': {'x': width, 'y': height, 'z': extent}},
            'results': [{'hypothesis': {'class_id': class_id, 'score': float(score)},
                         'pose': {'pose': centre}} for class_id, score in hypotheses]}


class Target3DEstimator:
    """
    The 3-D answer of tracked frames: depth images kept by stamp, the calibration, the counts.

    ``live`` holds the node's parameters :data:`LIVE_PARAMETERS` (read on every frame, so a
    change applies at once); every frame without an answer adds one to its cause's counter in
    ``counts`` and is handed to ``report(counter, message)`` to be told.
    """

    def __init__(self, counts: collections.Counter, live: Mapping[str, Any],
                 report: Callable[[str, str], None], camera_info_topic: str) -> None:
        self.counts = counts
        self._live = live
        self._report = report
        self._camera_info_topic = camera_info_topic
        self.history: StampedHistory[DepthFrame] = StampedHistory(DEPTH_HISTORY)
        # (camera_info message, image size) -> its intrinsics, or why it cannot be used.
        self._calibration: Tuple[Any, Any, Any] = (None, None, None)

    def drop(self, counter: str, message: str, tell: bool = True) -> None:
        """Count a frame (or depth image) without an answer; tell why unless ``tell`` is off."""
        self.counts[counter] += 1
        if tell:
            self._report(counter, message)

    def add_depth(self, msg: Any) -> None:
        """Keep the depth image ``msg`` (a sensor_msgs/Image) for pairing, or count it bad."""
        try:
            frame = depth_image_to_array(msg, self._live['max_image_pixels'])
        except ImageConversionError as error:
            self.drop('depth_bad_images', f'depth image dropped: {error}')
            return
        self.history.add(stamp_ns(msg.header), frame)

    def intrinsics(self, info: Any, image_size: Tuple[int, int],
                   tell: bool = True) -> Optional[Intrinsics]:
        """
        Return the intrinsics of camera_info ``info`` for images of ``image_size``, or None.

        None (counted) when ``info`` is None (none received yet) or cannot be used; ``tell``
        off counts without telling (a bearing alone is not worth a warning).
        """
        cached_info, cached_size, result = self._calibration
        if info is not cached_info or image_size != cached_size:
            if info is None:
                result = Target3DError(f'no camera_info received on '
                                       f'{self._camera_info_topic!r} yet', 'camera_info')
            else:
                try:
                    result = Intrinsics.from_k(info.k, (info.width, info.height), image_size)
                except Target3DError as error:
                    result = error
            self._calibration = (info, image_size, result)
        if isinstance(result, Target3DError):
            self.drop('camera_info_unusable', f'no 3-D output: {result}', tell)
            return None
        return result

    def locate(self, stamp: int, box: Any, intrinsics: Intrinsics, image_size: Tuple[int, int],
               wait_sec: float = 0.0) -> Optional[Target3D]:
        """
        Return the target of ``box`` on the frame stamped ``stamp`` ns, or None (counted).

        The depth image is the kept one closest in stamp within ``depth_sync_tolerance``;
        ``wait_sec`` is how long to wait for it while depth images arrive.
        """
        live = self._live
        tolerance = int(round(live['depth_sync_tolerance'] * 1e9))
        matched = self.history.match(stamp, tolerance, wait_sec)
        if matched is None:
            self.drop('depth_unmatched', f'no 3-D output: no depth image within '
                      f"{live['depth_sync_tolerance']:g} s of the image stamped "
                      f'{stamp * 1e-9:.3f} ({len(self.history)} kept)')
            return None
        frame = matched[1]
        depth_size = (frame.array.shape[1], frame.array.shape[0])
        if depth_size != image_size:
            self.drop('depth_size_mismatch', f'no 3-D output: the depth image is '
                      f'{depth_size[0]}x{depth_size[1]}, the colour image '
                      f'{image_size[0]}x{image_size[1]}; depth must be aligned to colour')
            return None
        try:
            return locate_target(frame.array, live['depth_scale'] or frame.metres_per_unit, box,
                                 intrinsics, depth_settings(live))
        except Target3DError as error:
            self.drop(_COUNTER_OF.get(error.kind, 'depth_too_few_valid'),
                      f'no 3-D output: {error}')
            return None
