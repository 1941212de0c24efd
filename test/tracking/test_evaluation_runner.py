"""Tests of the benchmark loaders, the OpenCV peer trackers and the one-pass-evaluation runner."""

import os
import pathlib
import re
import shutil
import time

from detrack_model.data.sequences import AnnotationError, FrameError, read_rgb
from detrack_model.data.synthetic import generate_dataset
from detrack_model.evaluation import peers
from detrack_model.evaluation.results import (read_sequence_result, result_files,
                                              write_sequence_result)
from detrack_model.evaluation.runner import results_tag, run_benchmark, run_sequence
from detrack_model.evaluation.sequences import EvalSequence, load_benchmark
from detrack_model.tracking import TrackerConfig
import numpy as np
import pytest

SIZE = (160, 120)
FRAMES = 30


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


@pytest.fixture(scope='module')
def got10k(tmp_path_factory):
    """Generate two 30-frame GOT-10k val sequences at 160x120 (seed 14: the first is easy)."""
    root = tmp_path_factory.mktemp('got10k')
    generate_dataset(root, 'val', 2, FRAMES, size=SIZE, seed=14)
    return root


@pytest.fixture(scope='module')
def frames(got10k):
    """Return the frame files and boxes of the first generated sequence."""
    directory = got10k / 'val' / 'Synthetic_Val_000001'
    files = sorted(directory.glob('*.jpg'))
    boxes = np.loadtxt(directory / 'groundtruth.txt', delimiter=',')
    return files, boxes


