"""
Seeded fuzzing of everything that takes input from outside: images, init boxes, bundles.

Each case is accepted, or refused with the package's own error type; any other exception is a
bug, and so is memory growing past a bound. The cases are pseudo-random from fixed seeds, so a
failure replays exactly (the assertion names the seed and the case); together they take well
under a minute on two cores.

- Images: random bytes, and valid JPEG (baseline and progressive), PNG (colour, grey, 16-bit)
  and TIFF files with bytes flipped, inserted, deleted, cut off, and their header sizes
  rewritten, through ``compressed_to_array`` and ``decode_image``; raw ``Image`` messages with
  random encodings, sizes, steps and data through ``image_to_array``. Peak memory is read from
  the kernel (``VmHWM``, reset first) and bounded.
- Init boxes: random finite, huge, tiny, NaN and infinite values through every adapter and
  ``validate_box``; an accepted box is finite and, with an image size, inside the image with
  both sides at least MIN_BOX_SIDE.
- Bundles: the shipped bundle's YAML with values replaced by random ones (wrong types, huge
  and negative numbers, deep nesting), with its text mutated, alias bombs and random bytes,
  through ``read_model_config``, ``model_decoder_layers`` and ``load_bundle``.
"""

import copy
import math
import pathlib
import shutil
import struct
import zlib

import cv2
from detrack_model.data.encoded import decode_image, EncodedImageError
from detrack_model.export.bundle import BundleError, load_bundle, read_model_config
from detrack_model.shipped import default_model_path
from detrack_model.tracking.factory import model_decoder_layers
from detrack_ros.image_conversion import (compressed_to_array, image_to_array,
                                          ImageConversionError, SUPPORTED_ENCODINGS)
from detrack_ros.init_boxes import (box_from_detection, box_from_roi, ClickPair, InitBoxError,
                                    MIN_BOX_SIDE, project_point, select_detection, validate_box)
from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
import yaml

# The decoded-size limit of the image cases, and the memory they may add to the process:
# one image of the limit, decoded (3 bytes a pixel, progressive JPEG coefficients twice
# that), with room for the allocator.
FUZZ_MAX_PIXELS = 1 << 20
MEMORY_BOUND_MB = 120.0
IMAGE_CASES = 3000
RAW_CASES = 3000
BOX_CASES = 5000
BUNDLE_CASES = 300


def peak_memory_mb() -> float:
    """Return this process's peak resident memory since the last reset, in MiB."""
    for line in pathlib.Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError('no VmHWM in /proc/self/status')


@pytest.fixture(autouse=True)
def opencv_without_thread_pool():
    """
    Run OpenCV on the calling thread only while fuzzing, then restore its thread count.

    The large images of the fuzz cases would start OpenCV's thread pool in the pytest process,
    and a process forked after that (a ProcessPoolExecutor in a later test) that configures
    OpenCV's threads waits forever for pool threads it does not have.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(previous)


@pytest.fixture
def memory_bound():
    """Reset the peak-memory mark; after the test, check growth stayed under the bound."""
    clear = pathlib.Path('/proc/self/clear_refs')
    try:
        clear.write_text('5')
    except OSError as error:
        pytest.skip(f'peak memory cannot be reset here (/proc/self/clear_refs: {error})')
    start = peak_memory_mb()
    yield
    growth = peak_memory_mb() - start
    assert growth < MEMORY_BOUND_MB, f'peak memory grew by {growth:.0f} MiB'


# -- images --------------------------------------------------------------------------------


def seed_images():
    """Return small valid encoded images of every kind the node decodes."""
    rng = np.random.default_rng(0)
    colour = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (40, 30))
    grey = colour[..., 1].copy()
    deep = (grey.astype(np.uint16) << 8) | grey
    images = [
        cv2.imencode('.jpg', colour)[1], cv2.imencode('.jpg', grey)[1],
        cv2.imencode('.jpg', colour, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1],
        cv2.imencode('.png', colour)[1], cv2.imencode('.png', grey)[1],
        cv2.imencode('.png', deep)[1], cv2.imencode('.tiff', colour)[1],
    ]
    return [image.tobytes() for image in images]


def rewrite_size(data: bytearray, rng: np.random.Generator) -> None:
    """Set the size a JPEG or PNG header claims to random values, huge ones included."""
    width, height = (int(rng.choice([0, 1, 2, 40, 1024, 4096, 30000, 65535, 1 << 31]))
                     for _ in range(2))
    sof = data.find(b'\xff\xc0')
    if data[:2] == b'\xff\xd8' and sof > 0 and sof + 9 <= len(data):
        data[sof + 5:sof + 9] = struct.pack('>HH', min(height, 65535), min(width, 65535))
    elif data[:4] == b'\x89PNG' and len(data) >= 33:
        data[16:24] = struct.pack('>II', width, height)
        data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Return ``data`` with a few random edits of random kinds."""
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(6))
        position = int(rng.integers(len(data) + 1))
        if kind == 0 and data:
            data[min(position, len(data) - 1)] = int(rng.integers(256))
        elif kind == 1:
            data[position:position] = rng.integers(0, 256, int(rng.integers(1, 16)),
                                                   dtype=np.uint8).tobytes()
        elif kind == 2:
            del data[position:position + int(rng.integers(1, 64))]
        elif kind == 3:
            del data[position:]
        elif kind == 4:
            rewrite_size(data, rng)
        else:
            data[position:position] = bytes(data[position:position + int(rng.integers(200))])
    return bytes(data)


