"""PairSampler: deterministic, visible frames only, max gap, dataset mixing."""

from detrack_model.data import PairSampler, SequenceInfo, TrackingDataset
import numpy as np
import pytest


class MemoryDataset(TrackingDataset):
    """Sequences described only by their visibility masks; no files."""

    def __init__(self, masks, name='memory', is_video=True):
        super().__init__()
        self.masks = [np.asarray(mask, dtype=bool) for mask in masks]
        self.name = name
        self.is_video = is_video

    def __len__(self):
        return len(self.masks)

    def sequence_name(self, index):
        return f'{self.name}-{index}'

    def _load_sequence_info(self, index):
        mask = self.masks[index]
        boxes = np.tile([10.0, 10.0, 20.0, 20.0], (len(mask), 1))
        return SequenceInfo(self.sequence_name(index), boxes, mask)


def video(num_sequences=5, frames=300, seed=0):
    rng = np.random.default_rng(seed)
    return MemoryDataset([rng.random(frames) < 0.7 for _ in range(num_sequences)])


def as_tuple(spec):
    return (spec.dataset, spec.sequence, spec.template_frame, spec.search_frame)


def test_same_seed_epoch_index_gives_same_pair():
    first = PairSampler([video()], None, 1000, seed=7)
    second = PairSampler([video()], None, 1000, seed=7)
    for index in (0, 1, 17, 999):
        assert first.sample(3, index) == second.sample(3, index)
        # Order of calls does not matter: sampling is a pure function.
        assert first.sample(3, index) == first.sample(3, index)
    other_seed = PairSampler([video()], None, 1000, seed=8)
    pairs = [as_tuple(first.sample(0, i)) for i in range(50)]
    assert pairs != [as_tuple(other_seed.sample(0, i)) for i in range(50)]


def test_epochs_and_attempts_differ():
    sampler = PairSampler([video()], None, 1000)
    epoch0 = [as_tuple(sampler.sample(0, i)) for i in range(100)]
    epoch1 = [as_tuple(sampler.sample(1, i)) for i in range(100)]
    assert sum(a == b for a, b in zip(epoch0, epoch1)) < 5
    retry = [as_tuple(sampler.sample(0, i, attempt=1)) for i in range(100)]
    assert sum(a == b for a, b in zip(epoch0, retry)) < 5


def test_only_visible_frames_within_max_gap():
    dataset = video(num_sequences=3, frames=2000)
    sampler = PairSampler([dataset], None, 1000, max_gap=20)
    same = 0
    for index in range(500):
        spec = sampler.sample(0, index)
        visible = dataset.sequence_info(spec.sequence).visible
        assert visible[spec.template_frame] and visible[spec.search_frame]
        assert abs(spec.template_frame - spec.search_frame) <= 20
        same += spec.template_frame == spec.search_frame
    assert same == 0  # with other visible frames in reach, the template differs


def test_single_visible_frame_is_used_for_both():
    mask = np.zeros(50, dtype=bool)
    mask[31] = True
    sampler = PairSampler([MemoryDataset([mask])], None, 10)
    assert {as_tuple(sampler.sample(0, i)) for i in range(10)} == {(0, 0, 31, 31)}


def test_sequences_without_visible_frames_are_skipped():
    dataset = MemoryDataset([np.zeros(10, bool), np.ones(10, bool), np.zeros(10, bool)])
    sampler = PairSampler([dataset], None, 10)
    specs = [sampler.sample(0, i) for i in range(100)]
    assert {spec.sequence for spec in specs} == {1}
    assert sum(spec.rejected for spec in specs) > 0
    empty = PairSampler([MemoryDataset([np.zeros(10, bool)], name='blind')], None, 10)
    with pytest.raises(RuntimeError, match="'blind'.*visible"):
        empty.sample(0, 0)


def test_ratio_mixing():
    sampler = PairSampler([video(seed=1), video(seed=2)], [3, 1], 4000)
    picks = np.array([sampler.sample(0, i).dataset for i in range(4000)])
    assert abs(np.mean(picks == 0) - 0.75) < 0.03
    only_second = PairSampler([video(), video()], [0, 1], 100)
    assert {only_second.sample(0, i).dataset for i in range(100)} == {1}


def test_image_dataset_pairs_are_frame_zero():
    images = MemoryDataset([[True]] * 20, name='images', is_video=False)
    sampler = PairSampler([images, video()], [1, 1], 200)
    for index in range(200):
        spec = sampler.sample(0, index)
        if spec.dataset == 0:
            assert (spec.template_frame, spec.search_frame) == (0, 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match='ratios'):
        PairSampler([video()], [1, 2], 10)
    with pytest.raises(ValueError, match='non-negative'):
        PairSampler([video()], [-1], 10)
    with pytest.raises(ValueError, match='no sequences'):
        PairSampler([MemoryDataset([])], None, 10)
