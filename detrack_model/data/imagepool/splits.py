"""
Split the pool into train, val and test, and read one split back.

Every image goes to exactly one split, and all images of one group (the sizes of one
wallpaper, the stamps of one folder) go to the same split, so near-duplicates never straddle
splits. Which split a group gets follows :data:`SPLIT_RULES` (the share of groups each split
gets, per package) and a stable hash of the group, so adding files never moves the others.
Backgrounds are also split by source: the wallpapers of a package all land in one split, so
the test split's scenes come from sources training never saw.
"""

from dataclasses import dataclass
import hashlib
import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from detrack_model.data.imagepool.index import INDEX_FILE, read_index

SPLITS = ('train', 'val', 'test')
SPLIT_FILE = 'splits.json'
# Share of a package's groups in (train, val, test).
SPLIT_RULES: Dict[str, Tuple[float, float, float]] = {
    'tuxpaint-stamps-default': (0.6, 0.2, 0.2),
    'openclipart-png': (0.8, 0.1, 0.1),
    'plasma-workspace-wallpapers': (1.0, 0.0, 0.0),
    'mate-backgrounds': (1.0, 0.0, 0.0),
    'mypaint-data-extras': (1.0, 0.0, 0.0),
    'gnome-backgrounds': (0.0, 1.0, 0.0),
    'lomiri-wallpapers': (0.0, 1.0, 0.0),
    'ukui-wallpapers': (0.0, 0.0, 1.0),
    'stellarium-data': (0.0, 0.0, 1.0),
    # The photographs set (packages.TRAINING_PHOTOS): training only.
    'lomiri-wallpapers-16.04': (1.0, 0.0, 0.0),
    'lomiri-wallpapers-20.04': (1.0, 0.0, 0.0),
    'tuxpaint-data': (1.0, 0.0, 0.0),
    # packages.MORE_TRAINING_PHOTOS: training only.
    'enlightenment-data': (1.0, 0.0, 0.0),
}
# Packages missing from the table.
DEFAULT_RULE = (0.8, 0.1, 0.1)
BUILD_COMMAND = 'python -m detrack_model.cli.synth fetch-sources --cache {cache_dir}'
Log = Callable[[str], None]


@dataclass(frozen=True)
class PoolObject:
    """A cut-out object: a BGRA PNG cropped to its alpha mask."""

    path: str
    # The key of the image in index.json and splits.json.
    id: str  # noqa: A003
    package: str
    category: str
    group: str
    photo: bool
    width: int
    height: int
    alpha_fraction: float


@dataclass(frozen=True)
class PoolBackground:
    """A background: a JPEG without transparency."""

    path: str
    # The key of the image in index.json and splits.json.
    id: str  # noqa: A003
    package: str
    group: str
    width: int
    height: int


@dataclass(frozen=True)
class PoolSplit:
    """The objects and backgrounds of one split."""

    split: str
    objects: List[PoolObject]
    backgrounds: List[PoolBackground]


def group_split(package: str, group: str, seed: int = 0,
                rules: Optional[Dict[str, Tuple[float, float, float]]] = None) -> str:
    """Return the split of ``group`` of ``package``: a stable hash against the package's rule."""
    shares = (SPLIT_RULES if rules is None else rules).get(package, DEFAULT_RULE)
    digest = hashlib.sha256(f'{seed}\0{package}\0{group}'.encode('utf-8')).digest()
    position = int.from_bytes(digest[:8], 'big') / 2.0 ** 64 * sum(shares)
    for split, share in zip(SPLITS, shares):
        if position < share:
            return split
        position -= share
    return [split for split, share in zip(SPLITS, shares) if share > 0][-1]


def assign_splits(index: Dict[str, Any], seed: int = 0,
                  rules: Optional[Dict[str, Tuple[float, float, float]]] = None
                  ) -> Dict[str, str]:
    """Return the split of every object and background of ``index``, by id."""
    assignment = {}
    for record in index['objects'] + index['backgrounds']:
        assignment[record['id']] = group_split(record['package'], record['group'], seed, rules)
    return assignment


