"""Random curves, event schedules and object paths of synthetic sequences."""

import math
from typing import List, Optional, Tuple

import numpy as np

FIRST_EVENT_FRAME = 3


def smooth_noise(rng: np.random.Generator, frames: int, sigma: float) -> np.ndarray:
    """Return a smooth random curve of ``frames`` values scaled to max |value| = 1."""
    sigma = max(float(sigma), 0.5)
    radius = int(math.ceil(3 * sigma))
    noise = rng.standard_normal(frames + 2 * radius)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    curve = np.convolve(noise, kernel / kernel.sum(), mode='valid')[:frames]
    peak = np.abs(curve).max()
    return curve / peak if peak > 0 else curve


def schedule(rng: np.random.Generator, frames: int,
             requests: List[Tuple[str, int]]) -> List[Tuple[str, int, int]]:
    """Place events (kind, length) in disjoint windows from frame 3 on; drop what won't fit."""
    taken = np.zeros(frames + 1, dtype=bool)
    taken[:FIRST_EVENT_FRAME] = True
    events = []
    for kind, length in requests:
        last_start = frames - length
        if last_start < FIRST_EVENT_FRAME:
            continue
        for _ in range(25):
            start = int(rng.integers(FIRST_EVENT_FRAME, last_start + 1))
            # One free frame either side, so two spells never merge into a long one.
            window = taken[max(start - 1, 0):start + length + 1]
            if not window.any():
                taken[start:start + length] = True
                events.append((kind, start, length))
                break
    return sorted(events, key=lambda event: event[1])


def random_walk(rng: np.random.Generator, frames: int, size: Tuple[int, int],
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