def _write_lines(path: pathlib.Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{line}\n' for line in lines))


def _copy_frames(files, directory: pathlib.Path, pattern: str, count: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(files[:count]):
        shutil.copyfile(source, directory / (pattern % (index + 1)))


def _box_lines(boxes: np.ndarray, separator: str = ','):
    return [separator.join(f'{v:g}' for v in box) for box in boxes]


@pytest.fixture(scope='module')
def otb(tmp_path_factory, frames):
    """Build an OTB-style tree: Car (tabs), Jogging (two targets), Human4 (empty first file)."""
    files, boxes = frames
    root = tmp_path_factory.mktemp('otb')
    _copy_frames(files, root / 'Car' / 'img', '%04d.jpg', 8)
    _write_lines(root / 'Car' / 'groundtruth_rect.txt', _box_lines(boxes[:8], '\t'))
    _copy_frames(files, root / 'Jogging' / 'img', '%04d.jpg', 6)
    _write_lines(root / 'Jogging' / 'groundtruth_rect.1.txt', _box_lines(boxes[:6]))
    _write_lines(root / 'Jogging' / 'groundtruth_rect.2.txt', _box_lines(boxes[:6] + 1, ' '))
    _copy_frames(files, root / 'Human4' / 'img', '%04d.jpg', 5)
    _write_lines(root / 'Human4' / 'groundtruth_rect.1.txt', [])
    _write_lines(root / 'Human4' / 'groundtruth_rect.2.txt', _box_lines(boxes[:5]))
    (root / 'notes').mkdir()
    return root


@pytest.fixture(scope='module')
def lasot(tmp_path_factory, frames):
    """Build a LaSOT tree: car-1 and car-2 with occlusion and out-of-view flags."""
    files, boxes = frames
    root = tmp_path_factory.mktemp('lasot')
    for name, count in (('car-1', 7), ('car-2', 9)):
        directory = root / 'car' / name
        _copy_frames(files, directory / 'img', '%08d.jpg', count)
        _write_lines(directory / 'groundtruth.txt', _box_lines(boxes[:count]))
        occlusion = ['0'] * count
        occlusion[2] = '1'
        out_of_view = ['0'] * count
        out_of_view[4] = '1'
        _write_lines(directory / 'full_occlusion.txt', [','.join(occlusion)])
        _write_lines(directory / 'out_of_view.txt', [','.join(out_of_view)])
    return root


# --------------------------------------------------------------------------- loaders


def test_got10k_val(got10k):
    """The val split gives every frame in order with its box and the dataset's visibility."""
    sequences = load_benchmark('got10k', got10k, split='val')
    assert [s.name for s in sequences] == ['Synthetic_Val_000001', 'Synthetic_Val_000002']
    for sequence in sequences:
        directory = got10k / 'val' / sequence.name
        assert len(sequence) == FRAMES
        assert sequence.frames == [str(directory / f'{i:08d}.jpg') for i in range(1, FRAMES + 1)]
        np.testing.assert_allclose(
            sequence.anno, np.loadtxt(directory / 'groundtruth.txt', delimiter=','))
        absent = np.loadtxt(directory / 'absence.label')
        cover = np.loadtxt(directory / 'cover.label')
        np.testing.assert_array_equal(sequence.visible, (absent == 0) & (cover > 0))
        assert sequence.image_size == SIZE
    assert load_benchmark('got10k', got10k)[0].name == sequences[0].name  # val by default
    only = load_benchmark('got10k', got10k, sequences=['Synthetic_Val_000002'])
    assert [s.name for s in only] == ['Synthetic_Val_000002']


def test_got10k_matches_official_reader(got10k):
    """The GOT-10k toolkit's own reader sees the same frames and boxes."""
    datasets = pytest.importorskip('got10k.datasets')
    official = datasets.GOT10k(str(got10k), subset='val')
    for sequence, (files, anno) in zip(load_benchmark('got10k', got10k), official):
        assert files == sequence.frames
        np.testing.assert_allclose(anno, sequence.anno)


def test_got10k_test_split_first_box_only(tmp_path, frames):
    """The test split's single box is frame 0's; the val split may not be annotated so."""
    files, boxes = frames
    for split in ('test', 'val'):
        directory = tmp_path / split / 'Seq_1'
        _copy_frames(files, directory, '%08d.jpg', 5)
        _write_lines(directory / 'groundtruth.txt', _box_lines(boxes[:1]))
        _write_lines(tmp_path / split / 'list.txt', ['Seq_1'])
    (sequence,) = load_benchmark('got10k', tmp_path, split='test')
    assert len(sequence) == 5 and sequence.anno.shape == (5, 4)
    np.testing.assert_allclose(sequence.anno[0], boxes[0])
    assert np.isnan(sequence.anno[1:]).all()
    np.testing.assert_array_equal(sequence.visible, [True, False, False, False, False])
    with pytest.raises(AnnotationError, match=r'groundtruth\.txt: 1 ground-truth lines but 5'):
        load_benchmark('got10k', tmp_path, split='val')


def test_otb(otb, frames):
    """OTB-style sequences: tab/space/comma boxes, img/ frames, one sequence per target."""
    _, boxes = frames
    sequences = {s.name: s for s in load_benchmark('otb', otb)}
    assert list(sequences) == ['Car', 'Human4', 'Jogging.1', 'Jogging.2']
    car = sequences['Car']
    assert car.frames == [str(otb / 'Car' / 'img' / f'{i:04d}.jpg') for i in range(1, 9)]
    np.testing.assert_allclose(car.anno, boxes[:8])
    assert car.visible.all()
    np.testing.assert_allclose(sequences['Jogging.1'].anno, boxes[:6])
    np.testing.assert_allclose(sequences['Jogging.2'].anno, boxes[:6] + 1)
    assert sequences['Jogging.1'].frames == sequences['Jogging.2'].frames
    np.testing.assert_allclose(sequences['Human4'].anno, boxes[:5])
    chosen = load_benchmark('otb', otb, sequences=['Jogging', 'Car'])
    assert [s.name for s in chosen] == ['Jogging.1', 'Jogging.2', 'Car']
    with pytest.raises(FileNotFoundError, match='Nope'):
        load_benchmark('otb', otb, sequences=['Nope'])
    with pytest.raises(ValueError, match='no split'):
        load_benchmark('otb', otb, split='test')
    with pytest.raises(ValueError, match='got10k, otb, lasot'):
        load_benchmark('vot', otb)


def test_lasot(lasot, frames, tmp_path):
    """Load LaSOT sequences with occlusion and out-of-view flags, optionally from a list."""
    _, boxes = frames
    sequences = load_benchmark('lasot', lasot)
    assert [s.name for s in sequences] == ['car-1', 'car-2']
    car2 = sequences[1]
    assert car2.frames == [str(lasot / 'car' / 'car-2' / 'img' / f'{i:08d}.jpg')
                           for i in range(1, 10)]
    np.testing.assert_allclose(car2.anno, boxes[:9])
    expected = np.ones(9, dtype=bool)
    expected[[2, 4]] = False
    np.testing.assert_array_equal(car2.visible, expected)
    listed = tmp_path / 'testing_set.txt'
    _write_lines(listed, ['car-2'])
    assert [s.name for s in load_benchmark('lasot', lasot, sequences=listed)] == ['car-2']


def _otb_tree(root: pathlib.Path, files, boxes, frames: int, lines) -> pathlib.Path:
    _copy_frames(files, root / 'Seq' / 'img', '%04d.jpg', frames)
    _write_lines(root / 'Seq' / 'groundtruth_rect.txt', lines)
    return root / 'Seq' / 'groundtruth_rect.txt'


def _lasot_tree(root: pathlib.Path, files, boxes, frames: int, lines) -> pathlib.Path:
    directory = root / 'cat' / 'cat-1'
    _copy_frames(files, directory / 'img', '%08d.jpg', frames)
    _write_lines(directory / 'groundtruth.txt', lines)
    return directory / 'groundtruth.txt'


def _got10k_tree(root: pathlib.Path, files, boxes, frames: int, lines) -> pathlib.Path:
    directory = root / 'val' / 'GOT-10k_Val_000001'
    _copy_frames(files, directory, '%08d.jpg', frames)
    _write_lines(directory / 'groundtruth.txt', lines)
    _write_lines(root / 'val' / 'list.txt', ['GOT-10k_Val_000001'])
    return directory / 'groundtruth.txt'


LAYOUTS = {'otb': _otb_tree, 'lasot': _lasot_tree, 'got10k': _got10k_tree}


@pytest.mark.parametrize('kind', sorted(LAYOUTS))
def test_malformed_trees(kind, tmp_path, frames):
    """Count mismatches, bad lines and missing files are errors naming the file."""
    files, boxes = frames
    build = LAYOUTS[kind]

    anno = build(tmp_path / 'count', files, boxes, 4, _box_lines(boxes[:5]))
    with pytest.raises(AnnotationError) as error:
        load_benchmark(kind, tmp_path / 'count')
    assert str(anno) in str(error.value) and '5 ground-truth lines but 4 frame files' in str(
        error.value)

    lines = _box_lines(boxes[:4])
    lines[2] = '1,2,three,4'
    anno = build(tmp_path / 'line', files, boxes, 4, lines)
    with pytest.raises(AnnotationError, match=re.escape(f'{anno}:3: ') + '.*three'):
        load_benchmark(kind, tmp_path / 'line')

    anno = build(tmp_path / 'missing', files, boxes, 4, _box_lines(boxes[:4]))
    anno.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(anno))):
        load_benchmark(kind, tmp_path / 'missing')


