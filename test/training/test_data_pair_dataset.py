"""TrackingPairDataset: bad frames and boxes are skipped, counted and never used."""

import logging
import os

import cv2
from detrack_model.data import (Got10k, limit_opencv_threads, PairProcessing, search_transform,
                                SKIP_REASONS, TrackingPairDataset, worker_init)
from detrack_model.data.processing import decoy_region
import numpy as np
import pytest
import torch
from toy_datasets import write_got10k

BAD_FRAMES = {0: {2, 3, 4}}
NAN_FRAMES = {1: {1, 5, 7}}


@pytest.fixture
def damaged_got10k(tmp_path):
    """Sequence 0 has corrupt frames, sequence 1 NaN boxes, sequence 2 is clean."""
    write_got10k(str(tmp_path), num_sequences=3, num_frames=10)
    dataset = Got10k(str(tmp_path))
    for frame in BAD_FRAMES[0]:
        with open(dataset.frame_path(0, frame), 'wb') as handle:
            handle.write(os.urandom(100))
    path = tmp_path / 'train' / dataset.sequence_name(1) / 'groundtruth.txt'
    lines = path.read_text().splitlines()
    for frame in NAN_FRAMES[1]:
        lines[frame] = 'NaN,NaN,NaN,NaN'
    path.write_text('\n'.join(lines) + '\n')
    return dataset


def small_processing():
    return PairProcessing(template_size=32, search_size=64)


def test_bad_frames_and_boxes_are_skipped_and_counted(damaged_got10k, caplog):
    pairs = TrackingPairDataset([damaged_got10k], pairs_per_epoch=200,
                                processing=small_processing(), max_gap=5)
    assert len(pairs) == 200
    assert damaged_got10k.sequence_info(1).invalid_boxes == 3
    with caplog.at_level(logging.WARNING, logger='detrack_model.data'):
        items = [pairs[i] for i in range(len(pairs))]
    totals = dict.fromkeys(SKIP_REASONS, 0)
    for item in items:
        assert item['template'].shape == (3, 32, 32) and item['search'].shape == (3, 64, 64)
        assert item['search_box'].shape == (4,)
        frames = {item['template_frame'], item['search_frame']}
        assert not frames & BAD_FRAMES.get(item['sequence'], set())
        assert not frames & NAN_FRAMES.get(item['sequence'], set())
        assert abs(item['template_frame'] - item['search_frame']) <= 5
        assert item['skipped'] == sum(item['skips'].values())
        for reason, count in item['skips'].items():
            totals[reason] += count
    assert totals['frame_error'] > 0
    assert totals == pairs.skip_counts
    assert sum(item['skipped'] for item in items) == sum(totals.values())
    assert any(item['attempt'] > 0 for item in items)
    # The first skip of each reason is logged, later ones are throttled.
    messages = [r.getMessage() for r in caplog.records if 'frame_error' in r.getMessage()]
    assert len(messages) == 1 and 'cannot decode' in messages[0]


def test_items_are_deterministic_and_epochs_differ(damaged_got10k):
    first = TrackingPairDataset([damaged_got10k], pairs_per_epoch=20,
                                processing=small_processing(), seed=3)
    second = TrackingPairDataset([Got10k(damaged_got10k.root)], pairs_per_epoch=20,
                                 processing=small_processing(), seed=3)
    for index in (0, 7, 19):
        a, b = first[index], second[index]
        for key in ('template', 'search', 'search_box', 'template_box'):
            torch.testing.assert_close(a[key], b[key])
    before = first[4]['search']
    first.set_epoch(1)
    assert not torch.equal(first[4]['search'], before)


@pytest.mark.parametrize('workers', [0, 2])
def test_data_loader_collates_items(damaged_got10k, workers):
    pairs = TrackingPairDataset([damaged_got10k], pairs_per_epoch=8,
                                processing=small_processing())
    pairs[0]  # use OpenCV in this process first: forked workers must not hang
    loader = torch.utils.data.DataLoader(pairs, batch_size=4, num_workers=workers,
                                         worker_init_fn=worker_init, timeout=60 if workers else 0)
    batches = list(loader)
    assert len(batches) == 2
    assert batches[0]['search'].shape == (4, 3, 64, 64)
    assert batches[0]['skipped'].shape == (4,)
    assert set(batches[0]['skips']) == set(SKIP_REASONS)
    torch.testing.assert_close(batches[1]['search'][0], pairs[4]['search'])


