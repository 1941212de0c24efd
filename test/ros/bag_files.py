"""Real MCAP bags for the tests: a rendered sequence with a known moving target, and its boxes."""

import pathlib
from typing import List, NamedTuple, Optional, Sequence, Tuple

import cv2
from detrack_model.data.synthetic import build_scene, render_frame, sequence_seed, SPLIT_SOURCES
from detrack_model.data.synthetic.rgbd import RgbdSequence
from detrack_ros.bag_io import (BagWriter, CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE,
                                DETECTION_TYPE, IMAGE_TYPE, ROI_TYPE)
from detrack_ros.detection_fields import detection_fields
import numpy as np

START_NS = 1_700_000_000 * 1_000_000_000
PERIOD_NS = 33_333_333


class Rendered(NamedTuple):
    """Frames (RGB uint8) and the true box of each."""

    frames: List[np.ndarray]
    boxes: np.ndarray


def rendered(frames: int = 40, size: Tuple[int, int] = (320, 240), index: int = 3) -> Rendered:
    """Render a held-out synthetic sequence whose target moves (exact ground truth)."""
    scene = build_scene(sequence_seed(7, 'val', index), frames, size, SPLIT_SOURCES['val'])
    out = [render_frame(scene, t) for t in range(frames)]
    return Rendered([f.image for f in out], np.array([f.box for f in out], np.float64))


def header(index: int, frame_id: str = 'camera_optical') -> dict:
    """Return the header of image ``index`` (a stamp apart from its recording time)."""
    sec, nanosec = divmod(START_NS + index * PERIOD_NS, 1_000_000_000)
    return {'stamp': {'sec': sec, 'nanosec': nanosec}, 'frame_id': frame_id}


def stamp(index: int) -> int:
    """Return the stamp of image ``index`` in ns."""
    return START_NS + index * PERIOD_NS


def log_time(index: int) -> int:
    """Return when image ``index`` was recorded (5 ms after its stamp)."""
    return stamp(index) + 5_000_000


def raw_image(frame: np.ndarray, index: int) -> dict:
    """Return the fields of a bgr8 sensor_msgs/Image of an RGB frame."""
    bgr = np.ascontiguousarray(frame[..., ::-1])
    return {'header': header(index), 'height': bgr.shape[0], 'width': bgr.shape[1],
            'encoding': 'bgr8', 'is_bigendian': 0, 'step': bgr.shape[1] * 3,
            'data': bgr.tobytes()}


def compressed_image(frame: np.ndarray, index: int) -> dict:
    """Return the fields of a JPEG sensor_msgs/CompressedImage as image_transport writes it."""
    ok, data = cv2.imencode('.jpg', frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return {'header': header(index), 'format': 'bgr8; jpeg compressed bgr8',
            'data': data.tobytes()}


def write_bag(path: pathlib.Path, sequence: Rendered, compressed: bool = False,
              topic: str = '/camera/image_raw', init: Optional[str] = None,
              init_index: int = 0, reference: bool = False,
              extra: Sequence[Tuple[str, str, dict, int]] = ()) -> pathlib.Path:
    """
    Write the sequence as a rosbag2-style MCAP bag.

    ``init``: 'detection' (Detection2D on /tracker/init_box stamped like image ``init_index``,
    recorded after it) or 'roi' (RegionOfInterest on /tracker/init_roi, recorded before it).
    ``reference``: the true boxes on /labels as Detection2D stamped like their images.
    """
    writer = BagWriter(path)
    for index, frame in enumerate(sequence.frames):
        truth = sequence.boxes[index]
        if init == 'roi' and index == init_index:
            x, y, w, h = (int(round(v)) for v in truth)
            writer.write('/tracker/init_roi', ROI_TYPE, {'x_offset': x, 'y_offset': y,
                                                         'width': w, 'height': h},
                         log_time(index) - 1_000_000)
        if compressed:
            writer.write(topic, COMPRESSED_IMAGE_TYPE, compressed_image(frame, index),
                         log_time(index))
        else:
            writer.write(topic, IMAGE_TYPE, raw_image(frame, index), log_time(index))
        if init == 'detection' and index == init_index:
            writer.write('/tracker/init_box', DETECTION_TYPE,
                         {'header': header(index), **detection_fields(truth)},
                         log_time(index) + 1_000_000)
        if reference:
            writer.write('/labels', DETECTION_TYPE,
                         {'header': header(index), **detection_fields(truth, 'target', 1.0)},
                         log_time(index) + 2_000_000)
    for topic_name, type_name, message, at in extra:
        writer.write(topic_name, type_name, message, at)
    return writer.commit()


def depth_image(depth: np.ndarray, index: int, encoding: str = '16UC1') -> dict:
    """Return the fields of a depth sensor_msgs/Image (16UC1 from uint16, 32FC1 from float32)."""
    height, width = depth.shape
    return {'header': header(index), 'height': height, 'width': width, 'encoding': encoding,
            'is_bigendian': 0, 'step': width * depth.itemsize,
            'data': np.ascontiguousarray(depth).tobytes()}


def camera_info(k: Sequence[float], size: Tuple[int, int], index: int) -> dict:
    """Return the fields of the sensor_msgs/CameraInfo of image ``index`` (no distortion)."""
    return {'header': header(index), 'width': size[0], 'height': size[1],
            'distortion_model': 'plumb_bob', 'd': [0.0] * 5, 'k': [float(v) for v in k],
            'r': [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            'p': [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]}


def write_rgbd_bag(path: pathlib.Path, sequence: RgbdSequence, depth: bool = True,
                   depth_encoding: str = '16UC1', info: bool = True) -> pathlib.Path:
    """
    Write an RGB-D sequence as a bag, the way an RGB-D driver's topics are recorded.

    Colour on /camera/image_raw, camera_info on /camera/camera_info (recorded just before its
    image), 16UC1 depth aligned to colour on /camera/depth/image_raw (recorded just after it),
    all stamped alike. ``depth_encoding`` other than 16UC1 relabels the millimetres unchanged.
    """
    extra = []
    for index in range(len(sequence.frames)):
        if info:
            extra.append(('/camera/camera_info', CAMERA_INFO_TYPE,
                          camera_info(sequence.k, sequence.size, index),
                          log_time(index) - 2_000_000))
        if depth:
            extra.append(('/camera/depth/image_raw', IMAGE_TYPE,
                          depth_image(sequence.depth_mm[index], index, depth_encoding),
                          log_time(index) + 3_000_000))
    return write_bag(path, Rendered(sequence.frames, sequence.boxes), extra=extra)
