"""
Image message conversion: every encoding against known pixels, zero-copy, and bad input.

Messages are built here from known RGB patterns, encoded with OpenCV or by hand, so each
conversion is checked against the colour it must give back.
"""

import array
import types

import cv2
from detrack_ros.image_conversion import (array_to_image, compressed_to_array, Frame,
                                          image_to_array, ImageConversionError,
                                          SUPPORTED_ENCODINGS, ZERO_COPY_ENCODINGS)
from detrack_ros.image_decoding import depth_image_to_array
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

# Four flat blocks of distinct colours; block edges fall on even pixels so that chroma
# subsampling and Bayer cells never straddle two colours.
BLOCK_COLOURS = ((200, 100, 30), (10, 220, 90), (60, 40, 250), (128, 128, 128))
PAD_BYTE = 0xAB


def block_pattern(height: int = 16, width: int = 20) -> np.ndarray:
    """Return an (H, W, 3) RGB image of four flat quadrants."""
    image = np.empty((height, width, 3), np.uint8)
    hh, hw = height // 2, width // 2
    image[:hh, :hw], image[:hh, hw:] = BLOCK_COLOURS[0], BLOCK_COLOURS[1]
    image[hh:, :hw], image[hh:, hw:] = BLOCK_COLOURS[2], BLOCK_COLOURS[3]
    return image


