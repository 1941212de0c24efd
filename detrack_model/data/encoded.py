"""
Encoded images (JPEG, PNG, TIFF) checked before they are decoded.

A decoder allocates what the file's header claims: a 700-byte JPEG header that claims 30000 x
30000 pixels makes OpenCV allocate gigabytes before it finds out that no pixel data follows.
:func:`image_header` reads the claimed size from the header alone, so a caller refuses such a
file with :func:`decode_image` before any decoder runs, and a file cut short (a half-written
frame, a truncated download) is refused as well instead of decoding to grey fill.

The header walk is strict where decoders are lenient (garbage between JPEG markers is an
error here), so the frame header read here is the one the decoder would use.
"""

from typing import NamedTuple, Optional, Union

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 4096 * 4096
"""Largest decoded image accepted by default: 16.8 megapixels, 50 MB as RGB."""

FORMATS = ('JPEG', 'PNG', 'TIFF')
"""What :func:`image_header` reads."""

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_TIFF_LITTLE, _TIFF_BIG = b'II*\x00', b'MM\x00*'
# JPEG start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and the restart markers.
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
_JPEG_SOS, _JPEG_EOI, _JPEG_SOI = 0xDA, 0xD9, 0xD8
_TIFF_WIDTH, _TIFF_HEIGHT = 256, 257
_TIFF_SHORT, _TIFF_LONG = 3, 4


class EncodedImageError(ValueError):
    """An encoded image that is refused before or while decoding; the message says why."""


class ImageHeader(NamedTuple):
    """What an encoded image's header claims."""

    kind: str
    width: int
    height: int
    # Offset where the pixel data starts (JPEG: the first scan), for the completeness check.
    data_offset: int

    @property
    def pixels(self) -> int:
        """Return width x height."""
        return self.width * self.height


def sniff_format(data: Buffer) -> Optional[str]:
    """Return 'JPEG', 'PNG' or 'TIFF' from the file signature alone, or None."""
    head = bytes(memoryview(data).cast('B')[:8])
    if head.startswith(b'\xff\xd8'):
        return 'JPEG'
    if head == _PNG_SIGNATURE:
        return 'PNG'
    if head[:4] in (_TIFF_LITTLE, _TIFF_BIG):
        return 'TIFF'
    return None


def image_header(data: Buffer) -> ImageHeader:
    """Return the format and size an encoded image claims; raise EncodedImageError if none."""
    view = memoryview(data).cast('B')
    kind = sniff_format(view)
    if kind is None:
        raise EncodedImageError(f'not a {", ".join(FORMATS[:-1])} or {FORMATS[-1]} image '
                                f'(starts with {bytes(view[:4]).hex()})')
    return {'JPEG': _jpeg_header, 'PNG': _png_header, 'TIFF': _tiff_header}[kind](view)


