"""Tests of the synthetic GOT-10k-layout sequence generator and its command-line tool."""

import hashlib
import json
import pathlib

from detrack_model.cli.synth import main as synth_main
from detrack_model.data import Got10k
from detrack_model.data import synthetic
import numpy as np
import pytest

SIZE = (160, 120)
FRAMES = 20


def _read_lines(path: pathlib.Path):
    return path.read_text().splitlines()


def _labels(split_dir: pathlib.Path):
    """Return {sequence: {label file: text}} for every sequence of a split."""
    out = {}
    for name in _read_lines(split_dir / 'list.txt'):
        files = ('groundtruth.txt', 'absence.label', 'cover.label', 'cut_by_image.label',
                 'synthetic.json')
        out[name] = {f: (split_dir / name / f).read_text() for f in files}
    return out


def _frame_digests(split_dir: pathlib.Path):
    return {p.relative_to(split_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(split_dir.glob('*/*.jpg'))}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """Three 20-frame sequences at 160x120, seed 5."""
    root = tmp_path_factory.mktemp('synthetic')
    summary = synthetic.generate_dataset(root, 'train', 3, FRAMES, size=SIZE, seed=5)
    return root, summary


@pytest.fixture(scope='module')
def many(tmp_path_factory):
    """Thirty short sequences, for statistics over attributes."""
    root = tmp_path_factory.mktemp('synthetic_many')
    summary = synthetic.generate_dataset(root, 'val', 30, 24, size=(128, 96), seed=11)
    records = [json.loads((root / 'val' / name / 'synthetic.json').read_text())
               for name in summary['names']]
    return root, summary, records


def test_layout(tiny):
    """The split has list.txt, numbered frames of the requested size and one label per frame."""
    import cv2

    root, summary = tiny
    split_dir = root / 'train'
    names = _read_lines(split_dir / 'list.txt')
    assert names == summary['names'] and len(names) == 3
    assert summary['frames'] == 3 * FRAMES
    for name in names:
        directory = split_dir / name
        frames = sorted(p.name for p in directory.glob('*.jpg'))
        assert frames == [f'{i:08d}.jpg' for i in range(1, FRAMES + 1)]
        boxes = _read_lines(directory / 'groundtruth.txt')
        assert len(boxes) == FRAMES
        for line in boxes:
            fields = line.split(',')
            assert len(fields) == 4
            assert all(len(f.split('.')[1]) == 4 for f in fields)
            assert float(fields[2]) > 0 and float(fields[3]) > 0
        absence = [int(v) for v in _read_lines(directory / 'absence.label')]
        cover = [int(v) for v in _read_lines(directory / 'cover.label')]
        assert len(absence) == len(cover) == FRAMES
        assert all(c in range(9) for c in cover)
        assert absence == [int(c == 0) for c in cover]
        meta = _read_lines(directory / 'meta_info.ini')
        assert meta[0] == '[METAINFO]' and meta[5].startswith('object_class: ')
        for frame in (frames[0], frames[-1]):
            image = cv2.imread(str(directory / frame))
            assert image is not None and image.shape == (SIZE[1], SIZE[0], 3)


def test_first_frame_fully_visible(tiny, many):
    """A tracker is initialised on frame 1: the target is never hidden or cut there."""
    sequences = [(tiny[0] / 'train', n) for n in tiny[1]['names']]
    sequences += [(many[0] / 'val', n) for n in many[1]['names']]
    for split_dir, name in sequences:
        assert _read_lines(split_dir / name / 'cover.label')[0] == '8'
        assert _read_lines(split_dir / name / 'cut_by_image.label')[0] == '0'


@pytest.mark.slow
def test_determinism(tiny, tmp_path):
    """The same seed reproduces labels and frames byte for byte (any worker count)."""
    root, _ = tiny
    synthetic.generate_dataset(tmp_path / 'same', 'train', 3, FRAMES, size=SIZE, seed=5,
                               workers=2)
    assert _labels(tmp_path / 'same' / 'train') == _labels(root / 'train')
    assert _frame_digests(tmp_path / 'same' / 'train') == _frame_digests(root / 'train')
    synthetic.generate_dataset(tmp_path / 'other', 'train', 3, FRAMES, size=SIZE, seed=6)
    other = _labels(tmp_path / 'other' / 'train')
    mine = _labels(root / 'train')
    assert all(other[n]['groundtruth.txt'] != mine[n]['groundtruth.txt'] for n in mine)
    with pytest.raises(FileExistsError):
        synthetic.generate_dataset(tmp_path / 'other', 'train', 1, 2, size=SIZE, seed=6)


def _solid(side: int, value) -> np.ndarray:
    return np.full((side, side, 3), value, np.uint8)


def _known_scene(frames: int = 3) -> synthetic.Scene:
    """Return a scene whose target is a solid 40x40 square at the frame's centre, alone."""
    scene = synthetic.build_scene(3, frames, SIZE, synthetic.SPLIT_SOURCES['train'])
    square = np.full((64, 64), 255, np.uint8)
    scene.target = synthetic.Sprite.constant(_solid(64, (0, 0, 255)), square, frames,
                                             centre=(79.5, 59.5), size=(40, 40))
    scene.occluders, scene.distractors = [], []
    scene.gain[:], scene.contrast[:], scene.bias[:] = 1.0, 1.0, 0.0
    scene.spot_amplitude = 0.0
    return scene


def test_render_labels_exact():
    """The box is the object mask's box and cover is its visible share, in eighths."""
    scene = _known_scene()
    frame = synthetic.render_frame(scene, 0)
    assert frame.image.shape == (SIZE[1], SIZE[0], 3) and frame.image.dtype == np.uint8
    assert frame.box == tuple(float(v) for v in synthetic.mask_box(frame.target_mask))
    # A 40-pixel square centred on pixel 79.5 spans pixels 60..99 (centres inside 59.5..99.5).
    assert frame.box == (60.0, 40.0, 40.0, 40.0)
    assert frame.cover == 8 and not frame.absent and not frame.cut_by_image
    assert frame.object_pixels == frame.visible_pixels == 1600
    # The target's own colour is on its mask.
    red = frame.image[frame.target_mask][:, 2].astype(int)
    assert red.mean() > 150

    # An occluder over the left half of the target, drawn in front of it.
    occluder = synthetic.Sprite.constant(_solid(64, 255), np.full((64, 64), 255, np.uint8),
                                         scene.num_frames, centre=(69.5, 59.5), size=(20, 60))
    scene.occluders = [occluder]
    frame = synthetic.render_frame(scene, 0)
    assert frame.box == (60.0, 40.0, 40.0, 40.0)
    visible = int(frame.visible_mask.sum())
    assert visible == frame.visible_pixels == 800
    assert frame.cover == synthetic.cover_label(visible, frame.object_pixels) == 4

    # Fully covered: cover 0 and absent, but the box is still the whole object.
    occluder.size[:] = (60, 60)
    occluder.centre[:] = (79.5, 59.5)
    frame = synthetic.render_frame(scene, 0)
    assert frame.cover == 0 and frame.absent and frame.visible_pixels == 0
    assert frame.box == (60.0, 40.0, 40.0, 40.0)


def test_render_records_distractor_boxes():
    """Each look-alike drawn gets its box in the frame, clipped; one wholly outside gets none."""
    scene = _known_scene()
    square = np.full((64, 64), 255, np.uint8)
    near = synthetic.Sprite.constant(_solid(64, (0, 0, 200)), square, scene.num_frames,
                                     centre=(19.5, 19.5), size=(20, 10))
    edge = synthetic.Sprite.constant(_solid(64, (0, 0, 200)), square, scene.num_frames,
                                     centre=(155.5, 100.5), size=(20, 20))
    gone = synthetic.Sprite.constant(_solid(64, (0, 0, 200)), square, scene.num_frames,
                                     centre=(400.5, 60.5), size=(20, 20))
    scene.distractors = [near, edge, gone]
    frame = synthetic.render_frame(scene, 0)
    assert frame.distractors == ((10.0, 15.0, 20.0, 10.0), (146.0, 91.0, 14.0, 20.0))
    # Drawn where the boxes say: the look-alike's red fills its box.
    assert frame.image[15:25, 10:30, 2].min() > 150
    near.visible[1] = False
    assert synthetic.render_frame(scene, 1).distractors == ((146.0, 91.0, 14.0, 20.0),)
    assert synthetic.render_frame(_known_scene(), 0).distractors == ()


def test_written_distractors_are_the_rendered_ones(many):
    """distractors.txt lists every frame's look-alike boxes; the reader gets them back."""
    root, summary, records = many
    dataset = Got10k(str(root), 'val')
    with_any = 0
    for index, record in enumerate(records[:12]):
        scene = synthetic.build_sequence_scene(11, 'val', index, 24, (128, 96),
                                               synthetic.source_set('val'))
        info = dataset.sequence_info(index)
        for t in (0, 11, 23):
            expected = np.array(synthetic.render_frame(scene, t).distractors).reshape(-1, 4)
            np.testing.assert_allclose(info.distractors_in(t), expected, atol=0.5)
        with_any += record['distractors'] > 0
        if record['distractors'] == 0:
            assert info.distractors.shape == (0, 5)
    assert with_any > 0


def test_render_out_of_frame():
    """Partly outside: box clipped to the image; fully outside: the true box, absent."""
    scene = _known_scene()
    scene.target.centre[:] = (149.5, 59.5)  # spans columns 130..169, frame ends at 159
    frame = synthetic.render_frame(scene, 1)
    assert frame.box == (130.0, 40.0, 30.0, 40.0)
    assert frame.cut_by_image and frame.in_frame_pixels == 1200
    assert frame.cover == synthetic.cover_label(1200, 1600) == 6
    scene.target.centre[:] = (200.5, 59.5)
    frame = synthetic.render_frame(scene, 2)
    assert frame.absent and frame.cover == 0 and not frame.target_mask.any()
    assert frame.box == (181.0, 40.0, 40.0, 40.0)


def test_render_generated_scene_consistent():
    """In generated scenes the box is the mask's box and cover follows the visible pixels."""
    scene = synthetic.build_scene(synthetic.sequence_seed(7, 'train', 0), 30, SIZE,
                                  synthetic.SPLIT_SOURCES['train'])
    for t in range(0, scene.num_frames, 3):
        frame = synthetic.render_frame(scene, t)
        if frame.in_frame_pixels:
            assert frame.box == tuple(float(v) for v in synthetic.mask_box(frame.target_mask))
        assert frame.visible_pixels == int((frame.target_mask & frame.visible_mask).sum())
        expected = synthetic.cover_label(frame.visible_pixels, frame.object_pixels)
        assert frame.cover == expected and frame.absent == (expected == 0)


def test_cover_label():
    """Cover is 0 only when nothing is visible and 8 only when everything is."""
    assert synthetic.cover_label(0, 100) == 0
    assert synthetic.cover_label(1, 1000) == 1
    assert synthetic.cover_label(50, 100) == 4
    assert synthetic.cover_label(999, 1000) == 7
    assert synthetic.cover_label(100, 100) == 8


def test_attribute_coverage(many):
    """Thirty short sequences include occlusion, out-of-view and fast-motion spells."""
    root, summary, records = many
    stats = [record['stats'] for record in records]
    assert sum(s['occluded_frames'] > 0 for s in stats) >= 3
    assert sum(s['out_of_view_frames'] > 0 for s in stats) >= 3
    assert sum(s['fast_motion_frames'] > 0 for s in stats) >= 3
    assert sum(s['blurred_frames'] > 0 for s in stats) >= 1
    assert sum(s['absent_frames'] == 0 for s in stats) >= 3  # easy sequences exist too
    assert summary['absent_frames'] > 0
    assert summary['attributes']['distractors'] > 0
    for name, record in zip(summary['names'], records):
        absence = [int(v) for v in _read_lines(root / 'val' / name / 'absence.label')]
        assert sum(absence) == record['stats']['absent_frames']
        longest = max((len(run) for run in ''.join(map(str, absence)).split('0')), default=0)
        assert longest <= 8, f'{name}: absence spell of {longest} frames'


def test_split_sources_disjoint():
    """Train, val and test never share a source image, by name or by content."""
    splits = synthetic.SPLIT_SOURCES
    assert {'train', 'val'} <= set(splits)
    names = [name for sources in splits.values() for name in sources]
    assert len(names) == len(set(names))
    digests = {}
    for split, sources in splits.items():
        for name in sources:
            image = synthetic.load_source(name)
            assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
            digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
            assert digest not in digests, f'{name} ({split}) equals {digests.get(digest)}'
            digests[digest] = f'{name} ({split})'


def test_sequences_use_their_split_sources(many):
    """Every image a val sequence uses comes from the val list; target != background."""
    _, _, records = many
    allowed = set(synthetic.SPLIT_SOURCES['val'])
    for record in records:
        used = record['sources']
        assert set(used.values()) <= allowed
        assert len(set(used.values())) == 3


def test_cli(tmp_path, capsys):
    """detrack-synth writes a split and prints a summary."""
    rc = synth_main(['--root', str(tmp_path), '--split', 'val', '--sequences', '2',
                     '--frames', '5', '--seed', '3', '--size', '96x64'])
    assert rc == 0
    out = capsys.readouterr().out
    assert '2 sequences, 10 frames' in out and 'wall time' in out and 'absent frames' in out
    assert len(_read_lines(tmp_path / 'val' / 'list.txt')) == 2
    with pytest.raises(SystemExit):
        synth_main(['--root', str(tmp_path), '--size', '96by64'])
