"""
Tracking-benchmark scores (GOT-10k, OTB and LaSOT protocols) computed the way the toolkits do.

The conventions are those of the ``got10k`` Python toolkit, so numbers computed here can be put
next to published ones:

* **GOT-10k** (``ExperimentGOT10k``): frame 0 (the initial box) is not scored; frames where the
  target is not visible are not scored; predicted and true boxes are first clamped to the image
  (the toolkit's ``bound``); IoUs of all scored frames of all sequences are *pooled*, and AO is
  their mean, SR0.5 and SR0.75 the fractions above 0.5 and 0.75; the success curve has 101
  thresholds on [0, 1]; speed is the mean of ``1 / t`` over the per-frame times of all
  sequences, pooled.
* **OTB** (``ExperimentOTB``) and **LaSOT** (``ExperimentLaSOT``, in the toolkit's source
  after release 0.1.3): frame 0 is replaced by the
  ground truth and scored; frames whose ground truth is unknown (NaN) are not scored; the
  dataset's visibility flags are not used; curves are computed per sequence and *averaged over
  sequences*; the success curve has 21 thresholds on [0, 1] and its mean is the success AUC; the
  precision curve has 51 thresholds of 0..50 px and precision is its value at 20 px; the
  normalised precision curve has 51 thresholds on [0, 0.5]; speed is the mean over sequences of
  each sequence's mean ``1 / t``.

Thresholds compare as the toolkit does: a frame succeeds at overlap threshold ``t`` when
``IoU > t`` and is precise at distance threshold ``d`` when ``error <= d``.

Frames the toolkit would turn into NaN are scored as failures here instead: a predicted box with
a NaN or infinite coordinate has IoU 0 and an infinite centre error. The toolkit gives such
frames IoU NaN, which fails every threshold as well but turns an average overlap into NaN.
A quantity over no frames at all (a sequence whose target is never visible in a scored frame,
or a set of results without timings) is NaN, never a division by zero; ``to_dict`` writes it as
``null``.
"""

from dataclasses import dataclass, field, fields
import math
from typing import Any, Dict, Optional, Sequence, Tuple

from detrack_model.evaluation.results import SequenceResult
import numpy as np
from numpy.typing import ArrayLike


PROTOCOLS = ('got10k', 'otb', 'lasot')

FRAME_SELECTION = {
    'got10k': 'GOT-10k: frames 1.. (initial frame excluded) where the target is visible and its '
              'box known; boxes clamped to the image; frames pooled over all sequences',
    'otb': 'OTB: all frames with a known ground-truth box, frame 0 set to the ground truth; '
           'curves averaged over sequences',
    'lasot': 'LaSOT: all frames with a known ground-truth box, frame 0 set to the ground truth; '
             'curves averaged over sequences',
}


def _frozen(values: np.ndarray) -> np.ndarray:
    values.flags.writeable = False
    return values


GOT10K_IOU_THRESHOLDS = _frozen(np.linspace(0.0, 1.0, 101))
OTB_IOU_THRESHOLDS = _frozen(np.linspace(0.0, 1.0, 21))
PRECISION_THRESHOLDS = _frozen(np.arange(0, 51, dtype=float))
NORM_PRECISION_THRESHOLDS = _frozen(np.linspace(0.0, 0.5, 51))

# Indices of the curve points the headline numbers are read from (20 px and 0.2).
_PRECISION_INDEX = 20
_NORM_PRECISION_INDEX = 20


def _as_boxes(boxes: ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=float)
    if array.ndim == 0 or array.shape[-1] != 4:
        raise ValueError(f'{what} must hold x, y, w, h boxes in its last axis, '
                         f'got shape {array.shape}')
    return array


def _finite_rows(*boxes: np.ndarray) -> np.ndarray:
    finite = np.ones(boxes[0].shape[:-1], dtype=bool)
    for array in boxes:
        finite &= np.isfinite(array).all(axis=-1)
    return finite