def test_eval_sequence_checks_lengths(frames):
    """Frames, boxes and flags of an EvalSequence must agree in length."""
    files, boxes = frames
    with pytest.raises(ValueError, match='3 frames, 2 boxes'):
        EvalSequence('s', [str(f) for f in files[:3]], boxes[:2], np.ones(2, bool))


# --------------------------------------------------------------------------- OpenCV peers


@pytest.mark.parametrize('name', peers.PEERS)
def test_peer_tracks_synthetic_sequence(name, got10k):
    """Each OpenCV peer follows the easy synthetic target (measured IoUs: see the asserts)."""
    sequence = load_benchmark('got10k', got10k)[0]
    result = run_sequence(peers.create_peer(name), sequence)
    assert result.boxes.shape == (FRAMES, 4) and result.times.shape == (FRAMES,)
    assert np.isfinite(result.boxes).all() and (result.times >= 0).all()
    np.testing.assert_allclose(result.boxes[0], sequence.anno[0])
    # Measured on this sequence over the first 10 frames: CSRT 0.92, KCF 0.83, MOSSE 0.76,
    # MedianFlow 0.81.
    assert _iou(result.boxes[:10], sequence.anno[:10]).mean() > 0.5
    if name == 'csrt':
        visible = sequence.visible
        # Measured 0.61 over the whole sequence.
        assert _iou(result.boxes[visible], sequence.anno[visible]).mean() > 0.5


@pytest.mark.parametrize('name', peers.PEERS)
def test_peer_failure_keeps_last_box(name, frames):
    """A failed update (a flat grey frame) keeps the last box and scores 0."""
    files, boxes = frames
    tracker = peers.create_peer(name)
    first = read_rgb(str(files[0]))
    tracker.initialize(first, boxes[0])
    # The same frame again: an update every peer must get right, whatever the scene is.
    box, score = tracker.track(first)
    assert box.shape == (4,) and box.dtype == np.float64 and score == 1.0
    second = read_rgb(str(files[1]))
    lost, score = tracker.track(np.full_like(second, 128))
    assert score == 0.0
    np.testing.assert_array_equal(lost, box)