def image_case(rng: np.random.Generator, seeds) -> bytes:
    """Return random bytes (sometimes behind a valid signature) or a mutated valid image."""
    if rng.random() < 0.15:
        prefix = [b'', b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'II*\x00', b'MM\x00*'][
            int(rng.integers(5))]
        return prefix + rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8).tobytes()
    return mutate(seeds[int(rng.integers(len(seeds)))], rng)


def check_frame(frame) -> None:
    """Check that an accepted conversion is a usable uint8 frame within the size limit."""
    array = frame.array
    assert array.dtype == np.uint8 and array.ndim in (2, 3)
    assert array.ndim == 2 or array.shape[2] == 3
    assert 0 < array.shape[0] * array.shape[1] <= FUZZ_MAX_PIXELS


def test_fuzz_compressed_images(memory_bound):
    """Mutated and random encoded images are decoded or refused with our errors only."""
    rng = np.random.default_rng(15)
    seeds = seed_images()
    accepted = 0
    for case in range(IMAGE_CASES):
        data = image_case(rng, seeds)
        message = CompressedImage(format=['jpeg', 'png', 'rgb8; jpeg compressed bgr8'][case % 3],
                                  data=data)
        try:
            check_frame(compressed_to_array(message, FUZZ_MAX_PIXELS))
            accepted += 1
        except ImageConversionError:
            pass
        except Exception as error:  # noqa: B902 - any other exception is the bug looked for
            pytest.fail(f'case {case}: {type(error).__name__}: {error}')
        try:
            image = decode_image(data, cv2.IMREAD_COLOR, FUZZ_MAX_PIXELS)
            assert image.shape[0] * image.shape[1] <= FUZZ_MAX_PIXELS
        except EncodedImageError:
            pass
    assert accepted > IMAGE_CASES // 20, 'the mutations left almost nothing decodable'


