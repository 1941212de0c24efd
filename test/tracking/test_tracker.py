"""
The tracking runtime: crops, Hanning window, box mapping, lost state, knobs, bundle errors.

The geometry is checked with a scripted backend whose answer is known in crop coordinates;
everything else runs the shipped model itself on synthetic sequences.
"""

import contextlib
from dataclasses import replace
import math
import pathlib

from detrack_model.data.crops import search_transform
from detrack_model.data.synthetic import generate_dataset
from detrack_model.evaluation import evaluate
from detrack_model.evaluation.runner import run_sequence
from detrack_model.evaluation.sequences import load_benchmark
from detrack_model.export import BundleError, load_bundle, save_bundle
from detrack_model.modeling import create_model
from detrack_model.tracking import (build_tracker, clip_box, hann_window, RuntimeConfig,
                                    TorchBackend, Tracker, TrackerConfig, TrackingNetwork)
from detrack_model.tracking.backends import infer_each
from detrack_model.tracking.factory import (model_decoder_layers, resolve_backend,
                                            set_decoder_layers)
from detrack_model.tracking.tracker import frame_tiles, FrameSizeChanged
import numpy as np
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / 'models' / 'detrack_tiny_pool'


# No box dynamics: the network's box as it is (geometry checks).
EXACT = {'size_rate': 1.0, 'max_scale_step': math.inf}


class ScriptedBackend:
    """A backend that answers fixed candidates and records the crops it was given."""

    template_size, search_size, grid, name = 32, 64, 4, 'scripted'

    def __init__(self, boxes, scores, cells):
        self.answer = (np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                       np.asarray(cells, np.int64))
        self.templates, self.searches = [], []

    def set_template(self, crop):
        self.templates.append(crop.copy())

    def infer(self, crop):
        self.searches.append(crop.copy())
        return self.answer

    def infer_batch(self, crops):
        return infer_each(self, crops)

    def release(self):
        pass


@pytest.fixture(scope='module')
def sequences(tmp_path_factory):
    """Four generated sequences the shipped model never saw (seed 11)."""
    root = tmp_path_factory.mktemp('tracking')
    generate_dataset(str(root), 'val', 4, 40, size=(320, 240), seed=11)
    return load_benchmark('got10k', str(root), split='val')


@pytest.fixture(scope='module')
def model():
    """Load the shipped default model once."""
    return load_bundle(MODEL)


def test_hann_window_matches_the_ostrack_formula():
    """0.5 (1 - cos(2 pi k / (n + 1))), k = 1..n, outer product; peak at the centre."""
    window = hann_window(5)
    k = np.arange(1, 6)
    line = 0.5 * (1 - np.cos(2 * np.pi * k / 6))
    np.testing.assert_allclose(window, np.outer(line, line), rtol=1e-6)
    assert window.min() > 0 and window[2, 2] == window.max()
    with pytest.raises(ValueError):
        hann_window(0)


def test_box_maps_back_to_image_coordinates():
    """A candidate at the crop centre with a quarter of the crop's side is the same box."""
    # Search region side = 4 * sqrt(40 * 40) = 160 image px; a box 0.25 of the crop = 40 px.
    backend = ScriptedBackend([[0.5, 0.5, 0.25, 0.25], [0.1, 0.1, 0.1, 0.1]], [0.9, 0.95],
                              [5, 0])
    tracker = Tracker(backend, TrackerConfig(**EXACT))
    frame = np.zeros((480, 640, 3), np.uint8)
    tracker.initialize(frame, (300, 200, 40, 40))
    box, score = tracker.track(frame)
    # The corner candidate scores higher but the window (weight ~0.14 vs ~0.56) rejects it.
    np.testing.assert_allclose(box, (300, 200, 40, 40), atol=1e-6)
    assert score == pytest.approx(0.9)
    tracker.update_config(hanning=False)
    box, score = tracker.track(frame)
    assert score == pytest.approx(0.95)
    # Region corner = box centre - 80 px; the candidate centre is 16 px inside it.
    np.testing.assert_allclose(box, (320 - 80 + 16 - 8, 220 - 80 + 16 - 8, 16, 16), atol=1e-6)


