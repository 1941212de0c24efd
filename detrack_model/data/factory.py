"""
Datasets by name, so YAML recipes can list them.

A recipe entry is a mapping ``{'type': 'got10k', 'root': ..., 'ratio': 1.0, ...}``: ``type``
picks the factory in :data:`DATASET_TYPES`, ``ratio`` its share of the pairs, every other key
goes to the factory as a keyword argument. A factory is a reader class or a function returning
a reader; ``synthetic`` is one such function (it generates its split when missing).
"""

import inspect
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

from detrack_model.data.coco import Coco
from detrack_model.data.got10k import Got10k
from detrack_model.data.lasot import LaSOT
from detrack_model.data.sequences import TrackingDataset
from detrack_model.data.synthetic.dataset import synthetic_split
from detrack_model.data.trackingnet import TrackingNet

DATASET_TYPES: Dict[str, Callable[..., TrackingDataset]] = {
    'got10k': Got10k,
    'lasot': LaSOT,
    'trackingnet': TrackingNet,
    'coco': Coco,
    'synthetic': synthetic_split,
}

# Types whose factory writes its data when it is missing, so building an entry once before
# parallel runs start saves them racing to generate it.
GENERATED_TYPES = frozenset({'synthetic'})


def dataset_factory(spec: Mapping[str, Any]) -> Callable[..., TrackingDataset]:
    """Return the registered factory of a recipe entry's ``type``, refusing unknown types."""
    kind = spec.get('type')
    if kind is None or str(kind).lower() not in DATASET_TYPES:
        raise ValueError(f'dataset entry {dict(spec)}: "type" must be one of '
                         f'{sorted(DATASET_TYPES)}, got {kind!r}')
    return DATASET_TYPES[str(kind).lower()]


def _check_options(spec: Mapping[str, Any], factory: Callable[..., TrackingDataset],
                   options: Mapping[str, Any]) -> None:
    # Checked before the call so that a typo is named as such, and a TypeError raised while
    # reading (or generating) a dataset is never mistaken for one.
    signature = inspect.signature(factory)
    accepted = [name for name, parameter in signature.parameters.items()
                if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f'dataset entry {dict(spec)}: unknown keys {unknown} (unexpected '
                         f'keyword arguments for type {spec["type"]!r}, which takes '
                         f'{", ".join(["type", "ratio", *accepted])})')
    try:
        signature.bind(**options)
    except TypeError as error:
        raise ValueError(f'dataset entry {dict(spec)}: {error}') from None


def build_dataset(spec: Mapping[str, Any]) -> Tuple[TrackingDataset, float]:
    """Build one reader from a recipe entry; return it with its ratio (default 1.0)."""
    factory = dataset_factory(spec)
    options = dict(spec)
    del options['type']
    ratio = float(options.pop('ratio', 1.0))
    _check_options(spec, factory, options)
    return factory(**options), ratio


def build_datasets(specs: Sequence[Mapping[str, Any]]
                   ) -> Tuple[List[TrackingDataset], List[float]]:
    """Build the readers of a recipe's dataset list; return them and their ratios."""
    built = [build_dataset(spec) for spec in specs]
    return [dataset for dataset, _ in built], [ratio for _, ratio in built]
