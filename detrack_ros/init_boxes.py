"""
Turn the tracker node's initial-target inputs into boxes, or into a one-line rejection.

Every box here is ``(x, y, w, h)`` in image pixels as floats: ``(x, y)`` the top-left corner,
x to the right and y down, ``w``/``h`` the width and height. The functions read messages but
hold no node state and never touch rclpy, so the node owns subscriptions, clocks and logging
while the arithmetic and the rejection rules are tested on hand-built messages.

A rejection is an :class:`InitBoxError` whose message is meant to be logged as it is.
Converters only convert; the node passes their result through :func:`validate_box` once the
image size is known, so one set of rules decides what the tracker accepts.
"""

import math
from typing import Optional, Sequence, Tuple

from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo, RegionOfInterest
from vision_msgs.msg import Detection2D, Detection2DArray

Box = Tuple[float, float, float, float]
"""``(x, y, w, h)`` in image pixels, ``(x, y)`` the top-left corner."""

ImageSize = Tuple[int, int]
"""``(width, height)`` of the image in pixels."""

MIN_BOX_SIDE = 2.0
"""
Smallest accepted box side in pixels.

The tracker crops a template around the box and resizes it to its fixed input size; below two
pixels a side the crop holds no appearance to match against, and the box usually comes from a
slipped click rather than a real target.
"""

DEFAULT_CLICK_TIMEOUT_SEC = 10.0
"""Age after which a lone first click of a :class:`ClickPair` is forgotten."""


class InitBoxError(ValueError):
    """
    An initial box input that cannot become a box; the message says why in one line.

    ``kind`` names the rule that refused it (``non_finite``, ``empty``, ``too_small``,
    ``outside``, ``malformed``, ``clicks``, ``score``), so that a node can
    throttle its warnings per rule without losing the first of each.
    """

    def __init__(self, message: str, kind: str = 'malformed') -> None:
        super().__init__(message)
        self.kind = kind


def box_from_detection(msg: Detection2D) -> Box:
    """
    Return the top-left ``(x, y, w, h)`` box of a vision_msgs 4.x ``Detection2D``.

    ``bbox.center.theta`` is ignored: the tracker works on axis-aligned boxes and detectors
    that feed it publish unrotated ones.
    """
    bbox = msg.bbox
    w = float(bbox.size_x)
    h = float(bbox.size_y)
    return (float(bbox.center.position.x) - w / 2.0,
            float(bbox.center.position.y) - h / 2.0, w, h)


def box_from_roi(msg: RegionOfInterest) -> Box:
    """
    Return the ``(x, y, w, h)`` box of a ``sensor_msgs/RegionOfInterest``.

    ``do_rectify`` is ignored: the ROI is taken in the pixels of the image the tracker is fed,
    whichever that is, because the node has no rectification step to map between the two. An
    all-zero ROI (CameraInfo's "full image" convention) yields a zero-area box, which
    :func:`validate_box` rejects rather than tracking the whole frame.
    """
    return (float(msg.x_offset), float(msg.y_offset), float(msg.width), float(msg.height))


def validate_box(box: Sequence[float], image_size: Optional[ImageSize] = None) -> Box:
    """
    Return ``box`` as a float tuple if the tracker can start from it, else raise InitBoxError.

    Rejected: non-finite values, a zero or negative width or height, a side shorter than
    :data:`MIN_BOX_SIDE`, and, when ``image_size`` ``(width, height)`` is given, a box with no
    pixel inside the image. With ``image_size`` the box is clipped to the image, and refused
    when what is left has a side under :data:`MIN_BOX_SIDE`: the part outside cannot be seen,
    and a box of 4294967295 pixels (a -1 sent as unsigned) must not become the target as is.
    """
    if len(box) != 4:
        raise InitBoxError(f'a box needs 4 values (x, y, w, h), got {len(box)}')
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) has a NaN or infinite value',
                           'non_finite')
    if w <= 0.0 or h <= 0.0:
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) has zero or negative area '
                           f'(width {w:g}, height {h:g})', 'empty')
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) is too small to track: '
                           f'each side must be at least {MIN_BOX_SIDE:g} px', 'too_small')
    if image_size is None:
        return (x, y, w, h)
    width, height = image_size
    if x >= width or y >= height or x + w <= 0.0 or y + h <= 0.0:
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) lies entirely outside the '
                           f'{width}x{height} image', 'outside')
    # x + w may overflow to inf for huge finite values; min() still gives the image edge.
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) keeps {x1 - x0:g}x{y1 - y0:g} px '
                           f'inside the {width}x{height} image: too small to track', 'outside')
    return (x0, y0, x1 - x0, y1 - y0)


class ClickPair:
    """
    Build a box from two clicks on opposite corners, in any order.

    Feed it ``geometry_msgs/Point`` clicks of rqt_image_view (already pixels) or RViz points
    after :func:`project_point`. The first click is kept until a second one arrives; a first
    click older than ``timeout_sec`` is dropped and the new click becomes the first, so a stray
    click long ago does not pair with a fresh one. A second click with a stamp earlier than the
    first (a replayed bag, a reset simulation clock) is treated the same way. The result is not
    passed through :func:`validate_box`; the node does that with the image size.
    """

    def __init__(self, timeout_sec: float = DEFAULT_CLICK_TIMEOUT_SEC) -> None:
        """Start with no click; ``timeout_sec`` must be positive."""
        if not timeout_sec > 0.0:
            raise ValueError(f'click timeout must be positive, got {timeout_sec!r}')
        self.timeout_sec = float(timeout_sec)
        self._first: Optional[Tuple[float, float, float]] = None

    @property
    def pending(self) -> Optional[Tuple[float, float]]:
        """Return the first corner waiting for its opposite one, or None."""
        if self._first is None:
            return None
        return self._first[0], self._first[1]

    def reset(self) -> None:
        """Forget a pending first click."""
        self._first = None

    def add(self, x: float, y: float, stamp_sec: float) -> Optional[Box]:
        """
        Record a click at pixel ``(x, y)`` taken at ``stamp_sec`` seconds.

        Return None after a first click and the ``(x, y, w, h)`` box spanned by the two corners
        after the second, then start over. Raise InitBoxError for a non-finite click (the
        pending one is kept) and for two clicks on the same row or column (state reset).
        """
        x, y, stamp_sec = float(x), float(y), float(stamp_sec)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InitBoxError(f'click at ({x:g}, {y:g}) is not a finite pixel position',
                               'non_finite')
        first = self._first
        if first is None or not 0.0 <= stamp_sec - first[2] <= self.timeout_sec:
            self._first = (x, y, stamp_sec)
            return None
        self._first = None
        x0, y0 = first[0], first[1]
        w, h = abs(x - x0), abs(y - y0)
        if w == 0.0 or h == 0.0:
            raise InitBoxError(f'clicks at ({x0:g}, {y0:g}) and ({x:g}, {y:g}) span no area; '
                               'click two opposite corners of the target', 'clicks')
        return (min(x, x0), min(y, y0), w, h)


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
