"""
Initial boxes of a target: the rules that decide what the tracker may start from.

Every box is ``(x, y, w, h)`` in image pixels as floats: ``(x, y)`` the top-left corner, x to
the right and y down, ``w``/``h`` the width and height. A rejection is an
:class:`InitBoxError` whose message is meant to be logged as it is. Whatever turns an input
(a message, two clicks, a detection) into a box passes it through :func:`validate_box` once
the image size is known, so one set of rules decides what the tracker accepts.
"""

import math
from typing import Optional, Sequence, Tuple

Box = Tuple[float, float, float, float]
"""``(x, y, w, h)`` in image pixels, ``(x, y)`` the top-left corner."""

ImageSize = Tuple[int, int]
"""``(width, height)`` of the image in pixels."""

MIN_BOX_SIDE = 2.0
"""
Smallest accepted box side in pixels.

The tracker crops a template around the box and resizes it to its fixed input size; below two
pixels a side the crop holds no appearance to match against, and the box usually comes from a
slipped click rather than a real target.
"""

DEFAULT_CLICK_TIMEOUT_SEC = 10.0
"""Age after which a lone first click of a :class:`ClickPair` is forgotten."""


class InitBoxError(ValueError):
    """
    An initial box input that cannot become a box; the message says why in one line.

    ``kind`` names the rule that refused it (``non_finite``, ``empty``, ``too_small``,
    ``outside``, ``malformed``, ``clicks``, ``score``), so that a node can
    throttle its warnings per rule without losing the first of each.
    """

    def __init__(self, message: str, kind: str = 'malformed') -> None:
        super().__init__(message)
        self.kind = kind


def validate_box(box: Sequence[float], image_size: Optional[ImageSize] = None) -> Box:
    """
    Return ``box`` as a float tuple if the tracker can start from it, else raise InitBoxError.

    Rejected: non-finite values, a zero or negative width or height, a side shorter than
    :data:`MIN_BOX_SIDE`, and, when ``image_size`` ``(width, height)`` is given, a box with no
    pixel inside the image. With ``image_size`` the box is clipped to the image, and refused
    when what is left has a side under :data:`MIN_BOX_SIDE`: the part outside cannot be seen,
    and a box of 4294967295 pixels (a -1 sent as unsigned) must not become the target as is.
    """
    if len(box) != 4:
        raise InitBoxError(f'a box needs 4 values (x, y, w, h), got {len(box)}')
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) has a NaN or infinite value',
                           'non_finite')
    if w <= 0.0 or h <= 0.0:
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) has zero or negative area '
                           f'(width {w:g}, height {h:g})', 'empty')
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) is too small to track: '
                           f'each side must be at least {MIN_BOX_SIDE:g} px', 'too_small')
    if image_size is None:
        return (x, y, w, h)
    width, height = image_size
    if x >= width or y >= height or x + w <= 0.0 or y + h <= 0.0:
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) lies entirely outside the '
                           f'{width}x{height} image', 'outside')
    # x + w may overflow to inf for huge finite values; min() still gives the image edge.
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        raise InitBoxError(f'box ({x:g}, {y:g}, {w:g}, {h:g}) keeps {x1 - x0:g}x{y1 - y0:g} px '
                           f'inside the {width}x{height} image: too small to track', 'outside')
    return (x0, y0, x1 - x0, y1 - y0)


class ClickPair:
    """
    Build a box from two clicks on opposite corners, in any order.

    Feed it ``geometry_msgs/Point`` clicks of rqt_image_view (already pixels) or RViz points
    after :func:`project_point`. The first click is kept until a second one arrives; a first
    click older than ``timeout_sec`` is dropped and the new click becomes the first, so a stray
    click long ago does not pair with a fresh one. A second click with a stamp earlier than the
    first (a replayed bag, a reset simulation clock) is treated the same way. The result is not
    passed through :func:`validate_box`; the node does that with the image size.
    """

    def __init__(self, timeout_sec: float = DEFAULT_CLICK_TIMEOUT_SEC) -> None:
        """Start with no click; ``timeout_sec`` must be positive."""
        if not timeout_sec > 0.0:
            raise ValueError(f'click timeout must be positive, got {timeout_sec!r}')
        self.timeout_sec = float(timeout_sec)
        self._first: Optional[Tuple[float, float, float]] = None

    @property
    def pending(self) -> Optional[Tuple[float, float]]:
        """Return the first corner waiting for its opposite one, or None."""
        if self._first is None:
            return None
        return self._first[0], self._first[1]

    def reset(self) -> None:
        """Forget a pending first click."""
        self._first = None

    def add(self, x: float, y: float, stamp_sec: float) -> Optional[Box]:
        """
        Record a click at pixel ``(x, y)`` taken at ``stamp_sec`` seconds.

        Return None after a first click and the ``(x, y, w, h)`` box spanned by the two corners
        after the second, then start over. Raise InitBoxError for a non-finite click (the
        pending one is kept) and for two clicks on the same row or column (state reset).
        """
        x, y, stamp_sec = float(x), float(y), float(stamp_sec)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InitBoxError(f'click at ({x:g}, {y:g}) is not a finite pixel position',
                               'non_finite')
        first = self._first
        if first is None or not 0.0 <= stamp_sec - first[2] <= self.timeout_sec:
            self._first = (x, y, stamp_sec)
            return None
        self._first = None
        x0, y0 = first[0], first[1]
        w, h = abs(x - x0), abs(y - y0)
        if w == 0.0 or h == 0.0:
            raise InitBoxError(f'clicks at ({x0:g}, {y0:g}) and ({x:g}, {y:g}) span no area; '
                               'click two opposite corners of the target', 'clicks')
        return (min(x, x0), min(y, y0), w, h)