def test_limit_opencv_threads_returns_the_previous_count():
    before = cv2.getNumThreads()
    assert limit_opencv_threads(1) == before
    try:
        assert cv2.getNumThreads() == 1
    finally:
        limit_opencv_threads(before)
    worker_init(0)  # in the importing process itself: sets one thread
    try:
        assert cv2.getNumThreads() == 1
    finally:
        limit_opencv_threads(before)


def test_nothing_usable_raises_a_clear_error(tmp_path):
    write_got10k(str(tmp_path), num_sequences=1, num_frames=3)
    dataset = Got10k(str(tmp_path))
    for frame in range(3):
        with open(dataset.frame_path(0, frame), 'wb') as handle:
            handle.write(b'not a jpeg')
    pairs = TrackingPairDataset([dataset], pairs_per_epoch=4, processing=small_processing(),
                                max_attempts=5)
    with pytest.raises(RuntimeError, match='no usable training pair.*5 attempts'):
        pairs[0]


def test_malformed_annotation_is_skipped_not_fatal(tmp_path):
    write_got10k(str(tmp_path), num_sequences=2, num_frames=5)
    dataset = Got10k(str(tmp_path))
    (tmp_path / 'train' / dataset.sequence_name(0) / 'groundtruth.txt').write_text('garbage\n')
    pairs = TrackingPairDataset([dataset], pairs_per_epoch=30, processing=small_processing())
    items = [pairs[i] for i in range(30)]
    assert {item['sequence'] for item in items} == {1}
    assert sum(item['skips']['bad_annotation'] for item in items) > 0


def test_absent_fraction_moves_that_share_of_search_crops_off_the_target(tmp_path):
    write_got10k(str(tmp_path), num_sequences=3, num_frames=10)
    dataset = Got10k(str(tmp_path))
    pairs = TrackingPairDataset([dataset], pairs_per_epoch=400, processing=small_processing(),
                                seed=4, absent_fraction=0.25)
    items = [pairs[i] for i in range(400)]
    absent = [item for item in items if not item['present']]
    assert 0.18 < len(absent) / len(items) < 0.32
    assert all(item['search_box'].abs().sum() == 0 for item in absent)
    assert all(item['search_box'][2] > 0 for item in items if item['present'])
    # The same pairs with no absent ones: the frames, the template and the present items'
    # crops are unchanged, since the choice has a random stream of its own.
    plain = TrackingPairDataset([dataset], pairs_per_epoch=400, processing=small_processing(),
                                seed=4)
    for index in range(0, 400, 37):
        a, b = items[index], plain[index]
        assert (a['sequence'], a['search_frame']) == (b['sequence'], b['search_frame'])
        torch.testing.assert_close(a['template'], b['template'])
        if a['present']:
            torch.testing.assert_close(a['search'], b['search'])
    assert all(plain[i]['present'] for i in range(40))


def test_decoy_fraction_centres_absent_crops_on_recorded_look_alikes(tmp_path):
    boxes = write_got10k(str(tmp_path), num_sequences=2, num_frames=10, width=640, height=480)
    # Sequence 1 records a look-alike far from the target in every frame; sequence 2 none.
    name = 'GOT-10k_Train_000001'
    far = [f'{t + 1},{5 if box[0] > 320 else 630 - box[2]:.0f},5,{box[2]:.0f},{box[3]:.0f}'
           for t, box in enumerate(boxes[name])]
    (tmp_path / 'train' / name / 'distractors.txt').write_text('\n'.join(far) + '\n')
    dataset = Got10k(str(tmp_path))
    # No jitter: a region on the look-alike is the square of twice the target's side around it.
    processing = PairProcessing(template_size=32, search_size=64, search_factor=2.0,
                                centre_jitter=0.0, scale_jitter=0.0)
    pairs = TrackingPairDataset([dataset], pairs_per_epoch=300, processing=processing,
                                seed=4, absent_fraction=0.5, decoy_fraction=1.0)
    items = [pairs[i] for i in range(300)]
    info = dataset.sequence_info(0)
    rng = np.random.default_rng(0)
    usable = [decoy_region(search_transform(box, 2.0, 64), info.distractors_in(t)[0], box, 0.0,
                           rng) is not None for t, box in enumerate(info.boxes)]
    absent_first = [item for item in items if not item['present'] and item['sequence'] == 0]
    assert 0 < sum(usable) and absent_first
    # Every absent pair of sequence 1 uses its look-alike unless a region on it shows the target.
    assert [item['decoy'] for item in absent_first] == \
        [usable[item['search_frame']] for item in absent_first]
    assert any(item['decoy'] for item in absent_first)
    assert not any(item['decoy'] for item in items if item['present'] or item['sequence'] == 1)
    # The choice of present pairs does not depend on the decoy fraction.
    plain = TrackingPairDataset([dataset], pairs_per_epoch=300, processing=processing,
                                seed=4, absent_fraction=0.5)
    assert [plain[i]['present'] for i in range(0, 300, 7)] == \
        [items[i]['present'] for i in range(0, 300, 7)]
    assert not any(plain[i]['decoy'] for i in range(300))