def test_fuzz_raw_images(memory_bound):
    """Raw images with random encodings, sizes, steps and data convert or are refused."""
    rng = np.random.default_rng(16)
    encodings = [*SUPPORTED_ENCODINGS, 'rgb16', '', 'RGB8', ' mono8 ', 'bayer_xxxx8']
    accepted = 0
    for case in range(RAW_CASES):
        width, height = (int(rng.choice([0, 1, 2, 3, 17, 64, 1 << 16, (1 << 32) - 1]))
                         for _ in range(2))
        step = int(rng.choice([0, 1, width, width * 2, width * 3, width * 4 + 3,
                               (1 << 32) - 1])) % (1 << 32)
        size = int(rng.choice([0, 1, 100, step * height if step * height < 1 << 20 else 7]))
        message = Image(encoding=encodings[int(rng.integers(len(encodings)))], width=width,
                        height=height, step=step, is_bigendian=int(rng.integers(2)),
                        data=rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        try:
            check_frame(image_to_array(message, int(rng.integers(0, 17)), FUZZ_MAX_PIXELS))
            accepted += 1
        except ImageConversionError:
            pass
        except Exception as error:  # noqa: B902 - any other exception is the bug looked for
            pytest.fail(f'case {case} ({message.encoding} {width}x{height} step {step}, '
                        f'{size} bytes): {type(error).__name__}: {error}')
    assert accepted > 0


# -- init boxes ------------------------------------------------------------------------------


def box_value(rng: np.random.Generator) -> float:
    """Return a random coordinate: ordinary, huge, tiny, negative, NaN or infinite."""
    return float(rng.choice([rng.uniform(-50.0, 700.0), rng.uniform(0.0, 3.0), 1e300, -1e300,
                             1e308, 4294967295.0, 5e-324, 0.0, -0.0, math.nan, math.inf,
                             -math.inf]))


def check_box(box, image_size=None) -> None:
    """Check an accepted box: finite, sides at least MIN_BOX_SIDE, inside the image."""
    x, y, w, h = box
    assert all(math.isfinite(v) for v in box) and w >= MIN_BOX_SIDE and h >= MIN_BOX_SIDE, box
    if image_size is not None:
        assert x >= 0.0 and y >= 0.0 and x + w <= image_size[0] and y + h <= image_size[1], box


def adapter_box(rng: np.random.Generator, values):
    """Return a box from a random adapter fed ``values``, or raise InitBoxError."""
    kind = int(rng.integers(5))
    if kind == 0:
        msg = Detection2D()
        msg.bbox.center.position.x, msg.bbox.center.position.y = values[0], values[1]
        msg.bbox.size_x, msg.bbox.size_y = values[2], values[3]
        return box_from_detection(msg)
    if kind == 1:
        fields = [int(abs(v)) % (1 << 32) if math.isfinite(v) else 0 for v in values]
        return box_from_roi(RegionOfInterest(x_offset=fields[0], y_offset=fields[1],
                                             width=fields[2], height=fields[3]))
    if kind == 2:
        pair = ClickPair(10.0)
        pair.add(values[0], values[1], 0.0)
        box = pair.add(values[2], values[3], 1.0)
        assert box is not None
        return box
    if kind == 3:
        return select_best(rng, values)
    return project_clicks(values)


def select_best(rng: np.random.Generator, values):
    """Run select_detection on one detection built from ``values`` with a random score."""
    detection = Detection2D()
    detection.bbox.center.position.x, detection.bbox.center.position.y = values[0], values[1]
    detection.bbox.size_x, detection.bbox.size_y = values[2], values[3]
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.score = float(rng.choice([0.9, math.nan, math.inf, -math.inf, 2.0]))
    detection.results = [hypothesis]
    best = select_detection(Detection2DArray(detections=[detection]), '', 0.5)
    if best is None:
        raise InitBoxError('nothing qualified')
    return best[0]


def project_clicks(values):
    """Project two RViz clicks built from ``values`` through a pinhole camera."""
    info = CameraInfo()
    info.header.frame_id = 'cam'
    info.k = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    pair = ClickPair(10.0)
    box = None
    for index, (x, y) in enumerate(((values[0], values[1]), (values[2], values[3]))):
        point = PointStamped()
        point.header.frame_id = 'cam'
        point.point.x, point.point.y, point.point.z = x, y, 1.0 + index
        u, v = project_point(point, info)
        box = pair.add(u, v, float(index))
    assert box is not None
    return box


def test_fuzz_init_boxes():
    """Random values through every adapter and validate_box: a usable box or InitBoxError."""
    rng = np.random.default_rng(17)
    accepted = 0
    for case in range(BOX_CASES):
        values = [box_value(rng) for _ in range(4)]
        image_size = (int(rng.integers(1, 2000)), int(rng.integers(1, 2000)))
        try:
            box = adapter_box(rng, values)
            check_box(validate_box(box))
            box = validate_box(box, image_size)
            check_box(box, image_size)
            accepted += 1
        except InitBoxError:
            pass
        except Exception as error:  # noqa: B902 - any other exception is the bug looked for
            pytest.fail(f'case {case} {values} in {image_size}: {type(error).__name__}: '
                        f'{error}')
    assert accepted > 100, accepted


# -- bundles ---------------------------------------------------------------------------------


def random_value(rng: np.random.Generator, depth: int = 0):
    """Return a random YAML-able value: scalars of every type, lists, mappings."""
    kind = int(rng.integers(9 if depth < 3 else 6))
    scalars = [0, -1, 1, 3, 2 ** 31, 10 ** 30, 0.5, math.nan, math.inf, -1e308, True, None,
               '', 'decoder', 'conv', 'x' * 50]
    if kind < 5:
        return scalars[int(rng.integers(len(scalars)))]
    if kind == 5:
        return [int(v) for v in rng.integers(-2, 2000, int(rng.integers(0, 4)))]
    if kind in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    return {f'k{i}': random_value(rng, depth + 1) for i in range(int(rng.integers(0, 3)))}


def mutate_document(document, rng: np.random.Generator):
    """Replace, delete or add a random entry somewhere in a loaded YAML document."""
    document = copy.deepcopy(document)
    node = document
    for _ in range(int(rng.integers(1, 4))):
        if not isinstance(node, dict) or not node:
            break
        key = list(node)[int(rng.integers(len(node)))]
        if isinstance(node[key], dict) and rng.random() < 0.6:
            node = node[key]
            continue
        action = int(rng.integers(3))
        if action == 0:
            node[key] = random_value(rng)
        elif action == 1:
            del node[key]
        else:
            node[f'unknown_{int(rng.integers(100))}'] = random_value(rng)
        break
    return document


def bundle_texts(rng: np.random.Generator, original: str):
    """Yield (kind, YAML text or bytes) cases built from the shipped bundle's config."""
    document = yaml.safe_load(original)
    for case in range(BUNDLE_CASES):
        kind = case % 5
        if kind in (0, 1):
            yield 'value', yaml.safe_dump(mutate_document(document, rng), sort_keys=False)
        elif kind == 2:
            yield 'text', mutate(original.encode(), rng)
        elif kind == 3:
            width = int(rng.integers(2, 12))
            levels = int(rng.integers(2, 12))
            lines = ['format: detrack-bundle/1', 'a0: &a0 [' + ', '.join(['x'] * width) + ']']
            lines += [f'a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * width) + ']'
                      for i in range(1, levels)]
            yield 'alias', '\n'.join(lines + [f'model: {{name: *a{levels - 1}}}']) + '\n'
        elif case % 10 == 4:
            depth = int(rng.integers(10, 20000))
            yield 'nesting', 'format: detrack-bundle/1\nmodel: ' + '[' * depth + ']' * depth
        else:
            yield 'bytes', rng.integers(0, 256, int(rng.integers(0, 400)),
                                        dtype=np.uint8).tobytes()


@pytest.mark.slow
def test_fuzz_bundle_configs(tmp_path, memory_bound):
    """Mutated, hostile and random bundle configs load or fail with BundleError only."""
    rng = np.random.default_rng(18)
    source = default_model_path()
    stem = tmp_path / 'fuzz'
    shutil.copyfile(str(source) + '.safetensors', str(stem) + '.safetensors')
    config = pathlib.Path(str(stem) + '.yaml')
    original = pathlib.Path(str(source) + '.yaml').read_text()
    outcomes = {'loaded': 0, 'refused': 0}
    for case, (kind, text) in enumerate(bundle_texts(rng, original)):
        if isinstance(text, bytes):
            config.write_bytes(text)
        else:
            config.write_text(text)
        try:
            read_model_config(stem)
            model_decoder_layers(stem)
            load_bundle(stem)
            outcomes['loaded'] += 1
        except BundleError:
            outcomes['refused'] += 1
        except Exception as error:  # noqa: B902 - any other exception is the bug looked for
            pytest.fail(f'case {case} ({kind}): {type(error).__name__}: {str(error)[:300]}')
    assert outcomes['loaded'] > 0 and outcomes['refused'] > BUNDLE_CASES // 2, outcomes
