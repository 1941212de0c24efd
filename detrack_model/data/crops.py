"""
Square crops around a box, as the tracker sees them in training and at test time.

A crop is one affine map (scale + offset) applied with ``cv2.warpAffine``: it touches only the
output pixels, and parts of the region outside the image are filled with a constant colour
(the image's mean by default) instead of being copied into a padded buffer first.

Coordinates are continuous: pixel ``i`` covers ``[i, i + 1)``, so a box ``x, y, w, h`` maps
to the crop by ``(x - offset) * scale`` exactly, at any scale.
"""

from dataclasses import dataclass
import math
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np


@dataclass(frozen=True)
class CropTransform:
    """
    Map between image and crop coordinates: ``crop = (image - offset) * scale``.

    ``offset`` is the image position of the crop's top-left corner, ``size`` the crop's side
    in output pixels.
    """

    scale: float
    offset: Tuple[float, float]
    size: int

    @property
    def matrix(self) -> np.ndarray:
        """Return the 2x3 image-to-crop matrix for ``cv2.warpAffine``."""
        # warpAffine works on pixel indices (pixel centres at integers); shift by half a pixel
        # on both sides so continuous coordinates map exactly.
        s = self.scale
        x0, y0 = self.offset
        return np.array([[s, 0.0, s * (0.5 - x0) - 0.5],
                         [0.0, s, s * (0.5 - y0) - 0.5]], dtype=np.float64)

    def image_region(self) -> Tuple[float, float, float, float]:
        """Return the image area the crop covers as x, y, w, h (a square)."""
        side = self.size / self.scale
        return (float(self.offset[0]), float(self.offset[1]), side, side)

    def points_to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) image points to crop pixels."""
        return (np.asarray(points, dtype=np.float64) - self.offset) * self.scale

    def points_to_image(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) crop pixels back to image points."""
        return np.asarray(points, dtype=np.float64) / self.scale + self.offset

    def box_to_crop(self, box_xywh: np.ndarray) -> np.ndarray:
        """Map (..., 4) image boxes x, y, w, h to crop pixels."""
        box = np.asarray(box_xywh, dtype=np.float64)
        return np.concatenate([self.points_to_crop(box[..., :2]), box[..., 2:] * self.scale],
                              axis=-1)

    def box_to_image(self, box_xywh: np.ndarray) -> np.ndarray:
        """Map (..., 4) crop boxes x, y, w, h (pixels) back to image coordinates."""
        box = np.asarray(box_xywh, dtype=np.float64)
        return np.concatenate([self.points_to_image(box[..., :2]), box[..., 2:] / self.scale],
                              axis=-1)


def region_transform(centre: Sequence[float], side: float, size: int) -> CropTransform:
    """Return the transform of a square region of ``side`` image pixels around ``centre``."""
    if not (side > 0 and math.isfinite(side)):
        raise ValueError(f'crop side must be positive and finite, got {side}')
    cx, cy = float(centre[0]), float(centre[1])
    return CropTransform(scale=size / side, offset=(cx - 0.5 * side, cy - 0.5 * side),
                         size=int(size))


def search_transform(box_xywh: Sequence[float], factor: float, size: int) -> CropTransform:
    """Return the transform of the square of side ``factor * sqrt(w h)`` centred on the box."""
    x, y, w, h = (float(v) for v in box_xywh)
    if not (w > 0 and h > 0 and math.isfinite(w * h)):
        raise ValueError(f'box must have positive, finite width and height, got {box_xywh}')
    return region_transform((x + 0.5 * w, y + 0.5 * h), factor * math.sqrt(w * h), size)


def mean_colour(image: np.ndarray) -> Tuple[float, ...]:
    """Return the per-channel mean of an image, as ``cv2`` border values want it."""
    # A padding colour needs no exactness: about 20k evenly spread pixels are plenty, and
    # cost a tenth of a full-frame mean.
    height, width = image.shape[:2]
    stride = max(1, int(math.sqrt(height * width / 20000.0)))
    channels = image.shape[2] if image.ndim == 3 else 1
    return tuple(cv2.mean(image[::stride, ::stride])[:channels])


def covers_only_image(transform: CropTransform, image_shape: Sequence[int]) -> bool:
    """Return whether the crop lies inside the image, a pixel away from its border."""
    side = transform.size / transform.scale
    x0, y0 = transform.offset
    # One pixel of margin: bilinear sampling within the last pixel also reads the border.
    return (x0 >= 1.0 and y0 >= 1.0 and x0 + side <= image_shape[1] - 1.0
            and y0 + side <= image_shape[0] - 1.0)


def warp_crop(image: np.ndarray, transform: CropTransform,
              pad_value: Optional[Sequence[float]] = None) -> np.ndarray:
    """Cut the crop described by ``transform``; outside the image is ``pad_value`` (mean)."""
    if pad_value is None:
        pad_value = ((0.0,) * 3 if covers_only_image(transform, image.shape)
                     else mean_colour(image))
    return cv2.warpAffine(image, transform.matrix, (transform.size, transform.size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=tuple(float(v) for v in pad_value))


def crop_to_search(image: np.ndarray, box_xywh: Sequence[float], factor: float, size: int,
                   pad_value: Optional[Sequence[float]] = None
                   ) -> Tuple[np.ndarray, CropTransform]:
    """
    Crop the square of side ``factor * sqrt(w h)`` around a box and resize it to ``size``.

    Returns the ``size x size`` crop and the transform whose ``box_to_image`` maps boxes
    predicted in the crop back to image coordinates. This is the test-time crop (no jitter);
    training uses the same code through :class:`~detrack_model.data.processing.PairProcessing`.
    """
    transform = search_transform(box_xywh, factor, size)
    return warp_crop(image, transform, pad_value), transform