def test_crops_are_rgb_for_gray_bgr_and_rgba_frames():
    """The crop the network sees is the same whatever layout the frame arrives in."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    backend = ScriptedBackend([[0.5, 0.5, 0.25, 0.25]], [0.9], [5])
    tracker = Tracker(backend)
    box = (60, 40, 20, 20)
    tracker.initialize(rgb, box)
    tracker.initialize(np.ascontiguousarray(rgb[..., ::-1]), box, bgr=True)
    rgba = np.concatenate([rgb, np.full((120, 160, 1), 255, np.uint8)], axis=2)
    tracker.initialize(rgba, box)
    np.testing.assert_array_equal(backend.templates[0], backend.templates[1])
    np.testing.assert_array_equal(backend.templates[0], backend.templates[2])
    gray = rgb[..., 1].copy()
    for frame in (gray, gray[..., None]):
        tracker.initialize(frame, box)
        crop = backend.templates[-1]
        assert crop.shape == (32, 32, 3)
        np.testing.assert_array_equal(crop[..., 0], crop[..., 2])
    tracker.track(rgb)
    assert backend.searches[-1].shape == (64, 64, 3)


def test_crop_outside_the_frame_is_padded_with_the_mean_colour():
    """A target at the corner: the part of the search crop off the frame is the mean colour."""
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[..., 0] = 200
    frame[..., 2] = 50
    backend = ScriptedBackend([[0.5, 0.5, 0.25, 0.25]], [0.9], [5])
    tracker = Tracker(backend)
    tracker.initialize(frame, (0, 0, 20, 20))
    tracker.track(frame)
    corner = backend.searches[-1][0, 0]
    np.testing.assert_array_equal(corner, (200, 0, 50))


def test_clip_box_keeps_a_margin_inside_the_frame():
    """Boxes leaving the frame keep ``margin`` pixels inside; sizes stay positive."""
    np.testing.assert_allclose(clip_box(np.array([-50.0, -50, 40, 40]), 200, 100),
                               (0, 0, 10, 10))
    np.testing.assert_allclose(clip_box(np.array([195.0, 95, 40, 40]), 200, 100),
                               (190, 90, 10, 10))
    np.testing.assert_allclose(clip_box(np.array([10.0, 10, 20, 30]), 200, 100),
                               (10, 10, 20, 30))
    assert clip_box(np.array([50.0, 50, 0, 0]), 200, 100)[2:].min() >= 2.0


def test_reference_frames_lower_the_miss_threshold_for_a_low_scoring_target():
    """A target scoring 0.3 from the start is tracked under 0.6; half its reference is a miss."""
    backend = ScriptedBackend([[0.5, 0.5, 0.25, 0.25]], [0.3], [5])
    frame = np.zeros((480, 640, 3), np.uint8)
    absolute = Tracker(backend, TrackerConfig(score_threshold=0.6, lost_patience=1))
    absolute.initialize(frame, (300, 200, 40, 40))
    absolute.track(frame)
    assert absolute.lost and absolute.miss_threshold() == 0.6
    config = TrackerConfig(score_threshold=0.6, lost_patience=1, reference_frames=3,
                           relative_threshold=0.5)
    tracker = Tracker(backend, config)
    tracker.initialize(frame, (300, 200, 40, 40))
    for _ in range(5):
        tracker.track(frame)
        assert not tracker.lost
    assert tracker.miss_threshold() == pytest.approx(0.15)
    backend.answer = (backend.answer[0], np.array([0.14], np.float32), backend.answer[2])
    tracker.track(frame)
    assert tracker.lost
    # A target that scores high keeps the absolute threshold; a new start measures anew.
    backend.answer = (backend.answer[0], np.array([0.9], np.float32), backend.answer[2])
    tracker.initialize(frame, (300, 200, 40, 40))
    for _ in range(3):
        tracker.track(frame)
    assert tracker.miss_threshold() == pytest.approx(0.45)
    with pytest.raises(ValueError, match='relative_threshold'):
        TrackerConfig(relative_threshold=0.0)


def test_a_dip_is_reported_lost_at_once_while_the_search_follows_until_search_patience():
    """lost_patience 1, search_patience 3: lost from the 1st miss, frozen from the 3rd."""
    backend = ScriptedBackend([[0.6, 0.5, 0.25, 0.25]], [0.1], [5])
    tracker = Tracker(backend, TrackerConfig(score_threshold=0.3, lost_patience=1,
                                             search_patience=3, redetect=False,
                                             lost_search_factor=6.0))
    frame = np.zeros((480, 640, 3), np.uint8)
    tracker.initialize(frame, (300, 200, 40, 40))
    for _ in range(2):
        before = tracker.state.copy()
        tracker.track(frame)
        assert tracker.lost and not tracker.searching
        assert tracker.state[0] > before[0]  # still following the network
    tracker.track(frame)
    assert tracker.lost and tracker.searching
    frozen = tracker.state.copy()
    tracker.track(frame)
    np.testing.assert_array_equal(tracker.state, frozen)
    side = backend.search_size / tracker.search_region.scale
    wider = tracker.config.lost_search_factor
    assert wider > tracker.config.search_factor
    assert side == pytest.approx(wider * np.sqrt(frozen[2] * frozen[3]))
    backend.answer = (backend.answer[0], np.array([0.8], np.float32), backend.answer[2])
    tracker.track(frame)
    assert not tracker.lost and not tracker.searching
    with pytest.raises(ValueError, match='search_patience'):
        TrackerConfig(search_patience=-1)


def test_lost_after_patience_and_recovery():
    """Low scores for N frames -> lost, wider search, frozen state; a high score recovers."""
    backend = ScriptedBackend([[0.6, 0.5, 0.25, 0.25]], [0.1], [5])
    tracker = Tracker(backend, TrackerConfig(score_threshold=0.3, lost_patience=3,
                                             search_patience=0, lost_search_factor=6.0))
    frame = np.zeros((480, 640, 3), np.uint8)
    tracker.initialize(frame, (300, 200, 40, 40))
    for _ in range(2):
        tracker.track(frame)
        assert not tracker.lost
        side = backend.search_size / tracker.search_region.scale
        assert side == pytest.approx(4.0 * np.sqrt(tracker.state[2] * tracker.state[3]),
                                     rel=0.3)
    moved = tracker.state.copy()
    assert moved[0] > 300
    tracker.track(frame)
    assert tracker.lost and tracker.frames_below == 3
    frozen = tracker.state.copy()
    for _ in range(3):
        tracker.track(frame)
    np.testing.assert_array_equal(tracker.state, frozen)
    # While lost the search region is 6x the box's sqrt(w h) instead of 4x.
    side = backend.search_size / tracker.search_region.scale
    wider = tracker.config.lost_search_factor
    assert wider > tracker.config.search_factor
    assert side == pytest.approx(wider * np.sqrt(frozen[2] * frozen[3]))
    backend.answer = (backend.answer[0], np.array([0.8], np.float32), backend.answer[2])
    box, score = tracker.track(frame)
    assert not tracker.lost and score == pytest.approx(0.8)
    assert tracker.state[0] != frozen[0]


def test_a_lost_target_comes_back_from_afar_only_over_the_recover_threshold():
    """Hysteresis: lost under 0.3; a candidate away from the last box needs 0.6, a near one not."""
    far = [[0.95, 0.5, 0.2, 0.2]]  # 0.45 of the 6x search side = 108 px from the state's centre
    backend = ScriptedBackend(far, [0.1], [5])
    tracker = Tracker(backend, TrackerConfig(score_threshold=0.3, recover_threshold=0.6,
                                             lost_search_factor=6.0, redetect=False, **EXACT))
    frame = np.zeros((480, 640, 3), np.uint8)
    tracker.initialize(frame, (300, 200, 40, 40))
    tracker.track(frame)
    assert tracker.lost
    frozen = tracker.state.copy()
    for score, lost in ((0.5, True), (0.59, True), (0.6, False), (0.4, False), (0.2, True)):
        backend.answer = (np.array(far, np.float32), np.array([score], np.float32),
                          backend.answer[2])
        tracker.track(frame)
        # Over the miss threshold while tracking (0.4) keeps the target; lost, it takes 0.6.
        assert tracker.lost == lost, score
        if lost and score > 0.3:
            np.testing.assert_array_equal(tracker.state, frozen)
    # Near the last confident box (12 px away) the miss threshold is enough.
    backend.answer = (np.array([[0.55, 0.5, 0.2, 0.2]], np.float32),
                      np.array([0.35], np.float32), backend.answer[2])
    tracker.track(frame)
    assert not tracker.lost
    # Re-detection's far candidates face the higher of the two bars as well.
    strict = Tracker(BlobBackend(), TrackerConfig(hanning=False, redetect_after=0,
                                                  redetect_tiles=64, recover_threshold=0.95))
    strict.initialize(blob_frame(50, 50), (50, 50, 30, 30))
    strict.track(blob_frame(None, None))
    for _ in range(5):
        strict.track(blob_frame(560, 400))
    assert strict.lost and strict.reacquisitions == 0
    with pytest.raises(ValueError, match=r'recover_threshold must be in \[0, 1\]'):
        TrackerConfig(recover_threshold=1.5)


def test_the_recovery_radius_grows_with_the_frames_lost():
    """A candidate 2.7 box sizes away needs 0.6 at first, the miss threshold once 9 frames lost."""
    far = [[0.95, 0.5, 0.2, 0.2]]  # 108 px from the frozen state's centre, 2.7 of its 40 px
    backend = ScriptedBackend(far, [0.1], [5])
    tracker = Tracker(backend, TrackerConfig(score_threshold=0.3, recover_threshold=0.6,
                                             recover_growth=0.2, lost_search_factor=6.0,
                                             redetect=False, **EXACT))
    frame = np.zeros((480, 640, 3), np.uint8)
    tracker.initialize(frame, (300, 200, 40, 40))
    tracker.track(frame)
    assert tracker.lost
    # Radius 1 + 0.2 * frames lost: over 2.7 from the 9th frame lost on.
    backend.answer = (np.array(far, np.float32), np.array([0.4], np.float32), backend.answer[2])
    for _ in range(8):
        assert tracker.frames_lost < 9
        tracker.track(frame)
        assert tracker.lost
    assert tracker.frames_lost == 9
    tracker.track(frame)
    assert not tracker.lost and tracker.state[0] != 300
    with pytest.raises(ValueError, match='recover_growth must be >= 0'):
        TrackerConfig(recover_growth=-1.0)


def test_bad_inputs_give_clear_errors():
    """Wrong frames and boxes are rejected with messages that say what is wrong."""
    tracker = Tracker(ScriptedBackend([[0.5, 0.5, 0.2, 0.2]], [0.9], [0]))
    frame = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(RuntimeError, match='before initialize'):
        tracker.track(frame)
    with pytest.raises(ValueError, match='uint8'):
        tracker.initialize(frame.astype(np.float32), (1, 1, 5, 5))
    with pytest.raises(ValueError, match='shape'):
        tracker.initialize(np.zeros((50, 60, 2), np.uint8), (1, 1, 5, 5))
    with pytest.raises(ValueError, match='positive width'):
        tracker.initialize(frame, (1, 1, 0, 5))
    with pytest.raises(ValueError, match='finite'):
        tracker.initialize(frame, (1, np.nan, 5, 5))
    with pytest.raises(ValueError, match='outside'):
        tracker.initialize(frame, (100, 10, 5, 5))
    with pytest.raises(TypeError):
        tracker.initialize([[0]], (1, 1, 5, 5))
    with pytest.raises(ValueError, match='lost_search_factor'):
        TrackerConfig(search_factor=4.0, lost_search_factor=3.0)
    # A box partly outside the frame is fine: the target may be entering the view.
    tracker.initialize(frame, (-5, -5, 20, 20))


@pytest.mark.parametrize('change, message', [
    ({'lost_patience': 0}, 'lost_patience must be an integer >= 1'),
    ({'lost_patience': 2.5}, 'lost_patience must be an integer'),
    ({'redetect_tiles': True}, 'redetect_tiles must be an integer'),
    ({'template_interval': '30'}, 'template_interval must be an integer'),
    ({'score_threshold': '0.5'}, r'score_threshold must be in \[0, 1\]'),
    ({'recover_threshold': 1.2}, r'recover_threshold must be in \[0, 1\]'),
    ({'relative_threshold': 0.0}, r'relative_threshold must be in \(0, 1\]'),
])
def test_tracker_settings_of_the_wrong_type_or_range_are_named(change, message):
    """One set of rules for every TrackerConfig (the session's settings use it too)."""
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**change)
    with pytest.raises(ValueError, match=message):
        replace(TrackerConfig(), **change)


