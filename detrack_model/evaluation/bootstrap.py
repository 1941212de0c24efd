"""
How sure a difference of pooled AO is: a paired bootstrap over sequences.

Two configurations scored on the same sequences differ by an AO figure that depends on which
sequences happened to be drawn; resampling the sequences (the same draw for both, since they
share them) shows how far that figure could move with another draw of the same size. AO is
re-pooled per resample as GOT-10k pools it: each sequence weighs by its scored frames.
"""

from typing import NamedTuple

from detrack_model.evaluation.metrics import Scores
import numpy as np


class Difference(NamedTuple):
    """AO of ``a`` minus AO of ``b`` and its bootstrap interval (percentiles)."""

    value: float
    low: float
    high: float
    level: float
    resamples: int


def paired_ao_difference(a: Scores, b: Scores, resamples: int = 10000, level: float = 0.95,
                         seed: int = 0) -> Difference:
    """
    Return AO(a) - AO(b) with a percentile interval from resampling their shared sequences.

    Both must be GOT-10k scores (pooled AO) of the same sequences; a sequence with no scored
    frames adds nothing to either. Raises ValueError otherwise, or when nothing is scored.
    """
    if a.protocol != 'got10k' or b.protocol != 'got10k':
        raise ValueError(f'pooled AO needs GOT-10k scores, got {a.protocol} and {b.protocol}')
    if set(a.per_sequence) != set(b.per_sequence):
        raise ValueError('the two scores must be of the same sequences')
    if resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f'need resamples >= 1 and 0 < level < 1, got {resamples}, {level}')
    names = sorted(a.per_sequence)
    frames = np.array([a.per_sequence[n].num_frames for n in names], dtype=np.float64)
    if not np.array_equal(frames, [b.per_sequence[n].num_frames for n in names]):
        raise ValueError('the two scores count other frames of the same sequences')
    if frames.sum() == 0:
        raise ValueError('no scored frames')
    # Sums of IoU per sequence (AO times frames; a sequence with no frames has AO NaN).
    sums = np.nan_to_num(np.array([[s.per_sequence[n].ao for n in names] for s in (a, b)])
                         * frames)
    rng = np.random.default_rng(seed)
    # counts[r, i]: how often resample r draws sequence i.
    counts = rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)), resamples)
    weight = counts @ frames
    drawn = weight > 0  # a resample of frameless sequences only has no AO
    difference = (counts @ (sums[0] - sums[1]))[drawn] / weight[drawn]
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(difference, [tail, 100.0 - tail])
    value = float((sums[0].sum() - sums[1].sum()) / frames.sum())
    return Difference(value, float(low), float(high), level, resamples)
