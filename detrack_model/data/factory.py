"""
Datasets by name, so YAML recipes can list them.

A recipe entry is a mapping ``{'type': 'got10k', 'root': ..., 'ratio': 1.0, ...}``: ``type``
picks the reader, ``ratio`` its share of the pairs, every other key goes to the reader's
constructor.
"""

from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

from detrack_model.data.coco import Coco
from detrack_model.data.got10k import Got10k
from detrack_model.data.lasot import LaSOT
from detrack_model.data.sequences import TrackingDataset
from detrack_model.data.trackingnet import TrackingNet

# Other modules may add readers here (e.g. a synthetic sequence generator).
DATASET_TYPES: Dict[str, Callable[..., TrackingDataset]] = {
    'got10k': Got10k,
    'lasot': LaSOT,
    'trackingnet': TrackingNet,
    'coco': Coco,
}


def build_dataset(spec: Mapping[str, Any]) -> Tuple[TrackingDataset, float]:
    """Build one reader from a recipe entry; return it with its ratio (default 1.0)."""
    options = dict(spec)
    kind = options.pop('type', None)
    ratio = float(options.pop('ratio', 1.0))
    if kind is None or str(kind).lower() not in DATASET_TYPES:
        raise ValueError(f'dataset entry {dict(spec)}: "type" must be one of '
                         f'{sorted(DATASET_TYPES)}, got {kind!r}')
    factory = DATASET_TYPES[str(kind).lower()]
    try:
        return factory(**options), ratio
    except TypeError as error:
        raise ValueError(f'dataset entry {dict(spec)}: {error}') from None


def build_datasets(specs: Sequence[Mapping[str, Any]]
                   ) -> Tuple[List[TrackingDataset], List[float]]:
    """Build the readers of a recipe's dataset list; return them and their ratios."""
    built = [build_dataset(spec) for spec in specs]
    return [dataset for dataset, _ in built], [ratio for _, ratio in built]
