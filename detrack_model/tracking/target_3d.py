"""
The tracked target in 3-D from an aligned depth image, and its bearing. No ROS in here.

Conventions:

- Boxes are the tracker's ``(x, y, w, h)`` in pixel-edge coordinates: pixel column ``i`` spans
  ``[i, i + 1)``. Intrinsics ``K`` (as in ``sensor_msgs/CameraInfo``) put the centre of pixel
  ``i`` at ``i``; so the box centre that goes through ``K`` is ``(x + w/2 - 0.5,
  y + h/2 - 0.5)``.
- Points and rays are in the camera's optical frame: x right, y down, z forward, metres.
- A depth image holds z (distance along the optical axis, not along the ray), in raw units
  (uint16 millimetres, float32 metres, or whatever ``metres_per_unit`` says), aligned to the
  colour image pixel for pixel.
- Lens distortion is not modelled: rays and projections go through ``K`` alone (pinhole). That
  is exact on rectified or undistorted images and off by the lens distortion at the box
  centre on raw ones.

The target's depth is a percentile of the valid depth pixels in the central part of the box
(valid: finite and inside ``[min_depth, max_depth]``; zeros, the "no reading" of 16-bit
depth, and NaN, that of float depth, both fall outside). The central part keeps background
that shows around the target's outline out of the statistic; the percentile (the median by
default) ignores holes' neighbours and speckle. Too few valid pixels means no 3-D answer,
never a guess.

Per-frame work is vectorised NumPy on a view of the box's central region: one mask, one copy
of the valid values, one partition.
"""

import collections
from dataclasses import dataclass
import math
import threading
import time
from typing import Deque, Generic, NamedTuple, Optional, Sequence, Tuple, TypeVar

import numpy as np

Item = TypeVar('Item')

# Percentiles whose difference is the depth spread of the target (its extent along z):
# robust to a few stray pixels, unlike the minimum and maximum.
SPREAD_PERCENTILES = (10.0, 90.0)


class Target3DError(ValueError):
    """
    A frame that gets no 3-D answer; the message says why in one line.

    ``kind`` names the cause (``too_few_valid``, ``size_mismatch``, ``outside``,
    ``camera_info``), so that a node counts each cause on its own.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class DepthSettings:
    """How the target's depth is read from the depth pixels in its box."""

    # Valid depth range in metres; readings outside it (and zeros, NaN, inf) are ignored.
    min_depth: float = 0.1
    max_depth: float = 20.0
    # Percentile of the valid depths taken as the target's depth (50: the median).
    percentile: float = 50.0
    # Side of the central region used, as a fraction of the box's width and height.
    roi_fraction: float = 0.5
    # Fewer valid pixels than this in the central region: no 3-D answer.
    min_valid_pixels: int = 10

    def __post_init__(self) -> None:
        """Name the first setting that cannot work."""
        if not (math.isfinite(self.min_depth) and self.min_depth > 0.0):
            raise ValueError(f'min_depth must be a positive number of metres (zero is the '
                             f'"no reading" value), got {self.min_depth!r}')
        if not (math.isfinite(self.max_depth) and self.max_depth > self.min_depth):
            raise ValueError(f'max_depth must be finite and larger than min_depth '
                             f'{self.min_depth:g}, got {self.max_depth!r}')
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f'percentile must be in [0, 100], got {self.percentile!r}')
        if not 0.0 < self.roi_fraction <= 1.0:
            raise ValueError(f'roi_fraction must be in (0, 1], got {self.roi_fraction!r}')
        if isinstance(self.min_valid_pixels, bool) or not isinstance(self.min_valid_pixels, int) \
                or self.min_valid_pixels < 1:
            raise ValueError(f'min_valid_pixels must be an integer >= 1, got '
                             f'{self.min_valid_pixels!r}')


