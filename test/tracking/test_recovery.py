"""Recovery after absence and false tracking during it; lost flags in the result files."""

import cv2
from detrack_model.evaluation.metrics import got10k_scores
from detrack_model.evaluation.recovery import (absence_spells, ao_after_returns,
                                               frames_since_return, recovery,
                                               sequence_recovery)
from detrack_model.evaluation.results import (lost_file, read_sequence_result, SequenceResult,
                                              write_sequence_result)
from detrack_model.evaluation.sequences import EvalSequence
import numpy as np
import pytest


def result(visible, found_at, lost=None, frames=60):
    """Return a still GT and a prediction that overlaps it from frame ``found_at`` on."""
    anno = np.tile([100.0, 100.0, 40.0, 40.0], (frames, 1))
    boxes = np.tile([300.0, 300.0, 40.0, 40.0], (frames, 1))
    boxes[:1] = anno[:1]
    boxes[found_at:] = anno[found_at:] + 2.0
    return SequenceResult('seq', boxes, anno, np.asarray(visible, bool), np.zeros(frames),
                          lost=None if lost is None else np.asarray(lost, bool))


def test_absence_spells_are_the_runs_of_hidden_frames():
    """Frame 0 never starts a spell; a spell may run to the end."""
    visible = np.array([0, 1, 0, 0, 1, 1, 0, 0], bool)
    assert absence_spells(visible) == [(2, 4), (6, 8)]


def test_recovery_within_the_window_and_false_tracking():
    """Back at frame 20: found at 35 recovers (30-frame window), found at 55 does not."""
    visible = np.ones(60, bool)
    visible[10:20] = False
    assert sequence_recovery(result(visible, 35)).recovered == 1
    late = sequence_recovery(result(visible, 55))
    assert (late.spells, late.recovered) == (1, 0)
    # No lost flags: a box on every absent frame is false tracking.
    assert (late.absent_frames, late.false_tracking) == (10, 10)
    lost = np.zeros(60, bool)
    lost[12:25] = True
    honest = sequence_recovery(result(visible, 35, lost))
    assert (honest.false_tracking, honest.false_tracking_rate) == (2, 0.2)
    # A box that overlaps while the tracker says lost does not count as recovered.
    lost[20:60] = True
    assert sequence_recovery(result(visible, 25, lost)).recovered == 0
    total = recovery([result(visible, 35), result(visible, 55)])
    assert (total.spells, total.recovered, total.recovery_rate) == (2, 1, 0.5)


def test_lost_flags_round_trip_through_the_result_files(tmp_path):
    """A result with lost flags writes <seq>_lost.txt and reads it back; without, none."""
    frames = 6
    paths = [str(tmp_path / f'{i}.png') for i in range(frames)]
    for path in paths:
        cv2.imwrite(path, np.zeros((20, 30, 3), np.uint8))
    sequence = EvalSequence('seq', paths,
                            np.tile([1.0, 1.0, 5.0, 5.0], (frames, 1)), np.ones(frames, bool))
    lost = np.array([0, 0, 1, 1, 0, 1], bool)
    written = SequenceResult('seq', np.tile([1.0, 1.0, 5.0, 5.0], (frames, 1)), sequence.anno,
                             np.ones(frames, bool), np.full(frames, 0.01), lost=lost)
    write_sequence_result(written, str(tmp_path / 'a'))
    assert np.array_equal(read_sequence_result(str(tmp_path / 'a'), sequence).lost, lost)
    written.lost = None
    write_sequence_result(written, str(tmp_path / 'b'))
    assert read_sequence_result(str(tmp_path / 'b'), sequence).lost is None
    assert not (tmp_path / 'b' / 'seq' / 'seq_lost.txt').exists()
    assert lost_file(str(tmp_path / 'a'), 'seq').endswith('seq_lost.txt')


def test_frames_since_return_count_from_each_return():
    """Before any absence -1; the first visible frame after a spell is 1; a new spell resets."""
    visible = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1], bool)
    since = frames_since_return(visible)
    assert since[[0, 1, 4, 5, 6, 8, 9]].tolist() == [-1, -1, 1, 2, 3, 1, 2]


def test_ao_after_returns_splits_got10k_ao_by_frames_since_the_return():
    """Phases of IoU 0.2 (3 frames after a return), 0.6 (the next 3), 1.0 (edges 3, 6)."""
    frames = 20
    anno = np.tile([0.0, 0.0, 10.0, 10.0], (frames, 1))
    boxes = anno.copy()
    visible = np.ones(frames, bool)
    visible[5:8] = False  # back at frame 8
    boxes[8:11, 2] = 2.0  # same left edge and height: IoU is the width ratio
    boxes[11:14, 2] = 6.0
    boxes[5:8] = [50.0, 50.0, 10.0, 10.0]  # absent frames are not scored, whatever the box
    result = SequenceResult('seq', boxes, anno, visible, np.zeros(frames))
    phases = ao_after_returns([result], edges=(3, 6))
    assert [p.name for p in phases] == ['frames 1-3 after a return',
                                        'frames 4-6 after a return', 'other frames']
    assert [p.frames for p in phases] == [3, 3, 10]  # frame 0 and the 3 absent are not scored
    np.testing.assert_allclose([p.ao for p in phases], [0.2, 0.6, 1.0])
    pooled = sum(p.ao * p.frames for p in phases) / sum(p.frames for p in phases)
    assert pooled == pytest.approx(got10k_scores([result]).ao)
    # A sequence without absence adds to the last phase only; an empty phase is nan.
    steady = SequenceResult('steady', anno.copy(), anno, np.ones(frames, bool), np.zeros(frames))
    only = ao_after_returns([steady], edges=(3, 6))
    assert [p.frames for p in only] == [0, 0, frames - 1] and np.isnan(only[0].ao)
    with pytest.raises(ValueError, match='increasing'):
        ao_after_returns([result], edges=(6, 3))
