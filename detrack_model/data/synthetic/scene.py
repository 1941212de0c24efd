"""
Scene sampling: one sequence's images, attributes, events and every per-frame pose.

:func:`build_scene` is a pure function of its arguments; rendering (``render.py``) turns the
:class:`Scene` into frames without further randomness.
"""

from dataclasses import dataclass, field
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
from detrack_model.data.synthetic.motion import random_walk, schedule, smooth_noise
from detrack_model.data.synthetic.sources import (is_grey, load_object, load_texture,
                                                  ObjectSource, SourceSet)
from detrack_model.data.synthetic.sprites import (add_border, crop_texture, jitter_shape,
                                                  radius_of, shape_mask, shape_params,
                                                  smoothstep, Sprite, TEMPLATE_SIZE, tint)
import numpy as np

# Probability that a sequence has each attribute; sampled independently, so some sequences
# have none (easy) and some have many (hard). The ``pool`` group applies only when the source
# set has cut-out objects.
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
    'camera_zoom': 0.3,
    'camera_rotation': 0.2,
    'perspective': 0.3,
    'sensor_noise': 0.3,
    'jpeg_artefacts': 0.25,
    'exposure': 0.2,
    'small_target': 0.15,
    'large_target': 0.1,
    'clutter': 0.6,
}
# With pool objects, the target is a cut-out object this often (else a textured shape).
OBJECT_TARGET_PROBABILITY = 0.8
# Photographs are a minority of the pool (clip-art dominates) but what cameras see: an object
# target is a photograph this often when the split has any.
PHOTO_TARGET_PROBABILITY = 0.5
SMALLEST_TARGET = 12.0


@dataclass
class Scene:
    """
    Everything needed to render one sequence, frame by frame, without randomness.

    ``background`` is the canvas the camera looks at: ``camera`` (T, 2) is the top-left corner
    of the frame on it at zoom 1, ``camera_zoom`` (T,) magnifies about the frame centre and
    ``camera_angle`` (T,) rotates the view in degrees. Illumination:
    ``((pixel - 128) * contrast + 128) * gain + bias``, then multiplied by
    ``1 + spot_amplitude * gaussian(spot_centre, spot_sigma)``; then Gaussian sensor noise of
    ``noise_sigma`` grey levels and, with ``jpeg_quality`` > 0, a JPEG round trip.
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
    spot_centre: np.ndarray
    spot_sigma: float = 1.0
    spot_amplitude: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)
    camera_zoom: Optional[np.ndarray] = None
    camera_angle: Optional[np.ndarray] = None
    noise_sigma: float = 0.0
    noise_seed: int = 0
    jpeg_quality: int = 0

    def __post_init__(self) -> None:
        """Set a still camera (no zoom, no rotation) when none is given."""
        if self.camera_zoom is None:
            self.camera_zoom = np.ones(len(self.camera))
        if self.camera_angle is None:
            self.camera_angle = np.zeros(len(self.camera))

    @property
    def num_frames(self) -> int:
        """Return the number of frames."""
        return len(self.camera)


@dataclass
class _Draw:
    """The random stream and the fixed facts every part of one scene is drawn from."""

    rng: np.random.Generator
    frames: int
    width: int
    height: int
    sources: SourceSet
    attributes: Dict[str, bool]

    @property
    def short(self) -> int:
        return min(self.width, self.height)

    def choice(self, items: Sequence[Any]) -> Any:
        return items[int(self.rng.integers(len(items)))]


def _attributes(rng: np.random.Generator, has_objects: bool) -> Dict[str, bool]:
    attributes = {name: bool(rng.random() < p) for name, p in ATTRIBUTE_PROBABILITIES.items()}
    attributes['clutter'] = attributes['clutter'] and has_objects
    if attributes['small_target'] and attributes['large_target']:
        attributes['large_target'] = False
    return attributes


def _events(d: _Draw) -> List[Tuple[str, int, int]]:
    """Schedule occlusions, out-of-view and fast-motion spells; drop claims that don't fit."""
    rng, frames, attributes = d.rng, d.frames, d.attributes
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
    events = schedule(rng, frames, requests)
    for kind in ('out_of_view', 'occlusion', 'fast_motion'):
        attributes[kind] = any(event[0] == kind for event in events)
    attributes['motion_blur'] = attributes['motion_blur'] and attributes['fast_motion']
    return events