def test_hidden_fraction_takes_absent_crops_from_frames_hiding_the_target(tmp_path):
    write_got10k(str(tmp_path), num_sequences=2, num_frames=12)
    # Frames 5..7 of sequence 1 hide the target (fully occluded); sequence 2 never does.
    (tmp_path / 'train' / 'GOT-10k_Train_000001' / 'absence.label').write_text(
        ''.join(f'{int(4 <= t <= 6)}\n' for t in range(12)))
    dataset = Got10k(str(tmp_path))
    pairs = TrackingPairDataset([dataset], pairs_per_epoch=300, processing=small_processing(),
                                seed=4, absent_fraction=0.5, hidden_fraction=1.0, max_gap=20)
    items = [pairs[i] for i in range(300)]
    first = [item for item in items if item['sequence'] == 0]
    assert all(item['hidden'] == (not item['present']) for item in first)
    assert {item['search_frame'] for item in first if item['hidden']} == {4, 5, 6}
    assert all(item['search_frame'] not in (4, 5, 6) for item in first if item['present'])
    assert all(item['search_box'].abs().sum() == 0 for item in first if item['hidden'])
    assert not any(item['hidden'] for item in items if item['sequence'] == 1)
    # Within max_gap of the template only: none are that close with a gap of 1 from frame 0..2.
    near = TrackingPairDataset([dataset], pairs_per_epoch=300, processing=small_processing(),
                               seed=4, absent_fraction=0.5, hidden_fraction=1.0, max_gap=1)
    for index in range(300):
        item = near[index]
        if item['hidden']:
            assert abs(item['search_frame'] - item['template_frame']) <= 1
    # Off, the choice of present pairs and their frames are those of the plain absent pairs.
    plain = TrackingPairDataset([dataset], pairs_per_epoch=300, processing=small_processing(),
                                seed=4, absent_fraction=0.5, max_gap=20)
    assert not any(plain[i]['hidden'] for i in range(0, 300, 5))
    assert [plain[i]['present'] for i in range(0, 300, 5)] == \
        [items[i]['present'] for i in range(0, 300, 5)]


def test_decoy_fraction_without_recorded_look_alikes_is_refused(tmp_path):
    write_got10k(str(tmp_path), num_sequences=1, num_frames=3)
    with pytest.raises(ValueError, match='distractors.txt'):
        TrackingPairDataset([Got10k(str(tmp_path))], pairs_per_epoch=4,
                            processing=small_processing(), absent_fraction=0.2,
                            decoy_fraction=0.5)
    # Without absent pairs the share has nothing to apply to (validation pairs): accepted.
    TrackingPairDataset([Got10k(str(tmp_path))], pairs_per_epoch=4,
                        processing=small_processing(), decoy_fraction=0.5)
    with pytest.raises(ValueError, match=r'decoy_fraction must be in \[0, 1\]'):
        TrackingPairDataset([Got10k(str(tmp_path))], pairs_per_epoch=4,
                            processing=small_processing(), decoy_fraction=1.5)
    with pytest.raises(ValueError, match=r'hidden_fraction must be in \[0, 1\]'):
        TrackingPairDataset([Got10k(str(tmp_path))], pairs_per_epoch=4,
                            processing=small_processing(), hidden_fraction=-0.5)


@pytest.mark.parametrize('fraction', [-0.1, 1.0, float('nan')])
def test_absent_fraction_out_of_range_is_refused(tmp_path, fraction):
    write_got10k(str(tmp_path), num_sequences=1, num_frames=3)
    with pytest.raises(ValueError, match='absent_fraction'):
        TrackingPairDataset([Got10k(str(tmp_path))], pairs_per_epoch=4,
                            processing=small_processing(), absent_fraction=fraction)