def check_image_header(data: Buffer, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """Return the header if the image is complete and within ``max_pixels``; raise if not."""
    header = image_header(data)
    if header.pixels > max_pixels:
        raise EncodedImageError(
            f'{header.kind} claims {header.width}x{header.height} = {header.pixels} pixels, '
            f'over the limit of {max_pixels}; refused before decoding')
    if not _complete(memoryview(data).cast('B'), header):
        raise EncodedImageError(f'{header.kind} image of {header.width}x{header.height} is '
                                'cut short (no end marker after its pixel data)')
    return header


def decode_image(data: Buffer, flags: int = cv2.IMREAD_COLOR,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """
    Decode a JPEG, PNG or TIFF with OpenCV after checking its header.

    Raise EncodedImageError for another format, a claimed size over ``max_pixels``, a file
    cut short, and anything the decoder refuses.
    """
    buffer = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    header = check_image_header(buffer, max_pixels)
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as error:
        raise EncodedImageError(f'{header.kind} image cannot be decoded: '
                                f'{_last_line(error)}') from error
    if image is None or image.size == 0:
        raise EncodedImageError(f'{header.kind} image of {header.width}x{header.height} '
                                'cannot be decoded (corrupt data)')
    if image.shape[1] != header.width or image.shape[0] != header.height:
        # Never seen from OpenCV; would mean the header walk and the decoder disagree.
        raise EncodedImageError(f'{header.kind} decoded to {image.shape[1]}x'
                                f'{image.shape[0]}, its header says {header.width}x'
                                f'{header.height}')
    return image


def _last_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__


def _u16(view: memoryview, offset: int, big: bool = True) -> int:
    return int.from_bytes(view[offset:offset + 2], 'big' if big else 'little')


def _u32(view: memoryview, offset: int, big: bool = True) -> int:
    return int.from_bytes(view[offset:offset + 4], 'big' if big else 'little')


def _jpeg_header(view: memoryview) -> ImageHeader:
    """Walk the JPEG segments to the first frame header (SOF), as libjpeg does."""
    size, pos = len(view), 2
    while True:
        if pos >= size or view[pos] != 0xFF:
            where = 'ends' if pos >= size else f'has byte {view[pos]:#04x}'
            raise EncodedImageError(f'JPEG header is corrupt: it {where} at offset {pos} '
                                    'where a marker belongs')
        while pos < size and view[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            raise EncodedImageError('JPEG header ends inside a marker')
        marker = view[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (_JPEG_SOS, _JPEG_EOI, _JPEG_SOI, 0x00):
            raise EncodedImageError(f'JPEG has marker {marker:#04x} before its frame header')
        if pos + 2 > size:
            raise EncodedImageError('JPEG header ends inside a segment length')
        length = _u16(view, pos)
        if length < 2 or pos + length > size:
            raise EncodedImageError(f'JPEG segment {marker:#04x} at offset {pos} has length '
                                    f'{length}, the file has {size - pos} bytes left')
        if marker in _JPEG_SOF:
            if length < 8:
                raise EncodedImageError(f'JPEG frame header is {length} bytes, too short')
            height, width = _u16(view, pos + 3), _u16(view, pos + 5)
            if width == 0 or height == 0:
                # Height 0 means "given later by a DNL marker", which decoders do not support.
                raise EncodedImageError(f'JPEG frame header gives size {width}x{height}')
            return ImageHeader('JPEG', width, height, pos + length)
        pos += length


def _png_header(view: memoryview) -> ImageHeader:
    if len(view) < 33 or bytes(view[12:16]) != b'IHDR' or _u32(view, 8) != 13:
        raise EncodedImageError('PNG does not start with a complete IHDR chunk')
    width, height = _u32(view, 16), _u32(view, 20)
    if width == 0 or height == 0 or width >= 1 << 31 or height >= 1 << 31:
        raise EncodedImageError(f'PNG header gives size {width}x{height}')
    return ImageHeader('PNG', width, height, 33)


def _tiff_header(view: memoryview) -> ImageHeader:
    """Read ImageWidth and ImageLength from the first image directory of a classic TIFF."""
    big = bytes(view[:2]) == b'MM'
    size = len(view)
    offset = _u32(view, 4, big) if size >= 8 else 0
    if offset < 8 or offset + 2 > size:
        raise EncodedImageError(f'TIFF directory offset {offset} lies outside the '
                                f'{size}-byte file')
    count = _u16(view, offset, big)
    end = offset + 2 + 12 * count
    if end > size:
        raise EncodedImageError(f'TIFF directory of {count} entries runs past the end')
    found = {}
    for entry in range(offset + 2, end, 12):
        tag, kind = _u16(view, entry, big), _u16(view, entry + 2, big)
        if tag in (_TIFF_WIDTH, _TIFF_HEIGHT) and _u32(view, entry + 4, big) == 1:
            if kind == _TIFF_SHORT:
                found[tag] = _u16(view, entry + 8, big)
            elif kind == _TIFF_LONG:
                found[tag] = _u32(view, entry + 8, big)
    width, height = found.get(_TIFF_WIDTH, 0), found.get(_TIFF_HEIGHT, 0)
    if width == 0 or height == 0:
        raise EncodedImageError(f'TIFF directory gives size {width}x{height}')
    return ImageHeader('TIFF', width, height, end)


def _complete(view: memoryview, header: ImageHeader) -> bool:
    """Tell whether the file still holds its end marker (JPEG EOI, PNG IEND)."""
    if header.kind == 'JPEG':
        # 0xFF 0xD9 cannot occur inside entropy-coded data (0xFF is stuffed there), so an
        # EOI anywhere after the frame header ends the image; bytes after it are ignored.
        return _rfind(view, b'\xff\xd9', header.data_offset) >= 0
    if header.kind == 'PNG':
        return _rfind(view, b'IEND', header.data_offset) >= 0
    # TIFF strips are located by offsets; the decoder refuses ones past the end itself.
    return True


def _rfind(view: memoryview, needle: bytes, start: int) -> int:
    """Return the last position of ``needle`` at or after ``start``, or -1."""
    # The marker is normally among the last bytes: copy only those unless it is not there.
    tail = max(start, len(view) - 4096)
    found = bytes(view[tail:]).rfind(needle)
    if found >= 0:
        return tail + found
    if tail == start:
        return -1
    found = bytes(view[start:tail + len(needle) - 1]).rfind(needle)
    return start + found if found >= 0 else -1
