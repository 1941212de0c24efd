"""Recovery after absence and false tracking during it; lost flags in the result files."""

import cv2
from detrack_model.evaluation.recovery import absence_spells, recovery, sequence_recovery
from detrack_model.evaluation.results import (lost_file, read_sequence_result, SequenceResult,
                                              write_sequence_result)
from detrack_model.evaluation.sequences import EvalSequence
import numpy as np


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