def _camera(d: _Draw) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return pan margins (2,), camera (T, 2), zoom (T,) and angle (T,) curves."""
    rng, frames, attributes = d.rng, d.frames, d.attributes
    zoom = np.ones(frames)
    if attributes['camera_zoom']:
        curve = smooth_noise(rng, frames, frames / 4)
        zoom = np.exp(rng.uniform(0.15, 0.4) * (curve - curve[0]))
    angle = np.zeros(frames)
    if attributes['camera_rotation']:
        curve = smooth_noise(rng, frames, frames / 4)
        angle = rng.uniform(4.0, 15.0) * (curve - curve[0])
    pan = np.zeros(2)
    path = np.zeros((frames, 2))
    if attributes['camera_pan']:
        pan = np.round(rng.uniform(0.1, 0.3) * np.array([d.width, d.height]))
        path = np.stack([smooth_noise(rng, frames, frames / 5),
                         smooth_noise(rng, frames, frames / 5)], axis=1)
    # The view is a rotated, zoomed rectangle about the frame centre: keep it on the canvas.
    cos, sin = np.abs(np.cos(np.radians(angle))), np.abs(np.sin(np.radians(angle)))
    reach_x = ((d.width * cos + d.height * sin) / zoom).max()
    reach_y = ((d.width * sin + d.height * cos) / zoom).max()
    margin = np.ceil(np.maximum([(reach_x - d.width) / 2, (reach_y - d.height) / 2], 0))
    camera = margin + np.round(pan * (1 + path))
    if not attributes['camera_zoom'] and not attributes['camera_rotation']:
        camera = np.round(camera)
    return margin + pan, camera, zoom, angle


def _background(d: _Draw, name: str, extra: np.ndarray) -> np.ndarray:
    """Cut the canvas (frame plus ``extra`` on each side) from a background image."""
    rng = d.rng
    canvas_w, canvas_h = d.width + 2 * int(extra[0]), d.height + 2 * int(extra[1])
    source = load_texture(name)
    src_h, src_w = source.shape[:2]
    zoom = max(canvas_w / src_w, canvas_h / src_h) * rng.uniform(1.0, 1.6)
    scaled_w = max(canvas_w, int(math.ceil(src_w * zoom)))
    scaled_h = max(canvas_h, int(math.ceil(src_h * zoom)))
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(source, (scaled_w, scaled_h), interpolation=interpolation)
    y0 = int(rng.integers(0, scaled_h - canvas_h + 1))
    x0 = int(rng.integers(0, scaled_w - canvas_w + 1))
    background = scaled[y0:y0 + canvas_h, x0:x0 + canvas_w]
    if rng.random() < 0.5:
        background = background[:, ::-1]
    if rng.random() < 0.1:
        background = background[::-1]
    if is_grey(source):
        background = tint(rng, background, 0.2)
    return np.ascontiguousarray(background)


def _paste(canvas: np.ndarray, texture: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend a texture onto the canvas with its top-left corner at (x, y), clipped."""
    h, w = alpha.shape
    ch, cw = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, cw), min(y + h, ch)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None].astype(np.float32) / 255.0
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    region = region * (1.0 - a) + texture[y0 - y:y1 - y, x0 - x:x1 - x] * a
    canvas[y0:y1, x0:x1] = (region + 0.5).astype(np.uint8)


