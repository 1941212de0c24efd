"""
The field rules between pixel boxes and the message types the tracker reads and writes.

No ROS in here: the rules read fields by name and write plain nested dictionaries, so the
node (with the ROS Python classes, :mod:`detrack_ros.detection_messages`) and the bag tool
(with messages decoded from and encoded to MCAP files without ROS) apply the same ones.

Every box is ``(x, y, w, h)`` in image pixels: ``(x, y)`` the top-left corner.
"""

from typing import Any, Dict, Optional, Sequence

from detrack_model.tracking.boxes import Box


def stamp_ns(header: Any) -> int:
    """Return a header's stamp in nanoseconds (the key that matches outputs to images)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def detection_fields(box_xywh: Sequence[float], class_id: str = '',
                     score: Optional[float] = None, track_id: str = '') -> Dict[str, Any]:
    """
    Return the fields of a vision_msgs 4.x ``Detection2D`` for a box, header left out.

    ``bbox.center`` is the box centre (``bbox.center.position``). One result carries
    ``class_id`` and ``score`` when ``score`` is given; none otherwise (an init box from a
    person has no score).
    """
    x, y, w, h = (float(v) for v in box_xywh)
    results = [] if score is None else [
        {'hypothesis': {'class_id': class_id, 'score': float(score)}}]
    return {'id': track_id,
            'bbox': {'center': {'position': {'x': x + 0.5 * w, 'y': y + 0.5 * h}},
                     'size_x': w, 'size_y': h},
            'results': results}


def box_from_detection(msg: Any) -> Box:
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


def box_from_roi(msg: Any) -> Box:
    """
    Return the ``(x, y, w, h)`` box of a ``sensor_msgs/RegionOfInterest``.

    ``do_rectify`` is ignored: the ROI is taken in the pixels of the image the tracker is fed,
    whichever that is, because the node has no rectification step to map between the two. An
    all-zero ROI (CameraInfo's "full image" convention) yields a zero-area box, which
    :func:`~detrack_model.tracking.boxes.validate_box` rejects rather than tracking the whole
    frame.
    """
    return (float(msg.x_offset), float(msg.y_offset), float(msg.width), float(msg.height))
