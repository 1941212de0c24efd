"""Build the messages the tracker node and its tools publish, and read their stamps."""

from typing import Optional, Sequence

from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose


def stamp_ns(header: Header) -> int:
    """Return a header's stamp in nanoseconds (the key that matches outputs to images)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def header_at(stamp: int, frame_id: str = '') -> Header:
    """Return a header stamped ``stamp`` nanoseconds."""
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp), 1_000_000_000)
    return header


def detection_from_box(box_xywh: Sequence[float], header: Header, class_id: str = '',
                       score: Optional[float] = None, track_id: str = '') -> Detection2D:
    """
    Return a Detection2D for the top-left ``(x, y, w, h)`` pixel box.

    ``bbox.center`` is the box centre (vision_msgs 4.x: ``bbox.center.position``). One result
    carries ``class_id`` and ``score`` when ``score`` is given; none otherwise (an init box
    from a person has no score).
    """
    x, y, w, h = (float(v) for v in box_xywh)
    detection = Detection2D(header=header, id=track_id)
    detection.bbox.center.position.x = x + 0.5 * w
    detection.bbox.center.position.y = y + 0.5 * h
    detection.bbox.size_x = w
    detection.bbox.size_y = h
    if score is not None:
        result = ObjectHypothesisWithPose()
        result.hypothesis.class_id = class_id
        result.hypothesis.score = float(score)
        detection.results.append(result)
    return detection


def detection_array(header: Header, detections: Sequence[Detection2D] = ()) -> Detection2DArray:
    """Return a Detection2DArray with ``header`` holding ``detections`` (maybe none)."""
    return Detection2DArray(header=header, detections=list(detections))
