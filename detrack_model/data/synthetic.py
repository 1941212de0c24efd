"""
Synthetic single-object tracking sequences written in the GOT-10k layout.

Every sequence is a pure function of ``(seed, split, index)``: a background photograph or
texture from scikit-image's bundled data (cropped, scaled, flipped, larger than the frame so
the camera can pan), a target cut from a *different* source image with an irregular but
well-defined shape (ellipse, rounded rectangle or rounded polygon, optionally with a coloured
border), and a random subset of the usual tracking difficulties: scale, rotation and aspect
change, fast motion with motion blur, partial and full occlusion by patches of other images,
out-of-view spells, illumination drift with a moving light spot, look-alike distractors and
camera pan.

Layout (readable by :class:`detrack_model.data.Got10k`)::

    root/<split>/list.txt                 sequence directory names, one per line
    root/<split>/synthetic.json           the generator's arguments
    root/<split>/<seq>/00000001.jpg ...   frames (JPEG quality 90)
    root/<split>/<seq>/groundtruth.txt    x,y,w,h per frame, 4 decimals
    root/<split>/<seq>/absence.label      1 = the target is not visible at all
    root/<split>/<seq>/cover.label        0..8 visible fraction in eighths (0 = fully hidden)
    root/<split>/<seq>/cut_by_image.label 1 = part of the target lies outside the frame
    root/<split>/<seq>/meta_info.ini      GOT-10k's key: value lines (line 5.. = classes)
    root/<split>/<seq>/synthetic.json     seed, sources, attributes, events and statistics

Label conventions, all exact from the rendering masks (never estimated). The *object mask* is
the set of pixels where the target's warped shape alpha is >= 0.5; appearance uses the soft
alpha (anti-aliased edges) and, during fast motion, a motion-blurred copy, but the labels
always describe the sharp object at the frame's time.

- Box: the tight axis-aligned box of the object mask, occluded parts included (GOT-10k
  annotates the whole object). When the object is partly outside the frame the box is that of
  its part inside the frame (clipped, as GOT-10k does). When it is entirely outside the frame
  the box is the true, unclipped box of the whole object, lying outside the image, and
  ``absence.label`` is 1. Pixel ``i`` covers ``[i, i + 1)``, so ``w = x_max - x_min + 1``.
- Cover: ``v`` visible pixels (inside the frame and not under an occluder) of ``n`` object
  pixels (the whole object, outside-the-frame pixels included): 0 when ``v == 0``, 8 when
  ``v == n``, otherwise ``round(8 v / n)`` clipped to 1..7. So 0 means fully hidden and 8 fully
  visible, exactly.
- Absence: 1 exactly when cover is 0 (fully occluded or fully out of the frame).
- Distractors are drawn behind the target and never count as occluders.

The first frame always shows the target fully visible (cover 8); events (occlusions,
out-of-view spells, fast-motion spells) start at frame 3 or later, never overlap, and keep
absence spells short (a few frames).

Split discipline: ``train``, ``val`` and ``test`` draw *all* their images (backgrounds,
targets, occluders) from the disjoint lists in :data:`SPLIT_SOURCES`, and the split name
enters every sequence's seed, so even the same ``seed`` gives different streams per split.
``cat`` is left out: it is the same picture as ``chelsea``.
"""

from dataclasses import dataclass, field
import functools
import json
import math
import multiprocessing
import os
import re
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union
import zlib

import cv2
import numpy as np

# Disjoint image lists per split. Colour photographs are spread over the splits so each has
# colourful backgrounds and targets; greyscale sources get a random colour tint when used as
# a target, occluder or distractor. ``hubble_deep_field`` and ``retina`` are large, so their
# crops vary a lot. The test list is the smallest (it is optional).
SPLIT_SOURCES: Dict[str, Tuple[str, ...]] = {
    'train': ('astronaut', 'coffee', 'rocket', 'hubble_deep_field', 'camera', 'brick', 'grass',
              'coins', 'text'),
    'val': ('chelsea', 'immunohistochemistry', 'moon', 'gravel', 'page', 'clock'),
    'test': ('retina', 'colorwheel', 'logo', 'checkerboard'),
}

# Probability that a sequence has each attribute; sampled independently, so some sequences
# have none (easy) and some have many (hard).
ATTRIBUTE_PROBABILITIES: Dict[str, float] = {
    'scale_change': 0.6,
    'rotation': 0.4,
    'aspect_change': 0.4,
    'fast_motion': 0.4,
    'motion_blur': 0.7,
    'occlusion': 0.5,
    'out_of_view': 0.4,
    'illumination': 0.4,
    'light_spot': 0.3,
    'distractors': 0.4,
    'camera_pan': 0.5,
    'border': 0.5,
}

TEMPLATE_SIZE = 256
JPEG_QUALITY = 90
_FIRST_EVENT_FRAME = 3
_FRAME_FILE = re.compile(r'^\d{8}\.jpg$')


