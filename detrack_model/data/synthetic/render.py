"""Rendering a scene into frames with exact labels from the rendering masks."""

from dataclasses import dataclass
import math
from typing import Iterable, Optional, Tuple

import cv2
from detrack_model.data.synthetic.scene import Scene
from detrack_model.data.synthetic.sprites import Sprite
import numpy as np


@dataclass
class RenderedFrame:
    """
    One rendered frame and its exact labels.

    ``target_mask`` (H, W) bool is the object mask inside the frame, occluded parts included;
    ``visible_mask`` is its part not under an occluder. ``object_pixels`` counts the whole
    object (outside-the-frame part included), ``in_frame_pixels`` its part inside the frame.
    ``box`` is x, y, w, h (see the package docstring for the convention).
    ``distractors`` holds the boxes (x, y, w, h, in the frame) of the look-alikes drawn in it:
    what a tracker could take for the target (training's target-absent pairs centre on them).
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
    distractors: Tuple[Tuple[float, float, float, float], ...] = ()


def line_kernel(vector: np.ndarray) -> np.ndarray:
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


def sprite_homography(sprite: Sprite, t: int, shape: Tuple[int, int]) -> np.ndarray:
    """
    Return the 3x3 map from a template of ``shape`` (h, w) to frame pixels at frame ``t``.

    The template centre goes to ``centre[t]``; it is scaled to ``size[t]``, rotated by
    ``angle[t]`` and, when ``tilt[t]`` is not zero, seen in perspective: a point at normalised
    template coordinates ``u`` in [-1, 1]^2 is divided by ``1 + tilt . u`` (an out-of-plane
    turn, the near side larger than the far one).
    """
    height, width = shape
    sw, sh = sprite.size[t]
    theta = math.radians(sprite.angle[t])
    cos, sin = math.cos(theta), math.sin(theta)
    # Screen y points down, so a counter-clockwise rotation on screen uses -sin above.
    linear = np.array([[cos, sin], [-sin, cos]]) @ np.diag([sw / width, sh / height])
    centre = np.array([[1.0, 0.0, -(width - 1) / 2.0], [0.0, 1.0, -(height - 1) / 2.0],
                       [0.0, 0.0, 1.0]])
    tx, ty = sprite.tilt[t]
    perspective = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                            [2.0 * tx / width, 2.0 * ty / height, 1.0]])
    place = np.eye(3)
    place[:2, :2] = linear
    place[:2, 2] = sprite.centre[t]
    return place @ perspective @ centre


def warp_sprite(sprite: Sprite, t: int, pad: int = 0
                ) -> Tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """
    Warp a sprite into a local window around its footprint.

    Return the window's top-left corner (x0, y0) in frame pixels, the texture (h, w, 3)
    float32, the soft alpha (h, w) float32 and the object mask (alpha >= 0.5) as bool.
    """
    width, height = sprite.size[t]
    levels = sprite.pyramid()
    level = 0
    while level + 1 < len(levels) and max(levels[level + 1][1].shape) >= max(width, height):
        level += 1
    texture, mask = levels[level]
    matrix = sprite_homography(sprite, t, mask.shape[:2])
    h, w = mask.shape[:2]
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [-0.5, h - 0.5, 1],
                        [w - 0.5, h - 0.5, 1]]) @ matrix.T
    footprint = corners[:, :2] / corners[:, 2:]
    x0 = int(math.floor(footprint[:, 0].min())) - 1 - pad
    y0 = int(math.floor(footprint[:, 1].min())) - 1 - pad
    x1 = int(math.ceil(footprint[:, 0].max())) + 2 + pad
    y1 = int(math.ceil(footprint[:, 1].max())) + 2 + pad
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    matrix = shift @ matrix
    window = (x1 - x0, y1 - y0)
    if not np.any(sprite.tilt[t]):
        warped = cv2.warpAffine(texture, matrix[:2], window, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(mask, matrix[:2], window, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    else:
        warped = cv2.warpPerspective(texture, matrix, window, flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpPerspective(mask, matrix, window, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    binary = alpha >= 128
    return x0, y0, warped.astype(np.float32), alpha.astype(np.float32) / 255.0, binary


def overlap(x0: int, y0: int, shape: Tuple[int, int], width: int, height: int
            ) -> Optional[Tuple[slice, slice, slice, slice]]:
    """Return (frame rows, frame cols, local rows, local cols) of a window inside the frame."""
    h, w = shape
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1), slice(fy0 - y0, fy1 - y0),
            slice(fx0 - x0, fx1 - x0))


def draw(frame: np.ndarray, sprite: Sprite, t: int,
         masks: Iterable[np.ndarray] = ()) -> Tuple[int, int, np.ndarray]:
    """Composite a sprite onto ``frame``; OR its object mask into ``masks``; return it local."""
    height, width = frame.shape[:2]
    vector = sprite.blur[t]
    blurred = float(np.hypot(*vector)) >= 1.5
    pad = int(math.ceil(np.hypot(*vector) / 2)) + 2 if blurred else 0
    x0, y0, texture, alpha, binary = warp_sprite(sprite, t, pad)
    premultiplied = texture * alpha[:, :, None]
    if blurred:
        kernel = line_kernel(vector)
        premultiplied = cv2.filter2D(premultiplied, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    region = overlap(x0, y0, binary.shape, width, height)
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


def frame_box(x0: int, y0: int, mask: np.ndarray, width: int, height: int
              ) -> Optional[Tuple[float, float, float, float]]:
    """Return the box of a local ``mask`` at (x0, y0), clipped to the frame; None if outside."""
    local = mask_box(mask)
    if local is None:
        return None
    left, top = max(local[0] + x0, 0), max(local[1] + y0, 0)
    right = min(local[0] + x0 + local[2], width)
    bottom = min(local[1] + y0 + local[3], height)
    if right <= left or bottom <= top:
        return None
    return (float(left), float(top), float(right - left), float(bottom - top))


def background_view(scene: Scene, t: int) -> np.ndarray:
    """Return the part of the background canvas the camera sees at frame ``t`` (float32)."""
    width, height = scene.size
    x, y = scene.camera[t]
    zoom, angle = float(scene.camera_zoom[t]), float(scene.camera_angle[t])
    if zoom == 1.0 and angle == 0.0 and float(x).is_integer() and float(y).is_integer():
        return scene.background[int(y):int(y) + height, int(x):int(x) + width].astype(
            np.float32)
    # The frame centre looks at canvas point (x, y) + frame centre; a zoom > 1 magnifies.
    centre = (x + (width - 1) / 2.0, y + (height - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, zoom)
    matrix[:, 2] += np.array([(width - 1) / 2.0, (height - 1) / 2.0]) - np.array(centre)
    view = cv2.warpAffine(scene.background, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    return view.astype(np.float32)


def _photometric(scene: Scene, frame: np.ndarray, t: int) -> np.ndarray:
    """Apply illumination, the light spot and sensor noise; return uint8."""
    width, height = scene.size
    gain, contrast, bias = scene.gain[t], scene.contrast[t], scene.bias[t]
    if gain != 1.0 or contrast != 1.0 or bias != 0.0:
        frame = ((frame - 128.0) * np.float32(contrast) + 128.0) * np.float32(gain)
        frame += np.float32(bias)
    if scene.spot_amplitude != 0.0:
        # Separable Gaussian: an outer product instead of an (H, W) exp.
        gx = np.exp(-0.5 * ((np.arange(width) - scene.spot_centre[t, 0]) / scene.spot_sigma) ** 2)
        gy = np.exp(-0.5 * ((np.arange(height) - scene.spot_centre[t, 1]) / scene.spot_sigma) ** 2)
        light = 1.0 + scene.spot_amplitude * np.outer(gy, gx).astype(np.float32)
        frame *= light[:, :, None]
    if scene.noise_sigma > 0.0:
        # Per-frame noise from a per-frame stream, so any frame renders alone and the same.
        rng = np.random.default_rng([scene.noise_seed, t])
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(
            scene.noise_sigma)
    np.clip(frame, 0, 255, out=frame)
    image = (frame + 0.5).astype(np.uint8)
    if scene.jpeg_quality > 0:
        ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality])
        if ok:
            image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


def render_frame(scene: Scene, t: int) -> RenderedFrame:
    """Render frame ``t`` (0-based) of a scene with its exact labels."""
    width, height = scene.size
    frame = background_view(scene, t)
    distractors = []
    for sprite in scene.distractors:
        if sprite.visible[t]:
            found = frame_box(*draw(frame, sprite, t), width, height)
            if found is not None:
                distractors.append(found)
    target_mask = np.zeros((height, width), bool)
    x0, y0, full_mask = draw(frame, scene.target, t, (target_mask,))
    occluded = np.zeros((height, width), bool)
    for sprite in scene.occluders:
        if sprite.visible[t]:
            draw(frame, sprite, t, (occluded,))
    visible_mask = target_mask & ~occluded
    image = _photometric(scene, frame, t)

    total = int(np.count_nonzero(full_mask))
    in_frame = int(np.count_nonzero(target_mask))
    visible = int(np.count_nonzero(visible_mask))
    box = mask_box(target_mask)
    if box is None:
        local = mask_box(full_mask)
        if local is None:  # degenerate (sub-pixel) object: a box at its centre
            cx_t, cy_t = scene.target.centre[t]
            box = (int(round(cx_t)), int(round(cy_t)), 1, 1)
        else:
            box = (local[0] + x0, local[1] + y0, local[2], local[3])
    cover = cover_label(visible, total)
    return RenderedFrame(image=image, target_mask=target_mask, visible_mask=visible_mask,
                         box=tuple(float(v) for v in box), object_pixels=total,
                         in_frame_pixels=in_frame, visible_pixels=visible, cover=cover,
                         absent=cover == 0, cut_by_image=in_frame < total,
                         distractors=tuple(distractors))
