"""
The image pool: real cut-out objects and backgrounds from Debian packages, split three ways.

:func:`prepare_pool` fetches the pinned packages of :data:`PACKAGES`, or of another set of
:data:`POOL_SETS` (``photos`` adds :data:`TRAINING_PHOTOS`, ``photos2`` also
:data:`MORE_TRAINING_PHOTOS`), by ``apt-get download`` or from a local directory of ``.deb``
files, unpacked with ``dpkg-deb`` (Enlightenment archives decompiled), nothing installed;
normalises their images and assigns every image to train, val or test; :func:`load_pool`
returns one split for the synthetic sequence generator.

The cache directory::

    packages/<name>/        the unpacked package, only the files its ``include`` names,
                            and .fetched.json (version, source, the package's rules)
    pool/objects/<name>/    objects: BGRA PNGs cropped to their alpha mask, <= 256 px
    pool/backgrounds/<name>/  backgrounds: JPEGs without transparency, <= 1280 px
    index.json              every pool image (id, file, group, size...), the images left
                            out and why, per-package counts and versions
    splits.json             the split of every image: ids and files per split, counts per
                            package, the split rules and the package versions

Splits are disjoint by file and by group, and by source for backgrounds (see
:mod:`detrack_model.data.imagepool.splits`). The packages of :data:`RESERVED` are never
fetched.
"""

import os
import time
from typing import Any, Dict, Optional, Sequence

from detrack_model.data.imagepool.fetch import (fetch_packages, FetchedPackage, FetchError,
                                                FetchReport, SkippedPackage)
from detrack_model.data.imagepool.index import build_index, read_index
from detrack_model.data.imagepool.packages import (MORE_TRAINING_PHOTOS, PACKAGES, POOL_SETS,
                                                   PoolPackage, RESERVED, TRAINING_PHOTOS)
from detrack_model.data.imagepool.splits import (assign_splits, load_pool, PoolBackground,
                                                 PoolObject, PoolSplit, SPLIT_RULES, SPLITS,
                                                 write_split_manifest)
from detrack_model.data.imagepool.splits import Log

__all__ = [
    'assign_splits', 'build_index', 'FetchedPackage', 'FetchError', 'fetch_packages',
    'FetchReport', 'load_pool', 'MORE_TRAINING_PHOTOS', 'PACKAGES', 'PoolBackground',
    'PoolObject', 'PoolPackage', 'POOL_SETS', 'PoolSplit', 'prepare_pool', 'read_index',
    'RESERVED', 'SkippedPackage', 'SPLIT_RULES', 'SPLITS', 'TRAINING_PHOTOS',
    'write_split_manifest',
]


def prepare_pool(cache_dir: str, debs_dir: Optional[str] = None,
                 packages: Sequence[PoolPackage] = PACKAGES, log: Log = print,
                 workers: int = 2, seed: int = 0,
                 reuse_dir: Optional[str] = None) -> Dict[str, Any]:
    """
    Fetch, index and split the image pool in ``cache_dir``; return the split manifest.

    Packages already unpacked in the pool ``reuse_dir`` are taken from there (see
    :func:`fetch_packages`).

    The manifest's ``fetch`` entry lists the packages that were skipped and the warnings.
    """
    cache_dir = os.path.abspath(os.fspath(cache_dir))
    start = time.monotonic()
    report = fetch_packages(cache_dir, packages, debs_dir=debs_dir, log=log, reuse_dir=reuse_dir)
    if not report.fetched:
        raise FetchError('no package of the image pool could be fetched: '
                         + '; '.join(f'{item.name}: {item.reason}' for item in report.skipped))
    fetched = time.monotonic()
    log(f'fetched {len(report.fetched)} packages in {fetched - start:.0f} s')
    index = build_index(cache_dir, log=log, packages=report.versions(), workers=workers)
    log(f'indexed in {time.monotonic() - fetched:.0f} s')
    fetch = {'skipped': [{'name': item.name, 'version': item.version, 'reason': item.reason}
                         for item in report.skipped],
             'warnings': list(report.warnings)}
    return write_split_manifest(cache_dir, seed=seed, index=index, log=log, fetch=fetch)
