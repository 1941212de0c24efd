"""
Decode ``sensor_msgs`` images into the frames the tracker takes, without importing ROS.

The functions read the fields of an ``Image`` or ``CompressedImage`` by name, so they take a
message of the ROS Python classes as well as one decoded from a bag file without ROS.

``image_to_array`` and ``compressed_to_array`` return a :class:`Frame`: a uint8 array of
shape (H, W) or (H, W, 3) plus a ``bgr`` flag, ready for ``tracker.track(frame.array,
bgr=frame.bgr)``. rgb8, bgr8 and mono8 (and their 8UC aliases) are views of the message's
buffer, never copies, also with padded rows: OpenCV accepts a row stride larger than the
pixel row as long as the pixels of a row are contiguous. Such a view aliases ``msg.data``;
copy it before drawing on it if the message must stay intact. Every other encoding costs
one OpenCV call (two for byte-swapped or oddly strided mono16) that yields a new contiguous
array, RGB for colour.

mono16 is reduced to 8 bit by a fixed scale, value / 2**mono16_shift rounded to nearest and
saturated at 255 (shift 8 by default: full-range 16-bit data), rather than a per-frame
min/max stretch: a stretch would change the target's brightness from frame to frame whenever
anything else in the view changes, which the tracker would see as an appearance change.
Cameras that put 10 or 12 significant bits in the low bits of the word want a smaller shift
(``mono16_shift=2`` or ``4``).

Both functions take ``max_pixels``: an image larger than that is refused, a compressed one
from its header alone, before the decoder allocates anything (a few hundred bytes of JPEG
header can claim 30000 x 30000 pixels). Only JPEG, PNG and TIFF are decoded, the formats
compressed_image_transport writes, because their headers are read here first.

``depth_image_to_array`` reads a depth image (16UC1 millimetres, 32FC1 metres) as a view in
its raw units, never converted or copied, and says how many metres one unit is.

Every malformed input raises :class:`ImageConversionError` with a one-line reason.
"""

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import cv2
from detrack_model.data.encoded import (check_image_header, DEFAULT_MAX_PIXELS,
                                        EncodedImageError)
from detrack_model.tracking.session import FrameData
import numpy as np


class ImageConversionError(ValueError):
    """An image message that cannot be turned into a frame (the message says why)."""


# A frame for the tracker: uint8 (H, W) or (H, W, 3), and whether colour is BGR.
Frame = FrameData

# Each entry: bytes per pixel, and a function (buffer, height, width, step, big_endian,
# mono16_shift) -> Frame. The functions run only after the common size checks passed.
_Converter = Callable[[np.ndarray, int, int, int, bool, int], Frame]


def _view(buffer: np.ndarray, height: int, width: int, step: int, channels: int) -> np.ndarray:
    """Return the (H, W) or (H, W, C) uint8 view of rows ``step`` bytes apart."""
    if channels == 1:
        return np.ndarray((height, width), np.uint8, buffer=buffer, strides=(step, 1))
    return np.ndarray((height, width, channels), np.uint8, buffer=buffer,
                      strides=(step, channels, 1))


def _direct(channels: int, bgr: bool) -> _Converter:
    def convert(buffer, height, width, step, big_endian, shift):
        return Frame(_view(buffer, height, width, step, channels), bgr)
    return convert


def _colour(channels: int, code: int) -> _Converter:
    def convert(buffer, height, width, step, big_endian, shift):
        return Frame(cv2.cvtColor(_view(buffer, height, width, step, channels), code), False)
    return convert


def _yuv422(code: int) -> _Converter:
    def convert(buffer, height, width, step, big_endian, shift):
        if width % 2:
            raise ImageConversionError(f'YUV 4:2:2 images need an even width, got {width}')
        return Frame(cv2.cvtColor(_view(buffer, height, width, step, 2), code), False)
    return convert


def _bayer(code: int) -> _Converter:
    def convert(buffer, height, width, step, big_endian, shift):
        if width < 2 or height < 2:
            # Below one full 2x2 cell some colours are never sampled.
            raise ImageConversionError(
                f'Bayer images need at least 2x2 pixels, got {width}x{height}')
        return Frame(cv2.cvtColor(_view(buffer, height, width, step, 1), code), False)
    return convert


def _mono16(buffer, height, width, step, big_endian, shift):
    words = np.ndarray((height, width), np.dtype('>u2' if big_endian else '<u2'),
                       buffer=buffer, strides=(step, 2))
    if not (words.dtype.isnative and words.flags.aligned):
        words = words.astype(np.uint16)
    # One SIMD pass that scales, rounds and saturates; about three times faster than
    # NumPy's strided copy of the high bytes.
    return Frame(cv2.convertScaleAbs(words, alpha=2.0 ** -shift), False)


