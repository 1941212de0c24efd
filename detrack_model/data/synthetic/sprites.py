"""Sprites (a texture, its alpha and its pose per frame) and the textures they are cut from."""

from dataclasses import dataclass, field
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
from detrack_model.data.synthetic.sources import is_grey
import numpy as np

# Side of a texture cut from a photograph; pool objects keep their own (at most 256) size.
TEMPLATE_SIZE = 256


@dataclass
class Sprite:
    """
    A textured shape and its pose in every frame.

    ``texture`` (h, w, 3) uint8 BGR and ``mask`` (h, w) uint8 alpha form the template;
    ``centre`` (T, 2) is its centre in frame pixels (pixel centres at integers), ``size``
    (T, 2) the rendered width and height of the whole template, ``angle`` (T,) the in-plane
    rotation in degrees (counter-clockwise on screen), ``blur`` (T, 2) the motion blur vector
    in pixels (zero = sharp), ``visible`` (T,) whether it is drawn and ``tilt`` (T, 2) the
    perspective terms of an out-of-plane turn (zero = flat; see ``render.sprite_homography``).
    """

    texture: np.ndarray
    mask: np.ndarray
    centre: np.ndarray
    size: np.ndarray
    angle: np.ndarray
    blur: np.ndarray
    visible: np.ndarray
    tilt: Optional[np.ndarray] = None
    _pyramid: Optional[List[Tuple[np.ndarray, np.ndarray]]] = field(
        default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Set a flat pose (no tilt) when none is given."""
        if self.tilt is None:
            self.tilt = np.zeros((len(self.centre), 2))

    @classmethod
    def constant(cls, texture: np.ndarray, mask: np.ndarray, frames: int,
                 centre: Tuple[float, float], size: Tuple[float, float],
                 angle: float = 0.0) -> 'Sprite':
        """Return a sprite that holds one pose over ``frames`` frames (tests, examples)."""
        return cls(texture=np.ascontiguousarray(texture, dtype=np.uint8),
                   mask=np.ascontiguousarray(mask, dtype=np.uint8),
                   centre=np.tile(np.asarray(centre, dtype=np.float64), (frames, 1)),
                   size=np.tile(np.asarray(size, dtype=np.float64), (frames, 1)),
                   angle=np.full(frames, float(angle)), blur=np.zeros((frames, 2)),
                   visible=np.ones(frames, dtype=bool))

    def pyramid(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Return (texture, mask) at full, 1/2, 1/4 ... resolution (built once)."""
        # Bilinear warps alias when they shrink more than 2x, so a strongly minified sprite
        # is warped from a smaller level instead.
        if self._pyramid is None:
            levels = [(self.texture, self.mask)]
            while min(levels[-1][1].shape) >= 32:
                texture, mask = levels[-1]
                levels.append((cv2.pyrDown(texture), cv2.pyrDown(mask)))
            self._pyramid = levels
        return self._pyramid


def tint(rng: np.random.Generator, image: np.ndarray, strength: float) -> np.ndarray:
    """Multiply the colour channels by random gains around 1 (a colour cast)."""
    gains = 1.0 + strength * rng.uniform(-1.0, 1.0, size=3)
    return np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def crop_texture(rng: np.random.Generator, source: np.ndarray, out: int,
                 fraction: Tuple[float, float]) -> np.ndarray:
    """Cut a random square crop of ``source`` and resize it to ``out`` x ``out``."""
    height, width = source.shape[:2]
    side = int(rng.uniform(*fraction) * min(height, width))
    side = max(8, min(side, height, width))
    y = int(rng.integers(0, height - side + 1))
    x = int(rng.integers(0, width - side + 1))
    crop = source[y:y + side, x:x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interpolation = cv2.INTER_AREA if side > out else cv2.INTER_LINEAR
    texture = cv2.resize(np.ascontiguousarray(crop), (out, out), interpolation=interpolation)
    if is_grey(source):
        texture = tint(rng, texture, 0.45)
    return texture


def shape_params(rng: np.random.Generator, kinds: Sequence[str]) -> Dict[str, Any]:
    """Draw the parameters of a shape of one of ``kinds``."""
    kind = str(kinds[int(rng.integers(len(kinds)))])
    if kind == 'ellipse':
        return {'kind': kind, 'axes': rng.uniform(0.65, 1.0, size=2).tolist()}
    if kind == 'rect':
        return {'kind': kind, 'axes': rng.uniform(0.6, 1.0, size=2).tolist(),
                'rounding': float(rng.uniform(0.0, 0.35))}
    vertices = int(rng.integers(5, 10))
    # Vertices spread round the whole circle: clustered angles make a sliver that the
    # rounding below would erase.
    gaps = rng.uniform(0.5, 1.5, size=vertices)
    angles = 2 * np.pi * np.cumsum(gaps) / gaps.sum() + gaps[0]
    return {'kind': 'polygon', 'angles': angles.tolist(),
            'radii': rng.uniform(0.6, 1.0, size=vertices).tolist(),
            'rounding': float(rng.uniform(0.04, 0.12))}


def jitter_shape(rng: np.random.Generator, params: Dict[str, Any]) -> Dict[str, Any]:
    """Return a slightly different shape of the same family (a look-alike)."""
    params = dict(params)
    for key in ('axes', 'radii'):
        if key in params:
            values = np.asarray(params[key]) * rng.uniform(0.9, 1.1, size=len(params[key]))
            params[key] = np.clip(values, 0.4, 1.0).tolist()
    return params


def shape_mask(params: Dict[str, Any], size: int) -> np.ndarray:
    """Rasterise a shape into a (size, size) uint8 mask (0/255) with a margin to the edges."""
    mask = np.zeros((size, size), np.uint8)
    half = (size - 1) / 2.0
    reach = half - 3.0
    kind = params['kind']
    if kind == 'ellipse':
        axes = (int(reach * params['axes'][0]), int(reach * params['axes'][1]))
        cv2.ellipse(mask, (int(half), int(half)), axes, 0, 0, 360, 255, -1)
        return mask
    if kind == 'rect':
        ax, ay = reach * params['axes'][0], reach * params['axes'][1]
        points = np.array([[-ax, -ay], [ax, -ay], [ax, ay], [-ax, ay]])
    else:
        angles, radii = np.asarray(params['angles']), np.asarray(params['radii'])
        points = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None] * reach
    cv2.fillPoly(mask, [np.round(points + half).astype(np.int32)], 255)
    rounding = params.get('rounding', 0.0)
    if rounding > 0:
        # Blur-and-threshold rounds the corners; the result is again a crisp 0/255 mask.
        sigma = rounding * size / 4.0
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
        mask = np.where(mask >= 128, 255, 0).astype(np.uint8)
    return mask


def add_border(rng: np.random.Generator, texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Draw a coloured band along the inside of the shape's outline."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    thickness = int(rng.integers(6, 16))
    out = texture.copy()
    cv2.drawContours(out, contours, -1, colour, thickness)
    return out


def object_extent(mask: np.ndarray) -> Tuple[float, float]:
    """Return the fraction of a template's width and height its object mask spans."""
    binary = mask >= 128
    cols, rows = np.flatnonzero(binary.any(axis=0)), np.flatnonzero(binary.any(axis=1))
    if cols.size == 0:
        return 1.0, 1.0
    return ((cols[-1] - cols[0] + 1) / mask.shape[1], (rows[-1] - rows[0] + 1) / mask.shape[0])


def radius_of(size: np.ndarray) -> np.ndarray:
    """Return the radius of the circle around templates of (T, 2) sizes."""
    return 0.5 * np.hypot(size[:, 0], size[:, 1])


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Return the cubic ease-in-out of ``x`` in [0, 1]."""
    return x * x * (3 - 2 * x)


def unit(angle: float) -> np.ndarray:
    """Return the unit vector at ``angle`` radians."""
    return np.array([math.cos(angle), math.sin(angle)])