def test_numpy_numbers_are_settings_too():
    """Grids built with NumPy give np.int64 and np.float32 values: those are accepted."""
    config = TrackerConfig(lost_patience=np.int64(3), score_threshold=np.float32(0.4))
    assert config.lost_patience == 3


def test_frames_may_change_size_and_the_target_may_leave(model):
    """Through streams that change size, with the box pushed off the frame, nothing fails."""
    tracker = Tracker(TorchBackend(model, torch.device('cpu')))
    rng = np.random.default_rng(1)
    tracker.initialize(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (280, 200, 40, 40))
    for height, width in ((240, 320), (100, 90), (480, 640), (17, 23)):
        frames = [rng.integers(0, 255, (height, width), dtype=np.uint8) for _ in range(2)]
        if (width, height) != tracker.frame_size:
            with pytest.raises(FrameSizeChanged, match=f'frame is {width}x{height}'):
                tracker.track(frames[0])
        box, score = tracker.track(frames[1])
        assert np.isfinite(box).all() and 0.0 <= score <= 1.0
        assert box[0] <= width and box[1] <= height and box[2] > 0 and box[3] > 0
    assert tracker.size_changes == 3


def size_change_tracker():
    """Return a scripted tracker that always predicts its search centre, started at 640x480."""
    tracker = Tracker(ScriptedBackend([[0.5, 0.5, 0.25, 0.25]], [0.9], [5]))
    tracker.initialize(np.zeros((480, 640, 3), np.uint8), (300, 200, 40, 40))
    return tracker


