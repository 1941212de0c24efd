"""
Template/search crop pairs for masked-image pretraining, cut from unlabelled images.

A sample is one composed image — a background from the split's images with a few of its
cut-out objects pasted on — and a region of it, cropped twice as the tracker crops: a
template around the region and a search area around a jittered copy of it
(:class:`~detrack_model.data.processing.PairProcessing`, so pixels are normalised the way the
tracker sees them). Regions sit on a pasted object most of the time, so the encoder learns
what objects look like against clutter. No labels are involved: any image will do, and only
the split's own images are used.

Every random choice is a function of (seed, epoch, index); ``per_image`` consecutive samples
share one background, so a worker decodes each image once for several samples.
"""

import functools
import math
from typing import Any, Dict, Optional, Tuple

import cv2
from detrack_model.data.processing import PairProcessing
from detrack_model.data.synthetic.render import mask_box
from detrack_model.data.synthetic.sources import load_object, load_texture, SourceSet
import numpy as np
import torch

# Long side of a background after scaling: about a camera frame, the scale the tracker sees.
BACKGROUND_SIDE = 640


@functools.lru_cache(maxsize=16)
def scaled_background(name: str) -> np.ndarray:
    """Return a background scaled to at most ``BACKGROUND_SIDE`` on its long side (cached)."""
    image = load_texture(name)
    scale = BACKGROUND_SIDE / max(image.shape[:2])
    if scale < 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    image.setflags(write=False)
    return image


def paste(image: np.ndarray, texture: np.ndarray, alpha: np.ndarray, x: int,
          y: int) -> None:
    """Blend a cut-out into ``image`` in place at top-left (x, y); it must fit inside."""
    height, width = alpha.shape
    region = image[y:y + height, x:x + width]
    weight = alpha[:, :, None].astype(np.float32) * np.float32(1.0 / 255.0)
    blended = region * (1.0 - weight) + texture * weight
    region[:] = (blended + 0.5).astype(np.uint8)


class PretrainCrops(torch.utils.data.Dataset):
    """``samples`` template/search crop pairs per epoch from one split's images."""

    def __init__(self, sources: SourceSet, processing: PairProcessing, samples: int,
                 seed: int = 0, per_image: int = 8, max_objects: int = 3,
                 object_prob: float = 0.8) -> None:
        if samples < 1 or per_image < 1 or max_objects < 0:
            raise ValueError('samples and per_image must be >= 1, max_objects >= 0')
        if not sources.textures:
            raise ValueError('the source set has no backgrounds')
        self.sources, self.processing = sources, processing
        self.samples, self.seed = int(samples), int(seed)
        self.per_image, self.max_objects = int(per_image), int(max_objects)
        self.object_prob = float(object_prob)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples indexing returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Return the number of samples in an epoch."""
        return self.samples

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """Return ``template`` (3, T, T), ``search`` (3, S, S) and ``index``."""
        # Stream 0: the background (shared by a group of samples); stream 1: everything else.
        image_rng = np.random.default_rng([self.seed, self.epoch, index // self.per_image, 0])
        rng = np.random.default_rng([self.seed, self.epoch, int(index), 1])
        image, box = self.compose(image_rng, rng)
        pair = self.processing(image, box, image, box, rng)
        return {'template': pair['template'], 'search': pair['search'], 'index': index}

    def compose(self, image_rng: np.random.Generator,
                rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """Return an RGB image with pasted objects and the x, y, w, h region to crop."""
        textures = self.sources.textures
        image = scaled_background(textures[int(image_rng.integers(len(textures)))]).copy()
        height, width = image.shape[:2]
        short = min(height, width)
        boxes = []
        count = int(rng.integers(0, self.max_objects + 1)) if self.sources.objects else 0
        for _ in range(count):
            source = self.sources.objects[int(rng.integers(len(self.sources.objects)))]
            placed = self._place(image, source, rng, short)
            if placed is not None:
                boxes.append(placed)
        if boxes and rng.random() < self.object_prob:
            box = boxes[int(rng.integers(len(boxes)))]
        else:
            side = rng.uniform(0.06, 0.3) * short
            aspect = math.exp(rng.uniform(-0.5, 0.5))
            w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
            box = np.array([rng.uniform(0, width - w), rng.uniform(0, height - h), w, h])
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.asarray(box, dtype=np.float64)

    @staticmethod
    def _place(image: np.ndarray, source, rng: np.random.Generator,
               short: int) -> Optional[np.ndarray]:
        """Paste one object at a random size and place; return its box (None if empty)."""
        texture, alpha = load_object(source)
        side = rng.uniform(0.08, 0.35) * short
        scale = side / max(alpha.shape)
        size = (max(2, round(alpha.shape[1] * scale)), max(2, round(alpha.shape[0] * scale)))
        if size[0] >= image.shape[1] or size[1] >= image.shape[0]:
            return None
        texture = cv2.resize(texture, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        x = int(rng.integers(0, image.shape[1] - size[0]))
        y = int(rng.integers(0, image.shape[0] - size[1]))
        paste(image, texture, alpha, x, y)
        local = mask_box(alpha >= 128)
        if local is None:
            return None
        return np.array([x + local[0], y + local[1], local[2], local[3]], dtype=np.float64)