def clamp_to_image(boxes: ArrayLike, bound: Tuple[float, float]) -> np.ndarray:
    """
    Return ``boxes`` (x, y, w, h) clamped to an image of size ``bound`` = (width, height).

    This is the got10k toolkit's clamping, kept as it is so that scores stay comparable: ``x`` is
    clamped into [0, width], then ``w`` into [0, width - x] (likewise ``y`` and ``h``). A box
    reaching over the left or top edge is therefore moved inside rather than cut, and a negative
    size becomes 0. The input is not modified (the toolkit clamps its arguments in place).
    """
    boxes = _as_boxes(boxes, 'boxes').copy()
    width, height = (float(v) for v in bound)
    boxes[..., 0] = np.clip(boxes[..., 0], 0.0, width)
    boxes[..., 1] = np.clip(boxes[..., 1], 0.0, height)
    boxes[..., 2] = np.clip(boxes[..., 2], 0.0, width - boxes[..., 0])
    boxes[..., 3] = np.clip(boxes[..., 3], 0.0, height - boxes[..., 1])
    return boxes


def rect_iou(a: ArrayLike, b: ArrayLike,
             bound: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """
    Return the intersection over union of boxes ``a`` and ``b`` (..., 4) in x, y, w, h.

    With ``bound`` = (width, height) both are first clamped to the image by
    :func:`clamp_to_image`, as the GOT-10k evaluation does. A box with zero or negative width or
    height has no area, so its IoU is 0; a row where either box has a NaN or infinite
    coordinate has IoU 0. The union is offset by machine epsilon as in the toolkit, so two empty
    boxes have IoU 0 too.
    """
    a = _as_boxes(a, 'a')
    b = _as_boxes(b, 'b')
    if a.shape != b.shape:
        raise ValueError(f'box arrays differ in shape: {a.shape} and {b.shape}')
    if bound is not None:
        a = clamp_to_image(a, bound)
        b = clamp_to_image(b, bound)
    finite = _finite_rows(a, b)
    # Zeroed rows keep NaN and inf out of the arithmetic; they are set to 0 below anyway.
    a = np.where(finite[..., None], a, 0.0)
    b = np.where(finite[..., None], b, 0.0)
    a_w, a_h = np.maximum(a[..., 2], 0.0), np.maximum(a[..., 3], 0.0)
    b_w, b_h = np.maximum(b[..., 2], 0.0), np.maximum(b[..., 3], 0.0)
    inter_w = np.minimum(a[..., 0] + a_w, b[..., 0] + b_w) - np.maximum(a[..., 0], b[..., 0])
    inter_h = np.minimum(a[..., 1] + a_h, b[..., 1] + b_h) - np.maximum(a[..., 1], b[..., 1])
    inter = np.maximum(inter_w, 0.0) * np.maximum(inter_h, 0.0)
    union = a_w * a_h + b_w * b_h - inter
    iou = inter / (union + np.finfo(float).eps)
    return np.where(finite, np.clip(iou, 0.0, 1.0), 0.0)


def _centre_offsets(a: ArrayLike, b: ArrayLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = _as_boxes(a, 'a')
    b = _as_boxes(b, 'b')
    if a.shape != b.shape:
        raise ValueError(f'box arrays differ in shape: {a.shape} and {b.shape}')
    finite = _finite_rows(a, b)
    a = np.where(finite[..., None], a, 0.0)
    b = np.where(finite[..., None], b, 0.0)
    offsets = (a[..., :2] + a[..., 2:] / 2.0) - (b[..., :2] + b[..., 2:] / 2.0)
    return offsets, b, finite


def centre_error(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """
    Return the distance in pixels between the centres of boxes ``a`` and ``b`` (..., 4).

    The toolkit's centre ``x + (w - 1) / 2`` differs from ``x + w / 2`` by the same half pixel
    for both boxes, so the distance is the same. A row where either box has a NaN or infinite
    coordinate has an infinite error.
    """
    offsets, _, finite = _centre_offsets(a, b)
    return np.where(finite, np.hypot(offsets[..., 0], offsets[..., 1]), np.inf)


def normalised_centre_error(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """
    Return the centre error of ``a`` with each axis divided by the size of ground truth ``b``.

    This is the toolkit's ``normalized_center_error`` (TrackingNet's normalisation):
    ``|((cx_a - cx_b) / max(1, w_b), (cy_a - cy_b) / max(1, h_b))|``, so the ground-truth
    width and height are floored at one pixel. A row where either box has a NaN or infinite
    coordinate has an infinite error.
    """
    offsets, b, finite = _centre_offsets(a, b)
    scaled = offsets / np.maximum(b[..., 2:], 1.0)
    return np.where(finite, np.hypot(scaled[..., 0], scaled[..., 1]), np.inf)


def success_curve(ious: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """
    Return the fraction of ``ious`` above each threshold (``IoU > t``, as the toolkits count).

    Over no frames at all every point is NaN.
    """
    ious = np.sort(np.asarray(ious, dtype=float).ravel())
    thresholds = np.asarray(thresholds, dtype=float)
    if ious.size == 0:
        return np.full(thresholds.shape, np.nan)
    at_most = np.searchsorted(ious, thresholds, side='right')
    return (ious.size - at_most) / ious.size


def precision_curve(errors: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """
    Return the fraction of ``errors`` within each threshold (``error <= d``, as the toolkits).

    Over no frames at all every point is NaN.
    """
    errors = np.sort(np.asarray(errors, dtype=float).ravel())
    thresholds = np.asarray(thresholds, dtype=float)
    if errors.size == 0:
        return np.full(thresholds.shape, np.nan)
    return np.searchsorted(errors, thresholds, side='right') / errors.size


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _speed(times: np.ndarray) -> float:
    # The toolkits drop unknown (NaN) and non-positive times before inverting.
    times = times[times > 0]
    return float(np.mean(1.0 / times)) if times.size else math.nan


def _json_number(value: float) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def _json_array(values: np.ndarray) -> list:
    return [_json_number(v) for v in np.asarray(values, dtype=float).ravel()]


@dataclass
class ScoreValues:
    """The numbers every score reports, for one sequence or a set (see :class:`Scores`)."""

    ao: float
    sr50: float
    sr75: float
    success_auc: float
    precision20: float
    norm_precision: float
    norm_precision20: float
    fps: float

    def values(self) -> Dict[str, float]:
        """Return the numbers by name."""
        return {item.name: getattr(self, item.name) for item in fields(ScoreValues)}

    def json_values(self) -> Dict[str, Optional[float]]:
        """Return the numbers by name as JSON-ready values (``None`` for NaN)."""
        return {name: _json_number(value) for name, value in self.values().items()}


@dataclass
class SequenceScores(ScoreValues):
    """
    Scores of one tracker on one sequence under one protocol.

    ``length`` is the number of frames of the sequence, ``num_frames`` the number that were
    scored under the protocol's frame selection. A sequence with no scored frames has NaN
    scores. ``fps`` is NaN without any positive time.
    """

    name: str
    length: int
    num_frames: int

    def to_dict(self) -> Dict[str, Any]:
        """Return the scores as JSON-ready values (``None`` for NaN)."""
        return {'name': self.name, 'length': self.length, 'num_frames': self.num_frames,
                **self.json_values()}


@dataclass
class Scores(ScoreValues):
    """
    Scores of one tracker on a set of sequences under one protocol.

    ``protocol`` names the frame selection and averaging that were used (see
    :data:`FRAME_SELECTION`); every number is computed under it, including those the protocol's
    own toolkit does not report (e.g. precision under GOT-10k, SR0.75 under OTB).

    ``ao`` is the average overlap, ``sr50`` / ``sr75`` the fractions of frames with IoU above
    0.5 / 0.75, ``success_auc`` the mean of the success curve, ``precision20`` the precision
    curve at 20 px, ``norm_precision`` the mean of the normalised precision curve over its 51
    thresholds on [0, 0.5] and ``norm_precision20`` that curve at 0.2, ``fps`` frames per second.

    The toolkit's LaSOT experiment scores normalised precision as the mean of the curve over
    [0, 0.5], an area under the curve, which is also how the LaSOT paper ranks trackers. Several
    later evaluations quote instead the curve's value at 0.2 as "normalised precision"; that
    number is ``norm_precision20``. Compare like with like.

    Under GOT-10k the numbers pool all scored frames of all sequences; under OTB and LaSOT they
    are averages over sequences, and a sequence with no scored frames is left out of the
    average (the toolkits would turn the average into NaN).
    """

    protocol: str
    num_sequences: int
    num_frames: int
    success_thresholds: np.ndarray
    success_curve: np.ndarray
    precision_thresholds: np.ndarray
    precision_curve: np.ndarray
    norm_precision_thresholds: np.ndarray
    norm_precision_curve: np.ndarray
    per_sequence: Dict[str, SequenceScores] = field(default_factory=dict)

    def primary(self) -> float:
        """Return the protocol's ranking score: AO for GOT-10k, success AUC otherwise."""
        return self.ao if self.protocol == 'got10k' else self.success_auc

    def to_dict(self) -> Dict[str, Any]:
        """Return the scores, curves and per-sequence scores as JSON-ready values."""
        values: Dict[str, Any] = {
            'protocol': self.protocol,
            'frame_selection': FRAME_SELECTION.get(self.protocol, self.protocol),
            'num_sequences': self.num_sequences,
            'num_frames': self.num_frames,
            **self.json_values(),
        }
        for key in ('success', 'precision', 'norm_precision'):
            values[f'{key}_thresholds'] = _json_array(getattr(self, f'{key}_thresholds'))
            values[f'{key}_curve'] = _json_array(getattr(self, f'{key}_curve'))
        values['per_sequence'] = {name: seq.to_dict() for name, seq in self.per_sequence.items()}
        return values


@dataclass
class _Frames:
    """Per-frame errors of one sequence on its scored frames."""

    ious: np.ndarray
    errors: np.ndarray
    norm_errors: np.ndarray
    times: np.ndarray
    length: int


def _checked(result: SequenceResult) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    name = result.name

    def fail(message: str) -> ValueError:
        return ValueError(f'sequence {name!r}: {message}')

    boxes = np.asarray(result.boxes, dtype=float)
    anno = np.asarray(result.anno, dtype=float)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise fail(f'predicted boxes must be (N, 4), got shape {boxes.shape}')
    if anno.ndim != 2 or anno.shape[1] != 4:
        raise fail(f'ground-truth boxes must be (N, 4), got shape {anno.shape}')
    length = len(boxes)
    if length == 0:
        raise fail('no frames (the initial frame at least is needed)')
    if len(anno) != length:
        raise fail(f'{length} predicted boxes but {len(anno)} ground-truth boxes')
    visible = np.asarray(result.visible)
    if visible.shape != (length,):
        raise fail(f'visible must be ({length},), got shape {visible.shape}')
    times = np.asarray(result.times, dtype=float)
    if times.shape != (length,):
        raise fail(f'times must be ({length},), got shape {times.shape}')
    if result.image_size is not None:
        size = np.asarray(result.image_size, dtype=float)
        if size.shape != (2,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
            raise fail(f'image_size must be a positive (width, height), got {result.image_size}')
    return boxes, anno, visible.astype(bool), times


def _checked_all(results: Sequence[SequenceResult]) -> None:
    if len(results) == 0:
        raise ValueError('no sequence results to score')
    names = [result.name for result in results]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f'sequences scored more than once: {", ".join(duplicates)}')


def _got10k_scored(result: SequenceResult) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the predicted and true boxes of GOT-10k's scored frames, and the (N,) mask."""
    boxes, anno, visible, _ = _checked(result)
    scored = visible & np.isfinite(anno).all(axis=1)
    scored[0] = False
    return boxes[scored], anno[scored], scored


def got10k_frame_ious(result: SequenceResult) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return the IoUs of the frames GOT-10k scores in ``result``, and the (N,) mask of them.

    The frames and IoUs that :func:`got10k_scores` pools: frame 0 is left out, and so are
    frames whose target is not visible or whose ground truth is unknown.
    """
    pred, true, scored = _got10k_scored(result)
    return rect_iou(pred, true, bound=result.image_size), scored


def _got10k_frames(result: SequenceResult) -> _Frames:
    pred, true, _ = _got10k_scored(result)
    return _Frames(ious=rect_iou(pred, true, bound=result.image_size),
                   errors=centre_error(pred, true),
                   norm_errors=normalised_centre_error(pred, true),
                   times=np.asarray(result.times, dtype=float), length=len(result.boxes))


def _ope_frames(result: SequenceResult) -> _Frames:
    boxes, anno, _, times = _checked(result)
    boxes = boxes.copy()
    boxes[0] = anno[0]
    scored = np.isfinite(anno).all(axis=1)
    pred, true = boxes[scored], anno[scored]
    return _Frames(ious=rect_iou(pred, true), errors=centre_error(pred, true),
                   norm_errors=normalised_centre_error(pred, true),
                   times=times, length=len(boxes))


def _curves(frames: _Frames, iou_thresholds: np.ndarray
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (success_curve(frames.ious, iou_thresholds),
            precision_curve(frames.errors, PRECISION_THRESHOLDS),
            precision_curve(frames.norm_errors, NORM_PRECISION_THRESHOLDS))


def _sequence_scores(name: str, frames: _Frames, iou_thresholds: np.ndarray) -> SequenceScores:
    succ, prec, norm_prec = _curves(frames, iou_thresholds)
    ious = frames.ious
    return SequenceScores(
        name=name, length=frames.length, num_frames=int(ious.size),
        ao=_mean(ious), sr50=_mean(ious > 0.5), sr75=_mean(ious > 0.75),
        success_auc=_mean(succ) if ious.size else math.nan,
        precision20=float(prec[_PRECISION_INDEX]),
        norm_precision=_mean(norm_prec) if ious.size else math.nan,
        norm_precision20=float(norm_prec[_NORM_PRECISION_INDEX]),
        fps=_speed(frames.times))


def got10k_scores(results: Sequence[SequenceResult]) -> Scores:
    """
    Score ``results`` under the GOT-10k protocol (``ExperimentGOT10k.report`` on the val set).

    Frame 0 is not scored. A frame is scored when ``visible`` (the toolkit's ``cover > 0``) and
    its ground truth is known; both boxes are clamped to ``image_size`` when it is given. The
    IoUs of all scored frames of all sequences are pooled, so a long sequence weighs more than a
    short one and a sequence whose target is never visible after frame 0 adds nothing. AO is
    their mean, SR0.5 and SR0.75 the fractions above 0.5 and 0.75, the success curve has 101
    thresholds and its mean is ``success_auc``. Precision curves (not part of the GOT-10k
    protocol) are pooled the same way over the same frames, from the unclamped boxes. ``fps``
    pools every positive time of every frame of every sequence (frame 0 included, as the
    toolkit's time files hold it) and averages ``1 / t``.
    """
    _checked_all(results)
    frames = {result.name: _got10k_frames(result) for result in results}
    per_sequence = {name: _sequence_scores(name, seq, GOT10K_IOU_THRESHOLDS)
                    for name, seq in frames.items()}
    pooled = _Frames(ious=np.concatenate([seq.ious for seq in frames.values()]),
                     errors=np.concatenate([seq.errors for seq in frames.values()]),
                     norm_errors=np.concatenate([seq.norm_errors for seq in frames.values()]),
                     times=np.concatenate([seq.times for seq in frames.values()]),
                     length=sum(seq.length for seq in frames.values()))
    overall = _sequence_scores('', pooled, GOT10K_IOU_THRESHOLDS)
    succ, prec, norm_prec = _curves(pooled, GOT10K_IOU_THRESHOLDS)
    return Scores(
        protocol='got10k', num_sequences=len(frames), num_frames=overall.num_frames,
        **overall.values(),
        success_thresholds=GOT10K_IOU_THRESHOLDS.copy(), success_curve=succ,
        precision_thresholds=PRECISION_THRESHOLDS.copy(), precision_curve=prec,
        norm_precision_thresholds=NORM_PRECISION_THRESHOLDS.copy(), norm_precision_curve=norm_prec,
        per_sequence=per_sequence)


def _ope_scores(results: Sequence[SequenceResult], protocol: str) -> Scores:
    _checked_all(results)
    frames = {result.name: _ope_frames(result) for result in results}
    per_sequence = {}
    curves = []
    for name, seq in frames.items():
        per_sequence[name] = _sequence_scores(name, seq, OTB_IOU_THRESHOLDS)
        if seq.ious.size:
            curves.append(_curves(seq, OTB_IOU_THRESHOLDS))
    scored = [seq for seq in per_sequence.values() if seq.num_frames > 0]
    if curves:
        succ, prec, norm_prec = (np.mean(np.stack(parts), axis=0) for parts in zip(*curves))
    else:
        succ = np.full(OTB_IOU_THRESHOLDS.shape, np.nan)
        prec = np.full(PRECISION_THRESHOLDS.shape, np.nan)
        norm_prec = np.full(NORM_PRECISION_THRESHOLDS.shape, np.nan)
    speeds = np.array([seq.fps for seq in per_sequence.values()])
    return Scores(
        protocol=protocol, num_sequences=len(frames),
        num_frames=sum(seq.num_frames for seq in scored),
        ao=_mean(np.array([seq.ao for seq in scored])),
        sr50=_mean(np.array([seq.sr50 for seq in scored])),
        sr75=_mean(np.array([seq.sr75 for seq in scored])),
        success_auc=_mean(succ) if curves else math.nan,
        precision20=float(prec[_PRECISION_INDEX]),
        norm_precision=_mean(norm_prec) if curves else math.nan,
        norm_precision20=float(norm_prec[_NORM_PRECISION_INDEX]),
        fps=_mean(speeds[np.isfinite(speeds)]),
        success_thresholds=OTB_IOU_THRESHOLDS.copy(), success_curve=succ,
        precision_thresholds=PRECISION_THRESHOLDS.copy(), precision_curve=prec,
        norm_precision_thresholds=NORM_PRECISION_THRESHOLDS.copy(), norm_precision_curve=norm_prec,
        per_sequence=per_sequence)


def otb_scores(results: Sequence[SequenceResult]) -> Scores:
    """
    Score ``results`` under the OTB one-pass evaluation (``ExperimentOTB.report``).

    Frame 0 is set to the ground truth and scored with the rest; frames whose ground truth is
    unknown (NaN) are not scored (toolkit 0.1.3's OTB experiment keeps them as failures, its
    LaSOT experiment drops them; OTB's own annotations have none). Visibility and image size are
    not used. Curves are computed per sequence and averaged over sequences: success on 21
    thresholds (its mean is ``success_auc``, its value at 0.5 equals ``sr50``), precision on
    0..50 px (``precision20`` at 20 px), normalised precision on 51 thresholds on [0, 0.5].
    AO, SR0.5 and SR0.75 are per-sequence means averaged over sequences. ``fps`` is the mean
    over sequences with timings of each one's mean ``1 / t`` over its positive times.
    """
    return _ope_scores(results, 'otb')


def lasot_scores(results: Sequence[SequenceResult]) -> Scores:
    """
    Score ``results`` under the LaSOT protocol (the toolkit's ``ExperimentLaSOT``).

    The frame selection and averaging are those of :func:`otb_scores` (the LaSOT experiment
    derives from the OTB one and drops frames with unknown ground truth). The LaSOT experiment
    adds the normalised precision curve and scores it by its mean over 51 thresholds on
    [0, 0.5] (``norm_precision``); its value at 0.2 is ``norm_precision20``.
    """
    return _ope_scores(results, 'lasot')


def evaluate(results: Sequence[SequenceResult], protocol: str) -> Scores:
    """Score ``results`` under ``protocol``, one of ``'got10k'``, ``'otb'`` and ``'lasot'``."""
    scorers = {'got10k': got10k_scores, 'otb': otb_scores, 'lasot': lasot_scores}
    if protocol not in scorers:
        raise ValueError(f'unknown protocol {protocol!r}; expected one of {", ".join(PROTOCOLS)}')
    return scorers[protocol](results)