@pytest.mark.parametrize('odd', [(1, 1), (16, 16), (16, 12)])
def test_one_odd_sized_frame_is_skipped_and_changes_nothing(odd):
    """A single 1x1 or 16x16 frame in a 640x480 stream is refused; the track goes on as before."""
    tracker = size_change_tracker()
    state = tracker.state.copy()
    with pytest.raises(FrameSizeChanged, match=f'frame is {odd[0]}x{odd[1]}'):
        tracker.track(np.zeros((odd[1], odd[0], 3), np.uint8))
    np.testing.assert_array_equal(tracker.state, state)
    box, _ = tracker.track(np.zeros((480, 640, 3), np.uint8))
    np.testing.assert_allclose(box, (300, 200, 40, 40), atol=1e-6)
    assert not tracker.lost and tracker.size_changes == 0 and tracker.frame_size == (640, 480)


def test_a_lasting_size_change_rescales_the_state():
    """640x480 becoming 320x240 for good: the second such frame halves the state and tracks."""
    tracker = size_change_tracker()
    half = np.zeros((240, 320, 3), np.uint8)
    with pytest.raises(FrameSizeChanged):
        tracker.track(half)
    box, _ = tracker.track(half)
    np.testing.assert_allclose(box, (150, 100, 20, 20), atol=1e-6)
    assert not tracker.lost and tracker.size_changes == 1 and tracker.frame_size == (320, 240)


def test_a_size_change_with_another_aspect_ratio_declares_the_target_lost():
    """640x480 becoming 640x640: the mapping is a guess, so the target is searched for again."""
    tracker = size_change_tracker()
    square = np.zeros((640, 640, 3), np.uint8)
    with pytest.raises(FrameSizeChanged):
        tracker.track(square)
    tracker.update_config(score_threshold=0.95)  # the scripted 0.9 must not end the search
    tracker.track(square)
    assert tracker.lost and tracker.size_changes == 1
    np.testing.assert_allclose(tracker.state, (300, 200 * 640 / 480, 40, 40 * 640 / 480))