def _clutter(d: _Draw, canvas: np.ndarray, exclude: str) -> int:
    """Paste still objects from the pool onto the canvas (they move with the background)."""
    rng, objects = d.rng, [o for o in d.sources.objects if o.key != exclude]
    if not objects:
        return 0
    count = int(rng.integers(3, 13))
    ch, cw = canvas.shape[:2]
    for _ in range(count):
        texture, alpha = load_object(d.choice(objects))
        side = rng.uniform(0.06, 0.3) * d.short
        factor = side / max(alpha.shape)
        size = (max(2, int(round(alpha.shape[1] * factor))),
                max(2, int(round(alpha.shape[0] * factor))))
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        texture = cv2.resize(texture, size, interpolation=interpolation)
        alpha = cv2.resize(alpha, size, interpolation=interpolation)
        if rng.random() < 0.5:
            texture, alpha = texture[:, ::-1], alpha[:, ::-1]
        _paste(canvas, texture, alpha, int(rng.integers(-size[0] // 2, cw - size[0] // 2)),
               int(rng.integers(-size[1] // 2, ch - size[1] // 2)))
    return count


def _target_size(d: _Draw, aspect: float, zoom: np.ndarray) -> np.ndarray:
    """Return the (T, 2) rendered template size: base size, scale and aspect change, zoom."""
    rng, frames, attributes, short = d.rng, d.frames, d.attributes, d.short
    frame_ids = np.arange(frames)
    smin, smax = max(10.0, 0.06 * short), 0.55 * short
    if attributes['small_target']:
        base = rng.uniform(SMALLEST_TARGET, max(SMALLEST_TARGET + 1, 0.08 * short))
        smin = min(smin, 0.7 * SMALLEST_TARGET)
    elif attributes['large_target']:
        base = rng.uniform(0.38, 0.5) * short
    else:
        base = rng.uniform(0.18, 0.34) * short
    log_scale = np.zeros(frames)
    if attributes['scale_change']:
        ratio = math.log(rng.uniform(1.5, 3.0))
        if rng.random() < 0.5:
            ramp = smoothstep(np.clip(frame_ids / max(frames - 1, 1), 0, 1))
            log_scale = ratio * ramp * (1 if rng.random() < 0.5 else -1)
        else:
            curve = smooth_noise(rng, frames, frames / 6)
            log_scale = 0.5 * ratio * (curve - curve[0])
    scale = np.clip(base * np.exp(log_scale) * zoom, smin, smax)
    log_aspect = math.log(aspect) * np.ones(frames)
    if attributes['aspect_change']:
        curve = smooth_noise(rng, frames, frames / 5)
        log_aspect = log_aspect + 0.35 * (curve - curve[0])
    size = np.stack([scale * np.exp(log_aspect / 2), scale * np.exp(-log_aspect / 2)], 1)
    return size * np.minimum(1.0, smax / size.max(axis=1))[:, None]


def _pose(d: _Draw) -> Tuple[np.ndarray, np.ndarray]:
    """Return the in-plane angle (T,) and perspective tilt (T, 2) of the target."""
    rng, frames, attributes = d.rng, d.frames, d.attributes
    frame_ids = np.arange(frames)
    angle = np.full(frames, rng.uniform(-20, 20) if rng.random() < 0.5 else 0.0)
    if attributes['rotation']:
        spin = rng.uniform(1.0, 6.0) * (1 if rng.random() < 0.5 else -1)
        wobble = smooth_noise(rng, frames, frames / 8)
        angle = angle + spin * frame_ids + 25.0 * (wobble - wobble[0])
    tilt = np.zeros((frames, 2))
    if attributes['perspective']:
        tilt = rng.uniform(0.08, 0.25) * np.stack(
            [smooth_noise(rng, frames, frames / 5), smooth_noise(rng, frames, frames / 5)], 1)
    return angle, tilt


def _target_look(d: _Draw, photo_names: Sequence[str]
                 ) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any], Optional[ObjectSource]]:
    """Return the target's texture, mask, description and pool object (None for a shape)."""
    rng = d.rng
    if d.sources.objects and rng.random() < OBJECT_TARGET_PROBABILITY:
        photos = [o for o in d.sources.objects if o.photo]
        chosen = d.choice(photos if photos and rng.random() < PHOTO_TARGET_PROBABILITY
                          else d.sources.objects)
        texture, mask = load_object(chosen)
        if rng.random() < 0.5:
            texture, mask = texture[:, ::-1], mask[:, ::-1]
        texture = tint(rng, texture, 0.1)
        return (np.ascontiguousarray(texture), np.ascontiguousarray(mask),
                {'kind': 'object', 'id': chosen.key, 'group': chosen.group}, chosen)
    texture = crop_texture(rng, load_texture(photo_names[0]), TEMPLATE_SIZE, (0.2, 0.6))
    shape = shape_params(rng, ('ellipse', 'rect', 'polygon'))
    mask = shape_mask(shape, TEMPLATE_SIZE)
    if d.attributes['border']:
        texture = add_border(rng, texture, mask)
    return texture, mask, {'kind': 'shape', 'shape': shape, 'id': photo_names[0]}, None


def _out_of_view(d: _Draw, centre: np.ndarray, radius: np.ndarray,
                 events: List[Tuple[str, int, int]]) -> None:
    """Push the object across its nearest edge during out-of-view spells and bring it back."""
    width, height, frames = d.width, d.height, d.frames
    for kind, start, length in events:
        if kind != 'out_of_view':
            continue
        ramp = int(np.clip(frames // 25, 2, 5))
        weight = np.ones(length)
        rise = smoothstep((np.arange(1, ramp + 1)) / (ramp + 1))
        weight[:ramp], weight[length - ramp:] = rise, rise[::-1]
        middle = centre[start + length // 2]
        edges = np.array([middle[0], width - 1 - middle[0], middle[1], height - 1 - middle[1]])
        side = int(np.argmin(edges))
        direction = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]][side], dtype=np.float64)
        span = slice(start, start + length)
        position = centre[span, side // 2]
        distance = position if side % 2 == 0 else (width, height)[side // 2] - 1 - position
        reach = distance + radius[span] + 3.0
        centre[span] += (weight * reach)[:, None] * direction


def _look_alikes(d: _Draw, texture: np.ndarray, mask: np.ndarray, look: Dict[str, Any],
                 chosen: Optional[ObjectSource]
                 ) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], List[str]]:
    """Return distractor appearances and their sources: same-group objects, else copies."""
    rng = d.rng
    count = int(rng.integers(1, 4 if chosen is not None else 3))
    if chosen is not None:
        same = [o for o in d.sources.objects if o.group == chosen.group and o.key != chosen.key]
        if not same:
            same = [o for o in d.sources.objects
                    if o.category == chosen.category and o.key != chosen.key]
        if same:
            picks = [d.choice(same) for _ in range(count)]
            return [load_object(pick) for pick in picks], [pick.key for pick in picks]
    looks = []
    for _ in range(count):
        copy = tint(rng, texture, rng.uniform(0.1, 0.5))
        if rng.random() < 0.3:
            copy = np.ascontiguousarray(copy[:, :, [1, 2, 0]])
        d_mask = mask if chosen is not None else shape_mask(jitter_shape(rng, look['shape']),
                                                            TEMPLATE_SIZE)
        looks.append((copy, d_mask))
    return looks, ['tinted copy'] * count


def _distractors(d: _Draw, looks: List[Tuple[np.ndarray, np.ndarray]],
                 target: Sprite, speed: float) -> List[Sprite]:
    """Move look-alikes on their own paths, starting away from the target."""
    rng, frames, width, height = d.rng, d.frames, d.width, d.height
    radius = radius_of(target.size)
    sprites = []
    for texture, mask in looks:
        aspect = mask.shape[1] / mask.shape[0]
        scale = np.sqrt(target.size[:, 0] * target.size[:, 1]) * rng.uniform(0.8, 1.2)
        d_size = np.stack([scale * math.sqrt(aspect), scale / math.sqrt(aspect)], 1)
        d_radius = radius_of(d_size)
        start = None
        for _ in range(20):
            candidate = rng.uniform([0, 0], [width - 1, height - 1])
            if np.linalg.norm(candidate - target.centre[0]) > radius[0] + d_radius[0] + 4:
                start = candidate
                break
        if start is None:
            continue
        d_centre = random_walk(rng, frames, (width, height), d_radius,
                               rng.uniform(0.5, 1.5) * speed, np.zeros(frames, bool),
                               slack=float(d_radius.max()), start=start)
        d_angle = target.angle + rng.uniform(-40, 40)
        sprites.append(Sprite(np.ascontiguousarray(texture), np.ascontiguousarray(mask),
                              d_centre, d_size, d_angle, np.zeros((frames, 2)),
                              np.ones(frames, bool)))
    return sprites


def _occluders(d: _Draw, events: List[Tuple[str, int, int]], target: Sprite,
               occluder_name: str) -> List[Sprite]:
    """Cross patches of another image, or other pool objects, in front of the target."""
    rng, frames = d.rng, d.frames
    radius = radius_of(target.size)
    occluders = []
    source = load_texture(occluder_name)
    for kind, start, length in events:
        if kind != 'occlusion':
            continue
        span = np.arange(start, start + length)
        r_mid = radius[start + length // 2]
        full = rng.random() < 0.5
        if full:
            # Large enough to swallow the target's bounding circle when centred on it.
            o_mask = shape_mask({'kind': 'rect', 'axes': [1.0, 1.0], 'rounding': 0.0},
                                TEMPLATE_SIZE)
            o_texture = crop_texture(rng, source, TEMPLATE_SIZE, (0.25, 0.7))
            side = 2 * r_mid * rng.uniform(1.3, 1.9)
            o_size = np.array([side * rng.uniform(1.0, 1.4), side])
            lateral = 0.0
        else:
            if d.sources.objects and rng.random() < 0.5:
                o_texture, o_mask = load_object(d.choice(d.sources.objects))
            else:
                o_mask = shape_mask(shape_params(rng, ('rect', 'ellipse', 'polygon')),
                                    TEMPLATE_SIZE)
                o_texture = crop_texture(rng, source, TEMPLATE_SIZE, (0.25, 0.7))
            o_size = 2 * r_mid * rng.uniform(0.5, 1.0, size=2)
            lateral = rng.uniform(-0.6, 0.6) * r_mid
        heading = rng.uniform(0, 2 * np.pi)
        along = np.array([np.cos(heading), np.sin(heading)])
        across = np.array([-along[1], along[0]])
        reach = r_mid + 0.5 * np.hypot(*o_size) + 2.0
        anchor_from, anchor_to = target.centre[start], target.centre[start + length - 1]
        phase = (np.arange(length) + 0.5) / length
        anchor = anchor_from + (anchor_to - anchor_from) * phase[:, None]
        o_centre = np.zeros((frames, 2))
        o_centre[span] = anchor + np.outer((2 * phase - 1) * reach, along) + lateral * across
        o_angle = np.zeros(frames)
        o_angle[span] = np.degrees(heading) if not full else rng.uniform(-10, 10)
        visible = np.zeros(frames, bool)
        visible[span] = True
        occluders.append(Sprite(np.ascontiguousarray(o_texture), np.ascontiguousarray(o_mask),
                                o_centre, np.tile(o_size, (frames, 1)), o_angle,
                                np.zeros((frames, 2)), visible))
    return occluders


def _lighting(d: _Draw) -> Dict[str, Any]:
    """Draw illumination drift, exposure, the light spot and the sensor's noise and codec."""
    rng, frames, attributes = d.rng, d.frames, d.attributes
    gain, contrast, bias = np.ones(frames), np.ones(frames), np.zeros(frames)
    if attributes['illumination']:
        gain = np.exp(rng.uniform(0.2, 0.45) * smooth_noise(rng, frames, frames / 6))
        contrast = np.exp(0.25 * smooth_noise(rng, frames, frames / 6))
        bias = 15.0 * smooth_noise(rng, frames, frames / 6)
    if attributes['exposure']:
        # Under- or over-exposed throughout: dark and flat, or bright and clipped.
        under = rng.random() < 0.5
        gain = gain * (rng.uniform(0.35, 0.6) if under else rng.uniform(1.5, 2.3))
        contrast = contrast * rng.uniform(0.6, 0.9)
    light = {'gain': gain, 'contrast': contrast, 'bias': bias,
             'spot_centre': np.zeros((frames, 2)), 'spot_sigma': 1.0, 'spot_amplitude': 0.0}
    if attributes['light_spot']:
        light['spot_centre'] = np.stack(
            [(0.5 + 0.5 * smooth_noise(rng, frames, frames / 5)) * d.width,
             (0.5 + 0.5 * smooth_noise(rng, frames, frames / 5)) * d.height], axis=1)
        light['spot_sigma'] = float(rng.uniform(0.15, 0.35) * max(d.width, d.height))
        light['spot_amplitude'] = float(rng.uniform(0.3, 0.7) * (1 if rng.random() < 0.7 else -1))
    light['noise_sigma'] = float(rng.uniform(2.0, 9.0)) if attributes['sensor_noise'] else 0.0
    light['noise_seed'] = int(rng.integers(2 ** 31))
    light['jpeg_quality'] = int(rng.integers(12, 45)) if attributes['jpeg_artefacts'] else 0
    return light


def build_scene(seed: Union[int, np.random.SeedSequence], frames: int,
                size: Tuple[int, int] = (480, 360),
                sources: Union[SourceSet, Sequence[str], None] = None) -> Scene:
    """
    Draw one sequence: its images, attributes, events and every per-frame pose.

    ``sources`` is a :class:`SourceSet` or a list of scikit-image photo names (default: the
    ``train`` photos). Without pool objects it needs at least three photos: background,
    target and occluder are always different images. Pure function of the arguments.
    """
    from detrack_model.data.synthetic.sources import SPLIT_SOURCES

    width, height = (int(size[0]), int(size[1]))
    if width < 32 or height < 32:
        raise ValueError(f'frame size must be at least 32x32, got {width}x{height}')
    if frames < 1:
        raise ValueError(f'frames must be >= 1, got {frames}')
    if sources is None:
        sources = SPLIT_SOURCES['train']
    if not isinstance(sources, SourceSet):
        sources = SourceSet(tuple(dict.fromkeys(sources)))
    rng = np.random.default_rng(seed)
    d = _Draw(rng, frames, width, height, sources, _attributes(rng, bool(sources.objects)))
    attributes = d.attributes
    textures = sources.textures
    order = [textures[i] for i in rng.permutation(len(textures))]
    background_name, photo_target, occluder_name = (order + order * 2)[:3]
    if sources.backgrounds and sources.photos and rng.random() < 0.75:
        # Pool backgrounds outnumber the photos; still draw them most of the time.
        background_name = d.choice([path for _, path in sources.backgrounds])
        photo_target = next((name for name in order if name != background_name), photo_target)
        occluder_name = next((name for name in order
                              if name not in (background_name, photo_target)), occluder_name)
    events = _events(d)
    fast = np.zeros(frames, dtype=bool)
    for kind, start, length in events:
        if kind == 'fast_motion':
            fast[start:start + length] = True

    texture, mask, look, chosen = _target_look(d, [photo_target])
    extra, camera, zoom, camera_angle = _camera(d)
    aspect = mask.shape[1] / mask.shape[0] if chosen is not None else 1.0
    aspect *= math.exp(rng.uniform(-0.45, 0.45) if chosen is None else rng.uniform(-0.1, 0.1))
    target_size = _target_size(d, aspect, zoom)
    angle, tilt = _pose(d)
    # Perspective enlarges the near side by up to 1 / (1 - |tilt|_1): keep that inside too.
    radius = radius_of(target_size) / (1.0 - np.abs(tilt).sum(axis=1))
    # The first frame shows the whole target: shrink one that could not fit at all.
    fit = min(1.0, (0.5 * min(width, height) - 3.0) / radius[0])
    target_size, radius = target_size * fit, radius * fit
    speed = rng.uniform(0.004, 0.02) * max(width, height)
    centre = random_walk(rng, frames, (width, height), radius, speed, fast, slack=0.0)
    _out_of_view(d, centre, radius, events)
    blur = np.zeros((frames, 2))
    if attributes['motion_blur']:
        blur[1:] = rng.uniform(0.5, 1.0) * np.diff(centre, axis=0)
        blur[1:][~fast[1:]] = 0.0
    target = Sprite(texture, mask, centre, target_size, angle, blur, np.ones(frames, bool),
                    tilt)

    distractors, distractor_sources = [], []
    if attributes['distractors']:
        looks, distractor_sources = _look_alikes(d, texture, mask, look, chosen)
        distractors = _distractors(d, looks, target, speed)
    occluders = _occluders(d, events, target, occluder_name)
    background = _background(d, background_name, extra)
    clutter = _clutter(d, background, look['id']) if attributes['clutter'] else 0
    light = _lighting(d)

    names = dict(sources.backgrounds)
    named = {path: key for key, path in names.items()}
    info = {
        'sources': {'background': named.get(background_name, background_name),
                    'target': look['id'] if chosen is not None else named.get(photo_target,
                                                                              photo_target),
                    'occluder': named.get(occluder_name, occluder_name)},
        'target_kind': look['kind'],
        'shape': look['shape']['kind'] if look['kind'] == 'shape' else look['group'],
        'attributes': attributes,
        'events': [{'kind': kind, 'start': start, 'length': length}
                   for kind, start, length in events],
        'distractors': len(distractors),
        'distractor_sources': distractor_sources,
        'clutter': clutter,
    }
    return Scene((width, height), background, camera, target, distractors, occluders,
                 light['gain'], light['contrast'], light['bias'], light['spot_centre'],
                 light['spot_sigma'], light['spot_amplitude'], info, zoom, camera_angle,
                 light['noise_sigma'], light['noise_seed'], light['jpeg_quality'])
