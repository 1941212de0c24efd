"""Every dataset type is built by one registry, and GOT-10k is read by one set of rules."""

import types

from detrack_model.data import build_dataset, DATASET_TYPES, Got10k
from detrack_model.data.sequences import AnnotationError
from detrack_model.engine.data import materialise_all
from detrack_model.evaluation.sequences import load_benchmark
import numpy as np
import pytest
from toy_datasets import write_got10k

SYNTHETIC = {'type': 'synthetic', 'split': 'val', 'sequences': 2, 'frames': 4, 'seed': 3,
             'size': [96, 72]}


def write_lines(path, lines):
    path.write_text(''.join(f'{line}\n' for line in lines))


def test_synthetic_is_a_registered_type_built_like_any_other(tmp_path):
    assert 'synthetic' in DATASET_TYPES
    spec = dict(SYNTHETIC, root=str(tmp_path), ratio=2)
    dataset, ratio = build_dataset(spec)
    assert isinstance(dataset, Got10k) and ratio == 2.0
    assert len(dataset) == 2 and len(dataset.sequence_info(0)) == 4
    assert dataset.frame(0, 3).shape == (72, 96, 3)

    # A generated split is read as it is, never generated again.
    listing = tmp_path / 'val' / 'list.txt'
    stamp = listing.stat().st_mtime_ns
    again, _ = build_dataset(dict(spec, sequences=5))
    assert len(again) == 2 and listing.stat().st_mtime_ns == stamp
    # Its size is needed only to generate it.
    assert len(build_dataset({'type': 'synthetic', 'root': str(tmp_path), 'split': 'val'})[0])


def test_materialise_all_generates_only_synthetic_entries(tmp_path):
    data = types.SimpleNamespace(
        train=[dict(SYNTHETIC, root=str(tmp_path / 'synth'), split='train')],
        val=[{'type': 'got10k', 'root': str(tmp_path / 'absent'), 'split': 'val'}])
    materialise_all(types.SimpleNamespace(data=data))
    assert (tmp_path / 'synth' / 'train' / 'list.txt').is_file()
    assert not (tmp_path / 'absent').exists()


@pytest.mark.parametrize('kind', ['synthetic', 'got10k'])
def test_unknown_keys_are_refused_by_name(tmp_path, kind):
    base = SYNTHETIC if kind == 'synthetic' else {'type': kind, 'split': 'val'}
    spec = dict(base, root=str(tmp_path), colour='red')
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        build_dataset(spec)
    assert not (tmp_path / 'val').exists()
    with pytest.raises(ValueError, match='"type" must be one of'):
        build_dataset({'type': 'imagenet', 'root': str(tmp_path)})


def test_missing_synthetic_split_without_its_size_is_an_error(tmp_path):
    with pytest.raises(ValueError, match='"sequences" and "frames"'):
        build_dataset({'type': 'synthetic', 'root': str(tmp_path)})


def _both_readers(root, split):
    """Return (frames, boxes, visible) of sequence 0 as training and evaluation read it."""
    dataset = Got10k(str(root), split)
    info = dataset.sequence_info(0)
    frames = [dataset.frame_path(0, i) for i in range(len(info))]
    (sequence,) = load_benchmark('got10k', root, split=split)
    assert sequence.name == dataset.sequence_name(0) and sequence.dataset == dataset.name
    return (frames, info.boxes, info.visible), (sequence.frames, sequence.anno, sequence.visible)


def _assert_same(training, evaluation):
    assert training[0] == evaluation[0]
    np.testing.assert_array_equal(training[1], evaluation[1])  # NaNs compare equal here
    np.testing.assert_array_equal(training[2], evaluation[2])


def test_got10k_rules_are_the_same_for_training_and_evaluation(tmp_path):
    write_got10k(str(tmp_path), 'val', num_sequences=1, num_frames=6)
    directory = tmp_path / 'val' / 'GOT-10k_Val_000001'
    write_lines(directory / 'absence.label', [0, 0, 1, 0, 0, 0])
    write_lines(directory / 'cover.label', [8, 0, 8, 3, 8, 8])
    training, evaluation = _both_readers(tmp_path, 'val')
    _assert_same(training, evaluation)
    assert training[2].tolist() == [True, False, False, True, True, True]


def test_got10k_test_split_first_box_only_same_for_both(tmp_path):
    write_got10k(str(tmp_path), 'test', num_sequences=1, num_frames=5)
    directory = tmp_path / 'test' / 'GOT-10k_Test_000001'
    first = (directory / 'groundtruth.txt').read_text().splitlines()[0]
    write_lines(directory / 'groundtruth.txt', [first])
    for label in ('absence.label', 'cover.label'):
        (directory / label).unlink()
    (directory / 'notes.txt').write_text('not a frame\n')  # the frame count is the jpgs'
    training, evaluation = _both_readers(tmp_path, 'test')
    _assert_same(training, evaluation)
    assert len(training[1]) == 5 and np.isnan(training[1][1:]).all()
    assert training[2].tolist() == [True, False, False, False, False]


def test_only_the_test_split_may_annotate_the_first_frame_alone(tmp_path):
    write_got10k(str(tmp_path), 'val', num_sequences=1, num_frames=5)
    directory = tmp_path / 'val' / 'GOT-10k_Val_000001'
    first = (directory / 'groundtruth.txt').read_text().splitlines()[0]
    write_lines(directory / 'groundtruth.txt', [first])
    for label in ('absence.label', 'cover.label'):
        (directory / label).unlink()
    assert len(Got10k(str(tmp_path), 'val').sequence_info(0)) == 1
    with pytest.raises(AnnotationError, match='1 ground-truth lines but 5 frame files'):
        load_benchmark('got10k', tmp_path, split='val')