# OpenCV names a Bayer pattern after the second row's second and third pixels, ROS after the
# top-left 2x2 cell read row by row, so ROS rggb is OpenCV's BayerBG (checked in the tests).
_ENCODINGS: Dict[str, Tuple[int, _Converter]] = {
    'rgb8': (3, _direct(3, False)),
    'bgr8': (3, _direct(3, True)),
    'mono8': (1, _direct(1, False)),
    # The generic OpenCV types come from cv2 arrays published as they are, hence BGR(A).
    '8uc1': (1, _direct(1, False)),
    '8uc3': (3, _direct(3, True)),
    'rgba8': (4, _colour(4, cv2.COLOR_RGBA2RGB)),
    'bgra8': (4, _colour(4, cv2.COLOR_BGRA2RGB)),
    '8uc4': (4, _colour(4, cv2.COLOR_BGRA2RGB)),
    'mono16': (2, _mono16),
    'uyvy': (2, _yuv422(cv2.COLOR_YUV2RGB_UYVY)),
    'yuv422': (2, _yuv422(cv2.COLOR_YUV2RGB_UYVY)),
    'yuyv': (2, _yuv422(cv2.COLOR_YUV2RGB_YUY2)),
    'yuv422_yuy2': (2, _yuv422(cv2.COLOR_YUV2RGB_YUY2)),
    'bayer_rggb8': (1, _bayer(cv2.COLOR_BayerBG2RGB)),
    'bayer_bggr8': (1, _bayer(cv2.COLOR_BayerRG2RGB)),
    'bayer_gbrg8': (1, _bayer(cv2.COLOR_BayerGR2RGB)),
    'bayer_grbg8': (1, _bayer(cv2.COLOR_BayerGB2RGB)),
}

SUPPORTED_ENCODINGS: Tuple[str, ...] = tuple(
    name.upper() if name[0].isdigit() else name for name in _ENCODINGS)
"""The ``Image.encoding`` values :func:`image_to_array` accepts (case-insensitive)."""

ZERO_COPY_ENCODINGS: Tuple[str, ...] = ('rgb8', 'bgr8', 'mono8', '8UC1', '8UC3')
"""The encodings whose frame is a view of the message's buffer."""

_SUPPORTED_TEXT = ', '.join(SUPPORTED_ENCODINGS)


def _unsigned(msg: Any, field: str) -> int:
    """Return an integer field of ``msg``, refusing anything that is not a count."""
    try:
        value = getattr(msg, field)
    except Exception as error:
        raise ImageConversionError(f'image message has no usable {field!r} field') from error
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ImageConversionError(f'image {field} must be a non-negative integer, got {value!r}')
    return int(value)


def _buffer(msg: Any) -> np.ndarray:
    """Return the message's data as a flat uint8 array sharing its memory."""
    try:
        return np.frombuffer(msg.data, np.uint8)
    except Exception as error:
        raise ImageConversionError(
            f'image data must be a byte buffer, got {type(getattr(msg, "data", None)).__name__}'
        ) from error


def _sized_buffer(msg: Any, what: str, encoding: str, pixel_bytes: int,
                  max_pixels: int) -> Tuple[np.ndarray, int, int, int]:
    """Return the data, height, width and step of ``msg`` once its sizes are consistent."""
    height, width, step = (_unsigned(msg, name) for name in ('height', 'width', 'step'))
    if width == 0 or height == 0:
        raise ImageConversionError(f'{what} has zero size: {width}x{height} (width x height)')
    if width * height > max_pixels:
        raise ImageConversionError(f'{what} of {width}x{height} = {width * height} pixels is '
                                   f'over the limit of {max_pixels} (max_image_pixels)')
    if step < width * pixel_bytes:
        raise ImageConversionError(
            f'{what} step {step} is smaller than width {width} x {pixel_bytes} bytes per pixel '
            f'({encoding}) = {width * pixel_bytes}')
    buffer = _buffer(msg)
    if buffer.size < step * height:
        raise ImageConversionError(
            f'{what} data holds {buffer.size} bytes, step {step} x height {height} needs '
            f'{step * height}')
    return buffer, height, width, step


