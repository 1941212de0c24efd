"""
One tracker's output on one sequence, and its files in the GOT-10k toolkit's result format.

A run writes ``<results>/<tracker>/<seq>/<seq>_001.txt`` (one ``x,y,w,h`` line per frame) and
``<seq>_time.txt`` (seconds per frame), so its results can be scored by the official toolkits
as well as by :mod:`detrack_model.evaluation.metrics`.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np


@dataclass
class SequenceResult:
    """
    Predictions of one tracker on one sequence, with the ground truth they are scored against.

    ``boxes`` (N, 4) predicted x, y, w, h (frame 0 = the initial box); ``anno`` (N, 4) ground
    truth as the dataset gives it (NaN where unknown); ``visible`` (N,) the dataset's own
    visibility (absence, cover, occlusion and out-of-view flags combined with a valid box);
    ``times`` (N,) seconds per frame; ``image_size`` (width, height) for protocols that clip
    boxes to the frame.
    """

    name: str
    boxes: np.ndarray
    anno: np.ndarray
    visible: np.ndarray
    times: np.ndarray
    image_size: Optional[Tuple[int, int]] = None