@dataclass(frozen=True)
class Intrinsics:
    """The pinhole part of a camera calibration: focal lengths, principal point, skew."""

    fx: float
    fy: float
    cx: float
    cy: float
    skew: float = 0.0

    @classmethod
    def from_k(cls, k: Sequence[float], calibrated_size: Tuple[int, int] = (0, 0),
               image_size: Optional[Tuple[int, int]] = None) -> 'Intrinsics':
        """
        Return the intrinsics of a row-major 3x3 ``K``, or raise Target3DError.

        ``calibrated_size`` is the (width, height) the calibration is for (0, 0: unknown);
        when both it and ``image_size`` are known they must agree, since K of another
        resolution would put every ray in the wrong direction.
        """
        if len(k) != 9:
            raise Target3DError(f'K needs 9 values, got {len(k)}', 'camera_info')
        values = [float(v) for v in k]
        fx, skew, cx, _, fy, cy = values[:6]
        if not all(math.isfinite(v) for v in values):
            raise Target3DError('camera_info K has a NaN or infinite value', 'camera_info')
        if not (fx > 0.0 and fy > 0.0):
            raise Target3DError(f'camera_info K has focal lengths fx={fx:g}, fy={fy:g}: the '
                                'camera is not calibrated', 'camera_info')
        if image_size is not None and all(calibrated_size) \
                and tuple(calibrated_size) != tuple(image_size):
            raise Target3DError(
                f'camera_info is for {calibrated_size[0]}x{calibrated_size[1]} images, the '
                f'image is {image_size[0]}x{image_size[1]}', 'camera_info')
        return cls(fx, fy, cx, cy, skew)

    def normalised(self, u: float, v: float) -> Tuple[float, float]:
        """Return the point on the z = 1 plane that pixel ``(u, v)`` (K convention) sees."""
        yn = (v - self.cy) / self.fy
        return (u - self.cx - self.skew * yn) / self.fx, yn

    def ray(self, u: float, v: float) -> Tuple[float, float, float]:
        """Return the unit vector from the camera through pixel ``(u, v)`` (K convention)."""
        xn, yn = self.normalised(u, v)
        norm = math.sqrt(xn * xn + yn * yn + 1.0)
        return xn / norm, yn / norm, 1.0 / norm

    def point(self, u: float, v: float, z: float) -> Tuple[float, float, float]:
        """Return the 3-D point at depth ``z`` (along the optical axis) seen at pixel (u, v)."""
        xn, yn = self.normalised(u, v)
        return xn * z, yn * z, z


def box_centre(box: Sequence[float]) -> Tuple[float, float]:
    """Return the centre of an ``(x, y, w, h)`` pixel-edge box in K's pixel convention."""
    x, y, w, h = (float(v) for v in box)
    return x + 0.5 * w - 0.5, y + 0.5 * h - 0.5


def box_bearing(box: Sequence[float], intrinsics: Intrinsics) -> Tuple[float, float, float]:
    """Return the unit ray through the centre of ``box`` (for pointing, without depth)."""
    return intrinsics.ray(*box_centre(box))


class BoxDepth(NamedTuple):
    """The target's depth and depth spread in metres, and how many pixels gave them."""

    depth: float
    spread: float
    valid_pixels: int


def central_region(box: Sequence[float], fraction: float,
                   image_size: Tuple[int, int]) -> Tuple[slice, slice]:
    """
    Return the (rows, columns) slices of the central ``fraction`` of ``box``, in the image.

    A pixel belongs when its centre lies inside the region; a region narrower than a pixel
    keeps the one pixel under its centre. Raise Target3DError when none is in the image.
    """
    x, y, w, h = (float(v) for v in box)
    width, height = image_size
    slices = []
    for start, side, limit in ((y, h, height), (x, w, width)):
        centre = start + 0.5 * side
        half = 0.5 * fraction * side
        first = max(int(math.ceil(centre - half - 0.5)), 0)
        stop = min(int(math.floor(centre + half - 0.5)) + 1, limit)
        if stop <= first:
            first = min(max(int(math.floor(centre)), 0), limit - 1)
            stop = first + 1
            if not 0.0 <= centre < limit:
                first = stop = 0
        slices.append(slice(first, stop))
    rows, columns = slices
    if rows.stop <= rows.start or columns.stop <= columns.start:
        raise Target3DError(f'box ({x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}) has its centre outside '
                            f'the {width}x{height} depth image', 'outside')
    return rows, columns


def box_depth(depth: np.ndarray, box: Sequence[float], metres_per_unit: float,
              settings: DepthSettings) -> BoxDepth:
    """
    Return the target's depth in the central region of ``box`` of a raw ``depth`` image.

    ``depth`` is (H, W) in raw units (any real dtype, any strides: a view of the message is
    read, never copied whole), ``metres_per_unit`` converts them. Raise Target3DError (kind
    ``too_few_valid``) when fewer than ``settings.min_valid_pixels`` pixels are valid.
    """
    if not (math.isfinite(metres_per_unit) and metres_per_unit > 0.0):
        raise ValueError(f'metres_per_unit must be positive, got {metres_per_unit!r}')
    rows, columns = central_region(box, settings.roi_fraction,
                                   (depth.shape[1], depth.shape[0]))
    region = depth[rows, columns]
    low = settings.min_depth / metres_per_unit
    high = settings.max_depth / metres_per_unit
    # NaN compares false both ways, so one range test also drops NaN; zeros lie below low.
    valid = region[(region >= low) & (region <= high)]
    count = int(valid.size)
    if count < settings.min_valid_pixels:
        raise Target3DError(
            f'{count} of {region.size} depth pixels in the box centre are valid (in '
            f'[{settings.min_depth:g}, {settings.max_depth:g}] m), fewer than '
            f'{settings.min_valid_pixels}', 'too_few_valid')
    # ``valid`` is this call's own copy: the partition may reorder it in place.
    lower, value, upper = np.percentile(
        valid, (SPREAD_PERCENTILES[0], settings.percentile, SPREAD_PERCENTILES[1]),
        overwrite_input=True)
    return BoxDepth(float(value) * metres_per_unit, float(upper - lower) * metres_per_unit,
                    count)


