"""
Ground-truth-free consistency measures of a tracker on real video.

Without ground truth a tracker cannot be scored for accuracy, but it can be checked for
self-consistency:

* **Forward-backward IoU** (:func:`forward_backward`): track forward from the initial box over
  frames 0..n, start a fresh tracker on frame n from the forward box there, track backward over
  frames n..0, and compare the box it ends with on frame 0 to the initial box. A tracker that
  followed one object both ways comes back to where it started (IoU near 1); one that drifted
  onto the background or a distractor usually does not. A high value is necessary, not
  sufficient: a tracker stuck on a static background patch also comes back.
* **Scale stability** (:func:`max_scale_change`): real objects do not triple their image area
  from one frame to the next, so a box that does has jumped to something else (or collapsed).

"Lost" means the tracker itself said it had no target on that frame (:func:`declared_lost`):
DETRack's ``Tracker.lost`` (best score under ``score_threshold`` for ``lost_patience`` frames
in a row; the frames of the patience window before that are not lost), or, for trackers
without that attribute (the OpenCV peers), a failed update, which they report as score 0.
Frames a tracker declared lost are left out of the scale measures: its box there is not a
claim about the target.
"""

from dataclasses import dataclass
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from detrack_model.evaluation.metrics import rect_iou
import numpy as np
from numpy.typing import ArrayLike

# Anything with initialize(frame, box_xywh) -> None and track(frame) -> (box_xywh, score).
TrackerFactory = Callable[[], Any]

# Image-area ratio between consecutive frames above which a box is said to jump.
JUMP_RATIO = 3.0


@dataclass
class TrackRun:
    """
    One tracker's pass over a list of frames.

    ``boxes`` (N, 4) x, y, w, h (row 0 is the initial box), ``scores`` (N,) (1.0 on row 0),
    ``lost`` (N,) bool (:func:`declared_lost`; False on row 0), ``times`` (N,) seconds of each
    call (row 0: ``initialize``, the others ``track`` alone, frame decoding excluded).
    """

    boxes: np.ndarray
    scores: np.ndarray
    lost: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        """Return the number of frames, the initial one included."""
        return len(self.boxes)

    def median_ms(self) -> float:
        """Return the median time of a ``track`` call in milliseconds (NaN for one frame)."""
        if len(self.times) < 2:
            return float('nan')
        return float(np.median(self.times[1:]) * 1000.0)


@dataclass
class ForwardBackward:
    """The result of one forward-backward check over frames 0..n."""

    n: int
    iou: float
    forward: TrackRun
    backward: TrackRun


@dataclass
class ScaleChange:
    """
    Box-area stability of one run.

    ``max_ratio`` is the largest ``max(a / b, b / a)`` of the areas of two consecutive frames
    neither of which was declared lost (1.0 when there is no such pair); ``growth_jumps`` and
    ``shrink_jumps`` count the frames whose area is more than ``ratio`` times, or less than
    ``1 / ratio`` of, the previous frame's (both not lost); ``jump_frames`` lists those frames'
    indices, ``pairs`` is how many consecutive pairs were compared.
    """

    max_ratio: float
    growth_jumps: int
    shrink_jumps: int
    jump_frames: List[int]
    pairs: int
    ratio: float = JUMP_RATIO


def declared_lost(tracker: Any, score: float) -> bool:
    """
    Tell whether ``tracker`` declared its target lost on the frame that gave ``score``.

    A tracker with a boolean ``lost`` attribute (DETRack's :class:`Tracker`) is asked; any
    other one (the OpenCV peers, which have no confidence and report a failed update as score
    0) is lost when ``score <= 0``.
    """
    flag = getattr(tracker, 'lost', None)
    if isinstance(flag, (bool, np.bool_)):
        return bool(flag)
    return not score > 0.0


def run_track(tracker: Any, frames: Sequence[np.ndarray], box: ArrayLike) -> TrackRun:
    """
    Initialise ``tracker`` on ``frames[0]`` at ``box`` and track every following frame.

    Frames are HxWx3 uint8 RGB. Returns the boxes, scores, lost flags and per-call times.
    """
    count = len(frames)
    if count < 1:
        raise ValueError('run_track needs at least one frame')
    initial = np.asarray(box, dtype=np.float64).reshape(4)
    boxes = np.empty((count, 4), dtype=np.float64)
    scores = np.ones(count, dtype=np.float64)
    lost = np.zeros(count, dtype=bool)
    times = np.empty(count, dtype=np.float64)
    clock = time.perf_counter
    start = clock()
    tracker.initialize(frames[0], initial.copy())
    times[0] = clock() - start
    boxes[0] = initial
    for index in range(1, count):
        start = clock()
        result, score = tracker.track(frames[index])
        times[index] = clock() - start
        boxes[index] = np.asarray(result, dtype=np.float64).reshape(4)
        scores[index] = float(score)
        lost[index] = declared_lost(tracker, float(score))
    return TrackRun(boxes=boxes, scores=scores, lost=lost, times=times)


