"""Tracker results with a known IoU on every frame, and their GOT-10k scores."""

from detrack_model.evaluation import got10k_scores, Scores, SequenceResult
import numpy as np


def still_result(name: str, iou: float, frames: int) -> SequenceResult:
    """Return a result whose ``frames`` scored frames (after frame 0) all have IoU ``iou``."""
    anno = np.tile([0.0, 0.0, 10.0, 10.0], (frames + 1, 1))
    boxes = anno.copy()
    boxes[1:, 2] = 10.0 * iou  # same left edge and height: IoU is the width ratio
    return SequenceResult(name, boxes, anno, np.ones(frames + 1, bool), np.full(frames + 1, 0.01))


def scored(ious, frames) -> Scores:
    """Return GOT-10k scores of sequences s0, s1, ... with the given IoUs and frame counts."""
    pairs = enumerate(zip(ious, frames))
    return got10k_scores([still_result(f's{i}', iou, n) for i, (iou, n) in pairs])