@pytest.mark.parametrize('name', peers.PEERS)
def test_peer_awkward_initial_boxes(name, frames):
    """Boxes partly outside, sub-pixel, tiny or very thin start every peer without a crash."""
    files, _ = frames
    first, second = read_rgb(str(files[0])), read_rgb(str(files[1]))
    for box in [(-10, -10, 30, 30), (150, 110, 40, 40), (50, 50, 1, 1), (0.4, 0.4, 0.3, 0.3),
                (50, 10, 2, 100), (0, 60, 160, 1)]:
        tracker = peers.create_peer(name)
        tracker.initialize(first, box)
        predicted, score = tracker.track(second)
        assert predicted.shape == (4,) and score in (0.0, 1.0)
    tracker = peers.create_peer(name)
    with pytest.raises(ValueError, match='no pixel inside'):
        tracker.initialize(first, (200, 10, 20, 20))
    with pytest.raises(ValueError, match='finite'):
        tracker.initialize(first, (np.nan, 10, 20, 20))


def test_peer_names_and_rectangles():
    """Unknown names list the known ones; init_rect clips, rounds and grows as documented."""
    with pytest.raises(ValueError, match='csrt, kcf, mosse, medianflow'):
        peers.create_peer('boosting')
    assert peers.create_peer('opencv-KCF').kind == 'kcf'
    with pytest.raises(RuntimeError, match='initialize'):
        peers.create_peer('csrt').track(np.zeros((10, 10, 3), np.uint8))
    assert peers.init_rect((10.4, 20.6, 30.2, 40.0), 160, 120) == (10, 21, 31, 40)
    assert peers.init_rect((-5, -5, 20, 20), 160, 120) == (0, 0, 15, 15)
    assert peers.init_rect((150, 110, 40, 40), 160, 120) == (150, 110, 10, 10)
    assert peers.init_rect((50, 50, 1, 1), 160, 120) == (49, 49, 2, 2)
    assert peers.init_rect((159.5, 0, 1, 5), 160, 120) == (158, 0, 2, 5)
    assert peers.init_rect((50, 0, 2, 100), 160, 120, max_aspect=32) == (49, 0, 4, 100)


# --------------------------------------------------------------------------- result files


def test_result_files_round_trip(tmp_path, got10k):
    """Result files follow the toolkit format, load with np.loadtxt and read back exactly."""
    sequence = load_benchmark('got10k', got10k)[0]
    result = run_sequence(peers.create_peer('kcf'), sequence)
    box_file = write_sequence_result(result, tmp_path / 'kcf')
    assert (box_file, str(tmp_path / 'kcf' / sequence.name / f'{sequence.name}_time.txt')) == \
        result_files(tmp_path / 'kcf', sequence.name)
    assert box_file == str(tmp_path / 'kcf' / sequence.name / f'{sequence.name}_001.txt')
    boxes = np.loadtxt(box_file, delimiter=',')
    times = np.loadtxt(result_files(tmp_path / 'kcf', sequence.name)[1], delimiter=',')
    np.testing.assert_allclose(boxes, result.boxes, atol=5e-5)
    np.testing.assert_allclose(times, result.times, atol=5e-9)
    back = read_sequence_result(tmp_path / 'kcf', sequence)
    assert back.name == sequence.name and back.image_size == SIZE
    np.testing.assert_allclose(back.boxes, result.boxes, atol=5e-5)
    np.testing.assert_allclose(back.times, result.times, atol=5e-9)
    np.testing.assert_array_equal(back.visible, sequence.visible)
    assert not list((tmp_path / 'kcf' / sequence.name).glob('*.partial'))

    lines = pathlib.Path(box_file).read_text().splitlines()
    pathlib.Path(box_file).write_text('\n'.join(lines[:-1]) + '\n')
    with pytest.raises(AnnotationError, match=re.escape(f'{box_file}: {FRAMES - 1} lines but')
                       + f'.* {FRAMES} frames'):
        read_sequence_result(tmp_path / 'kcf', sequence)
    lines[4] = '1,2,3'
    pathlib.Path(box_file).write_text('\n'.join(lines) + '\n')
    with pytest.raises(AnnotationError, match=re.escape(f'{box_file}:5:')):
        read_sequence_result(tmp_path / 'kcf', sequence)


# --------------------------------------------------------------------------- runner