def forward_backward(tracker_factory: TrackerFactory, frames: Sequence[np.ndarray],
                     box: ArrayLike, n: int, forward: Optional[TrackRun] = None
                     ) -> ForwardBackward:
    """
    Run the forward-backward check over ``frames[0..n]`` and return its IoU and both runs.

    The tracker runs forward over frames 0..n from ``box``; a fresh tracker from
    ``tracker_factory`` is initialised on frame n at the forward box there (whether or not the
    forward run had declared the target lost) and runs backward over frames n..0; the FB IoU
    is the IoU of its box on frame 0 with ``box``. ``forward`` may be a run already made from
    ``box`` over at least frames 0..n (a tracker only sees the past, so its first n + 1 boxes
    are those of a run stopped at n); it saves tracking the same frames again for every n.
    """
    if not 1 <= n < len(frames):
        raise ValueError(f'n must be in 1..{len(frames) - 1} for {len(frames)} frames, got {n}')
    initial = np.asarray(box, dtype=np.float64).reshape(4)
    if forward is None:
        forward = run_track(tracker_factory(), frames[:n + 1], initial)
    elif len(forward) < n + 1:
        raise ValueError(f'the forward run has {len(forward)} frames, frames 0..{n} need '
                         f'{n + 1}')
    elif not np.array_equal(forward.boxes[0], initial):
        raise ValueError('the forward run did not start from the given box')
    head = TrackRun(boxes=forward.boxes[:n + 1], scores=forward.scores[:n + 1],
                    lost=forward.lost[:n + 1], times=forward.times[:n + 1])
    backward_frames = [frames[index] for index in range(n, -1, -1)]
    backward = run_track(tracker_factory(), backward_frames, head.boxes[n])
    iou = float(rect_iou(backward.boxes[-1], initial))
    return ForwardBackward(n=n, iou=iou, forward=head, backward=backward)


def forward_backward_curve(tracker_factory: TrackerFactory, frames: Sequence[np.ndarray],
                           box: ArrayLike, lengths: Iterable[int],
                           forward: Optional[TrackRun] = None) -> Dict[int, ForwardBackward]:
    """
    Return :func:`forward_backward` for every n of ``lengths`` that fits, sharing one forward run.

    Values of n outside 1..len(frames) - 1 are skipped; the forward run (made over all frames
    when not given) is shared by every n.
    """
    if forward is None:
        forward = run_track(tracker_factory(), frames, box)
    results: Dict[int, ForwardBackward] = {}
    for n in sorted({int(v) for v in lengths}):
        if 1 <= n < len(frames):
            results[n] = forward_backward(tracker_factory, frames, box, n, forward=forward)
    return results


def max_scale_change(boxes: ArrayLike, lost_mask: Optional[ArrayLike] = None,
                     ratio: float = JUMP_RATIO) -> ScaleChange:
    """
    Return the largest consecutive-frame area ratio and the area jumps of a run's boxes.

    ``boxes`` (N, 4) x, y, w, h; ``lost_mask`` (N,) bool marks frames the tracker declared
    lost (none when omitted). Frame t is compared with frame t - 1 only when neither is lost.
    A box with no area (or a non-finite one) makes its pairs' ratio infinite, a jump.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'boxes must have shape (N, 4), got {boxes.shape}')
    if lost_mask is None:
        lost = np.zeros(len(boxes), dtype=bool)
    else:
        lost = np.asarray(lost_mask, dtype=bool).reshape(-1)
        if lost.shape != (len(boxes),):
            raise ValueError(f'lost_mask must have {len(boxes)} entries, got {lost.shape}')
    if not ratio > 1.0:
        raise ValueError(f'ratio must be above 1, got {ratio}')
    areas = np.clip(boxes[:, 2], 0.0, None) * np.clip(boxes[:, 3], 0.0, None)
    areas = np.where(np.isfinite(areas), areas, 0.0)
    valid = ~lost[1:] & ~lost[:-1]
    previous, current = areas[:-1][valid], areas[1:][valid]
    frames = np.nonzero(valid)[0] + 1
    with np.errstate(divide='ignore', invalid='ignore'):
        growth = np.where(previous > 0, current / previous, np.inf)
        shrink = np.where(current > 0, previous / current, np.inf)
    # Two empty boxes in a row did not change scale.
    both_empty = (previous <= 0) & (current <= 0)
    growth[both_empty] = 1.0
    shrink[both_empty] = 1.0
    change = np.maximum(growth, shrink)
    grew, shrank = growth > ratio, shrink > ratio
    return ScaleChange(
        max_ratio=float(change.max()) if change.size else 1.0,
        growth_jumps=int(grew.sum()), shrink_jumps=int(shrank.sum()),
        jump_frames=[int(f) for f in frames[grew | shrank]], pairs=int(valid.sum()),
        ratio=float(ratio))
