"""The upper bounds of docs/robust-tracking.md: the lost decision and the ranking told by truth."""

from detrack_model.evaluation.recovery import PhaseAO
from detrack_model.evaluation.sequences import EvalSequence
from detrack_model.tracking import Tracker, TrackerConfig
import numpy as np
import pytest
from scored_results import scored
from session_doubles import ScriptedBackend
from tools import make_robustness_docs as robustness
from tools.tracking_bounds import NEAR_IOU, TruthTracker

FRAMES = 6
START = [80.0, 80.0, 40.0, 40.0]
# In the first search crop (a 160-pixel square around START, seen at 64 pixels): a confident
# candidate on the start box and a weak one a box to its right, in cells of equal window.
ON_START = [0.5, 0.5, 0.25, 0.25]
TO_THE_RIGHT = [0.75, 0.5, 0.25, 0.25]
RIGHT_BOX = [120.0, 80.0, 40.0, 40.0]


def two_candidates() -> ScriptedBackend:
    """Return a backend that always answers the two candidates above."""
    backend = ScriptedBackend()
    backend.answer = (np.array([ON_START, TO_THE_RIGHT], np.float32),
                      np.array([0.9, 0.2], np.float32), np.array([5, 6], np.int64))
    return backend


def sequence(box, visible=True) -> EvalSequence:
    """Return a still sequence whose target stays at ``box`` (hidden after the first frame)."""
    anno = np.array([START] + [box] * (FRAMES - 1))
    shown = np.array([True] + [visible] * (FRAMES - 1))
    return EvalSequence('still', [f'{i}.png' for i in range(FRAMES)], anno, shown)


def run(tracker, truth):
    """Track ``truth``'s frames (blank images); return the boxes and lost flags."""
    tracker.following(truth)
    frame = np.zeros((200, 200, 3), np.uint8)
    tracker.initialize(frame, START)
    answers = [(tracker.track(frame)[0].copy(), tracker.lost) for _ in range(FRAMES - 1)]
    return np.array([box for box, _ in answers]), [lost for _, lost in answers]


CONFIG = TrackerConfig(size_rate=1.0, max_scale_step=float('inf'), redetect=False,
                       template_update=False)


def test_the_truth_decides_hit_or_miss_whatever_the_score():
    """The network's confident box is a miss where the target is elsewhere or hidden."""
    plain = Tracker(two_candidates(), CONFIG)
    plain.initialize(np.zeros((200, 200, 3), np.uint8), START)
    plain.track(np.zeros((200, 200, 3), np.uint8))
    assert not plain.lost  # score 0.9 over the threshold: the tracker's own decision
    boxes, lost = run(TruthTracker(two_candidates(), CONFIG), sequence(START))
    np.testing.assert_allclose(boxes, [START] * (FRAMES - 1), atol=1e-3)
    assert not any(lost)
    _, lost = run(TruthTracker(two_candidates(), CONFIG), sequence(RIGHT_BOX))
    assert all(lost)
    _, lost = run(TruthTracker(two_candidates(), CONFIG), sequence(START, visible=False))
    assert all(lost)


def test_ranked_by_truth_the_weak_candidate_on_the_target_is_taken_with_its_own_score():
    """The candidate overlapping the truth wins the crop; the tracker sees the network's score."""
    tracker = TruthTracker(two_candidates(), CONFIG, ranking='truth')
    boxes, lost = run(tracker, sequence(RIGHT_BOX))
    np.testing.assert_allclose(boxes[0], RIGHT_BOX, atol=1e-3)
    assert not lost[0] and tracker.score == pytest.approx(1.0)
    frame = np.zeros((200, 200, 3), np.uint8)
    tracker.following(sequence(RIGHT_BOX)).initialize(frame, START)
    assert tracker.track(frame)[1] == pytest.approx(0.2)
    # Hidden target: nothing to rank by, the network's own choice stands.
    boxes, _ = run(TruthTracker(two_candidates(), CONFIG, ranking='truth'),
                   sequence(RIGHT_BOX, visible=False))
    np.testing.assert_allclose(boxes[0], START, atol=1e-3)


# A third candidate a little left of the start box (IoU with it over NEAR_IOU) and a weak one
# on the start box too; and the near-ranked tracker's choices between them.
A_LITTLE_LEFT = [0.45, 0.5, 0.25, 0.25]
LEFT_BOX = [72.0, 80.0, 40.0, 40.0]


def three_candidates() -> ScriptedBackend:
    """Return a backend answering the start box, the weak one to its right, one a bit left."""
    backend = ScriptedBackend()
    backend.answer = (np.array([ON_START, TO_THE_RIGHT, A_LITTLE_LEFT], np.float32),
                      np.array([0.9, 0.2, 0.3], np.float32), np.array([5, 6, 5], np.int64))
    return backend


