"""
What a tracker does while the target is away, and after it comes back.

An absence spell is a maximal run of frames in which the target is not visible (absent, fully
occluded or out of view), after the first frame. For each spell that ends before the sequence
does, the tracker *recovers* if, within ``window`` frames of the target's return, its box
overlaps the ground truth with IoU above ``min_iou`` while it does not call the target lost.
*False tracking* counts absent frames on which the tracker published a box (it did not call the
target lost): a robot would steer toward something that is not there.

:func:`ao_after_returns` splits GOT-10k's AO by how long ago the target came back: the frames
just after a return are where a lost state, a wider search and re-detection earn their keep,
and the others where a needless "lost" costs.
"""

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from detrack_model.evaluation.metrics import got10k_frame_ious, rect_iou
from detrack_model.evaluation.results import SequenceResult
import numpy as np


@dataclass
class RecoveryScores:
    """Recovery and false tracking over a set of sequences."""

    spells: int
    recovered: int
    absent_frames: int
    false_tracking: int

    @property
    def recovery_rate(self) -> float:
        """Return the fraction of absence spells recovered from (nan without spells)."""
        return self.recovered / self.spells if self.spells else float('nan')

    @property
    def false_tracking_rate(self) -> float:
        """Return the fraction of absent frames with a published box (nan without any)."""
        return self.false_tracking / self.absent_frames if self.absent_frames else float('nan')


def absence_spells(visible: np.ndarray) -> List[Tuple[int, int]]:
    """Return (first, end) frame ranges of the runs of invisible frames after frame 0."""
    hidden = ~np.asarray(visible, dtype=bool)
    hidden[0] = False
    spells, start = [], None
    for index, value in enumerate(hidden):
        if value and start is None:
            start = index
        elif not value and start is not None:
            spells.append((start, index))
            start = None
    if start is not None:
        spells.append((start, len(hidden)))
    return spells


def sequence_recovery(result: SequenceResult, window: int = 30,
                      min_iou: float = 0.3) -> RecoveryScores:
    """Score one sequence (a tracker without lost flags publishes a box on every frame)."""
    lost = result.lost if result.lost is not None else np.zeros(len(result.boxes), bool)
    iou = rect_iou(result.boxes, np.nan_to_num(np.asarray(result.anno, dtype=np.float64)))
    hit = (iou > min_iou) & ~lost & np.asarray(result.visible, dtype=bool)
    spells = absence_spells(result.visible)
    recovered = sum(bool(hit[end:end + window].any()) for _, end in spells if end < len(hit))
    ending = sum(1 for _, end in spells if end < len(hit))
    absent = np.zeros(len(hit), bool)
    for start, end in spells:
        absent[start:end] = True
    return RecoveryScores(ending, recovered, int(absent.sum()), int((absent & ~lost).sum()))


def recovery(results: Sequence[SequenceResult], window: int = 30,
             min_iou: float = 0.3) -> RecoveryScores:
    """Sum :func:`sequence_recovery` over ``results``."""
    parts = [sequence_recovery(r, window, min_iou) for r in results]
    return RecoveryScores(*(sum(getattr(p, f) for p in parts)
                            for f in ('spells', 'recovered', 'absent_frames', 'false_tracking')))


# The phases of :func:`ao_after_returns`: the first 10 frames after a return, frames 11 to 30
# (the recovery window), then every other scored frame.
RETURN_PHASES = (10, 30)


@dataclass(frozen=True)
class PhaseAO:
    """AO over the scored frames of one phase (``frames`` of them; nan when none)."""

    name: str
    ao: float
    frames: int


def frames_since_return(visible: np.ndarray) -> np.ndarray:
    """
    Return (N,) ints: 1 on the first visible frame after an absence spell, 2 on the next...

    Frames before the first return are -1. Each return restarts the count, so the count of an
    absent frame after a return is meaningless (GOT-10k does not score absent frames).
    """
    visible = np.asarray(visible, dtype=bool).reshape(-1)
    since = np.full(len(visible), -1)
    for _, end in absence_spells(visible):
        since[end:] = np.arange(1, len(visible) - end + 1)
    return since


def ao_after_returns(results: Sequence[SequenceResult],
                     edges: Tuple[int, ...] = RETURN_PHASES) -> List[PhaseAO]:
    """
    Return GOT-10k's AO of ``results`` split by frames since the target's last return.

    Phase k holds the frames ``edges[k - 1] < since <= edges[k]`` (``0 < since`` for the
    first); the last phase holds the rest: frames before any absence and after
    ``edges[-1]``. The frames and IoUs are GOT-10k's own, so the phases' AOs weighted by their
    frame counts give back the pooled AO.
    """
    if list(edges) != sorted(set(edges)) or not edges or edges[0] < 1:
        raise ValueError(f'edges must be increasing positive frame counts, got {edges}')
    bounds = (0,) + tuple(edges)
    names = [f'frames {low + 1}-{high} after a return' for low, high in zip(bounds, bounds[1:])]
    names.append('other frames')
    sums = np.zeros(len(names))
    counts = np.zeros(len(names), dtype=int)
    for result in results:
        ious, scored = got10k_frame_ious(result)
        since = frames_since_return(result.visible)[scored]
        phase = np.searchsorted(bounds[1:], since, side='left')
        phase[(since < 1) | (since > bounds[-1])] = len(edges)
        sums += np.bincount(phase, weights=ious, minlength=len(names))
        counts += np.bincount(phase, minlength=len(names))
    return [PhaseAO(name, float(total / count) if count else float('nan'), int(count))
            for name, total, count in zip(names, sums, counts)]
