"""The tracker node's ``debug_image``: the frame with the box, the search area and the score."""

from typing import Optional, Sequence

import cv2
import numpy as np

TRACKING_COLOUR = (0, 220, 0)   # BGR
LOST_COLOUR = (0, 0, 255)
SEARCH_COLOUR = (255, 160, 0)


def draw_overlay(frame: np.ndarray, bgr: bool, box_xywh: Optional[Sequence[float]],
                 score: float, lost: bool,
                 search_xywh: Optional[Sequence[float]] = None) -> np.ndarray:
    """
    Return a new BGR (H, W, 3) image: ``frame`` with the box, score and search area drawn.

    ``frame`` is never written to (it may alias the received message's buffer). A lost target
    is drawn red at its last confident box; the search area is drawn thin.
    """
    if frame.ndim == 2:
        canvas = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif bgr:
        canvas = frame.copy()
    else:
        canvas = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if search_xywh is not None:
        _rectangle(canvas, search_xywh, SEARCH_COLOUR, 1)
    if box_xywh is not None:
        colour = LOST_COLOUR if lost else TRACKING_COLOUR
        corner = _rectangle(canvas, box_xywh, colour, 2)
        label = f'{"lost " if lost else ""}{score:.2f}'
        cv2.putText(canvas, label, (corner[0], max(12, corner[1] - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return canvas


def _rectangle(canvas: np.ndarray, box_xywh: Sequence[float], colour, thickness: int):
    x, y, w, h = (float(v) for v in box_xywh)
    top_left = (int(round(x)), int(round(y)))
    cv2.rectangle(canvas, top_left, (int(round(x + w)), int(round(y + h))), colour, thickness)
    return top_left