def test_near_ranked_the_truth_chooses_only_among_boxes_overlapping_the_network_pick():
    """A slightly shifted box on the target is taken; one on another region is not."""
    assert NEAR_IOU <= 1280.0 / 1920.0  # LEFT_BOX's IoU with START: it counts as near
    boxes, lost = run(TruthTracker(three_candidates(), CONFIG, ranking='near'),
                      sequence(LEFT_BOX))
    np.testing.assert_allclose(boxes[0], LEFT_BOX, atol=1e-3)
    assert not lost[0]
    # The target to the right does not overlap the network's pick: its choice stands (a miss).
    boxes, lost = run(TruthTracker(three_candidates(), CONFIG, ranking='near'),
                      sequence(RIGHT_BOX))
    np.testing.assert_allclose(boxes[0], START, atol=1e-3)
    assert lost[0]
    # Told among all the candidates, the one on the right is taken.
    boxes, _ = run(TruthTracker(three_candidates(), CONFIG, ranking='truth'),
                   sequence(RIGHT_BOX))
    np.testing.assert_allclose(boxes[0], RIGHT_BOX, atol=1e-3)
    with pytest.raises(ValueError, match='ranking'):
        TruthTracker(three_candidates(), CONFIG, ranking='best')


def test_the_bounds_table_gives_each_row_its_gain_over_the_old_defaults():
    """One row per bound, the test occlusion AO against the old defaults'."""
    figures = {'old defaults': {'ao': 0.6, 'ao_hard': 0.55},
               'chosen': {'ao': 0.63, 'ao_hard': 0.6},
               'decided': {'ao': 0.65, 'ao_hard': 0.62}, 'near': {'ao': 0.67, 'ao_hard': 0.64},
               'ranked': {'ao': 0.7, 'ao_hard': 0.68}}
    lines = robustness.bound_lines({'val': figures, 'test': figures})
    rows = [line for line in lines if line.startswith('| ') and not line.startswith('| config')]
    assert [row.split('|')[-3].strip() for row in rows] == ['+0.000', '+0.050', '+0.070',
                                                            '+0.090', '+0.130']
    assert "among those overlapping the network's own" in rows[3]
    # Without per-sequence scores there is no interval to give.
    assert {row.split('|')[-2].strip() for row in rows} == {'-'}
    assert 'told by the ground truth' in rows[2]
    assert robustness.bound_lines(None) == []


def test_the_bounds_table_gives_the_interval_of_each_gain_over_the_test_sequences():
    """A gain the same on every sequence has no spread; one made of two differs."""
    old = {'ao': 0.5, 'ao_hard': 0.5, 'scores_hard': scored([0.5, 0.5], [9, 9])}
    even = {'ao': 0.6, 'ao_hard': 0.6, 'scores_hard': scored([0.6, 0.6], [9, 9])}
    mixed = {'ao': 0.6, 'ao_hard': 0.6, 'scores_hard': scored([0.9, 0.3], [9, 9])}
    figures = {'old defaults': old, 'chosen': even, 'decided': mixed, 'near': even,
               'ranked': mixed}
    rows = [line for line in robustness.bound_lines({'val': figures, 'test': figures})
            if line.startswith('| ') and not line.startswith('| config')]
    assert [row.split('|')[-2].strip() for row in rows] == [
        '-', '+0.100 to +0.100', '-0.200 to +0.400', '+0.100 to +0.100', '-0.200 to +0.400']


def test_the_phase_table_gives_each_row_its_ao_by_frames_since_the_return():
    """Val's then test's phases in the row of each bound; nothing without phase figures."""
    def figures(offset):
        return {key: {'phases_hard': [PhaseAO('frames 1-10 after a return', 0.1 * i + offset,
                                              40),
                                      PhaseAO('other frames', 0.5 + offset, 200)]}
                for i, key in enumerate(('old defaults', 'chosen', 'decided', 'near', 'ranked'))}
    lines = robustness.phase_lines({'val': figures(0.0), 'test': figures(0.01)})
    header = next(line for line in lines if line.startswith('| config'))
    assert 'val: frames 1-10 after a return (40)' in header
    assert header.index('val: other frames (200)') < header.index('test: frames 1-10')
    rows = [line for line in lines if line.startswith('| ') and line != header]
    assert rows[2].split('|')[1:-1] == [
        ' chosen, lost decision told by the ground truth ', ' 0.200 ', ' 0.500 ', ' 0.210 ',
        ' 0.510 ']
    assert robustness.phase_lines(None) == []
    assert robustness.phase_lines({'val': {'chosen': {'phases_hard': None}}}) == []
