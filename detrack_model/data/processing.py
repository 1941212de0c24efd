"""
Training crops and augmentation for a template/search pair (OSTrack conventions).

The search region is jittered (centre and scale) so the target is not always in the middle;
grayscale and horizontal flip are decided once per pair, brightness once per crop. Augmentation
runs on the small crops, never on the full frames. A target-absent pair moves the search
region off the target, so the score head learns what "not there" looks like; centred on a
look-alike of the target (a distractor), it shows what a tracker most often mistakes for it.
"""

import math
from typing import Dict, Optional, Sequence, Tuple

import cv2
from detrack_model.data.crops import CropTransform, region_transform, warp_crop
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_box(box_xywh: Sequence[float]) -> np.ndarray:
    """
    Return the box as a float64 (4,) array; raise ValueError if it is unusable.

    Besides NaN, infinite and empty boxes, one whose far corner or area overflows (a side of
    1e308) or underflows (sides of 1e-200) is refused: no crop can be taken around it.
    """
    box = np.asarray(box_xywh, dtype=np.float64).reshape(4)
    if not (np.isfinite(box).all() and box[2] > 0 and box[3] > 0):
        raise ValueError(f'box must be finite with positive width and height, got {box}')
    with np.errstate(over='ignore', under='ignore'):
        area = box[2] * box[3]
        if not (math.isfinite(box[0] + box[2]) and math.isfinite(box[1] + box[3])
                and math.isfinite(area) and area > 0.0):
            raise ValueError(f'box is too large or too small to crop around: {box}')
    return box


def normalise_image(crop: np.ndarray, brightness: float = 1.0,
                    mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """
    Turn an HxWx3 uint8 RGB crop into a normalised float32 3xHxW tensor.

    Computes ``(min(x * brightness, 255) / 255 - mean) / std`` per channel.
    """
    # A uint8 input has 256 possible values per channel: a lookup table does brightness,
    # clamping, scaling and the HWC -> CHW transpose in one pass, three times faster than
    # float arithmetic over the crop.
    values = np.minimum(np.arange(256, dtype=np.float64) * brightness, 255.0) / 255.0
    mean = np.asarray(mean, dtype=np.float64)[:, None]
    std = np.asarray(std, dtype=np.float64)[:, None]
    table = ((values[None, :] - mean) / std).astype(np.float32)
    out = np.empty((3,) + crop.shape[:2], dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], crop[:, :, channel], out=out[channel])
    return torch.from_numpy(out)


def off_target_region(transform: CropTransform, box: np.ndarray, image_hw: Tuple[int, int],
                      rng: np.random.Generator) -> CropTransform:
    """
    Move a square search region beside ``box`` so that it shares no pixel with it.

    The side it moves to is drawn in proportion to the room the image has there (a region
    over image content, not over padding, is the frame a tracker sees when its target is
    hidden or gone); the gap to the box is up to half the region's side and the offset along
    the box's edge up to half a side either way.
    """
    side = transform.size / transform.scale
    x, y, w, h = (float(v) for v in box)
    height, width = image_hw
    # Room right, left, below, above the box; a little for each so every side stays possible.
    room = np.maximum([width - (x + w), x, height - (y + h), y], 0.0) + 1.0
    way = int(rng.choice(4, p=room / room.sum()))
    gap, slide = rng.random(2)
    along = 0.5 * side + gap * 0.5 * side
    across = (slide - 0.5) * side
    cx, cy = x + 0.5 * w, y + 0.5 * h
    if way == 0:
        centre = (x + w + along, cy + across)
    elif way == 1:
        centre = (x - along, cy + across)
    elif way == 2:
        centre = (cx + across, y + h + along)
    else:
        centre = (cx + across, y - along)
    return region_transform(centre, side, transform.size)


def decoy_region(transform: CropTransform, decoy: np.ndarray, box: np.ndarray, jitter: float,
                 rng: np.random.Generator) -> Optional[CropTransform]:
    """
    Centre a square search region of ``transform``'s side on the look-alike ``decoy``.

    The centre is jittered by up to ``jitter / 2`` of the side either way, as the target's
    search region is around the target, so the look-alike's place in the crop says nothing.
    Return None when the region would share a pixel with the target's ``box``.
    """
    side = transform.size / transform.scale
    x, y, w, h = (float(v) for v in decoy)
    cx, cy = np.array([x + 0.5 * w, y + 0.5 * h]) + (rng.random(2) - 0.5) * jitter * side
    left, top = cx - 0.5 * side, cy - 0.5 * side
    tx, ty, tw, th = (float(v) for v in box)
    if left < tx + tw and tx < left + side and top < ty + th and ty < top + side:
        return None
    return region_transform((cx, cy), side, transform.size)


