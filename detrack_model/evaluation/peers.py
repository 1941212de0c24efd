"""
Classical OpenCV trackers behind the harness's tracker interface, as reference points.

``initialize(frame, box_xywh)`` and ``track(frame) -> (box_xywh, score)`` take HxWx3 uint8 RGB
frames like every tracker the runner drives. OpenCV wants BGR and an integer rectangle inside
the image, and some of its trackers assert on degenerate windows, so the initial box is
adapted first:

- it is clipped to the image (a box partly outside the frame is legal ground truth);
- each side is grown, around the box centre and inside the image, to at least
  :data:`MIN_SIDE` pixels (CSRT and MOSSE assert on a 1-pixel side);
- for CSRT the short side is grown until the aspect ratio is at most :data:`CSRT_MAX_ASPECT`
  (OpenCV 4.x CSRT asserts on initial boxes longer than about 37 times their width).

A box with no area or no overlap with the image is a ``ValueError``. A failed update (or an
OpenCV error inside one) keeps the last box and reports score 0.0; a successful one reports
1.0: these trackers have no calibrated confidence.
"""

import math
from typing import Callable, Dict, Sequence, Tuple

import cv2
import numpy as np

PEERS: Tuple[str, ...] = ('csrt', 'kcf', 'mosse', 'medianflow')

MIN_SIDE = 2
CSRT_MAX_ASPECT = 32.0

# KCF and CSRT live in the main namespace of OpenCV 4.5.1+; MOSSE and MedianFlow survive only
# in the contrib ``legacy`` module.
_CONSTRUCTORS: Dict[str, Callable[[], object]] = {
    'csrt': lambda: cv2.TrackerCSRT_create(),
    'kcf': lambda: cv2.TrackerKCF_create(),
    'mosse': lambda: cv2.legacy.TrackerMOSSE_create(),
    'medianflow': lambda: cv2.legacy.TrackerMedianFlow_create(),
}


class OpenCVTracker:
    """An OpenCV tracker (one of :data:`PEERS`) with the ``initialize``/``track`` interface."""

    def __init__(self, kind: str) -> None:
        key = str(kind).lower()
        if key not in _CONSTRUCTORS:
            raise ValueError(f'unknown OpenCV tracker {kind!r}; choose from {", ".join(PEERS)}')
        self.kind = key
        self.name = f'opencv-{key}'
        self._tracker = None
        self._box = np.zeros(4)

    def initialize(self, frame: np.ndarray, box_xywh: Sequence[float]) -> None:
        """Start tracking the target at ``box_xywh`` (x, y, w, h pixels) in an RGB frame."""
        height, width = _check_frame(frame)
        rect = init_rect(box_xywh, width, height,
                         CSRT_MAX_ASPECT if self.kind == 'csrt' else math.inf)
        tracker = _CONSTRUCTORS[self.kind]()
        try:
            # The legacy trackers return a success flag; the others return None.
            ok = tracker.init(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), rect)
        except cv2.error as error:
            raise ValueError(f'{self.name} cannot start from box {tuple(box_xywh)} (OpenCV '
                             f'rectangle {rect} in a {width}x{height} frame): {error}') from None
        if ok is False:
            raise ValueError(f'{self.name} refused the initial box {tuple(box_xywh)} (OpenCV '
                             f'rectangle {rect} in a {width}x{height} frame)')
        self._tracker = tracker
        self._box = np.asarray(box_xywh, dtype=np.float64).reshape(4).copy()

    def track(self, frame: np.ndarray) -> Tuple[np.ndarray, float]:
        """Return the box (x, y, w, h float64) in the next RGB frame and a 0/1 score."""
        if self._tracker is None:
            raise RuntimeError(f'{self.name}: call initialize() before track()')
        try:
            ok, rect = self._tracker.update(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        except cv2.error:
            # The target left the image or collapsed: that is the tracker losing it, which
            # the benchmark should score, not a reason to abort the run.
            ok, rect = False, None
        if ok and rect[2] > 0 and rect[3] > 0:
            self._box = np.array(rect, dtype=np.float64)
            return self._box.copy(), 1.0
        return self._box.copy(), 0.0

    def __repr__(self) -> str:
        """Name the tracker."""
        return f'OpenCVTracker({self.kind!r})'


def create_peer(name: str) -> OpenCVTracker:
    """Return a new OpenCV tracker of kind ``name`` (one of :data:`PEERS`)."""
    key = str(name).lower()
    if key.startswith('opencv-'):
        key = key[len('opencv-'):]
    if key not in PEERS:
        raise ValueError(f'unknown peer tracker {name!r}; known: {", ".join(PEERS)}')
    return OpenCVTracker(key)


def init_rect(box_xywh: Sequence[float], width: int, height: int,
              max_aspect: float = math.inf) -> Tuple[int, int, int, int]:
    """
    Return the integer (x, y, w, h) rectangle OpenCV is started from for ``box_xywh``.

    The box is clipped to the ``width`` x ``height`` image, its edges rounded to pixels, and
    each side grown around the centre (inside the image) to :data:`MIN_SIDE` and to
    ``long side / max_aspect``.
    """
    values = np.asarray(box_xywh, dtype=np.float64).reshape(-1)
    if values.shape != (4,) or not np.isfinite(values).all() or values[2] <= 0 \
            or values[3] <= 0:
        raise ValueError(f'initial box must be 4 finite numbers x, y, w, h with w, h > 0, '
                         f'got {tuple(values.tolist())}')
    x, y, w, h = values.tolist()
    x0, x1 = max(x, 0.0), min(x + w, float(width))
    y0, y1 = max(y, 0.0), min(y + h, float(height))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f'initial box {(x, y, w, h)} has no pixel inside the '
                         f'{width}x{height} frame')
    # Rounding may empty a sliver of a box; growing to MIN_SIDE below restores it.
    left, right, top, bottom = (int(math.floor(v + 0.5)) for v in (x0, x1, y0, y1))
    need_w = need_h = MIN_SIDE
    if math.isfinite(max_aspect):
        need_w = max(need_w, int(math.ceil((bottom - top) / max_aspect)))
        need_h = max(need_h, int(math.ceil((right - left) / max_aspect)))
    left, right = _grow(left, right, need_w, width)
    top, bottom = _grow(top, bottom, need_h, height)
    return left, top, right - left, bottom - top


def _grow(low: int, high: int, need: int, limit: int) -> Tuple[int, int]:
    """Widen [low, high) to ``need`` pixels around its centre, kept inside [0, limit)."""
    if high - low >= need:
        return low, high
    if limit < need:
        raise ValueError(f'the frame ({limit} pixels) is narrower than the {need}-pixel window '
                         'the tracker needs')
    low = int(math.floor((low + high - need) / 2.0))
    low = min(max(low, 0), limit - need)
    return low, low + need


def _check_frame(frame: np.ndarray) -> Tuple[int, int]:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 \
            or frame.dtype != np.uint8:
        raise ValueError('frames must be HxWx3 uint8 RGB arrays, got '
                         f'{getattr(frame, "shape", None)} {getattr(frame, "dtype", type(frame))}')
    return frame.shape[0], frame.shape[1]
