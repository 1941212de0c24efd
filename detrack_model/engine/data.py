"""
Training and validation pairs from a recipe's dataset entries.

Entries of ``type: synthetic`` name a generated GOT-10k-layout split: it is generated once
(deterministically from its seed) when missing, then read like any GOT-10k split. With
``pool: DIR`` the split also draws from that image pool (``detrack-synth fetch-sources``).
"""

import logging
import pathlib
from typing import Any, Dict, List, Mapping, Sequence

from detrack_model.data import build_datasets, PairProcessing, TrackingPairDataset
from detrack_model.data.synthetic import generate_dataset
from detrack_model.engine.recipe import Recipe
import torch
import torch.utils.data

LOG = logging.getLogger(__name__)
SYNTHETIC_KEYS = ('root', 'split', 'sequences', 'frames', 'seed', 'size', 'ratio', 'type',
                  'pool', 'workers')


def materialise(spec: Mapping[str, Any]) -> Dict[str, Any]:
    """Turn a synthetic entry into a GOT-10k one, generating the split if it is missing."""
    spec = dict(spec)
    if spec.get('type') != 'synthetic':
        return spec
    unknown = sorted(set(spec) - set(SYNTHETIC_KEYS))
    if unknown:
        raise ValueError(f'synthetic dataset entry: unknown keys {unknown}')
    root, split = pathlib.Path(spec['root']), spec.get('split', 'train')
    if not (root / split / 'list.txt').is_file():
        size = tuple(spec.get('size', (480, 360)))
        LOG.info('generating synthetic split %s/%s (%d sequences)', root, split,
                 spec['sequences'])
        generate_dataset(str(root), split, int(spec['sequences']), int(spec['frames']),
                         size=size, seed=int(spec.get('seed', 0)), overwrite=True,
                         pool=spec.get('pool'), workers=int(spec.get('workers', 1)))
    return {'type': 'got10k', 'root': str(root), 'split': split,
            'ratio': spec.get('ratio', 1.0)}


def materialise_all(recipe: Recipe) -> None:
    """Generate every missing synthetic split a recipe names (training and validation)."""
    for spec in [*recipe.data.train, *recipe.data.val]:
        materialise(spec)


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
    datasets, ratios = build_datasets([materialise(spec) for spec in specs])
    model, data = recipe.model, recipe.data
    processing = PairProcessing(
        template_size=model.template_size, search_size=model.search_size,
        center_jitter=data.center_jitter, scale_jitter=data.scale_jitter,
        gray_prob=0.05 if training else 0.0, flip_prob=0.5 if training else 0.0,
        brightness=(0.8, 1.2) if training else (1.0, 1.0))
    count = data.pairs_per_epoch if training else data.val_pairs
    return IndexedPairs(TrackingPairDataset(datasets, ratios, count, processing,
                                            max_gap=data.max_gap, seed=seed))


def collate_pairs(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack tensors; keep indices and skip counts as lists."""
    batch: Dict[str, Any] = {}
    for key in ('template', 'search', 'search_box', 'template_box'):
        batch[key] = torch.stack([torch.as_tensor(item[key]) for item in items])
    batch['index'] = [int(item['index']) for item in items]
    batch['skipped'] = [int(item['skipped']) for item in items]
    return batch