@dataclass(frozen=True)
class Target3D:
    """The target in the optical frame: its centre and its extent (metres)."""

    position: Tuple[float, float, float]
    size: Tuple[float, float, float]
    depth: BoxDepth


def box_size_3d(box: Sequence[float], depth: BoxDepth,
                intrinsics: Intrinsics) -> Tuple[float, float, float]:
    """Return the target's (x, y, z) extent: the box's sides at its depth, and the spread."""
    w, h = float(box[2]), float(box[3])
    return (w * depth.depth / intrinsics.fx, h * depth.depth / intrinsics.fy, depth.spread)


def locate_target(depth: np.ndarray, metres_per_unit: float, box: Sequence[float],
                  intrinsics: Intrinsics, settings: DepthSettings) -> Target3D:
    """
    Return the target of ``box`` in 3-D from the aligned raw ``depth`` image.

    The position is the point on the ray through the box centre at the target's depth (the
    depth of its visible surface). Raise Target3DError when the frame gets no answer.
    """
    measured = box_depth(depth, box, metres_per_unit, settings)
    return Target3D(intrinsics.point(*box_centre(box), measured.depth),
                    box_size_3d(box, measured, intrinsics), measured)


class StampedHistory(Generic[Item]):
    """
    The last few items of a stream (depth images) by stamp, to pair with another stream's.

    :meth:`add` is called by the stream's callback, :meth:`match` by whoever needs the item of
    a stamp, on any thread. ``match`` may wait a little for an item that has not arrived yet:
    two topics of one camera rarely arrive in the same order.
    """

    # Items arriving less often than this do not count as a live stream worth waiting for.
    ALIVE_SEC = 1.0

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f'size must be >= 1, got {size!r}')
        self._items: Deque[Tuple[int, Item]] = collections.deque(maxlen=size)
        self._arrived = threading.Condition()
        self._last_arrival = -math.inf

    def __len__(self) -> int:
        """Return how many items are kept."""
        return len(self._items)

    def add(self, stamp_ns: int, item: Item) -> None:
        """Keep ``item`` stamped ``stamp_ns`` (the oldest kept leaves when full)."""
        with self._arrived:
            self._items.append((int(stamp_ns), item))
            self._last_arrival = time.monotonic()
            self._arrived.notify_all()

    def clear(self) -> None:
        """Forget every item."""
        with self._arrived:
            self._items.clear()
            self._last_arrival = -math.inf

    def _closest(self, stamp_ns: int,
                 tolerance_ns: int) -> Tuple[Optional[Tuple[int, Item]], bool]:
        """Return the closest item within tolerance, and whether a later one may still match."""
        best, best_gap, newest = None, tolerance_ns, None
        # A few items at most: a plain scan is cheaper than keeping an index.
        for entry in self._items:
            gap = abs(entry[0] - stamp_ns)
            if gap <= best_gap:
                best, best_gap = entry, gap
            newest = entry[0] if newest is None else max(newest, entry[0])
        pending = newest is None or newest < stamp_ns + tolerance_ns
        return best, pending

    def match(self, stamp_ns: int, tolerance_ns: int,
              wait_sec: float = 0.0) -> Optional[Tuple[int, Item]]:
        """
        Return ``(stamp, item)`` of the item closest to ``stamp_ns`` within ``tolerance_ns``.

        While none matches, the stream is live (an item came within :attr:`ALIVE_SEC`) and no
        kept item is already past the window, wait up to ``wait_sec`` for one to arrive; the
        first that matches ends the wait. Return None when none matches.
        """
        deadline = time.monotonic() + wait_sec
        with self._arrived:
            while True:
                best, pending = self._closest(stamp_ns, tolerance_ns)
                now = time.monotonic()
                if best is not None or not pending or now >= deadline or not self._live(now):
                    return best
                self._arrived.wait(deadline - now)

    def _live(self, now: float) -> bool:
        return now - self._last_arrival < self.ALIVE_SEC
