"""
Training and validation pairs from a recipe's dataset entries.

Every entry is built by :func:`detrack_model.data.build_dataset`, ``type: synthetic`` included
(a generated GOT-10k-layout split, generated once when missing; with ``pool: DIR`` it also
draws from that image pool, see ``detrack-synth fetch-sources``).
"""

from typing import Any, Dict, List, Mapping, Sequence

from detrack_model.data import build_dataset, build_datasets, PairProcessing, TrackingPairDataset
from detrack_model.data.factory import GENERATED_TYPES
from detrack_model.engine.recipe import Recipe
import torch
import torch.utils.data


def materialise_all(recipe: Recipe) -> None:
    """Generate every missing synthetic split a recipe names (training and validation)."""
    # Only generated types are built here: a real reader would generate nothing and cost
    # time (COCO parses its whole annotation file), and build_pair_dataset builds them anyway.
    for spec in [*recipe.data.train, *recipe.data.val]:
        if str(spec.get('type', '')).lower() in GENERATED_TYPES:
            build_dataset(spec)


class IndexedPairs(torch.utils.data.Dataset):
    """A pair dataset whose items also carry their index (the key of their random streams)."""

    def __init__(self, pairs: TrackingPairDataset) -> None:
        self.pairs = pairs

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (see TrackingPairDataset.set_epoch)."""
        self.pairs.set_epoch(epoch)

    def __len__(self) -> int:
        """Return the number of pairs per epoch."""
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """Return pair ``index`` with its index attached."""
        item = self.pairs[index]
        item['index'] = index
        return item


def build_pair_dataset(specs: Sequence[Mapping[str, Any]], recipe: Recipe, seed: int,
                       training: bool) -> IndexedPairs:
    """Build the training (augmented) or validation pairs of a recipe."""
    datasets, ratios = build_datasets(specs)
    model, data = recipe.model, recipe.data
    processing = PairProcessing(
        template_size=model.template_size, search_size=model.search_size,
        centre_jitter=data.centre_jitter, scale_jitter=data.scale_jitter,
        gray_prob=0.05 if training else 0.0, flip_prob=0.5 if training else 0.0,
        brightness=(0.8, 1.2) if training else (1.0, 1.0))
    count = data.pairs_per_epoch if training else data.val_pairs
    # Validation pairs always show the target: their mean IoU stays comparable across recipes.
    absent = data.absent_fraction if training else 0.0
    return IndexedPairs(TrackingPairDataset(datasets, ratios, count, processing,
                                            max_gap=data.max_gap, seed=seed,
                                            absent_fraction=absent,
                                            decoy_fraction=data.decoy_fraction,
                                            hidden_fraction=data.hidden_fraction))


def collate_pairs(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack tensors; keep indices and skip counts as lists."""
    batch: Dict[str, Any] = {}
    for key in ('template', 'search', 'search_box', 'template_box'):
        batch[key] = torch.stack([torch.as_tensor(item[key]) for item in items])
    batch['present'] = torch.tensor([bool(item['present']) for item in items])
    batch['index'] = [int(item['index']) for item in items]
    batch['skipped'] = [int(item['skipped']) for item in items]
    return batch
