"""
Rendered RGB-D sequences whose target's 3-D position is known exactly.

A pinhole camera (no distortion) looks at a textured wall; a flat textured target of known
physical size faces the camera in front of it and moves in 3-D, nearer and farther. Each
frame comes with an aligned depth image (uint16 millimetres, as 16UC1) with the noise of a
structured-light sensor (axial sigma ``1.2 mm + 1.9 mm (z - 0.4 m)^2``, Nguyen et al. 2012,
spatially correlated) and holes (zeros), the tracker's ground-truth box (pixel ``i`` covers
``[i, i + 1)``), and the 3-D centre of the target's face in the camera's optical frame.

Images come from the generator's ``val`` split (photographs the shipped model never trained
on); the texture is warped with sub-pixel accuracy, so the box, the depth and the position
agree exactly. Every sequence is a pure function of its arguments.
"""

from dataclasses import dataclass
import math
from typing import List, Tuple

import cv2
from detrack_model.data.synthetic.sources import load_source
import numpy as np

# Physical size of the target's face (metres): a sign or a box side.
TARGET_SIZE_M = (0.40, 0.30)
# Focal length of a 640x480 structured-light camera (Kinect-like), scaled with the width.
FOCAL_AT_640 = 525.0
HOLE_FRACTION = 0.03
# Images of the val split: the wall and the target's face.
BACKGROUND_SOURCE = 'gravel'
TARGET_SOURCE = 'chelsea'


@dataclass
class RgbdSequence:
    """RGB frames, aligned depth (mm), ground truth in 2-D and 3-D, and the camera's K."""

    name: str
    frames: List[np.ndarray]
    depth_mm: List[np.ndarray]
    boxes: np.ndarray
    positions: np.ndarray
    k: Tuple[float, ...]
    wall_depth: float
    fps: float

    @property
    def size(self) -> Tuple[int, int]:
        """Return (width, height) of the frames."""
        return self.frames[0].shape[1], self.frames[0].shape[0]

    @property
    def visible(self) -> np.ndarray:
        """Return the per-frame visibility (the target is always in view)."""
        return np.ones(len(self.frames), bool)


def camera_matrix(size: Tuple[int, int]) -> Tuple[float, ...]:
    """Return the row-major K of the rendering camera for images of ``size`` (w, h)."""
    width, height = size
    focal = FOCAL_AT_640 * width / 640.0
    return (focal, 0.0, (width - 1) / 2.0, 0.0, focal, (height - 1) / 2.0, 0.0, 0.0, 1.0)


def depth_noise_sigma(z: np.ndarray) -> np.ndarray:
    """Return the axial depth noise (metres) of a structured-light sensor at depth ``z``."""
    return 0.0012 + 0.0019 * (z - 0.4) ** 2


def _texture(name: str, size: Tuple[int, int]) -> np.ndarray:
    rgb = cv2.cvtColor(load_source(name), cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _path(frames: int, near: float, far: float, phase: float) -> np.ndarray:
    """Return (frames, 3) target centres: in and out between near and far, drifting sideways."""
    t = np.linspace(0.0, 1.0, frames)
    z = near + (far - near) * 0.5 * (1.0 - np.cos(2.0 * math.pi * t + phase))
    # Sideways within a third of the half field of view, so the target stays in the image.
    x = 0.2 * z * np.sin(2.0 * math.pi * 1.5 * t + phase)
    y = 0.12 * z * np.sin(2.0 * math.pi * t + 2.0 * phase)
    return np.stack([x, y, z], axis=1)


def rgbd_sequence(index: int = 0, frames: int = 90, size: Tuple[int, int] = (640, 480),
                  near: float = 0.8, far: float = 5.0, fps: float = 30.0,
                  seed: int = 11) -> RgbdSequence:
    """
    Render sequence ``index``: the target goes between ``near`` and ``far`` metres and back.

    The wall stands 2 m behind the farthest point of the path.
    """
    rng = np.random.default_rng((seed, index))
    width, height = size
    k = camera_matrix(size)
    fx, _, cx, _, fy, cy = k[:6]
    wall = far + 2.0
    background = _texture(BACKGROUND_SOURCE, size)
    face = _texture(TARGET_SOURCE, (256, 192))
    phase = float(rng.uniform(0.0, 2.0 * math.pi)) if index else math.pi
    positions = _path(frames, near, far, phase)
    columns = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    images, depths, boxes = [], [], []
    for x, y, z in positions:
        # Edges of the face in K's pixel coordinates (pixel centres at integers).
        left = fx * (x - TARGET_SIZE_M[0] / 2) / z + cx
        right = fx * (x + TARGET_SIZE_M[0] / 2) / z + cx
        top = fy * (y - TARGET_SIZE_M[1] / 2) / z + cy
        bottom = fy * (y + TARGET_SIZE_M[1] / 2) / z + cy
        scale_x = (right - left) / face.shape[1]
        scale_y = (bottom - top) / face.shape[0]
        # OpenCV maps texture pixel centres i to scale * i + offset, in K's convention: the
        # texture's outer edges (-0.5 and n - 0.5) land on the face's edges exactly.
        warp = np.array([[scale_x, 0.0, left + 0.5 * scale_x],
                         [0.0, scale_y, top + 0.5 * scale_y]])
        image = background.copy()
        cv2.warpAffine(face, warp, size, dst=image, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_TRANSPARENT)
        inside = ((rows >= top) & (rows <= bottom))[:, None] & \
            ((columns >= left) & (columns <= right))[None, :]
        depth = np.where(inside, z, wall)
        noise = cv2.GaussianBlur(rng.standard_normal(size[::-1]), (0, 0), 2.0)
        noise *= depth_noise_sigma(depth) / max(float(noise.std()), 1e-9)
        millimetres = np.rint((depth + noise) * 1000.0)
        millimetres[rng.random(size[::-1]) < HOLE_FRACTION] = 0.0
        images.append(image)
        depths.append(millimetres.astype(np.uint16))
        boxes.append((left + 0.5, top + 0.5, right - left, bottom - top))
    return RgbdSequence(name=f'rgbd_{seed}_{index:03d}', frames=images, depth_mm=depths,
                        boxes=np.array(boxes), positions=positions, k=k, wall_depth=wall,
                        fps=fps)
