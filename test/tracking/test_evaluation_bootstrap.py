"""The paired bootstrap of an AO difference over sequences."""

from detrack_model.evaluation import otb_scores
from detrack_model.evaluation.bootstrap import paired_ao_difference
import pytest
from scored_results import scored, still_result


def test_a_difference_every_sequence_shares_has_no_spread():
    """Better by 0.25 on every sequence: every resample says 0.25."""
    diff = paired_ao_difference(scored([0.75, 1.0, 0.5], [5, 9, 3]),
                                scored([0.5, 0.75, 0.25], [5, 9, 3]), resamples=500)
    assert diff.value == pytest.approx(0.25)
    assert (diff.low, diff.high) == (pytest.approx(0.25), pytest.approx(0.25))


def test_the_interval_spans_the_sequences_and_pools_by_frames():
    """
    Two sequences: the 95 % interval runs between their differences, the middle 40 % pools.

    +0.5 on one (10 frames), -0.25 on the other (30): a resample draws both once (half the
    time) or one of them twice, so the 95 % interval runs from one sequence's difference to
    the other's and the middle 40 % is the frame-weighted pooled difference.
    """
    a, b = scored([1.0, 0.5], [10, 30]), scored([0.5, 0.75], [10, 30])
    pooled = (10 * 0.5 + 30 * -0.25) / 40
    wide = paired_ao_difference(a, b, resamples=4000)
    assert wide.value == pytest.approx(pooled)
    assert wide.value == pytest.approx(a.ao - b.ao)
    assert (wide.low, wide.high) == (pytest.approx(-0.25), pytest.approx(0.5))
    middle = paired_ao_difference(a, b, resamples=4000, level=0.4)
    assert (middle.low, middle.high) == (pytest.approx(pooled), pytest.approx(pooled))


def test_mismatched_scores_are_refused():
    """Other sequences, other frame counts or another protocol: no difference is taken."""
    a = scored([1.0, 0.5], [10, 30])
    with pytest.raises(ValueError, match='same sequences'):
        paired_ao_difference(a, scored([1.0], [10]))
    with pytest.raises(ValueError, match='other frames'):
        paired_ao_difference(a, scored([1.0, 0.5], [10, 20]))
    otb = otb_scores([still_result('s0', 1.0, 10), still_result('s1', 0.5, 30)])
    with pytest.raises(ValueError, match='GOT-10k'):
        paired_ao_difference(a, otb)
    with pytest.raises(ValueError, match='level'):
        paired_ao_difference(a, a, level=1.0)
