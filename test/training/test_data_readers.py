"""Dataset readers on tiny trees in the real GOT-10k, LaSOT, TrackingNet and COCO layouts."""

import json
import os

import cv2
from detrack_model.data import (AnnotationError, build_datasets, Coco, FrameError, Got10k,
                                LaSOT, TrackingNet)
import numpy as np
import pytest
from toy_datasets import write_coco, write_got10k, write_lasot, write_trackingnet


def write_lines(path, lines):
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(lines) + '\n')


def corrupt(path):
    with open(path, 'wb') as handle:
        handle.write(os.urandom(64))


# -- GOT-10k ----------------------------------------------------------------------------------

@pytest.fixture
def got10k_root(tmp_path):
    boxes = write_got10k(str(tmp_path), 'train', num_sequences=2, num_frames=6)
    return tmp_path, boxes


def test_got10k_boxes_frames_and_visibility(got10k_root):
    root, boxes = got10k_root
    seq = root / 'train' / 'GOT-10k_Train_000001'
    write_lines(seq / 'absence.label', ['0', '0', '1', '0', '0', '0'])
    write_lines(seq / 'cover.label', ['8', '3', '5', '0', '1', '8'])
    dataset = Got10k(str(root), 'train')
    assert len(dataset) == 2 and dataset.is_video
    assert dataset.sequence_name(0) == 'GOT-10k_Train_000001'
    info = dataset.sequence_info(0)
    np.testing.assert_allclose(info.boxes, boxes['GOT-10k_Train_000001'], atol=1e-4)
    assert info.visible.tolist() == [True, True, False, False, True, True]
    assert dataset.sequence_info(0) is info  # cached
    frame = dataset.frame(0, 5)
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    expected = cv2.cvtColor(cv2.imread(str(seq / '00000006.jpg')), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(frame, expected)
    assert dataset.sequence_info(1).visible.all()


def test_got10k_invalid_boxes_are_not_visible_and_counted(got10k_root):
    root, boxes = got10k_root
    seq = root / 'train' / 'GOT-10k_Train_000002'
    lines = [','.join(str(v) for v in box) for box in boxes['GOT-10k_Train_000002']]
    lines[1] = 'nan,nan,nan,nan'
    lines[4] = '10,10,0,5'
    write_lines(seq / 'groundtruth.txt', lines)
    info = Got10k(str(root)).sequence_info(1)
    assert info.invalid_boxes == 2
    assert info.visible.tolist() == [True, False, True, True, False, True]
    assert np.isnan(info.boxes[1]).all()


def test_got10k_test_split_has_only_the_first_box(tmp_path):
    write_got10k(str(tmp_path), 'test', num_sequences=1, num_frames=5)
    seq = tmp_path / 'test' / 'GOT-10k_Test_000001'
    first = (seq / 'groundtruth.txt').read_text().splitlines()[0]
    write_lines(seq / 'groundtruth.txt', [first])
    (seq / 'absence.label').unlink()
    (seq / 'cover.label').unlink()
    info = Got10k(str(tmp_path), 'test').sequence_info(0)
    assert info.boxes.shape == (5, 4)
    assert np.isnan(info.boxes[1:]).all()
    assert info.visible.tolist() == [True, False, False, False, False]


def test_got10k_malformed_groundtruth_names_file_and_line(got10k_root):
    root, _ = got10k_root
    path = root / 'train' / 'GOT-10k_Train_000001' / 'groundtruth.txt'
    lines = path.read_text().splitlines()
    lines[2] = '1,2,3'
    write_lines(path, lines)
    with pytest.raises(AnnotationError, match=f'{path}:3'):
        Got10k(str(root)).sequence_info(0)


@pytest.mark.parametrize('label', ['absence.label', 'cover.label'])
def test_got10k_malformed_labels_name_the_file(got10k_root, label):
    root, _ = got10k_root
    path = root / 'train' / 'GOT-10k_Train_000001' / label
    write_lines(path, ['0', 'x', '0', '0', '0', '0'])
    with pytest.raises(AnnotationError, match=f'{path}:2'):
        Got10k(str(root)).sequence_info(0)
    write_lines(path, ['0', '0'])
    with pytest.raises(AnnotationError, match=f'{path}: 2 labels'):
        Got10k(str(root)).sequence_info(0)


def test_got10k_distractor_boxes_are_read_per_frame(got10k_root):
    root, _ = got10k_root
    seq = root / 'train' / 'GOT-10k_Train_000001'
    write_lines(seq / 'distractors.txt', ['2,10,20,8,6', '2,40,50,5,5', '6,1,2,3,4'])
    dataset = Got10k(str(root))
    info = dataset.sequence_info(0)
    assert info.distractors.shape == (3, 5)
    # Frames are numbered like the image files; the reader's frame indices start at 0.
    np.testing.assert_array_equal(info.distractors_in(1), [[10, 20, 8, 6], [40, 50, 5, 5]])
    np.testing.assert_array_equal(info.distractors_in(5), [[1, 2, 3, 4]])
    assert info.distractors_in(0).shape == (0, 4)
    # Without the file (GOT-10k itself), nothing is recorded.
    other = dataset.sequence_info(1)
    assert other.distractors is None and other.distractors_in(1).shape == (0, 4)


@pytest.mark.parametrize('line, problem', [('2,10,20,8', 'expected 5'),
                                           ('7,10,20,8,6', r'frame in 1\.\.6'),
                                           ('0,10,20,8,6', r'frame in 1\.\.6'),
                                           ('2,10,20,0,6', 'positive width'),
                                           ('1.5,10,20,8,6', r'frame in 1\.\.6')])
def test_got10k_malformed_distractor_boxes_name_file_and_line(got10k_root, line, problem):
    root, _ = got10k_root
    path = root / 'train' / 'GOT-10k_Train_000001' / 'distractors.txt'
    write_lines(path, ['1,1,1,2,2', line])
    with pytest.raises(AnnotationError, match=f'{path}:2: .*{problem}'):
        Got10k(str(root)).sequence_info(0)


def test_got10k_missing_and_corrupt_frames_raise_frame_error(got10k_root):
    root, _ = got10k_root
    dataset = Got10k(str(root))
    missing = dataset.frame_path(0, 2)
    os.remove(missing)
    with pytest.raises(FrameError, match='not found.*00000003.jpg'):
        dataset.frame(0, 2)
    broken = dataset.frame_path(1, 0)
    corrupt(broken)
    with pytest.raises(FrameError, match=f'cannot decode.*{broken}'):
        dataset.frame(1, 0)
    assert issubclass(FrameError, RuntimeError)


def test_got10k_sequence_subset_and_missing_list(got10k_root, tmp_path):
    root, _ = got10k_root
    assert Got10k(str(root), sequences=['GOT-10k_Train_000002']).sequence_name(0) == \
        'GOT-10k_Train_000002'
    with pytest.raises(FileNotFoundError, match='list.txt'):
        Got10k(str(root), 'val')


# -- LaSOT ------------------------------------------------------------------------------------

def test_lasot_occlusion_and_out_of_view(tmp_path):
    boxes = write_lasot(str(tmp_path), ('bird', 'airplane'), per_category=2, num_frames=5)
    seq = tmp_path / 'bird' / 'bird-2'
    write_lines(seq / 'full_occlusion.txt', ['0,1,0,0,0'])
    write_lines(seq / 'out_of_view.txt', ['0,0,0,1,0'])
    dataset = LaSOT(str(tmp_path))
    assert [dataset.sequence_name(i) for i in range(len(dataset))] == \
        ['airplane-1', 'airplane-2', 'bird-1', 'bird-2']
    info = dataset.sequence_info(3)
    assert info.visible.tolist() == [True, False, True, False, True]
    np.testing.assert_allclose(info.boxes, boxes['bird-2'], atol=1e-4)
    assert dataset.frame(3, 4).shape == (120, 160, 3)
    assert dataset.frame_path(3, 4).endswith(os.path.join('bird', 'bird-2', 'img',
                                                          '00000005.jpg'))


def test_lasot_split_from_list_or_file(tmp_path):
    write_lasot(str(tmp_path / 'lasot'), ('bird',), per_category=3, num_frames=3)
    split = tmp_path / 'train_split.txt'
    write_lines(split, ['bird-3', '# a comment', '', 'bird-1'])
    assert LaSOT(str(tmp_path / 'lasot'), sequences=str(split)).sequences == ['bird-3', 'bird-1']
    assert len(LaSOT(str(tmp_path / 'lasot'), sequences=['bird-2'])) == 1


def test_lasot_malformed_flags_and_errors(tmp_path):
    write_lasot(str(tmp_path), ('cat',), per_category=1, num_frames=4)
    path = tmp_path / 'cat' / 'cat-1' / 'out_of_view.txt'
    write_lines(path, ['0,0,x,0'])
    with pytest.raises(AnnotationError, match=f'{path}:1 \\(value 3\\)'):
        LaSOT(str(tmp_path)).sequence_info(0)
    write_lines(path, ['0,0,0'])
    with pytest.raises(AnnotationError, match=f'{path}: 3 labels'):
        LaSOT(str(tmp_path)).sequence_info(0)
    dataset = LaSOT(str(tmp_path))
    corrupt(dataset.frame_path(0, 1))
    with pytest.raises(FrameError, match='00000002.jpg'):
        dataset.frame(0, 1)


# -- TrackingNet ------------------------------------------------------------------------------

def test_trackingnet_chunks_and_frames_from_zero(tmp_path):
    boxes = write_trackingnet(str(tmp_path), chunks=(0, 3), per_chunk=2, num_frames=4)
    everything = TrackingNet(str(tmp_path))
    assert len(everything) == 4 and everything.chunks == [0, 3]
    dataset = TrackingNet(str(tmp_path), chunks=[3])
    assert len(dataset) == 2
    assert dataset.sequence_name(0) == 'TRAIN_3/seq3_0'
    np.testing.assert_allclose(dataset.sequence_info(0).boxes, boxes['TRAIN_3/seq3_0'],
                               atol=1e-4)
    assert dataset.frame_path(0, 0).endswith(os.path.join('TRAIN_3', 'frames', 'seq3_0',
                                                          '0.jpg'))
    assert dataset.frame(0, 3).shape == (120, 160, 3)
    with pytest.raises(FrameError, match='4.jpg'):
        dataset.frame(0, 4)
    anno = tmp_path / 'TRAIN_3' / 'anno' / 'seq3_1.txt'
    write_lines(anno, ['1,2,3,4', 'oops'])
    with pytest.raises(AnnotationError, match=f'{anno}:2'):
        dataset.sequence_info(1)


# -- COCO -------------------------------------------------------------------------------------

def test_coco_instances_are_single_frame_sequences(tmp_path):
    boxes = write_coco(str(tmp_path), num_images=2, objects_per_image=2)
    path = tmp_path / 'annotations' / 'instances_train2017.json'
    data = json.loads(path.read_text())
    data['annotations'].append({'id': 99, 'image_id': 1, 'bbox': [0, 0, 50, 50],
                                'iscrowd': 1, 'category_id': 1})
    data['annotations'].append({'id': 100, 'image_id': 1, 'bbox': [0, 0, 3, 3],
                                'iscrowd': 0, 'category_id': 1})
    path.write_text(json.dumps(data))
    dataset = Coco(str(tmp_path))
    assert not dataset.is_video
    assert len(dataset) == 4  # crowd and tiny boxes left out
    info = dataset.sequence_info(2)
    assert info.boxes.shape == (1, 4) and info.visible.tolist() == [True]
    np.testing.assert_allclose(info.boxes[0], boxes[int(dataset.sequence_name(2))])
    assert dataset.frame(2, 0).shape == (120, 160, 3)
    with pytest.raises(IndexError):
        dataset.frame(2, 1)


def test_coco_malformed_json_and_annotation(tmp_path):
    write_coco(str(tmp_path), num_images=1)
    path = tmp_path / 'annotations' / 'instances_train2017.json'
    good = path.read_text()
    path.write_text(good[:-10])
    with pytest.raises(AnnotationError, match=str(path)):
        Coco(str(tmp_path))
    data = json.loads(good)
    del data['annotations'][1]['bbox']
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=f'{path}: annotation #1'):
        Coco(str(tmp_path))


# -- factory ----------------------------------------------------------------------------------

def test_build_datasets_from_recipe_entries(tmp_path):
    write_got10k(str(tmp_path / 'got'), num_sequences=1, num_frames=3)
    write_lasot(str(tmp_path / 'lasot'), ('cat',), per_category=1, num_frames=3)
    datasets, ratios = build_datasets([
        {'type': 'got10k', 'root': str(tmp_path / 'got'), 'split': 'train', 'ratio': 3},
        {'type': 'LaSOT', 'root': str(tmp_path / 'lasot')},
    ])
    assert [type(d) for d in datasets] == [Got10k, LaSOT]
    assert ratios == [3.0, 1.0]
    with pytest.raises(ValueError, match='"type" must be one of'):
        build_datasets([{'type': 'imagenet', 'root': '.'}])
    with pytest.raises(ValueError, match='unexpected keyword'):
        build_datasets([{'type': 'got10k', 'root': str(tmp_path / 'got'), 'colour': 1}])