def image_to_array(msg: Any, mono16_shift: int = 8,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> Frame:
    """
    Turn a ``sensor_msgs/Image`` into a tracker frame.

    mono16 values are divided by 2**``mono16_shift`` (0 to 16), rounded to nearest and
    saturated at 255. Raise :class:`ImageConversionError` for an unsupported encoding, an
    image of more than ``max_pixels`` pixels or a message whose sizes do not describe its
    data.
    """
    if isinstance(mono16_shift, bool) or not isinstance(mono16_shift, int) \
            or not 0 <= mono16_shift <= 16:
        raise ImageConversionError(f'mono16_shift must be an integer in [0, 16], '
                                   f'got {mono16_shift!r}')
    encoding = getattr(msg, 'encoding', None)
    if not isinstance(encoding, str):
        raise ImageConversionError(f'image encoding must be a string, got {encoding!r}')
    entry = _ENCODINGS.get(encoding.strip().lower())
    if entry is None:
        raise ImageConversionError(
            f'unsupported image encoding {encoding!r} (supported: {_SUPPORTED_TEXT})')
    pixel_bytes, convert = entry
    buffer, height, width, step = _sized_buffer(msg, 'image', encoding, pixel_bytes, max_pixels)
    big_endian = _unsigned(msg, 'is_bigendian') != 0
    try:
        return convert(buffer, height, width, step, big_endian, mono16_shift)
    except ImageConversionError:
        raise
    except (cv2.error, ValueError, TypeError) as error:
        # The checks above should leave nothing for OpenCV to refuse; this is the backstop.
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        raise ImageConversionError(f'cannot convert {encoding} image: {reason}') from error


class DepthFrame(NamedTuple):
    """A depth image in its raw units, (H, W), and the metres one unit stands for."""

    array: np.ndarray
    metres_per_unit: float


# Depth encodings (REP 118): dtype and the unit the encoding implies.
_DEPTH_ENCODINGS: Dict[str, Tuple[str, float]] = {'16uc1': ('u2', 0.001), '32fc1': ('f4', 1.0)}

SUPPORTED_DEPTH_ENCODINGS: Tuple[str, ...] = ('16UC1', '32FC1')
"""The ``Image.encoding`` values :func:`depth_image_to_array` accepts (case-insensitive)."""


def depth_image_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> DepthFrame:
    """
    Return a ``sensor_msgs/Image`` depth image as a view of its data in raw units.

    16UC1 is millimetres (0: no reading), 32FC1 metres (NaN: no reading), as REP 118 has it;
    a camera with another unit is handled by the caller's scale. The view follows the
    message's row step and byte order, so nothing is copied. Raise
    :class:`ImageConversionError` for another encoding, more than ``max_pixels`` pixels, or
    sizes that do not describe the data.
    """
    encoding = getattr(msg, 'encoding', None)
    if not isinstance(encoding, str):
        raise ImageConversionError(f'depth image encoding must be a string, got {encoding!r}')
    entry = _DEPTH_ENCODINGS.get(encoding.strip().lower())
    if entry is None:
        raise ImageConversionError(
            f'unsupported depth encoding {encoding!r} (supported: '
            f'{", ".join(SUPPORTED_DEPTH_ENCODINGS)})')
    kind, metres_per_unit = entry
    dtype = np.dtype(('>' if _unsigned(msg, 'is_bigendian') else '<') + kind)
    buffer, height, width, step = _sized_buffer(msg, 'depth image', encoding, dtype.itemsize,
                                                max_pixels)
    array = np.ndarray((height, width), dtype, buffer=buffer, strides=(step, dtype.itemsize))
    return DepthFrame(array, metres_per_unit)


def compressed_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> Frame:
    """
    Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG or TIFF).

    Grey images stay (H, W); colour comes back as OpenCV decodes it, BGR, unless the format
    says the image was compressed from RGB (``'rgb8; jpeg compressed rgb8'``); alpha is
    dropped and 16-bit images are reduced to their high byte. EXIF orientation is ignored so
    that pixel coordinates stay the camera's. Raise :class:`ImageConversionError` when the
    header claims more than ``max_pixels`` pixels (checked before decoding), the data is cut
    short or cannot be decoded.
    """
    fmt = getattr(msg, 'format', '')
    if not isinstance(fmt, str):
        raise ImageConversionError(f'compressed image format must be a string, got {fmt!r}')
    if 'compresseddepth' in fmt.lower():
        raise ImageConversionError(
            f'compressedDepth images are not supported (format {fmt!r})')
    buffer = _buffer(msg)
    if buffer.size == 0:
        raise ImageConversionError(f'compressed image is empty (format {fmt!r})')
    try:
        check_image_header(buffer, max_pixels)
    except EncodedImageError as error:
        raise ImageConversionError(f'cannot decode compressed image (format {fmt!r}, '
                                   f'{buffer.size} bytes): {error}') from None
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as error:
        image = None
        cause: Optional[BaseException] = error
    else:
        cause = None
    if image is None or image.size == 0:
        raise ImageConversionError(
            f'cannot decode compressed image (format {fmt!r}, {buffer.size} bytes)') from cause
    if image.ndim == 2:
        return Frame(image, False)
    # compressed_image_transport writes 'compressed bgr8' when it handed BGR to the encoder;
    # a buffer encoded from RGB decodes, through OpenCV's own swap, back to RGB.
    _, _, compressed = fmt.lower().partition(' compressed ')
    return Frame(image, not compressed.strip().startswith('rgb'))
