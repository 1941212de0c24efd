"""Build the messages the tracker node and its tools publish, and read their stamps."""

from typing import Any, Dict, Mapping, Optional, Sequence

from detrack_ros.detection_fields import detection_fields, stamp_ns
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

# The element class of each message-list field the field rules fill (Detection2D's and
# Detection3D's ``results``).
_ELEMENTS: Dict[str, type] = {'results': ObjectHypothesisWithPose}


def header_at(stamp: int, frame_id: str = '') -> Header:
    """Return a header stamped ``stamp`` nanoseconds."""
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp), 1_000_000_000)
    return header


def assign_fields(message: Any, fields: Mapping[str, Any]) -> Any:
    """Set the nested ``fields`` (as the ROS-free field rules give them) on ``message``."""
    for name, value in fields.items():
        if isinstance(value, Mapping):
            assign_fields(getattr(message, name), value)
        elif isinstance(value, list):
            setattr(message, name, [assign_fields(_ELEMENTS[name](), item) for item in value])
        else:
            setattr(message, name, value)
    return message


def detection_from_box(box_xywh: Sequence[float], header: Header, class_id: str = '',
                       score: Optional[float] = None, track_id: str = '') -> Detection2D:
    """
    Return a Detection2D for the top-left ``(x, y, w, h)`` pixel box.

    The fields follow :func:`detrack_ros.detection_fields.detection_fields`: one result
    carrying ``class_id`` and ``score`` when ``score`` is given, none otherwise.
    """
    return assign_fields(Detection2D(header=header),
                         detection_fields(box_xywh, class_id, score, track_id))


def detection_array(header: Header, detections: Sequence[Detection2D] = ()) -> Detection2DArray:
    """Return a Detection2DArray with ``header`` holding ``detections`` (maybe none)."""
    return Detection2DArray(header=header, detections=list(detections))


__all__ = ['assign_fields', 'detection_array', 'detection_from_box', 'header_at', 'stamp_ns']