@dataclass
class Sprite:
    """
    A textured shape and its pose in every frame.

    ``texture`` (S, S, 3) uint8 BGR and ``mask`` (S, S) uint8 (0 or 255) form the template;
    ``center`` (T, 2) is its centre in frame pixels (pixel centres at integers), ``size``
    (T, 2) the rendered width and height of the whole template square, ``angle`` (T,) the
    in-plane rotation in degrees (counter-clockwise on screen), ``blur`` (T, 2) the motion
    blur vector in pixels (zero = sharp) and ``visible`` (T,) whether it is drawn.
    """

    texture: np.ndarray
    mask: np.ndarray
    center: np.ndarray
    size: np.ndarray
    angle: np.ndarray
    blur: np.ndarray
    visible: np.ndarray
    _pyramid: Optional[List[Tuple[np.ndarray, np.ndarray]]] = field(
        default=None, repr=False, compare=False)

    @classmethod
    def constant(cls, texture: np.ndarray, mask: np.ndarray, frames: int,
                 center: Tuple[float, float], size: Tuple[float, float],
                 angle: float = 0.0) -> 'Sprite':
        """Return a sprite that holds one pose over ``frames`` frames (tests, examples)."""
        return cls(texture=np.ascontiguousarray(texture, dtype=np.uint8),
                   mask=np.ascontiguousarray(mask, dtype=np.uint8),
                   center=np.tile(np.asarray(center, dtype=np.float64), (frames, 1)),
                   size=np.tile(np.asarray(size, dtype=np.float64), (frames, 1)),
                   angle=np.full(frames, float(angle)), blur=np.zeros((frames, 2)),
                   visible=np.ones(frames, dtype=bool))

    def pyramid(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Return (texture, mask) at full, 1/2, 1/4 ... resolution (built once)."""
        # warpAffine samples bilinearly and aliases when it shrinks more than 2x, so a
        # strongly minified sprite is warped from a smaller level instead.
        if self._pyramid is None:
            levels = [(self.texture, self.mask)]
            while min(levels[-1][1].shape) >= 32:
                texture, mask = levels[-1]
                levels.append((cv2.pyrDown(texture), cv2.pyrDown(mask)))
            self._pyramid = levels
        return self._pyramid


@dataclass
class Scene:
    """
    Everything needed to render one sequence, frame by frame, without randomness.

    ``background`` is the canvas the camera pans over and ``camera`` (T, 2) int the top-left
    corner of the frame on it. Illumination: ``((pixel - 128) * contrast + 128) * gain + bias``,
    then multiplied by ``1 + spot_amplitude * gaussian(spot_center, spot_sigma)``.
    """

    size: Tuple[int, int]
    background: np.ndarray
    camera: np.ndarray
    target: Sprite
    distractors: List[Sprite]
    occluders: List[Sprite]
    gain: np.ndarray
    contrast: np.ndarray
    bias: np.ndarray
    spot_center: np.ndarray
    spot_sigma: float = 1.0
    spot_amplitude: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """Return the number of frames."""
        return len(self.camera)


@dataclass
class RenderedFrame:
    """
    One rendered frame and its exact labels.

    ``target_mask`` (H, W) bool is the object mask inside the frame, occluded parts included;
    ``visible_mask`` is its part not under an occluder. ``object_pixels`` counts the whole
    object (outside-the-frame part included), ``in_frame_pixels`` its part inside the frame.
    ``box`` is x, y, w, h (see the module docstring for the convention).
    """

    image: np.ndarray
    target_mask: np.ndarray
    visible_mask: np.ndarray
    box: Tuple[float, float, float, float]
    object_pixels: int
    in_frame_pixels: int
    visible_pixels: int
    cover: int
    absent: bool
    cut_by_image: bool


# --------------------------------------------------------------------------- sources


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


_ALL_SOURCES = frozenset(name for names in SPLIT_SOURCES.values() for name in names)


def _is_grey(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1])
                and np.array_equal(image[:, :, 1], image[:, :, 2]))


def sequence_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """Return the seed of sequence ``index`` of ``split``: independent of the worker count."""
    if seed < 0 or index < 0:
        raise ValueError(f'seed and index must be >= 0, got {seed} and {index}')
    return np.random.SeedSequence([int(seed), zlib.crc32(split.encode('utf-8')), int(index)])


# --------------------------------------------------------------------------- random helpers


def _smooth_noise(rng: np.random.Generator, frames: int, sigma: float) -> np.ndarray:
    """Return a smooth random curve of ``frames`` values scaled to max |value| = 1."""
    sigma = max(float(sigma), 0.5)
    radius = int(math.ceil(3 * sigma))
    noise = rng.standard_normal(frames + 2 * radius)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    curve = np.convolve(noise, kernel / kernel.sum(), mode='valid')[:frames]
    peak = np.abs(curve).max()
    return curve / peak if peak > 0 else curve


def _tint(rng: np.random.Generator, image: np.ndarray, strength: float) -> np.ndarray:
    """Multiply the colour channels by random gains around 1 (a colour cast)."""
    gains = 1.0 + strength * rng.uniform(-1.0, 1.0, size=3)
    return np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def _crop_texture(rng: np.random.Generator, source: np.ndarray, out: int,
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
    if _is_grey(source):
        texture = _tint(rng, texture, 0.45)
    return texture


def _shape_params(rng: np.random.Generator, kinds: Sequence[str]) -> Dict[str, Any]:
    """Draw the parameters of a shape of one of ``kinds``."""
    kind = str(kinds[int(rng.integers(len(kinds)))])
    if kind == 'ellipse':
        return {'kind': kind, 'axes': rng.uniform(0.65, 1.0, size=2).tolist()}
    if kind == 'rect':
        return {'kind': kind, 'axes': rng.uniform(0.6, 1.0, size=2).tolist(),
                'rounding': float(rng.uniform(0.0, 0.35))}
    vertices = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=vertices))
    return {'kind': 'polygon', 'angles': angles.tolist(),
            'radii': rng.uniform(0.6, 1.0, size=vertices).tolist(),
            'rounding': float(rng.uniform(0.04, 0.12))}


def _jitter_shape(rng: np.random.Generator, params: Dict[str, Any]) -> Dict[str, Any]:
    """Return a slightly different shape of the same family (a look-alike)."""
    params = dict(params)
    for key in ('axes', 'radii'):
        if key in params:
            values = np.asarray(params[key]) * rng.uniform(0.9, 1.1, size=len(params[key]))
            params[key] = np.clip(values, 0.4, 1.0).tolist()
    return params


def _shape_mask(params: Dict[str, Any], size: int) -> np.ndarray:
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


def _add_border(rng: np.random.Generator, texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Draw a coloured band along the inside of the shape's outline."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    thickness = int(rng.integers(6, 16))
    out = texture.copy()
    cv2.drawContours(out, contours, -1, colour, thickness)
    return out


# --------------------------------------------------------------------------- trajectories


def _schedule(rng: np.random.Generator, frames: int,
              requests: List[Tuple[str, int]]) -> List[Tuple[str, int, int]]:
    """Place events (kind, length) in disjoint windows from frame 3 on; drop what won't fit."""
    taken = np.zeros(frames + 1, dtype=bool)
    taken[:_FIRST_EVENT_FRAME] = True
    events = []
    for kind, length in requests:
        last_start = frames - length
        if last_start < _FIRST_EVENT_FRAME:
            continue
        for _ in range(25):
            start = int(rng.integers(_FIRST_EVENT_FRAME, last_start + 1))
            # One free frame either side, so two spells never merge into a long one.
            window = taken[max(start - 1, 0):start + length + 1]
            if not window.any():
                taken[start:start + length] = True
                events.append((kind, start, length))
                break
    return sorted(events, key=lambda event: event[1])


def _random_walk(rng: np.random.Generator, frames: int, size: Tuple[int, int],
                 radius: np.ndarray, speed: float, fast: np.ndarray, slack: float,
                 start: Optional[np.ndarray] = None) -> np.ndarray:
    """
    Return (T, 2) centres of a momentum random walk reflected at the frame's edges.

    The centre stays ``radius + 2 - slack`` from every edge: ``slack = 0`` keeps the bounding
    circle inside the frame. ``fast`` frames jump by about an object size per frame.
    """
    width, height = size
    centres = np.empty((frames, 2))
    lo = radius[0] + 2 - slack
    if start is None:
        start = np.array([rng.uniform(lo, max(lo, width - lo)),
                          rng.uniform(lo, max(lo, height - lo))])
    position = start.astype(np.float64)
    heading = rng.uniform(0, 2 * np.pi)
    velocity = speed * rng.uniform(0.2, 1.0) * np.array([np.cos(heading), np.sin(heading)])
    for t in range(frames):
        lo = radius[t] + 2 - slack
        bounds = np.array([[lo, width - 1 - lo], [lo, height - 1 - lo]])
        if t > 0:
            if fast[t]:
                heading = math.atan2(velocity[1], velocity[0]) + rng.normal(0, 0.9)
                jump = rng.uniform(0.7, 1.6) * 2 * radius[t]
                jump = min(jump, 0.35 * max(width, height))
                velocity = jump * np.array([np.cos(heading), np.sin(heading)])
            else:
                if fast[t - 1]:
                    velocity *= speed / max(np.linalg.norm(velocity), 1e-9)
                velocity = 0.85 * velocity + rng.normal(0, 0.35 * speed, size=2)
                norm = np.linalg.norm(velocity)
                if norm > speed:
                    velocity *= speed / norm
            position = position + velocity
        for axis in range(2):
            low, high = bounds[axis]
            if low >= high:
                position[axis] = (low + high) / 2
                continue
            for _ in range(4):
                if position[axis] < low:
                    position[axis] = 2 * low - position[axis]
                    velocity[axis] = abs(velocity[axis])
                elif position[axis] > high:
                    position[axis] = 2 * high - position[axis]
                    velocity[axis] = -abs(velocity[axis])
            position[axis] = min(max(position[axis], low), high)
        centres[t] = position
    return centres


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


# --------------------------------------------------------------------------- scene building


def build_scene(seed: Union[int, np.random.SeedSequence], frames: int,
                size: Tuple[int, int] = (480, 360),
                sources: Sequence[str] = SPLIT_SOURCES['train']) -> Scene:
    """
    Draw one sequence: its images, attributes, events and every per-frame pose.

    ``sources`` are the images this sequence may use (at least three: background, target and
    occluder are always different images). Pure function of the arguments.
    """
    width, height = (int(size[0]), int(size[1]))
    if width < 32 or height < 32:
        raise ValueError(f'frame size must be at least 32x32, got {width}x{height}')
    if frames < 1:
        raise ValueError(f'frames must be >= 1, got {frames}')
    sources = list(dict.fromkeys(sources))
    if len(sources) < 3:
        raise ValueError(f'need at least 3 distinct source images, got {sources}')
    rng = np.random.default_rng(seed)
    attributes = {name: bool(rng.random() < p) for name, p in ATTRIBUTE_PROBABILITIES.items()}
    attributes['motion_blur'] = attributes['motion_blur'] and attributes['fast_motion']
    order = [sources[i] for i in rng.permutation(len(sources))]
    background_name, target_name, occluder_name = order[0], order[1], order[2]
    short = min(width, height)
    frame_ids = np.arange(frames)

    # Events first: the trajectories depend on them.
    requests: List[Tuple[str, int]] = []
    if attributes['out_of_view']:
        ramp = int(np.clip(frames // 25, 2, 5))
        plateau = int(rng.integers(1, int(np.clip(frames // 12, 1, 8)) + 1))
        requests += [('out_of_view', 2 * ramp + plateau)] * (1 + int(frames >= 150))
    if attributes['occlusion']:
        low, high = int(np.clip(frames // 12, 4, 10)), int(np.clip(frames // 6, 5, 20))
        requests += [('occlusion', int(rng.integers(low, high + 1)))
                     for _ in range(int(rng.integers(1, 3)))]
    if attributes['fast_motion']:
        high = int(np.clip(frames // 8, 3, 12))
        requests += [('fast_motion', int(rng.integers(2, high + 1)))
                     for _ in range(int(rng.integers(1, 3)))]
    requests = [requests[i] for i in rng.permutation(len(requests))]
    events = _schedule(rng, frames, requests)
    # An attribute whose events did not fit into a short sequence is not claimed.
    for kind in ('out_of_view', 'occlusion', 'fast_motion'):
        attributes[kind] = any(event[0] == kind for event in events)
    attributes['motion_blur'] = attributes['motion_blur'] and attributes['fast_motion']
    fast = np.zeros(frames, dtype=bool)
    for kind, start, length in events:
        if kind == 'fast_motion':
            fast[start:start + length] = True

    # Target size, aspect and rotation.
    smin, smax = max(10.0, 0.06 * short), 0.55 * short
    base = rng.uniform(0.18, 0.34) * short
    log_scale = np.zeros(frames)
    if attributes['scale_change']:
        ratio = math.log(rng.uniform(1.5, 3.0))
        if rng.random() < 0.5:
            ramp = _smoothstep(np.clip(frame_ids / max(frames - 1, 1), 0, 1))
            log_scale = ratio * ramp * (1 if rng.random() < 0.5 else -1)
        else:
            curve = _smooth_noise(rng, frames, frames / 6)
            log_scale = 0.5 * ratio * (curve - curve[0])
    scale = np.clip(base * np.exp(log_scale), smin, smax)
    log_aspect = rng.uniform(-0.45, 0.45) * np.ones(frames)
    if attributes['aspect_change']:
        curve = _smooth_noise(rng, frames, frames / 5)
        log_aspect = log_aspect + 0.35 * (curve - curve[0])
    target_size = np.stack([scale * np.exp(log_aspect / 2), scale * np.exp(-log_aspect / 2)], 1)
    target_size *= np.minimum(1.0, smax / target_size.max(axis=1))[:, None]
    angle = np.full(frames, rng.uniform(-20, 20) if rng.random() < 0.5 else 0.0)
    if attributes['rotation']:
        spin = rng.uniform(1.0, 6.0) * (1 if rng.random() < 0.5 else -1)
        wobble = _smooth_noise(rng, frames, frames / 8)
        angle = angle + spin * frame_ids + 25.0 * (wobble - wobble[0])
    radius = 0.5 * np.hypot(target_size[:, 0], target_size[:, 1])

    speed = rng.uniform(0.004, 0.02) * max(width, height)
    center = _random_walk(rng, frames, (width, height), radius, speed, fast, slack=0.0)

    # Out-of-view spells: push the object across its nearest edge and bring it back.
    for kind, start, length in events:
        if kind != 'out_of_view':
            continue
        ramp = int(np.clip(frames // 25, 2, 5))
        weight = np.ones(length)
        rise = _smoothstep((np.arange(1, ramp + 1)) / (ramp + 1))
        weight[:ramp], weight[length - ramp:] = rise, rise[::-1]
        middle = center[start + length // 2]
        edges = np.array([middle[0], width - 1 - middle[0], middle[1], height - 1 - middle[1]])
        side = int(np.argmin(edges))
        direction = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]][side], dtype=np.float64)
        span = slice(start, start + length)
        position = center[span, side // 2]
        distance = position if side % 2 == 0 else (width, height)[side // 2] - 1 - position
        reach = distance + radius[span] + 3.0
        center[span] += (weight * reach)[:, None] * direction

    pyramid_size = TEMPLATE_SIZE
    target_source = load_source(target_name)
    texture = _crop_texture(rng, target_source, pyramid_size, (0.2, 0.6))
    shape = _shape_params(rng, ('ellipse', 'rect', 'polygon'))
    mask = _shape_mask(shape, pyramid_size)
    if attributes['border']:
        texture = _add_border(rng, texture, mask)
    blur = np.zeros((frames, 2))
    if attributes['motion_blur']:
        exposure = rng.uniform(0.5, 1.0)
        blur[1:] = exposure * np.diff(center, axis=0)
        blur[1:][~fast[1:]] = 0.0
    target = Sprite(texture, mask, center, target_size, angle, blur, np.ones(frames, bool))

    # Look-alike distractors: the target's texture and shape family, another tint and path.
    distractors = []
    if attributes['distractors']:
        for _ in range(int(rng.integers(1, 3))):
            look = _tint(rng, texture, rng.uniform(0.1, 0.5))
            if rng.random() < 0.3:
                look = np.ascontiguousarray(look[:, :, [1, 2, 0]])
            d_mask = _shape_mask(_jitter_shape(rng, shape), pyramid_size)
            d_size = target_size * rng.uniform(0.8, 1.2)
            d_radius = 0.5 * np.hypot(d_size[:, 0], d_size[:, 1])
            start = None
            for _ in range(20):
                # Start away from the target so the first frame's template is clean.
                candidate = rng.uniform([0, 0], [width - 1, height - 1])
                if np.linalg.norm(candidate - center[0]) > radius[0] + d_radius[0] + 4:
                    start = candidate
                    break
            if start is None:
                continue
            d_center = _random_walk(rng, frames, (width, height), d_radius,
                                    rng.uniform(0.5, 1.5) * speed, np.zeros(frames, bool),
                                    slack=float(d_radius.max()), start=start)
            d_angle = angle + rng.uniform(-40, 40)
            distractors.append(Sprite(look, d_mask, d_center, d_size, d_angle,
                                      np.zeros((frames, 2)), np.ones(frames, bool)))

    # Occluders: patches of another image crossing in front of the target on a straight line.
    occluders = []
    occluder_source = load_source(occluder_name)
    for kind, start, length in events:
        if kind != 'occlusion':
            continue
        span = np.arange(start, start + length)
        r_mid = radius[start + length // 2]
        full = rng.random() < 0.5
        if full:
            # Large enough to swallow the target's bounding circle when centred on it.
            o_shape = {'kind': 'rect', 'axes': [1.0, 1.0], 'rounding': 0.0}
            side = 2 * r_mid * rng.uniform(1.3, 1.9)
            o_size = np.array([side * rng.uniform(1.0, 1.4), side])
            lateral = 0.0
        else:
            o_shape = _shape_params(rng, ('rect', 'ellipse', 'polygon'))
            o_size = 2 * r_mid * rng.uniform(0.5, 1.0, size=2)
            lateral = rng.uniform(-0.6, 0.6) * r_mid
        o_texture = _crop_texture(rng, occluder_source, pyramid_size, (0.25, 0.7))
        o_mask = _shape_mask(o_shape, pyramid_size)
        heading = rng.uniform(0, 2 * np.pi)
        along = np.array([np.cos(heading), np.sin(heading)])
        across = np.array([-along[1], along[0]])
        reach = r_mid + 0.5 * np.hypot(*o_size) + 2.0
        anchor_from, anchor_to = center[start], center[start + length - 1]
        phase = (np.arange(length) + 0.5) / length
        anchor = anchor_from + (anchor_to - anchor_from) * phase[:, None]
        o_center = np.zeros((frames, 2))
        o_center[span] = anchor + np.outer((2 * phase - 1) * reach, along) + lateral * across
        o_angle = np.zeros(frames)
        o_angle[span] = np.degrees(heading) if not full else rng.uniform(-10, 10)
        o_sizes = np.tile(o_size, (frames, 1))
        visible = np.zeros(frames, bool)
        visible[span] = True
        occluders.append(Sprite(o_texture, o_mask, o_center, o_sizes, o_angle,
                                np.zeros((frames, 2)), visible))

    # Background canvas and camera path.
    pan = np.zeros(2, dtype=int)
    if attributes['camera_pan']:
        pan = np.round(rng.uniform(0.1, 0.3) * np.array([width, height])).astype(int)
    canvas_w, canvas_h = width + 2 * pan[0], height + 2 * pan[1]
    background_source = load_source(background_name)
    src_h, src_w = background_source.shape[:2]
    zoom = max(canvas_w / src_w, canvas_h / src_h) * rng.uniform(1.0, 1.6)
    scaled_w = max(canvas_w, int(math.ceil(src_w * zoom)))
    scaled_h = max(canvas_h, int(math.ceil(src_h * zoom)))
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(background_source, (scaled_w, scaled_h), interpolation=interpolation)
    y0 = int(rng.integers(0, scaled_h - canvas_h + 1))
    x0 = int(rng.integers(0, scaled_w - canvas_w + 1))
    background = scaled[y0:y0 + canvas_h, x0:x0 + canvas_w]
    if rng.random() < 0.5:
        background = background[:, ::-1]
    if rng.random() < 0.1:
        background = background[::-1]
    if _is_grey(background_source):
        background = _tint(rng, background, 0.2)
    background = np.ascontiguousarray(background)
    camera = np.tile(pan, (frames, 1))
    if attributes['camera_pan']:
        path = np.stack([_smooth_noise(rng, frames, frames / 5),
                         _smooth_noise(rng, frames, frames / 5)], axis=1)
        camera = np.clip(np.round(pan * (1 + path)), 0, 2 * pan).astype(int)

    # Illumination.
    gain, contrast, bias = np.ones(frames), np.ones(frames), np.zeros(frames)
    if attributes['illumination']:
        gain = np.exp(rng.uniform(0.2, 0.45) * _smooth_noise(rng, frames, frames / 6))
        contrast = np.exp(0.25 * _smooth_noise(rng, frames, frames / 6))
        bias = 15.0 * _smooth_noise(rng, frames, frames / 6)
    spot_center = np.zeros((frames, 2))
    spot_sigma, spot_amplitude = 1.0, 0.0
    if attributes['light_spot']:
        spot_center = np.stack([(0.5 + 0.5 * _smooth_noise(rng, frames, frames / 5)) * width,
                                (0.5 + 0.5 * _smooth_noise(rng, frames, frames / 5)) * height],
                               axis=1)
        spot_sigma = float(rng.uniform(0.15, 0.35) * max(width, height))
        spot_amplitude = float(rng.uniform(0.3, 0.7) * (1 if rng.random() < 0.7 else -1))

    info = {
        'sources': {'background': background_name, 'target': target_name,
                    'occluder': occluder_name},
        'shape': shape['kind'],
        'attributes': attributes,
        'events': [{'kind': kind, 'start': start, 'length': length}
                   for kind, start, length in events],
        'distractors': len(distractors),
    }
    return Scene((width, height), background, camera, target, distractors, occluders, gain,
                 contrast, bias, spot_center, spot_sigma, spot_amplitude, info)


# --------------------------------------------------------------------------- rendering


def _line_kernel(vector: np.ndarray) -> np.ndarray:
    """Return a normalised line kernel along ``vector`` (motion blur)."""
    length = float(np.hypot(*vector))
    half = int(math.ceil(length / 2)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    dx, dy = vector / 2.0
    shift = 4  # cv2.line's fixed-point bits, so the line is sub-pixel accurate
    scale = 1 << shift
    p0 = (int(round((half - dx) * scale)), int(round((half - dy) * scale)))
    p1 = (int(round((half + dx) * scale)), int(round((half + dy) * scale)))
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, shift)
    return kernel / kernel.sum()


def _warp_sprite(sprite: Sprite, t: int, pad: int = 0
                 ) -> Tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """
    Warp a sprite into a local window around its footprint.

    Return the window's top-left corner (x0, y0) in frame pixels, the texture (h, w, 3)
    float32, the soft alpha (h, w) float32 and the object mask (alpha >= 0.5) as bool.
    """
    width, height = sprite.size[t]
    levels = sprite.pyramid()
    level = 0
    while level + 1 < len(levels) and levels[level + 1][1].shape[0] >= max(width, height):
        level += 1
    texture, mask = levels[level]
    side = mask.shape[0]
    theta = math.radians(sprite.angle[t])
    cos, sin = math.cos(theta), math.sin(theta)
    # Screen y points down, so a counter-clockwise rotation on screen uses -sin above.
    linear = np.array([[cos, sin], [-sin, cos]]) @ np.diag([width / side, height / side])
    middle = (side - 1) / 2.0
    corners = np.array([[-0.5, -0.5], [side - 0.5, -0.5], [-0.5, side - 0.5],
                        [side - 0.5, side - 0.5]]) - middle
    footprint = corners @ linear.T + sprite.center[t]
    x0 = int(math.floor(footprint[:, 0].min())) - 1 - pad
    y0 = int(math.floor(footprint[:, 1].min())) - 1 - pad
    x1 = int(math.ceil(footprint[:, 0].max())) + 2 + pad
    y1 = int(math.ceil(footprint[:, 1].max())) + 2 + pad
    matrix = np.empty((2, 3))
    matrix[:, :2] = linear
    matrix[:, 2] = sprite.center[t] - linear @ np.array([middle, middle]) - np.array([x0, y0])
    window = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(texture, matrix, window, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, matrix, window, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    binary = alpha >= 128
    return x0, y0, warped.astype(np.float32), alpha.astype(np.float32) / 255.0, binary


def _overlap(x0: int, y0: int, shape: Tuple[int, int], width: int, height: int
             ) -> Optional[Tuple[slice, slice, slice, slice]]:
    """Return (frame rows, frame cols, local rows, local cols) of a window inside the frame."""
    h, w = shape
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1), slice(fy0 - y0, fy1 - y0),
            slice(fx0 - x0, fx1 - x0))


def _draw(frame: np.ndarray, sprite: Sprite, t: int,
          masks: Iterable[np.ndarray] = ()) -> Tuple[int, int, np.ndarray]:
    """Composite a sprite onto ``frame``; OR its object mask into ``masks``; return it local."""
    height, width = frame.shape[:2]
    vector = sprite.blur[t]
    blurred = float(np.hypot(*vector)) >= 1.5
    pad = int(math.ceil(np.hypot(*vector) / 2)) + 2 if blurred else 0
    x0, y0, texture, alpha, binary = _warp_sprite(sprite, t, pad)
    premultiplied = texture * alpha[:, :, None]
    if blurred:
        kernel = _line_kernel(vector)
        premultiplied = cv2.filter2D(premultiplied, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    region = _overlap(x0, y0, binary.shape, width, height)
    if region is not None:
        rows, cols, local_rows, local_cols = region
        a = alpha[local_rows, local_cols, None]
        frame[rows, cols] = frame[rows, cols] * (1.0 - a) + premultiplied[local_rows, local_cols]
        for mask in masks:
            mask[rows, cols] |= binary[local_rows, local_cols]
    return x0, y0, binary


def cover_label(visible: int, total: int) -> int:
    """Return the GOT-10k-style cover label: visible fraction in eighths, 0/8 exact."""
    if visible <= 0 or total <= 0:
        return 0
    if visible >= total:
        return 8
    return int(min(7, max(1, (16 * visible + total) // (2 * total))))


def mask_box(mask: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """Return the tight x, y, w, h box of a boolean mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1))


def render_frame(scene: Scene, t: int) -> RenderedFrame:
    """Render frame ``t`` (0-based) of a scene with its exact labels."""
    width, height = scene.size
    cx, cy = (int(v) for v in scene.camera[t])
    frame = scene.background[cy:cy + height, cx:cx + width].astype(np.float32)
    for sprite in scene.distractors:
        if sprite.visible[t]:
            _draw(frame, sprite, t)
    target_mask = np.zeros((height, width), bool)
    x0, y0, full_mask = _draw(frame, scene.target, t, (target_mask,))
    occluded = np.zeros((height, width), bool)
    for sprite in scene.occluders:
        if sprite.visible[t]:
            _draw(frame, sprite, t, (occluded,))
    visible_mask = target_mask & ~occluded

    gain, contrast, bias = scene.gain[t], scene.contrast[t], scene.bias[t]
    if gain != 1.0 or contrast != 1.0 or bias != 0.0:
        frame = ((frame - 128.0) * np.float32(contrast) + 128.0) * np.float32(gain)
        frame += np.float32(bias)
    if scene.spot_amplitude != 0.0:
        # Separable Gaussian: an outer product instead of an (H, W) exp.
        gx = np.exp(-0.5 * ((np.arange(width) - scene.spot_center[t, 0]) / scene.spot_sigma) ** 2)
        gy = np.exp(-0.5 * ((np.arange(height) - scene.spot_center[t, 1]) / scene.spot_sigma) ** 2)
        light = 1.0 + scene.spot_amplitude * np.outer(gy, gx).astype(np.float32)
        frame *= light[:, :, None]
    np.clip(frame, 0, 255, out=frame)
    image = (frame + 0.5).astype(np.uint8)

    total = int(np.count_nonzero(full_mask))
    in_frame = int(np.count_nonzero(target_mask))
    visible = int(np.count_nonzero(visible_mask))
    box = mask_box(target_mask)
    if box is None:
        local = mask_box(full_mask)
        if local is None:  # degenerate (sub-pixel) object: a box at its centre
            cx_t, cy_t = scene.target.center[t]
            box = (int(round(cx_t)), int(round(cy_t)), 1, 1)
        else:
            box = (local[0] + x0, local[1] + y0, local[2], local[3])
    cover = cover_label(visible, total)
    return RenderedFrame(image=image, target_mask=target_mask, visible_mask=visible_mask,
                         box=tuple(float(v) for v in box), object_pixels=total,
                         in_frame_pixels=in_frame, visible_pixels=visible, cover=cover,
                         absent=cover == 0, cut_by_image=in_frame < total)


# --------------------------------------------------------------------------- writing


def sequence_name(split: str, index: int) -> str:
    """Return the directory name of sequence ``index`` (0-based), GOT-10k style."""
    return f'Synthetic_{split.capitalize()}_{index + 1:06d}'


def _meta_info(name: str, scene: Scene) -> str:
    # GOT-10k readers (pytracking) take the classes from lines 5..9 by position.
    attributes = [k for k, v in scene.info['attributes'].items() if v]
    lines = ['[METAINFO]', f'url: synthetic://{name}', 'begin: 00:00:00', 'end: 00:00:00',
             'anno_fps: 10Hz', f'object_class: synthetic {scene.info["shape"]}',
             'motion_class: synthetic motion', 'major_class: synthetic',
             'root_class: object', 'motion_adverb: ' + (', '.join(attributes) or 'plainly'),
             f'resolution: ({scene.size[0]}, {scene.size[1]})']
    return '\n'.join(lines) + '\n'


def write_sequence(scene: Scene, directory: str, quality: int = JPEG_QUALITY
                   ) -> Dict[str, Any]:
    """Render every frame of ``scene`` into ``directory``; return its statistics."""
    os.makedirs(directory, exist_ok=True)
    for stale in os.listdir(directory):
        if _FRAME_FILE.match(stale):
            os.remove(os.path.join(directory, stale))
    boxes, absence, cover, cut = [], [], [], []
    occluded_frames = out_of_view_frames = blurred_frames = 0
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    for t in range(scene.num_frames):
        rendered = render_frame(scene, t)
        path = os.path.join(directory, f'{t + 1:08d}.jpg')
        if not cv2.imwrite(path, rendered.image, params):
            raise OSError(f'cannot write {path}')
        boxes.append(','.join(f'{v:.4f}' for v in rendered.box))
        absence.append(int(rendered.absent))
        cover.append(rendered.cover)
        cut.append(int(rendered.cut_by_image))
        occluded_frames += int(rendered.visible_pixels < rendered.in_frame_pixels)
        out_of_view_frames += int(rendered.in_frame_pixels == 0)
        blurred_frames += int(np.hypot(*scene.target.blur[t]) >= 1.5)
    if cover[0] != 8:
        raise RuntimeError(f'{directory}: the target is not fully visible in the first frame')

    def write_lines(name: str, values: Sequence[Any]) -> None:
        with open(os.path.join(directory, name), 'w', encoding='utf-8', newline='\n') as f:
            f.write(''.join(f'{v}\n' for v in values))

    write_lines('groundtruth.txt', boxes)
    write_lines('absence.label', absence)
    write_lines('cover.label', cover)
    write_lines('cut_by_image.label', cut)
    name = os.path.basename(os.path.normpath(directory))
    with open(os.path.join(directory, 'meta_info.ini'), 'w', encoding='utf-8') as f:
        f.write(_meta_info(name, scene))
    stats = {
        'frames': scene.num_frames,
        'absent_frames': int(sum(absence)),
        'occluded_frames': occluded_frames,
        'out_of_view_frames': out_of_view_frames,
        'cut_by_image_frames': int(sum(cut)),
        'fast_motion_frames': int(sum(e['length'] for e in scene.info['events']
                                      if e['kind'] == 'fast_motion')),
        'blurred_frames': blurred_frames,
        'min_cover': int(min(cover)),
    }
    record = {**scene.info, 'name': name, 'size': list(scene.size), 'stats': stats}
    with open(os.path.join(directory, 'synthetic.json'), 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write('\n')
    return record


def _generate_one(job: Tuple[str, str, int, int, int, Tuple[int, int], Tuple[str, ...], int]
                  ) -> Dict[str, Any]:
    root, split, index, seed, frames, size, sources, quality = job
    scene = build_scene(sequence_seed(seed, split, index), frames, size, sources)
    scene.info['seed'] = {'seed': seed, 'split': split, 'index': index}
    directory = os.path.join(root, split, sequence_name(split, index))
    return write_sequence(scene, directory, quality)


def _worker_init() -> None:
    # One OpenCV thread per process: the pool already uses the cores.
    cv2.setNumThreads(1)


def generate_dataset(root: str, split: str, num_sequences: int, frames: int,
                     size: Tuple[int, int] = (480, 360), seed: int = 0,
                     sources: Optional[Sequence[str]] = None, workers: int = 1,
                     quality: int = JPEG_QUALITY, overwrite: bool = False,
                     progress: Optional[Callable[[Dict[str, Any]], None]] = None
                     ) -> Dict[str, Any]:
    """
    Write ``num_sequences`` sequences of ``frames`` frames into ``root/split`` (GOT-10k layout).

    ``sources`` defaults to ``SPLIT_SOURCES[split]``. Sequence ``i`` is a pure function of
    ``(seed, split, i, frames, size, sources)``, whatever ``workers`` is. An existing
    non-empty split directory is an error unless ``overwrite`` (then the sequences written
    now replace theirs). ``progress`` is called with each sequence's record as it finishes.
    Return a summary: counts of sequences, frames, absent frames, per-attribute sequence
    counts, the sequence names and the wall time.
    """
    if sources is None:
        if split not in SPLIT_SOURCES:
            raise ValueError(f'no default sources for split {split!r}; pass sources= or use '
                             f'one of {sorted(SPLIT_SOURCES)}')
        sources = SPLIT_SOURCES[split]
    sources = tuple(sources)
    for name in sources:
        if name not in _ALL_SOURCES:
            raise ValueError(f'unknown source image {name!r}; choose from '
                             f'{sorted(_ALL_SOURCES)}')
    if num_sequences < 1 or frames < 1:
        raise ValueError('num_sequences and frames must be >= 1')
    size = (int(size[0]), int(size[1]))
    split_dir = os.path.join(os.fspath(root), split)
    if os.path.isdir(split_dir) and os.listdir(split_dir) and not overwrite:
        raise FileExistsError(f'{split_dir} exists and is not empty (use overwrite)')
    os.makedirs(split_dir, exist_ok=True)
    started = time.perf_counter()
    jobs = [(os.fspath(root), split, i, int(seed), int(frames), size, sources, int(quality))
            for i in range(num_sequences)]
    records: List[Dict[str, Any]] = []
    if workers > 1 and num_sequences > 1:
        # spawn, not fork: the caller may hold threads (PyTorch, OpenCV) a fork would break.
        context = multiprocessing.get_context('spawn')
        with context.Pool(min(workers, num_sequences), initializer=_worker_init) as pool:
            for record in pool.imap(_generate_one, jobs):
                records.append(record)
                if progress is not None:
                    progress(record)
    else:
        for job in jobs:
            records.append(_generate_one(job))
            if progress is not None:
                progress(records[-1])
    names = [record['name'] for record in records]
    with open(os.path.join(split_dir, 'list.txt'), 'w', encoding='utf-8') as f:
        f.write(''.join(f'{name}\n' for name in names))
    with open(os.path.join(split_dir, 'synthetic.json'), 'w', encoding='utf-8') as f:
        json.dump({'split': split, 'sequences': num_sequences, 'frames': frames,
                   'size': list(size), 'seed': int(seed), 'sources': list(sources),
                   'quality': int(quality)}, f, indent=1, sort_keys=True)
        f.write('\n')
    attribute_counts = {name: sum(int(r['attributes'][name]) for r in records)
                        for name in ATTRIBUTE_PROBABILITIES}
    return {
        'root': os.fspath(root),
        'split': split,
        'sequences': len(records),
        'frames': sum(r['stats']['frames'] for r in records),
        'absent_frames': sum(r['stats']['absent_frames'] for r in records),
        'occluded_frames': sum(r['stats']['occluded_frames'] for r in records),
        'out_of_view_frames': sum(r['stats']['out_of_view_frames'] for r in records),
        'attributes': attribute_counts,
        'names': names,
        'wall_time_s': time.perf_counter() - started,
    }
