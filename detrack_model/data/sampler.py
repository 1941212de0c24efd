"""
Deterministic choice of training pairs.

``PairSampler.sample(epoch, index)`` is a pure function of ``(seed, epoch, index)`` (and of
``attempt``, the resampling counter): training is reproducible, resumes at any step and splits
across DDP ranks by index without any shared random state.
"""

from dataclasses import dataclass
from typing import Optional, Sequence

from detrack_model.data.sequences import TrackingDataset
import numpy as np


@dataclass(frozen=True)
class PairSpec:
    """
    One template/search pair: dataset index, sequence index and two frame indices.

    ``rejected`` counts the sequences the sampler drew and passed over because they had no
    visible frame.
    """

    dataset: int
    sequence: int
    template_frame: int
    search_frame: int
    rejected: int = 0


class PairSampler:
    """
    Draw template/search frame pairs from several datasets mixed by ``ratios``.

    For videos the search frame is a visible frame and the template a visible frame within
    ``max_gap`` frames of it (a different one when there is any); image datasets give (0, 0).
    """

    def __init__(self, datasets: Sequence[TrackingDataset], ratios: Optional[Sequence[float]],
                 pairs_per_epoch: int, max_gap: int = 200, seed: int = 0,
                 max_sequence_draws: int = 100) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError('PairSampler needs at least one dataset')
        for dataset in self.datasets:
            if len(dataset) == 0:
                raise ValueError(f'dataset {dataset.name!r} has no sequences')
        ratios = [1.0] * len(self.datasets) if ratios is None else [float(r) for r in ratios]
        if len(ratios) != len(self.datasets):
            raise ValueError(f'{len(ratios)} ratios for {len(self.datasets)} datasets')
        if any(r < 0 or not np.isfinite(r) for r in ratios) or sum(ratios) <= 0:
            raise ValueError(f'ratios must be non-negative with a positive sum, got {ratios}')
        self.probabilities = np.asarray(ratios, dtype=np.float64) / sum(ratios)
        self.pairs_per_epoch = int(pairs_per_epoch)
        self.max_gap = int(max_gap)
        self.seed = int(seed)
        self.max_sequence_draws = int(max_sequence_draws)

    def __len__(self) -> int:
        """Return the number of pairs per epoch."""
        return self.pairs_per_epoch

    def rng(self, epoch: int, index: int, attempt: int = 0,
            stream: int = 0) -> np.random.Generator:
        """
        Return the generator for one draw.

        ``stream`` separates independent uses of the same draw (0: frame choice, 1:
        augmentation, 2: target-absent pairs), so adding randomness to one never changes the
        other.
        """
        key = [self.seed, int(epoch), int(index)]
        if attempt or stream:
            key += [int(attempt), int(stream)]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))

    def sample(self, epoch: int, index: int, attempt: int = 0) -> PairSpec:
        """Return the pair for ``(epoch, index)``; ``attempt`` > 0 draws a replacement."""
        rng = self.rng(epoch, index, attempt)
        dataset_index = int(rng.choice(len(self.datasets), p=self.probabilities))
        dataset = self.datasets[dataset_index]
        for draw in range(self.max_sequence_draws):
            sequence = int(rng.integers(len(dataset)))
            visible = np.flatnonzero(dataset.sequence_info(sequence).visible)
            if len(visible) == 0:
                continue
            if not dataset.is_video:
                template = search = int(visible[0])
            else:
                search = int(rng.choice(visible))
                template = self._template_frame(rng, visible, search)
            return PairSpec(dataset_index, sequence, template, search, rejected=draw)
        raise RuntimeError(
            f'dataset {dataset.name!r}: none of {self.max_sequence_draws} randomly drawn '
            f'sequences has a visible frame (epoch {epoch}, index {index}, attempt {attempt}); '
            'check its annotations and visibility labels')

    def _template_frame(self, rng: np.random.Generator, visible: np.ndarray, search: int) -> int:
        low = np.searchsorted(visible, search - self.max_gap, side='left')
        high = np.searchsorted(visible, search + self.max_gap, side='right')
        candidates = visible[low:high]
        if len(candidates) > 1:
            # Draw among the others: a pair of identical frames teaches nothing about motion.
            pick = int(rng.integers(len(candidates) - 1))
            position = int(np.searchsorted(candidates, search))
            return int(candidates[pick + (pick >= position)])
        return search