def block_centres(image: np.ndarray) -> np.ndarray:
    """Return the colour at the centre of each quadrant."""
    h, w = image.shape[:2]
    return np.array([image[h // 4, w // 4], image[h // 4, 3 * w // 4],
                     image[3 * h // 4, w // 4], image[3 * h // 4, 3 * w // 4]])


def random_pattern(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """Return random uint8 pixels, (H, W) for one channel."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False,
               width: int = None) -> Image:
    """Pack pixel bytes (H, W, ...) into an Image with ``pad`` junk bytes after each row."""
    height = pixels.shape[0]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    padded = np.full((height, rows.shape[1] + pad), PAD_BYTE, np.uint8)
    padded[:, :rows.shape[1]] = rows
    data = array.array('B')
    data.frombytes(padded)
    return Image(height=height, width=pixels.shape[1] if width is None else width,
                 encoding=encoding, is_bigendian=int(big_endian), step=padded.shape[1],
                 data=data)


def message_buffer(msg) -> np.ndarray:
    """Return the message's data as a NumPy view."""
    return np.frombuffer(msg.data, np.uint8)


# -- raw encodings ------------------------------------------------------------------------

@pytest.mark.parametrize('pad', [0, 5])
@pytest.mark.parametrize('encoding, channels, bgr', [
    ('rgb8', 3, False), ('bgr8', 3, True), ('mono8', 1, False), ('8UC1', 1, False),
    ('8UC3', 3, True)])
def test_direct_encodings_are_views(encoding, channels, bgr, pad):
    pixels = random_pattern(7, 9, channels)
    msg = make_image(pixels, encoding, pad)
    frame = image_to_array(msg)
    assert isinstance(frame, Frame)
    assert frame.bgr is bgr
    assert frame.array.dtype == np.uint8
    np.testing.assert_array_equal(frame.array, pixels)
    assert np.shares_memory(frame.array, message_buffer(msg))
    assert encoding in ZERO_COPY_ENCODINGS


def test_direct_view_of_bytes_data():
    pixels = random_pattern(3, 4, 3)
    msg = make_image(pixels, 'rgb8')
    msg.data = pixels.tobytes()
    np.testing.assert_array_equal(image_to_array(msg).array, pixels)


@pytest.mark.parametrize('extra', [0, 1, 2, 7])
def test_padded_view_works_with_warp_affine(extra):
    """The tracker's crop (cv2.warpAffine) reads padded-row views like contiguous arrays."""
    pixels = random_pattern(40, 30, 3)
    frame = image_to_array(make_image(pixels, 'rgb8', extra))
    assert frame.array.strides[1:] == (3, 1)
    matrix = np.float32([[0.7, 0.1, 3.5], [-0.1, 0.8, 2.25]])
    got = cv2.warpAffine(frame.array, matrix, (24, 24), flags=cv2.INTER_LINEAR)
    want = cv2.warpAffine(np.ascontiguousarray(pixels), matrix, (24, 24),
                          flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(got, want)
    gray = image_to_array(make_image(pixels[..., 0], 'mono8', extra)).array
    np.testing.assert_array_equal(cv2.warpAffine(gray, matrix, (24, 24)),
                                  cv2.warpAffine(pixels[..., 0].copy(), matrix, (24, 24)))


def test_frame_fits_the_tracker():
    from detrack_model.tracking.tracker import _as_image
    frame = image_to_array(make_image(random_pattern(6, 8, 1), 'mono8', 3))
    assert _as_image(frame.array) is frame.array


@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('encoding, to_pixels', [
    ('rgba8', lambda rgb, alpha: np.dstack([rgb, alpha])),
    ('bgra8', lambda rgb, alpha: np.dstack([rgb[..., ::-1], alpha])),
    ('8UC4', lambda rgb, alpha: np.dstack([rgb[..., ::-1], alpha]))])
def test_alpha_is_dropped(encoding, to_pixels, pad):
    rgb = random_pattern(5, 6, 3, seed=1)
    alpha = random_pattern(5, 6, 1, seed=2)
    frame = image_to_array(make_image(to_pixels(rgb, alpha), encoding, pad))
    assert frame.bgr is False
    assert frame.array.flags.c_contiguous
    np.testing.assert_array_equal(frame.array, rgb)


@pytest.mark.parametrize('pad', [0, 1, 4])
@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('shift', [8, 4, 0, 12, 16])
def test_mono16_scaled_rounded_saturated(shift, big_endian, pad):
    values = np.random.default_rng(3).integers(0, 65536, (6, 7)).astype(np.uint16)
    # Extremes and a value exactly halfway between two outputs (rounds to even).
    values[0, :3] = (0, 65535, min(3 * 2 ** shift // 2, 65535))
    words = values.astype('>u2' if big_endian else '<u2')
    frame = image_to_array(make_image(words, 'mono16', pad, big_endian), mono16_shift=shift)
    assert frame.bgr is False
    assert frame.array.dtype == np.uint8 and frame.array.shape == (6, 7)
    want = np.clip(np.rint(values / 2.0 ** shift), 0, 255)
    np.testing.assert_array_equal(frame.array, want)


@pytest.mark.parametrize('pad', [0, 6])
@pytest.mark.parametrize('encoding, code', [
    ('yuyv', cv2.COLOR_RGB2YUV_YUY2), ('yuv422_yuy2', cv2.COLOR_RGB2YUV_YUY2),
    ('uyvy', cv2.COLOR_RGB2YUV_UYVY), ('yuv422', cv2.COLOR_RGB2YUV_UYVY)])
def test_yuv422_round_trip(encoding, code, pad):
    rgb = block_pattern()
    frame = image_to_array(make_image(cv2.cvtColor(rgb, code), encoding, pad))
    assert frame.bgr is False and frame.array.shape == rgb.shape
    assert np.abs(frame.array.astype(int) - rgb).max() <= 2


def test_yuv422_byte_order_by_hand():
    """ROS 'yuv422' is UYVY and 'yuv422_yuy2' is YUYV: a flat red decodes only in order."""
    y, u, v = 81, 90, 240  # BT.601 limited range red
    yuyv = np.tile(np.array([y, u, y, v], np.uint8), (4, 2)).reshape(4, 4, 2)
    uyvy = np.tile(np.array([u, y, v, y], np.uint8), (4, 2)).reshape(4, 4, 2)
    red = np.array([255, 0, 0])
    for encoding, pixels in (('yuv422_yuy2', yuyv), ('yuyv', yuyv), ('yuv422', uyvy),
                             ('uyvy', uyvy)):
        got = image_to_array(make_image(pixels, encoding)).array
        assert np.abs(got.reshape(-1, 3) - red).max() <= 2, encoding
    swapped = image_to_array(make_image(yuyv, 'yuv422')).array
    assert np.abs(swapped.reshape(-1, 3) - red).max() > 50


@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
def test_bayer_demosaic(pattern, pad):
    rgb = block_pattern()
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    # The ROS name reads the top-left 2x2 cell row by row.
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, 'rgb'.index(colour)]
    frame = image_to_array(make_image(mosaic, f'bayer_{pattern}8', pad))
    assert frame.bgr is False and frame.array.shape == rgb.shape
    np.testing.assert_array_equal(block_centres(frame.array), np.array(BLOCK_COLOURS))


def test_encoding_is_case_insensitive():
    pixels = random_pattern(2, 3, 3)
    np.testing.assert_array_equal(image_to_array(make_image(pixels, 'RGB8')).array, pixels)
    assert image_to_array(make_image(pixels, '8uc3')).bgr is True


# -- malformed messages -------------------------------------------------------------------

def malformed_cases():
    """Yield (id, message, mono16_shift, expected reason pattern)."""
    good = make_image(random_pattern(4, 6, 3), 'rgb8')

    def variant(**fields):
        msg = make_image(random_pattern(4, 6, 3), 'rgb8')
        for name, value in fields.items():
            setattr(msg, name, value)
        return msg

    yield 'unsupported', variant(encoding='rgb16'), 8, \
        r"unsupported image encoding 'rgb16' \(supported: rgb8, .*bayer_grbg8\)"
    yield 'empty encoding', variant(encoding=''), 8, r"unsupported image encoding ''"
    yield 'zero width', variant(width=0), 8, r'zero size: 0x4'
    yield 'zero height', variant(height=0), 8, r'zero size: 6x0'
    yield 'step too small', variant(step=17), 8, \
        r'step 17 is smaller than width 6 x 3 bytes per pixel \(rgb8\) = 18'
    yield 'data short', variant(data=array.array('B', bytes(71))), 8, \
        r'data holds 71 bytes, step 18 x height 4 needs 72'
    yield 'no data', variant(data=array.array('B')), 8, r'data holds 0 bytes'
    yield 'negative height', variant(height=-3), 8, r'height must be a non-negative integer'
    yield 'float step', variant(step=18.0), 8, r'step must be a non-negative integer'
    yield 'encoding not str', variant(encoding=None), 8, r'encoding must be a string'
    no_buffer = types.SimpleNamespace(height=4, width=6, step=18, encoding='rgb8',
                                      is_bigendian=0, data=None)
    yield 'data not buffer', no_buffer, 8, r'data must be a byte buffer, got NoneType'
    yield 'odd yuv width', make_image(np.zeros((2, 5, 2), np.uint8), 'yuyv'), 8, \
        r'even width, got 5'
    yield 'odd uyvy width', make_image(np.zeros((2, 3, 2), np.uint8), 'yuv422'), 8, \
        r'even width, got 3'
    yield 'tiny bayer', make_image(np.zeros((1, 8), np.uint8), 'bayer_rggb8'), 8, \
        r'at least 2x2 pixels, got 8x1'
    yield 'mono16 step', make_image(np.zeros((3, 4), np.uint16), 'mono16', width=5), 8, \
        r'step 8 is smaller than width 5 x 2 bytes per pixel \(mono16\) = 10'
    yield 'shift', good, 17, r'mono16_shift must be an integer in \[0, 16\]'


CASES = list(malformed_cases())


@pytest.mark.parametrize('msg, shift, reason', [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_malformed_image_raises(msg, shift, reason):
    with pytest.raises(ImageConversionError, match=reason) as caught:
        image_to_array(msg, mono16_shift=shift)
    assert '\n' not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_supported_list_names_every_encoding():
    assert set(ZERO_COPY_ENCODINGS) <= set(SUPPORTED_ENCODINGS)
    for name in ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '8UC1', '8UC3',
                 'yuv422', 'yuv422_yuy2', 'uyvy', 'yuyv', 'bayer_rggb8', 'bayer_bggr8',
                 'bayer_gbrg8', 'bayer_grbg8'):
        assert name in SUPPORTED_ENCODINGS


PIXEL_BYTES = {'rgb8': 3, 'bgr8': 3, '8uc3': 3, 'rgba8': 4, 'bgra8': 4, '8uc4': 4, 'mono16': 2,
               'uyvy': 2, 'yuyv': 2, 'yuv422': 2, 'yuv422_yuy2': 2}
FUZZ_ENCODINGS = list(SUPPORTED_ENCODINGS) + ['rgb16', 'nv12', '16UC1', 'BGR8', '', 'x' * 300]


def test_fuzz_image_to_array():
    rng = np.random.default_rng(20240607)
    outcomes = {'ok': 0, 'error': 0}
    for _ in range(500):
        encoding = FUZZ_ENCODINGS[rng.integers(len(FUZZ_ENCODINGS))]
        height, width = (int(v) for v in rng.integers(0, 9, 2))
        # Half the steps start from the encoding's true pixel size to reach the converters.
        pixel_bytes = int(rng.integers(1, 5))
        if rng.random() < 0.5:
            pixel_bytes = PIXEL_BYTES.get(encoding.lower(), pixel_bytes)
        step = width * pixel_bytes + int(rng.integers(-2, 6))
        size = max(0, step * height + int(rng.integers(-6, 12)))
        data = array.array('B')
        data.frombytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        msg = Image(height=height, width=width, encoding=encoding,
                    is_bigendian=int(rng.integers(0, 2)), data=data)
        msg.step = step  # may be negative: the setter does not check by default
        shift = int(rng.choice([8, 8, 0, 3, 12, 16]))
        try:
            frame = image_to_array(msg, mono16_shift=shift)
        except ImageConversionError as error:
            assert '\n' not in str(error)
            outcomes['error'] += 1
            continue
        outcomes['ok'] += 1
        assert frame.array.dtype == np.uint8
        assert frame.array.shape[:2] == (height, width)
        assert frame.array.ndim == 2 or frame.array.shape[2] == 3
    assert outcomes['ok'] > 75 and outcomes['error'] > 75, outcomes


# -- compressed images --------------------------------------------------------------------

def compressed(payload: bytes, fmt: str) -> CompressedImage:
    """Return a CompressedImage holding ``payload``."""
    data = array.array('B')
    data.frombytes(payload)
    return CompressedImage(format=fmt, data=data)


def encoded(image: np.ndarray, extension: str) -> bytes:
    """Return ``image`` compressed by OpenCV."""
    ok, buffer = cv2.imencode(extension, image)
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize('fmt', ['jpeg', 'bgr8; jpeg compressed bgr8',
                                 'rgb8; jpeg compressed bgr8'])
def test_compressed_jpeg_is_bgr(fmt):
    rgb = block_pattern(32, 32)
    bgr = rgb[..., ::-1]
    frame = compressed_to_array(compressed(encoded(bgr, '.jpg'), fmt))
    assert frame.bgr is True and frame.array.shape == rgb.shape
    assert np.abs(block_centres(frame.array).astype(int) - block_centres(bgr)).max() <= 6


def test_compressed_png_exact_and_rgb_format():
    rgb = random_pattern(9, 11, 3)
    frame = compressed_to_array(compressed(encoded(rgb[..., ::-1], '.png'), 'png'))
    assert frame.bgr is True
    np.testing.assert_array_equal(frame.array, rgb[..., ::-1])
    # A publisher that handed RGB to the encoder says so; OpenCV's swap undoes itself.
    frame = compressed_to_array(compressed(encoded(rgb, '.png'), 'rgb8; png compressed rgb8'))
    assert frame.bgr is False
    np.testing.assert_array_equal(frame.array, rgb)


def test_compressed_grey_alpha_and_16_bit():
    grey = random_pattern(5, 6, 1)
    frame = compressed_to_array(compressed(encoded(grey, '.png'), 'mono8; png compressed '))
    assert frame.bgr is False
    np.testing.assert_array_equal(frame.array, grey)
    bgra = random_pattern(5, 6, 4)
    frame = compressed_to_array(compressed(encoded(bgra, '.png'), 'png'))
    np.testing.assert_array_equal(frame.array, bgra[..., :3])
    deep = np.random.default_rng(4).integers(0, 65536, (5, 6)).astype(np.uint16)
    frame = compressed_to_array(compressed(encoded(deep, '.png'), 'mono16; png compressed '))
    np.testing.assert_array_equal(frame.array, deep >> 8)


@pytest.mark.parametrize('payload, fmt, reason', [
    (b'', 'jpeg', r"compressed image is empty \(format 'jpeg'\)"),
    (b'\x00' * 50, 'jpeg', r"cannot decode compressed image \(format 'jpeg', 50 bytes\)"),
    (b'\xff\xd8\xff' + b'\x00' * 20, 'jpeg', r'cannot decode compressed image'),
    (b'\x00' * 12 + b'\x89PNG', '16UC1; compressedDepth png',
     r'compressedDepth images are not supported'),
])
def test_compressed_malformed(payload, fmt, reason):
    with pytest.raises(ImageConversionError, match=reason):
        compressed_to_array(compressed(payload, fmt))


def test_compressed_truncated_png():
    payload = encoded(random_pattern(20, 20, 3), '.png')
    with pytest.raises(ImageConversionError, match='cannot decode'):
        compressed_to_array(compressed(payload[:len(payload) // 2], 'png'))


def test_fuzz_compressed_to_array():
    rng = np.random.default_rng(99)
    seeds = [encoded(block_pattern(24, 24), '.jpg'), encoded(random_pattern(8, 8, 3), '.png'),
             encoded(random_pattern(8, 8, 1), '.png')]
    for _ in range(200):
        payload = bytearray(seeds[rng.integers(len(seeds))])
        for _ in range(int(rng.integers(0, 6))):
            payload[int(rng.integers(len(payload)))] = int(rng.integers(256))
        payload = bytes(payload[:int(rng.integers(0, len(payload) + 1))])
        try:
            frame = compressed_to_array(compressed(payload, 'jpeg'))
        except ImageConversionError:
            continue
        assert frame.array.dtype == np.uint8
        assert frame.array.ndim == 2 or frame.array.shape[2] == 3


# -- publishing ---------------------------------------------------------------------------

@pytest.mark.parametrize('encoding, channels', [('rgb8', 3), ('bgr8', 3), ('mono8', 1)])
def test_array_to_image_round_trip(encoding, channels):
    pixels = random_pattern(7, 5, channels)
    header = Header(frame_id='camera_optical')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = array_to_image(pixels, encoding, header)
    assert (msg.height, msg.width, msg.step) == (7, 5, 5 * channels)
    assert msg.encoding == encoding and msg.is_bigendian == 0
    assert msg.header.frame_id == 'camera_optical' and msg.header.stamp.nanosec == 345
    assert isinstance(msg.data, array.array) and len(msg.data) == pixels.size
    frame = image_to_array(msg)
    np.testing.assert_array_equal(frame.array, pixels)
    assert frame.bgr is (encoding == 'bgr8')


def test_array_to_image_non_contiguous_and_single_channel():
    pixels = random_pattern(6, 8, 3)
    view = pixels[::2, 1::2]
    np.testing.assert_array_equal(image_to_array(array_to_image(view, 'rgb8')).array, view)
    column = pixels[..., :1]
    msg = array_to_image(column, 'mono8')
    assert msg.step == 8 and msg.header.frame_id == ''
    np.testing.assert_array_equal(image_to_array(msg).array, column[..., 0])


@pytest.mark.parametrize('value, encoding, reason', [
    (np.zeros((2, 2, 3), np.uint8), 'rgba8', r"cannot publish encoding 'rgba8'"),
    (np.zeros((2, 2, 3), np.float32), 'rgb8', r'needs a uint8 array, got float32'),
    (np.zeros((2, 2), np.uint8), 'rgb8', r'needs an array of shape \(H, W, 3\)'),
    (np.zeros((2, 2, 3), np.uint8), 'mono8', r'needs an array of shape \(H, W\)'),
    (np.zeros((0, 2, 3), np.uint8), 'rgb8', r'empty image'),
    ([[1, 2]], 'mono8', r'needs a uint8 array'),
])
def test_array_to_image_rejects(value, encoding, reason):
    with pytest.raises(ImageConversionError, match=reason):
        array_to_image(value, encoding)


# -- depth images ----------------------------------------------------------------------------

def test_depth_16uc1_big_endian_padded_rows_is_a_view_in_millimetres():
    """16UC1 with padded rows and swapped bytes: a view of the message, metres per unit 1e-3."""
    values = (np.arange(12, dtype=np.uint16).reshape(3, 4) + 1000)
    padded = np.zeros((3, 6), '>u2')
    padded[:, :4] = values
    msg = Image(height=3, width=4, encoding='16UC1', is_bigendian=1, step=12,
                data=padded.tobytes())
    depth = depth_image_to_array(msg)
    assert depth.metres_per_unit == 0.001
    assert np.array_equal(depth.array, values)
    assert np.shares_memory(depth.array, np.frombuffer(msg.data, np.uint8))


def test_depth_32fc1_keeps_nan_and_is_in_metres():
    """32FC1 is metres; NaN (no reading) stays NaN for the statistic to skip."""
    values = np.array([[1.5, np.nan], [0.0, 2.25]], np.float32)
    msg = Image(height=2, width=2, encoding='32FC1', step=8, data=values.tobytes())
    depth = depth_image_to_array(msg)
    assert depth.metres_per_unit == 1.0
    assert np.array_equal(depth.array, values, equal_nan=True)


@pytest.mark.parametrize('encoding, step, size, needle', [
    ('rgb8', 12, 36, 'unsupported depth encoding'),
    ('mono16', 8, 24, 'unsupported depth encoding'),
    ('16UC1', 6, 24, 'step 6 is smaller'),
    ('16UC1', 8, 10, 'holds 10 bytes'),
    ('32FC1', 16, 48, None),
])
def test_depth_encodings_and_sizes_are_checked(encoding, step, size, needle):
    """Only 16UC1 and 32FC1, and sizes that describe the data; else one clear error."""
    msg = Image(height=3, width=4, encoding=encoding, step=step, data=bytes(size))
    if needle is None:
        assert depth_image_to_array(msg).array.shape == (3, 4)
        return
    with pytest.raises(ImageConversionError, match=needle):
        depth_image_to_array(msg)
    if encoding == '16UC1':
        with pytest.raises(ImageConversionError, match='max_image_pixels'):
            depth_image_to_array(Image(height=3, width=4, encoding='16UC1', step=8,
                                       data=bytes(24)), max_pixels=11)
