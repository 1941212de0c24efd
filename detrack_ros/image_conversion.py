"""
Convert ``sensor_msgs`` images to the frames the tracker takes, and arrays back to messages.

Decoding is ROS-free and lives in :mod:`detrack_ros.image_decoding` (re-exported here); this
module adds the one direction that builds ROS message objects, :func:`array_to_image`.
"""

import array as py_array
from typing import Optional

from detrack_ros.image_decoding import (compressed_to_array, Frame, image_to_array,
                                        ImageConversionError, SUPPORTED_ENCODINGS,
                                        ZERO_COPY_ENCODINGS)
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header


_OUTPUT_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}


def array_to_image(array: np.ndarray, encoding: str, header: Optional[Header] = None) -> Image:
    """
    Build a ``sensor_msgs/Image`` from a uint8 array (rgb8, bgr8 or mono8).

    The pixels are copied once into the ``array.array`` the message keeps, which is the
    form its ``data`` setter takes without inspecting every byte. ``header`` (the input
    image's, so that the output carries its stamp) defaults to an empty one.
    """
    channels = _OUTPUT_CHANNELS.get(encoding)
    if channels is None:
        raise ImageConversionError(f'cannot publish encoding {encoding!r} '
                                   f'(supported: {", ".join(_OUTPUT_CHANNELS)})')
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise ImageConversionError(
            f'{encoding} needs a uint8 array, got {getattr(array, "dtype", type(array))}')
    shape = array.shape
    if channels == 1 and array.ndim == 3 and shape[2] == 1:
        shape = shape[:2]
    expected_ndim = 2 if channels == 1 else 3
    if len(shape) != expected_ndim or (channels == 3 and shape[2] != 3):
        raise ImageConversionError(f'{encoding} needs an array of shape '
                                   f'{"(H, W)" if channels == 1 else "(H, W, 3)"}, '
                                   f'got {array.shape}')
    if shape[0] == 0 or shape[1] == 0:
        raise ImageConversionError(f'cannot publish an empty image of shape {array.shape}')
    data = py_array.array('B')
    data.frombytes(np.ascontiguousarray(array))
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(shape[0]), int(shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(shape[1]) * channels
    msg.data = data
    return msg


__all__ = ['array_to_image', 'compressed_to_array', 'Frame', 'image_to_array',
           'ImageConversionError', 'SUPPORTED_ENCODINGS', 'ZERO_COPY_ENCODINGS']