def split_manifest(index: Dict[str, Any], assignment: Dict[str, str],
                   seed: int = 0) -> Dict[str, Any]:
    """Return the split manifest: per split the ids and files, counts per package."""
    splits: Dict[str, Any] = {name: {'objects': [], 'backgrounds': [], 'counts': {}}
                              for name in SPLITS}
    for kind in ('objects', 'backgrounds'):
        for record in index[kind]:
            part = splits[assignment[record['id']]]
            part[kind].append({'id': record['id'], 'file': record['file']})
            counts = part['counts'].setdefault(
                record['package'], {'objects': 0, 'photo_objects': 0, 'backgrounds': 0})
            counts[kind] += 1
            counts['photo_objects'] += int(bool(record.get('photo')))
    versions = {name: package['version'] for name, package in index['packages'].items()}
    return {'seed': seed, 'rules': {name: list(share) for name, share in SPLIT_RULES.items()},
            'packages': versions, 'splits': splits}


def write_split_manifest(cache_dir: str, seed: int = 0,
                         index: Optional[Dict[str, Any]] = None, log: Log = print,
                         fetch: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """
    Assign the splits of ``cache_dir``'s index and write ``cache_dir/splits.json``.

    ``fetch`` (skipped packages, warnings) is stored as it is under the ``fetch`` key.
    """
    cache_dir = os.fspath(cache_dir)
    if index is None:
        index = _read_required(cache_dir, INDEX_FILE, read_index)
    manifest = split_manifest(index, assign_splits(index, seed), seed)
    if fetch is not None:
        manifest['fetch'] = fetch
    path = os.path.join(cache_dir, SPLIT_FILE)
    with open(path + '.tmp', 'w', encoding='utf-8') as stream:
        json.dump(manifest, stream, indent=1)
        stream.write('\n')
    os.replace(path + '.tmp', path)
    for name, part in manifest['splits'].items():
        photos = sum(counts['photo_objects'] for counts in part['counts'].values())
        log(f'{name}: {len(part["objects"])} objects ({photos} photographs), '
            f'{len(part["backgrounds"])} backgrounds')
    return manifest


def load_pool(cache_dir: str, split: str) -> PoolSplit:
    """Return the objects and backgrounds of ``split`` of the pool built in ``cache_dir``."""
    if split not in SPLITS:
        raise ValueError(f'unknown image-pool split {split!r}; choose from {SPLITS}')
    cache_dir = os.path.abspath(os.fspath(cache_dir))
    manifest = _read_required(cache_dir, SPLIT_FILE, _read_json)
    index = _read_required(cache_dir, INDEX_FILE, read_index)
    records = {record['id']: record for record in index['objects'] + index['backgrounds']}
    part = manifest['splits'][split]
    objects = [_pool_object(cache_dir, records[item['id']]) for item in part['objects']]
    backgrounds = [_pool_background(cache_dir, records[item['id']])
                   for item in part['backgrounds']]
    for item in objects + backgrounds:
        if not os.path.isfile(item.path):
            raise FileNotFoundError(f'image-pool file {item.path} is missing; rebuild the '
                                    f'pool: {BUILD_COMMAND.format(cache_dir=cache_dir)}')
    return PoolSplit(split, objects, backgrounds)


def _pool_object(cache_dir: str, record: Dict[str, Any]) -> PoolObject:
    return PoolObject(os.path.join(cache_dir, record['file']), record['id'], record['package'],
                      record['category'], record['group'], bool(record['photo']),
                      int(record['width']), int(record['height']),
                      float(record['alpha_fraction']))


def _pool_background(cache_dir: str, record: Dict[str, Any]) -> PoolBackground:
    return PoolBackground(os.path.join(cache_dir, record['file']), record['id'],
                          record['package'], record['group'], int(record['width']),
                          int(record['height']))


def _read_required(cache_dir: str, name: str, reader: Callable[[str], Any]) -> Any:
    path = os.path.join(cache_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} not found: the image pool was never built there; '
                                f'build it with: {BUILD_COMMAND.format(cache_dir=cache_dir)}')
    return reader(cache_dir)


def _read_json(cache_dir: str) -> Dict[str, Any]:
    with open(os.path.join(cache_dir, SPLIT_FILE), encoding='utf-8') as stream:
        return json.load(stream)
