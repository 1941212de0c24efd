"""
Turn the tracker node's initial-target inputs into boxes, or into a one-line rejection.

Every box here is ``(x, y, w, h)`` in image pixels as floats: ``(x, y)`` the top-left corner,
x to the right and y down, ``w``/``h`` the width and height. The functions read messages but
hold no node state and never touch rclpy, so the node owns subscriptions, clocks and logging
while the arithmetic and the rejection rules are tested on hand-built messages.

A rejection is an :class:`InitBoxError` whose message is meant to be logged as it is.
Converters only convert; the rules themselves (:func:`validate_box`, :class:`ClickPair`) are
ROS-free, in :mod:`detrack_model.tracking.boxes`, and re-exported here for the node, as are the
message field rules of :mod:`detrack_ros.detection_fields`.
"""

import math
from typing import Optional, Tuple

from detrack_model.tracking.boxes import (Box, ClickPair, ImageSize, InitBoxError,
                                          MIN_BOX_SIDE, validate_box)
from detrack_ros.detection_fields import box_from_detection, box_from_roi
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo
from vision_msgs.msg import Detection2DArray


def _strip_slash(frame_id: str) -> str:
    # tf2 frame ids drop the leading '/' that ROS 1 used; old drivers still send it.
    return frame_id[1:] if frame_id.startswith('/') else frame_id


def project_point(msg: PointStamped, camera_info: Optional[CameraInfo]) -> Tuple[float, float]:
    """
    Return the pixel ``(u, v)`` of an RViz "Publish Point" click given in the camera frame.

    RViz publishes the clicked 3-D point in its Fixed Frame, and without tf the node cannot
    move it into the camera; so the point is accepted only when ``msg.header.frame_id`` is the
    camera's optical frame (``camera_info.header.frame_id``, a leading '/' ignored), where z
    points forward along the optical axis, x right and y down. The point then goes through
    ``P`` when it is not all zeros, as ``[u w, v w, w] = P [x, y, z, 1]``, which includes the
    ``Tx``/``Ty`` column of the second camera of a stereo pair; otherwise through ``K``.
    Lens distortion is not applied: the pixel is exact on rectified images and approximate on
    raw ones, off by the distortion at that spot, which is small near the image centre.

    Raise InitBoxError when camera_info is None (not received yet), when the frames differ,
    when the camera is uncalibrated, and for points that are not in front of the camera.
    """
    if camera_info is None:
        raise InitBoxError("camera_info has not been received on the 'camera_info' topic yet; "
                           'cannot project the clicked point into the image')
    camera_frame = _strip_slash(camera_info.header.frame_id)
    point_frame = _strip_slash(msg.header.frame_id)
    if not camera_frame:
        raise InitBoxError('camera_info has an empty header.frame_id; cannot check that the '
                           'clicked point is in the camera optical frame')
    if point_frame != camera_frame:
        raise InitBoxError(f"clicked point is in frame '{msg.header.frame_id}', not the camera "
                           f"optical frame '{camera_info.header.frame_id}': set RViz's Fixed "
                           f"Frame to '{camera_frame}'")
    x, y, z = float(msg.point.x), float(msg.point.y), float(msg.point.z)
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise InitBoxError(f'clicked point ({x:g}, {y:g}, {z:g}) has a NaN or infinite value')
    if z <= 0.0:
        raise InitBoxError(f'clicked point ({x:g}, {y:g}, {z:g}) has z <= 0: it is not in '
                           f"front of camera '{camera_frame}' and cannot be projected")
    p = [float(v) for v in camera_info.p]
    k = [float(v) for v in camera_info.k]
    if any(p):
        rows = [p[0:4], p[4:8], p[8:12]]
        xyzw = (x, y, z, 1.0)
    elif any(k):
        rows = [k[0:3], k[3:6], k[6:9]]
        xyzw = (x, y, z)
    else:
        raise InitBoxError(f"camera_info of '{camera_frame}' has all-zero K and P: the camera "
                           'is not calibrated, so clicked points cannot be projected')
    u, v, w = (sum(a * b for a, b in zip(row, xyzw)) for row in rows)
    if not w > 0.0:
        raise InitBoxError(f'clicked point ({x:g}, {y:g}, {z:g}) projects behind the camera '
                           '(camera_info projection row 3 gives w <= 0)')
    return (u / w, v / w)


def select_detection(msg: Detection2DArray, class_id: str,
                     min_score: float) -> Optional[Tuple[Box, float]]:
    """
    Return the box and score of the best detection to start tracking from, or None.

    A detection qualifies through any of its hypotheses whose ``class_id`` equals ``class_id``
    (an empty ``class_id`` accepts every class) and whose score is at least ``min_score``;
    its score is that of its best qualifying hypothesis. Detections without hypotheses never
    qualify, since they carry no score to compare. Of equal scores the first detection wins.
    NaN and infinite scores never qualify; when one was all the class had, InitBoxError (kind
    ``score``) says so, since a detector that sends them is broken. The box is not validated;
    the node passes it to :func:`validate_box`.
    """
    best: Optional[Tuple[Box, float]] = None
    refused: Optional[float] = None
    for detection in msg.detections:
        scores = [float(r.hypothesis.score) for r in detection.results
                  if not class_id or r.hypothesis.class_id == class_id]
        finite = [s for s in scores if math.isfinite(s)]
        if len(finite) < len(scores):
            refused = next(s for s in scores if not math.isfinite(s))
        finite = [s for s in finite if s >= min_score]
        if finite and (best is None or max(finite) > best[1]):
            best = (box_from_detection(detection), max(finite))
    if best is None and refused is not None:
        raise InitBoxError(f'detection score {refused:g} is not a finite number', 'score')
    return best


__all__ = ['Box', 'box_from_detection', 'box_from_roi', 'ClickPair', 'ImageSize', 'InitBoxError',
           'MIN_BOX_SIDE', 'project_point', 'select_detection', 'validate_box']