class PairProcessing:
    """
    Crop, augment and normalise a template/search pair.

    Crops are squares of side ``factor * sqrt(w h)`` around the box, resized to the output
    size, padded with the image's mean colour. The search box is jittered first: centre +=
    ``(U[0,1) - 0.5) * sqrt(w' h') * centre_jitter`` with ``w', h' = (w, h) *
    exp(N(0,1) * scale_jitter)``. The template is jittered the same way with its own (by
    default zero) amounts.
    """

    def __init__(self, template_size: int = 128, search_size: int = 256,
                 template_factor: float = 2.0, search_factor: float = 4.0,
                 centre_jitter: float = 3.0, scale_jitter: float = 0.25,
                 gray_prob: float = 0.05, flip_prob: float = 0.5,
                 brightness: Tuple[float, float] = (0.8, 1.2),
                 template_centre_jitter: float = 0.0, template_scale_jitter: float = 0.0,
                 min_box_size: float = 2.0) -> None:
        self.template_size = int(template_size)
        self.search_size = int(search_size)
        self.template_factor = float(template_factor)
        self.search_factor = float(search_factor)
        self.centre_jitter = float(centre_jitter)
        self.scale_jitter = float(scale_jitter)
        self.template_centre_jitter = float(template_centre_jitter)
        self.template_scale_jitter = float(template_scale_jitter)
        self.gray_prob = float(gray_prob)
        self.flip_prob = float(flip_prob)
        self.brightness = (float(brightness[0]), float(brightness[1]))
        # Smallest target side, in output pixels, a pair may have and still be a useful sample.
        self.min_box_size = float(min_box_size)

    def __call__(self, template_img: np.ndarray, template_box: Sequence[float],
                 search_img: np.ndarray, search_box: Sequence[float],
                 rng: np.random.Generator, present: bool = True,
                 decoy: Optional[Sequence[float]] = None,
                 hidden: bool = False) -> Dict[str, object]:
        """
        Return the crops ``template`` (3,T,T), ``search`` (3,S,S), their boxes and flags.

        The flags are ``present``, ``decoy`` and ``valid``.

        Boxes are float32 (4,) normalised cx, cy, w, h of the ground truth in each crop,
        clipped to the crop. ``valid`` is False when the search box centre falls outside the
        search crop or a box is smaller than ``min_box_size`` pixels there: the caller then
        draws another pair. Raises ValueError on a NaN or zero-area input box.

        With ``present=False`` the search region, of the size it would have had, is moved
        beside the target so that no part of the target box lies in it (see
        :func:`off_target_region`); ``search_box`` is then all zeros and ``valid`` depends on
        the template alone. A ``decoy`` box (a look-alike in the search image) centres that
        region on it instead (:func:`decoy_region`) unless the region would then show part of
        the target; the returned ``decoy`` tells whether it did. ``hidden`` says that the search
        image hides the target (fully occluded or out of view): the region then stays around
        its box, as a tracker's would.
        """
        if hidden and present:
            raise ValueError('a search image that hides the target cannot show it: '
                             'hidden=True needs present=False')
        template_box = check_box(template_box)
        search_box = check_box(search_box)
        # Draw every random number in a fixed order whatever the settings, so one knob never
        # shifts the stream the others see.
        template_tf = self._region(template_box, self.template_factor, self.template_size,
                                   self.template_centre_jitter, self.template_scale_jitter, rng)
        search_tf = self._region(search_box, self.search_factor, self.search_size,
                                 self.centre_jitter, self.scale_jitter, rng)
        gray = rng.random() < self.gray_prob
        flip = rng.random() < self.flip_prob
        template_gain = rng.uniform(*self.brightness)
        search_gain = rng.uniform(*self.brightness)
        on_decoy = False
        if not (present or hidden):
            moved = None
            if decoy is not None:
                moved = decoy_region(search_tf, check_box(decoy), search_box,
                                     self.centre_jitter / self.search_factor, rng)
            on_decoy = moved is not None
            search_tf = moved if on_decoy else off_target_region(
                search_tf, search_box, search_img.shape[:2], rng)

        template, template_norm, template_ok = self._crop(template_img, template_box,
                                                          template_tf, gray, flip)
        search, search_norm, search_ok = self._crop(search_img, search_box, search_tf, gray, flip)
        if not present:
            search_norm[:] = 0.0
            search_ok = True
        return {
            'template': normalise_image(template, template_gain),
            'search': normalise_image(search, search_gain),
            'template_box': torch.from_numpy(template_norm),
            'search_box': torch.from_numpy(search_norm),
            'present': bool(present),
            'decoy': on_decoy,
            'valid': bool(template_ok and search_ok),
        }

    @staticmethod
    def _region(box: np.ndarray, factor: float, size: int, centre_jitter: float,
                scale_jitter: float, rng: np.random.Generator) -> CropTransform:
        wh = box[2:] * np.exp(rng.standard_normal(2) * scale_jitter)
        side = math.sqrt(wh[0] * wh[1])
        centre = box[:2] + 0.5 * box[2:] + (rng.random(2) - 0.5) * side * centre_jitter
        return region_transform(centre, side * factor, size)

    def _crop(self, image: np.ndarray, box: np.ndarray, transform: CropTransform, gray: bool,
              flip: bool) -> Tuple[np.ndarray, np.ndarray, bool]:
        crop = warp_crop(image, transform)
        if gray:
            crop = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        x, y, w, h = transform.box_to_crop(box) / transform.size
        centre_inside = 0.0 <= x + 0.5 * w <= 1.0 and 0.0 <= y + 0.5 * h <= 1.0
        # Clip both corners so that even a box wholly outside the crop stays within [0, 1].
        x0, y0, x1, y1 = np.clip([x, y, x + w, y + h], 0.0, 1.0)
        min_side = self.min_box_size / transform.size
        valid = centre_inside and x1 - x0 >= min_side and y1 - y0 >= min_side
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        if flip:
            crop = cv2.flip(crop, 1)
            cx = 1.0 - cx
        norm = np.array([cx, cy, x1 - x0, y1 - y0], dtype=np.float32)
        return crop, norm, valid