class _Drift:
    """A cheap fake tracker: the initial box moving one pixel right per frame."""

    def __init__(self, init_delay: float = 0.0, nan_after: int = -1) -> None:
        self.init_delay = init_delay
        self.nan_after = nan_after
        self.box = None
        self.frames = 0

    def initialize(self, frame, box_xywh):
        assert frame.dtype == np.uint8 and frame.shape == (SIZE[1], SIZE[0], 3)
        if self.init_delay:
            time.sleep(self.init_delay)
        self.box = np.asarray(box_xywh, dtype=np.float64).copy()

    def track(self, frame):
        self.frames += 1
        self.box[0] += 1
        if 0 <= self.nan_after <= self.frames:
            return np.full(4, np.nan), 0.0
        return self.box.copy(), 1.0


def test_run_sequence_protocol(got10k):
    """Frame 0 is the initial box timed by initialize; the others come from track."""
    sequence = load_benchmark('got10k', got10k)[0]
    result = run_sequence(_Drift(init_delay=0.05), sequence)
    np.testing.assert_array_equal(result.boxes[0], sequence.anno[0])
    np.testing.assert_allclose(result.boxes[1:, 0], sequence.anno[0, 0] + np.arange(1, FRAMES))
    assert result.times[0] >= 0.05 and result.times[1:].max() < 0.05
    assert result.image_size == SIZE
    np.testing.assert_array_equal(result.anno, sequence.anno)


def test_resume_skips_finished_sequences(tmp_path, got10k):
    """A second run reads finished sequences back; only missing ones call the factory."""
    sequences = load_benchmark('got10k', got10k)
    calls = []

    def factory():
        calls.append(1)
        return _Drift()

    first = run_benchmark(factory, sequences, tmp_path, 'drift')
    assert len(calls) == 2
    again = run_benchmark(factory, sequences, tmp_path, 'drift', progress=True)
    assert len(calls) == 2
    for a, b in zip(first, again):
        assert a.name == b.name
        np.testing.assert_allclose(a.boxes, b.boxes, atol=5e-5)
        np.testing.assert_allclose(a.times, b.times, atol=5e-9)
    for name in result_files(tmp_path / 'drift', sequences[1].name):
        os.remove(name)
    run_benchmark(factory, sequences, tmp_path, 'drift')
    assert len(calls) == 3
    run_benchmark(factory, sequences, tmp_path, 'drift', resume=False)
    assert len(calls) == 5


def test_nan_tracker_does_not_crash(tmp_path, got10k):
    """Non-finite boxes are recorded as 0,0,0,0 with a warning, in memory and in the files."""
    sequences = load_benchmark('got10k', got10k)[:1]
    with pytest.warns(RuntimeWarning, match='non-finite box on 20 frames'):
        (result,) = run_benchmark(lambda: _Drift(nan_after=10), sequences, tmp_path, 'nan')
    assert np.isfinite(result.boxes).all()
    assert (result.boxes[10:] == 0).all() and (result.boxes[1:10, 2:] > 0).all()
    box_file, _ = result_files(tmp_path / 'nan', sequences[0].name)
    np.testing.assert_allclose(np.loadtxt(box_file, delimiter=','), result.boxes, atol=5e-5)


def test_bad_first_box_and_bad_frame(tmp_path, frames):
    """A NaN first box fails before any tracking; an undecodable frame names its file."""
    files, boxes = frames
    anno = boxes[:4].copy()
    anno[0] = np.nan
    broken = EvalSequence('broken', [str(f) for f in files[:4]], anno, np.ones(4, bool))
    calls = []

    def factory():
        calls.append(1)
        return _Drift()

    good = EvalSequence('good', [str(f) for f in files[:4]], boxes[:4], np.ones(4, bool))
    with pytest.raises(ValueError, match="'broken'.*first-frame box"):
        run_benchmark(factory, [good, broken], tmp_path, 'drift')
    assert not calls and not (tmp_path / 'drift').exists()

    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'not a jpeg')
    paths = [str(f) for f in files[:2]] + [str(corrupt)]
    sequence = EvalSequence('corrupt', paths, boxes[:3], np.ones(3, bool))
    with pytest.raises(FrameError, match='corrupt.jpg'):
        run_sequence(_Drift(), sequence)


def test_results_tag_names_the_weights_and_the_settings(tmp_path):
    first, second = tmp_path / 'a.safetensors', tmp_path / 'b.safetensors'
    first.write_bytes(b'weights one')
    second.write_bytes(b'weights two')
    tag = results_tag(first, TrackerConfig())
    assert len(tag) == 12 and tag == results_tag(first, TrackerConfig())
    assert tag != results_tag(second, TrackerConfig())
    assert tag != results_tag(first, TrackerConfig(redetect=False))
