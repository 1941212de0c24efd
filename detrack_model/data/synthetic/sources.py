"""
The images a synthetic sequence is cut from: scikit-image's photographs and the image pool.

A :class:`SourceSet` is what one split may use: ``photos`` (scikit-image names, used as
backgrounds and as textures), ``backgrounds`` (wallpapers and panoramas from the image pool)
and ``objects`` (cut-out objects with their own alpha masks, from the image pool). Splits never
share a source: scikit-image's photographs are split by :data:`SPLIT_SOURCES`, the pool by its
manifest (``detrack_model.data.imagepool``).
"""

from dataclasses import dataclass
import functools
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

# Disjoint image lists per split. Colour photographs are spread over the splits so each has
# colourful backgrounds and targets; greyscale sources get a random colour tint when used as
# a target, occluder or distractor. ``hubble_deep_field`` and ``retina`` are large, so their
# crops vary a lot. ``cat`` is left out: it is the same picture as ``chelsea``.
SPLIT_SOURCES: Dict[str, Tuple[str, ...]] = {
    'train': ('astronaut', 'coffee', 'rocket', 'hubble_deep_field', 'camera', 'brick', 'grass',
              'coins', 'text'),
    'val': ('chelsea', 'immunohistochemistry', 'moon', 'gravel', 'page', 'clock'),
    'test': ('retina', 'colorwheel', 'logo', 'checkerboard'),
}

_ALL_SOURCES = frozenset(name for names in SPLIT_SOURCES.values() for name in names)
# Decoded pool images kept per process: a worker renders one sequence at a time and a
# sequence uses a few dozen images at most.
_POOL_CACHE = 96


@dataclass(frozen=True)
class ObjectSource:
    """A cut-out object of the image pool: its file, id and the groups look-alikes come from."""

    path: str
    key: str
    group: str
    category: str
    photo: bool = False


@dataclass(frozen=True)
class SourceSet:
    """Every image one split may draw from (see the module docstring)."""

    photos: Tuple[str, ...] = ()
    backgrounds: Tuple[Tuple[str, str], ...] = ()
    objects: Tuple[ObjectSource, ...] = ()

    def __post_init__(self) -> None:
        """Check the photo names; a set needs backgrounds and something to cut targets from."""
        for name in self.photos:
            if name not in _ALL_SOURCES:
                raise ValueError(f'unknown source image {name!r}; choose from '
                                 f'{sorted(_ALL_SOURCES)}')
        if not self.objects and len(set(self.photos) | set(self.backgrounds)) < 3:
            raise ValueError('need at least 3 distinct source images without pool objects, '
                             f'got {list(self.photos)}')
        if not self.photos and not self.backgrounds:
            raise ValueError('a source set needs at least one background')

    @property
    def textures(self) -> Tuple[str, ...]:
        """Return every image usable as a background or texture: photo names and pool files."""
        return self.photos + tuple(path for _, path in self.backgrounds)

    def describe(self) -> Dict[str, int]:
        """Return the number of images of each kind (for summaries)."""
        return {'photos': len(self.photos), 'backgrounds': len(self.backgrounds),
                'objects': len(self.objects)}


def source_set(split: str, pool: Optional[Union[str, os.PathLike]] = None,
               photos: Optional[Sequence[str]] = None) -> SourceSet:
    """
    Return the images of ``split``.

    They are its scikit-image photographs and, given ``pool``, its part of the image pool in
    that cache directory. ``photos`` overrides the split's scikit-image list (an empty list
    uses none).
    """
    if photos is None:
        if split not in SPLIT_SOURCES:
            raise ValueError(f'no default sources for split {split!r}; pass sources or use '
                             f'one of {sorted(SPLIT_SOURCES)}')
        photos = SPLIT_SOURCES[split]
    backgrounds: Tuple[Tuple[str, str], ...] = ()
    objects: Tuple[ObjectSource, ...] = ()
    if pool is not None:
        from detrack_model.data.imagepool import load_pool

        part = load_pool(os.fspath(pool), split)
        backgrounds = tuple((item.id, str(item.path)) for item in part.backgrounds)
        objects = tuple(ObjectSource(str(item.path), item.id, item.group, item.category,
                                     bool(item.photo)) for item in part.objects)
    return SourceSet(tuple(dict.fromkeys(photos)), backgrounds, objects)


@functools.lru_cache(maxsize=None)
def load_source(name: str) -> np.ndarray:
    """Return scikit-image's bundled image ``name`` as (H, W, 3) uint8 BGR (cached)."""
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None or name not in _ALL_SOURCES:
        raise ValueError(f'unknown source image {name!r}; choose from {sorted(_ALL_SOURCES)}')
    image = np.asarray(loader())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        # Composite RGBA over white: the transparent parts of a logo are paper, not black.
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        image = (image[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    image = np.ascontiguousarray(image[:, :, 2::-1])
    image.setflags(write=False)
    return image


@functools.lru_cache(maxsize=_POOL_CACHE)
def _read_file(path: str, with_alpha: bool) -> np.ndarray:
    flags = cv2.IMREAD_UNCHANGED if with_alpha else cv2.IMREAD_COLOR
    image = cv2.imread(path, flags)
    if image is None:
        raise FileNotFoundError(f'cannot read image-pool file {path} (rebuild the pool: '
                                'detrack-synth fetch-sources)')
    image.setflags(write=False)
    return image


def load_texture(name: str) -> np.ndarray:
    """Return a background or texture image (a photo name or a pool file) as BGR uint8."""
    if name in _ALL_SOURCES:
        return load_source(name)
    return _read_file(name, False)


def load_object(source: ObjectSource) -> Tuple[np.ndarray, np.ndarray]:
    """Return a pool object as (texture BGR uint8, alpha uint8), both (H, W)."""
    image = _read_file(source.path, True)
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f'image-pool object {source.path} has no alpha channel')
    return np.ascontiguousarray(image[:, :, :3]), np.ascontiguousarray(image[:, :, 3])


def is_grey(image: np.ndarray) -> bool:
    """Return whether a BGR image has three equal channels."""
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1])
                and np.array_equal(image[:, :, 1], image[:, :, 2]))
