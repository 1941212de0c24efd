"""The tracker node's ``debug_image``: the frame with the box, the search area and the score."""

from typing import Optional, Sequence, Tuple

import cv2
from detrack_ros.image_conversion import Frame, ImageConversionError
import numpy as np

TRACKING_COLOUR = (0, 220, 0)   # BGR
LOST_COLOUR = (0, 0, 255)
SEARCH_COLOUR = (255, 160, 0)


def to_bgr(frame: Frame) -> np.ndarray:
    """
    Return a frame as a new contiguous BGR (H, W, 3) uint8 image, fit to show and draw on.

    The frame itself is never written to: it may alias a received message's buffer.
    """
    array = frame.array
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageConversionError(f'cannot show an image of shape {array.shape}')
    if not frame.bgr:
        return cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    return np.array(array, dtype=np.uint8, order='C', copy=True)


def draw_overlay(frame: Frame, box_xywh: Optional[Sequence[float]], score: float, lost: bool,
                 search_xywh: Optional[Sequence[float]] = None) -> np.ndarray:
    """
    Return a new BGR (H, W, 3) image: ``frame`` with the box, score and search area drawn.

    A lost target is drawn red at its last confident box; the search area is drawn thin.
    """
    canvas = to_bgr(frame)
    if search_xywh is not None:
        draw_box(canvas, search_xywh, SEARCH_COLOUR, 1)
    if box_xywh is not None:
        colour = LOST_COLOUR if lost else TRACKING_COLOUR
        corner = draw_box(canvas, box_xywh, colour, 2)
        label = f'{"lost " if lost else ""}{score:.2f}'
        cv2.putText(canvas, label, (corner[0], max(12, corner[1] - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return canvas


def draw_box(canvas: np.ndarray, box_xywh: Sequence[float], colour: Tuple[int, int, int],
             thickness: int) -> Tuple[int, int]:
    """Draw an x, y, w, h box on ``canvas`` in place; return its top-left pixel."""
    x, y, w, h = (float(v) for v in box_xywh)
    top_left = (int(round(x)), int(round(y)))
    cv2.rectangle(canvas, top_left, (int(round(x + w)), int(round(y + h))), colour, thickness)
    return top_left