def test_backend_matches_the_model_forward(model):
    """The backend's candidates are the network's own outputs on the normalised crops."""
    backend = TorchBackend(model, torch.device('cpu'), num_layers=1)
    rng = np.random.default_rng(2)
    template = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    search = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    backend.set_template(template)
    boxes, scores, cells = backend.infer(search)
    network = TrackingNetwork(model, num_layers=1)
    with torch.no_grad():
        outputs = model(network.normalise(torch.from_numpy(template)[None]),
                        network.normalise(torch.from_numpy(search)[None]), num_layers=1)
    np.testing.assert_allclose(boxes, outputs['boxes'][0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, outputs['scores'][0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(cells, outputs['query_index'][0].numpy())
    backend.set_decoder_layers(2)
    assert not np.allclose(backend.infer(search)[0], boxes)
    with pytest.raises(ValueError, match='1..2'):
        backend.set_decoder_layers(3)


def test_conv_head_candidates_cover_the_whole_grid():
    """For the OSTrack head every cell is a candidate and its argmax box is the head's own."""
    model = create_model('vit_tiny', head='conv', template_size=64, search_size=128,
                         encoder={'depth': 2, 'ce_layers': [1]}).eval()
    network = TrackingNetwork(model)
    rng = np.random.default_rng(3)
    template = torch.from_numpy(rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8))
    search = torch.from_numpy(rng.integers(0, 255, (1, 128, 128, 3), dtype=np.uint8))
    with torch.no_grad():
        boxes, scores, cells = network(template, search)
        own = model(network.normalise(template), network.normalise(search))
    assert boxes.shape == (1, 64, 4) and cells.tolist() == [list(range(64))]
    best = int(scores[0].argmax())
    torch.testing.assert_close(boxes[0, best], own['boxes'][0, 0])


@pytest.mark.slow
def test_shipped_model_tracks_synthetic_sequences(sequences):
    """The default model follows the target: AO well above a tracker that never moves."""
    tracker = build_tracker(MODEL, RuntimeConfig(device='cpu'))
    results = [run_sequence(tracker, sequence) for sequence in sequences]
    scores = evaluate(results, 'got10k')

    class Static:

        def initialize(self, frame, box):
            self.box = np.asarray(box, float)

        def track(self, frame):
            return self.box, 1.0

    static = evaluate([run_sequence(Static(), s) for s in sequences], 'got10k')
    assert scores.ao > static.ao + 0.05, (scores.ao, static.ao)
    assert scores.sr50 > 0.2


def test_decoder_layers_and_elimination_knobs_change_the_network(model, sequences):
    """Fewer decoder layers and no candidate elimination run and give different boxes."""
    frame = load_frame(sequences[0], 0)
    box = sequences[0].anno[0]
    answers = []
    for runtime in (RuntimeConfig(device='cpu'), RuntimeConfig(device='cpu', decoder_layers=1),
                    RuntimeConfig(device='cpu', candidate_elimination=False)):
        tracker = build_tracker(MODEL, runtime)
        tracker.initialize(frame, box)
        answers.append(tracker.track(load_frame(sequences[0], 1))[0])
    assert not np.allclose(answers[0], answers[1])
    assert all(np.isfinite(a).all() for a in answers)


def load_frame(sequence, index):
    """Read frame ``index`` of an evaluation sequence as RGB."""
    from detrack_model.data.sequences import read_rgb
    return read_rgb(sequence.frames[index])


def test_bundle_errors_name_the_file(tmp_path, model):
    """A missing, corrupt or mismatched bundle is a BundleError naming the file."""
    with pytest.raises(BundleError, match='not found'):
        build_tracker(tmp_path / 'missing', RuntimeConfig(device='cpu'))
    stem = tmp_path / 'copy'
    save_bundle(model, stem)
    (tmp_path / 'copy.safetensors').write_bytes(b'garbage' * 10)
    with pytest.raises(BundleError, match='copy.safetensors'):
        build_tracker(stem, RuntimeConfig(device='cpu'))
    other = create_model('vit_tiny', template_size=64, search_size=128,
                         encoder={'depth': 2, 'ce_layers': [1]},
                         decoder={'layers': 1, 'num_queries': 8})
    save_bundle(other, stem)
    config = (tmp_path / 'copy.yaml').read_text()
    save_bundle(model, stem)
    (tmp_path / 'copy.yaml').write_text(config)
    with pytest.raises(BundleError, match='does not match'):
        build_tracker(stem, RuntimeConfig(device='cpu'))


def test_runtime_config_errors():
    """Unknown backends, fp16 on CPU and ONNX files on the torch backend are refused."""
    with pytest.raises(ValueError, match='unknown backend'):
        RuntimeConfig(backend='tensorrt')
    with pytest.raises(ValueError, match='onnxruntime'):
        build_tracker('model.onnx', RuntimeConfig(device='cpu'))
    with pytest.raises(ValueError, match='fp16'):
        TorchBackend(create_model('vit_tiny', encoder={'depth': 1, 'ce_layers': []}),
                     torch.device('cpu'), fp16=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_fp16_on_gpu_matches_fp32(model, sequences):
    """Half precision on a GPU gives nearly the float32 boxes."""
    frame, box = load_frame(sequences[0], 0), sequences[0].anno[0]
    answers = []
    for fp16 in (False, True):
        tracker = build_tracker(MODEL, RuntimeConfig(device='cuda', fp16=fp16))
        tracker.initialize(frame, box)
        answers.append(tracker.track(load_frame(sequences[0], 1))[0])
    np.testing.assert_allclose(answers[0], answers[1], rtol=0.02, atol=1.0)


def test_the_torch_backend_puts_the_whole_network_on_its_device():
    """Weights and the network's own buffers (pixel mean and scale) all live on the device."""
    network = create_model('vit_tiny', encoder={'depth': 1, 'ce_layers': []})
    backend = TorchBackend(network, torch.device('meta'))
    tensors = list(backend.network.parameters()) + list(backend.network.buffers())
    assert len(tensors) > 10 and {tensor.device.type for tensor in tensors} == {'meta'}


@contextlib.contextmanager
def exact_float32():
    """Turn off TF32 in convolutions and matrix products (a GPU's default for convolutions)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('fp16', [False, True])
def test_batched_searches_on_gpu_equal_one_at_a_time(model, sequences, fp16):
    """
    A batch of search crops on a GPU gives each crop's own candidates.

    In float32 (TF32 off) every candidate agrees. Batched kernels round differently from
    batch-1 ones, and in half precision that can reorder near-tied candidates of the crops
    without a target, so there the best candidate of a crop with the target is compared.
    """
    backend = TorchBackend(model, torch.device('cuda'), fp16=fp16)
    frame, box = load_frame(sequences[0], 0), sequences[0].anno[0]
    tracker = Tracker(backend)
    tracker.initialize(frame, box)
    rng = np.random.default_rng(5)
    searches = rng.integers(0, 256, (4, backend.search_size, backend.search_size, 3), np.uint8)
    # One real search crop among the random ones: the target where the tracker looked for it.
    tracker.track(load_frame(sequences[0], 1))
    searches[0] = tracker._search
    with contextlib.nullcontext() if fp16 else exact_float32():
        single = [backend.infer(search) for search in searches]
        batched = backend.infer_batch(searches)
    if fp16:
        best = int(np.argmax(single[0][1]))
        batched_best = int(np.argmax(batched[1][0]))
        np.testing.assert_allclose(batched[0][0][batched_best], single[0][0][best], atol=0.02)
        assert batched[1][0][batched_best] == pytest.approx(single[0][1][best], abs=0.02)
        return
    for index, (boxes, scores, cells) in enumerate(single):
        np.testing.assert_allclose(batched[0][index], boxes, atol=1e-3)
        np.testing.assert_allclose(batched[1][index], scores, atol=1e-3)
        np.testing.assert_array_equal(batched[2][index], cells)


@pytest.mark.slow
def test_torch_compile_runs_and_agrees(model):
    """The optional torch.compile path gives the eager boxes."""
    rng = np.random.default_rng(4)
    template = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    search = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    eager = TorchBackend(model, torch.device('cpu'))
    compiled = TorchBackend(model, torch.device('cpu'), torch_compile=True)
    for backend in (eager, compiled):
        backend.set_template(template)
    np.testing.assert_allclose(compiled.infer(search)[0], eager.infer(search)[0], rtol=1e-4,
                               atol=1e-5)


def test_padded_rows_are_tracked_without_a_copy():
    """A frame viewed from a buffer with padded rows gives the same crop as a packed one."""
    rng = np.random.default_rng(5)
    packed = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    buffer = np.zeros((60, 80 * 3 + 16), np.uint8)
    buffer[:, :240] = packed.reshape(60, 240)
    padded = buffer[:, :240].reshape(60, 80, 3)
    assert not padded.flags.c_contiguous
    backend = ScriptedBackend([[0.5, 0.5, 0.25, 0.25]], [0.9], [5])
    tracker = Tracker(backend)
    for frame in (packed, padded):
        tracker.initialize(frame, (30, 20, 15, 15))
        tracker.track(frame)
    np.testing.assert_array_equal(backend.templates[0], backend.templates[1])
    np.testing.assert_array_equal(backend.searches[0], backend.searches[1])


def test_reset_forgets_the_target():
    """After reset() the tracker needs a new initialize() and is not lost."""
    tracker = build_tracker(MODEL, RuntimeConfig(backend='torch'))
    frame = np.full((120, 160, 3), 90, np.uint8)
    tracker.initialize(frame, (40, 30, 30, 20))
    tracker.track(frame)
    tracker.reset()
    assert not tracker.initialized and not tracker.lost and tracker.search_region is None
    with pytest.raises(RuntimeError, match='before initialize'):
        tracker.track(frame)


def test_auto_backend_is_onnxruntime_on_the_cpu_and_follows_onnx_files(tmp_path):
    """'auto' resolves per device and file type; the decoder depth is read from the model."""
    shipped = MODEL
    assert resolve_backend(shipped, RuntimeConfig(backend='auto', device='cpu')) == 'onnxruntime'
    assert resolve_backend(shipped, RuntimeConfig(backend='torch')) == 'torch'
    assert resolve_backend(tmp_path / 'm.onnx', RuntimeConfig(backend='auto')) == 'onnxruntime'
    assert model_decoder_layers(shipped) == 2
    with pytest.raises(ValueError, match='unknown backend'):
        RuntimeConfig(backend='tensorrt')


@pytest.mark.parametrize('backend', ['torch',
                                     pytest.param('onnxruntime', marks=pytest.mark.slow)])
def test_decoder_layers_switch_between_frames_and_keep_the_target(backend, sequences):
    """Switching depth mid-sequence equals a tracker built at that depth from the start."""
    sequence = sequences[0]
    frames = [load_frame(sequence, i) for i in range(6)]
    shipped = MODEL
    switched = build_tracker(shipped, RuntimeConfig(backend=backend))
    reference = build_tracker(shipped, RuntimeConfig(backend=backend, decoder_layers=1))
    for tracker in (switched, reference):
        tracker.initialize(frames[0], sequence.anno[0])
    set_decoder_layers(switched, shipped, RuntimeConfig(backend=backend), 1)
    for frame in frames[1:]:
        box, score = switched.track(frame)
        expected, expected_score = reference.track(frame)
        np.testing.assert_allclose(box, expected, atol=1e-3)
        assert score == pytest.approx(expected_score, abs=1e-4)
    with pytest.raises(ValueError, match='1..2'):
        set_decoder_layers(switched, shipped, RuntimeConfig(backend=backend), 3)


def test_replace_backend_hands_over_the_template_and_refuses_other_sizes():
    """The new backend gets the current template; one with other crop sizes is refused."""
    first = ScriptedBackend([[0.5, 0.5, 0.2, 0.2]], [0.9], [5])
    tracker = Tracker(first)
    frame = np.random.default_rng(0).integers(0, 255, (80, 100, 3), np.uint8)
    tracker.initialize(frame, (30, 20, 20, 16))
    second = ScriptedBackend([[0.5, 0.5, 0.2, 0.2]], [0.9], [5])
    assert tracker.replace_backend(second) is first
    np.testing.assert_array_equal(second.templates[0], first.templates[0])
    tracker.track(frame)
    assert len(second.searches) == 1 and not first.searches

    class Bigger(ScriptedBackend):
        search_size = 128

    with pytest.raises(ValueError, match='takes crops'):
        tracker.replace_backend(Bigger([[0.5, 0.5, 0.2, 0.2]], [0.9], [5]))
    assert tracker.backend is second


def test_search_region_is_the_crop_square_in_image_pixels():
    """image_region() maps the crop's corners back to the image."""
    transform = search_transform(np.array([100.0, 50.0, 40.0, 10.0]), 4.0, 128)
    x, y, w, h = transform.image_region()
    assert w == pytest.approx(h) and w == pytest.approx(4.0 * np.sqrt(400.0))
    np.testing.assert_allclose(transform.points_to_crop(np.array([[x, y], [x + w, y + h]])),
                               [[0, 0], [128, 128]], atol=1e-9)


def test_box_size_is_damped_by_confidence_and_bounded_per_frame():
    """A box 4x wider than the state grows by at most max_scale_step, less at a low score."""
    frame = np.zeros((480, 640, 3), np.uint8)
    # The scripted box fills the crop, 4 x 40 px at search factor 4: four times the state.
    widths = {}
    for score in (0.9, 0.3):
        backend = ScriptedBackend([[0.5, 0.5, 1.0, 1.0]], [score], [5])
        tracker = Tracker(backend, TrackerConfig(hanning=False, score_threshold=0.1,
                                                 size_rate=0.5, max_scale_step=1.5))
        tracker.initialize(frame, (300, 200, 40, 40))
        box, _ = tracker.track(frame)
        widths[score] = box[2]
        # The centre follows the network: the crop's centre is the state's centre.
        assert box[0] + 0.5 * box[2] == pytest.approx(320.0, abs=0.5)
    assert widths[0.9] == pytest.approx(40.0 * 1.5)
    assert widths[0.3] == pytest.approx(40.0 * 4.0 ** (0.5 * 0.3))
    backend = ScriptedBackend([[0.5, 0.5, 1.0, 1.0]], [0.9], [5])
    tracker = Tracker(backend, TrackerConfig(hanning=False, clip_margin=0.0, **EXACT))
    tracker.initialize(frame, (300, 200, 40, 40))
    # Off (limits at 1 and inf): the network's box exactly.
    assert tracker.track(frame)[0][2] == pytest.approx(160.0)
    with pytest.raises(ValueError, match='max_scale_step'):
        TrackerConfig(max_scale_step=1.0)


class BlobBackend:
    """A backend that 'sees' the white square in its crop: its box, score 0.9; else 0.05."""

    template_size, search_size, grid, name = 32, 64, 4, 'blob'

    def __init__(self):
        self.calls = 0

    def set_template(self, crop):
        pass

    def infer(self, crop):
        self.calls += 1
        ys, xs = np.nonzero(crop[..., 0] > 200)
        if xs.size < 4:
            return (np.array([[0.5, 0.5, 0.2, 0.2]], np.float32), np.array([0.05], np.float32),
                    np.array([5]))
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        box = np.array([[(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]], np.float32) / 64
        return box, np.array([0.9], np.float32), np.array([5])

    def infer_batch(self, crops):
        return infer_each(self, crops)

    def release(self):
        pass


def blob_frame(x, y, side=30, size=(480, 640)):
    """Return a dark frame with a white square at (x, y), or none when x is None."""
    frame = np.zeros(size + (3,), np.uint8)
    if x is not None:
        frame[y:y + side, x:x + side] = 255
    return frame


def test_a_target_that_reappears_far_away_is_redetected():
    """Lost, the wider search misses it; the whole-frame tiles find it and count it."""
    backend = BlobBackend()
    config = TrackerConfig(hanning=False, lost_patience=2, search_patience=0, redetect=True,
                           redetect_after=1, redetect_tiles=2)
    tracker = Tracker(backend, config)
    tracker.initialize(blob_frame(50, 50), (50, 50, 30, 30))
    tracker.track(blob_frame(52, 50))
    for _ in range(3):
        tracker.track(blob_frame(None, None))
    assert tracker.lost
    found_at = None
    for index in range(60):
        calls = backend.calls
        box, score = tracker.track(blob_frame(560, 400))
        # Never more than the search, the tiles and one refining search per frame.
        assert backend.calls - calls <= 2 + config.redetect_tiles
        if not tracker.lost:
            found_at = index
            break
    assert found_at is not None and tracker.reacquisitions == 1
    np.testing.assert_allclose(box, (560, 400, 30, 30), atol=2)
    # Without re-detection the far target stays lost.
    plain = Tracker(BlobBackend(), TrackerConfig(hanning=False, lost_patience=2,
                                                 search_patience=0, redetect=False))
    plain.initialize(blob_frame(50, 50), (50, 50, 30, 30))
    for _ in range(4):
        plain.track(blob_frame(None, None))
    for _ in range(60):
        plain.track(blob_frame(560, 400))
    assert plain.lost


class BatchCountingBlob(BlobBackend):
    """A BlobBackend that records the size of every batch it is given."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def infer_batch(self, crops):
        self.batches.append(len(crops))
        return super().infer_batch(crops)


@pytest.mark.parametrize('bgr', [False, True])
def test_the_tiles_of_a_lost_frame_go_through_the_backend_as_one_batch(bgr):
    """Each re-detection frame hands its tiles over in one call; BGR frames crop alike."""
    backend = BatchCountingBlob()
    tracker = Tracker(backend, TrackerConfig(hanning=False, lost_patience=1, search_patience=0,
                                             redetect_after=0, redetect_tiles=3))
    tracker.initialize(blob_frame(50, 50), (50, 50, 30, 30), bgr=bgr)
    for _ in range(4):
        tracker.track(blob_frame(None, None), bgr=bgr)
    assert tracker.lost and backend.batches == [3] * 4
    tracker.update_config(redetect_tiles=5)
    tracker.track(blob_frame(None, None), bgr=bgr)
    assert backend.batches[-1] == 5
    for _ in range(30):
        box, _ = tracker.track(blob_frame(560, 400), bgr=bgr)
        if not tracker.lost:
            break
    assert tracker.reacquisitions == 1
    np.testing.assert_allclose(box, (560, 400, 30, 30), atol=2)


def test_a_confident_frame_becomes_the_template_and_a_loss_restores_the_first():
    """Updates only from confident frames, at most every template_interval frames."""
    backend = ScriptedBackend([[0.5, 0.5, 0.25, 0.25]], [0.9], [5])
    tracker = Tracker(backend, TrackerConfig(template_update=True, template_threshold=0.8,
                                             template_interval=3, **EXACT))
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (12, 120, 160, 3), np.uint8)
    tracker.initialize(frames[0], (60, 40, 30, 30))
    for frame in frames[1:8]:
        tracker.track(frame)
    # Frames 3 and 6 updated it, each a crop of its own frame.
    assert len(backend.templates) == 3
    assert not np.array_equal(backend.templates[1], backend.templates[0])
    assert not np.array_equal(backend.templates[2], backend.templates[1])
    backend.answer = (backend.answer[0], np.array([0.1], np.float32), backend.answer[2])
    tracker.track(frames[8])
    assert tracker.lost and len(backend.templates) == 4
    np.testing.assert_array_equal(backend.templates[-1], backend.templates[0])
    tracker.track(frames[9])
    assert len(backend.templates) == 4
    # Under the threshold nothing changes; switched off, nothing either.
    backend.answer = (backend.answer[0], np.array([0.7], np.float32), backend.answer[2])
    tracker.update_config(score_threshold=0.5)
    for frame in frames[:6]:
        tracker.track(frame)
    assert len(backend.templates) == 4
    plain = ScriptedBackend([[0.5, 0.5, 0.25, 0.25]], [0.9], [5])
    off = Tracker(plain, TrackerConfig(template_update=False, **EXACT))
    off.initialize(frames[0], (60, 40, 30, 30))
    for frame in frames[1:]:
        off.track(frame)
    assert len(plain.templates) == 1
    with pytest.raises(ValueError, match='template_interval'):
        TrackerConfig(template_interval=0)
    with pytest.raises(ValueError, match='template_threshold'):
        TrackerConfig(template_threshold=1.5)


def test_motion_carries_the_search_through_a_short_occlusion():
    """A target moving right, hidden for a few frames, is found where it went."""
    def run(motion):
        tracker = Tracker(BlobBackend(), TrackerConfig(hanning=False, lost_patience=1,
                                                       search_patience=0,
                                                       motion=motion, motion_decay=1.0))
        tracker.initialize(blob_frame(40, 200), (40, 200, 30, 30))
        x = 40
        for _ in range(8):
            x += 20
            tracker.track(blob_frame(x, 200))
        for _ in range(6):  # hidden while it moves on
            x += 20
            tracker.track(blob_frame(None, None))
        x += 20
        tracker.track(blob_frame(x, 200))
        return tracker
    assert run(True).state[0] == pytest.approx(x_after(), abs=3)
    assert run(False).lost


def x_after():
    """Return where the moving blob of the motion test is at the end."""
    return 40 + 20 * 15


def test_frame_tiles_cover_every_pixel():
    """Half-overlapping squares reach every edge; one larger than the frame is centred."""
    tiles = frame_tiles(640, 480, 200.0)
    xs, ys = sorted({t[0] for t in tiles}), sorted({t[1] for t in tiles})
    assert xs[0] == 0 and xs[-1] + 200 == pytest.approx(640)
    assert ys[0] == 0 and ys[-1] + 200 == pytest.approx(480)
    assert max(np.diff(xs)) <= 100 + 1e-9
    assert frame_tiles(100, 80, 300.0) == [(-100.0, -110.0)]
