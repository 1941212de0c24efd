"""
The single-object tracker: template at initialisation, one search crop per frame.

Per frame: a square search crop of ``search_factor * sqrt(w h)`` around the last state
(mean-colour padding where it leaves the frame) is resized to the network's search size; the
network returns K candidate boxes with scores and their search-grid cells; each score is
multiplied by a Hanning window over the grid (the paper's test-time prior against jumps,
OSTrack convention); the best candidate is mapped back to the image and clipped to the frame
with a margin.

Lost state: when the best raw score stays under the miss threshold for ``lost_patience``
frames in a row, the tracker reports ``lost``; when it has for ``search_patience`` frames
(0: ``lost_patience``), it is ``searching``: it stops moving its state (the last confident
box) and searches a wider area (``lost_search_factor``) until a score above the threshold
brings it back. The two are apart so that a short dip can be reported at once (no box a
consumer would act on) while the search still follows the network through it. Once lost, a
candidate farther than ``RECOVER_RADIUS`` box sizes from the last confident box, plus
``recover_growth`` box sizes per frame lost, needs ``recover_threshold`` when that is higher
(hysteresis: a look-alike scoring just over the miss threshold while the target is hidden is
the usual mistake; a target re-emerging where it was hidden needs less, and one that moved on
while hidden is near again once the radius has grown to where it went). The miss
threshold is ``score_threshold``; with ``reference_frames`` it is lowered for a target that
scores lower than the training data's (another camera, another kind of scene): the mean score
of the first ``reference_frames`` frames after the start (assumed on the target) is the
target's reference, and a frame counts as a miss under
``min(score_threshold, relative_threshold * reference)``.

Box dynamics: a network box may jump to a similar-looking region of another size when the
target is unclear. The published width and height therefore move toward the network's by a
fraction ``size_rate * score`` of the way in log space (a low-score frame barely resizes the
box) and by at most the factor ``max_scale_step`` per frame; the centre follows the network.
The defaults (0.5, 1.2) were chosen on the cross-source validation sequences
(docs/robust-tracking.md measures them against none); ``size_rate=1`` and
``max_scale_step=inf`` follow the network's box exactly.

Motion (``motion``): the centre's velocity over confident frames (an average of their
displacements) keeps moving the state while the score is low or the target lost, slowing down
frame by frame, so a short occlusion of a moving target is searched where it went.

Re-detection (``redetect``): once the target has been lost for ``redetect_after`` frames, every
frame also searches ``redetect_tiles`` squares of a grid of search regions (at the last known
scale, half-overlapping) covering the whole frame, in turn; a candidate scoring at least
``redetect_threshold`` there (``recover_threshold`` away from the last confident box) brings
the target back (``reacquisitions`` counts them). The tiles of a frame go through the backend
as one batch (``Backend.infer_batch``): one network run on a GPU, ``redetect_tiles`` runs with a
batch-1 backend; one more run on a find.

Template update (``template_update``; docs/robust-tracking.md measures it): a frame scoring at
least ``template_threshold``,
``template_interval`` frames or more after the last update, becomes the template; a loss (or
switching the update off) goes back to the template the target was given, since the newest
one may be what the tracker drifted with.

Frame size: the state is in the pixels of the frames it was tracked in. A frame of another
size is not tracked: :class:`FrameSizeChanged` is raised and nothing changes, so one odd frame
in a stream (a 1x1 or a thumbnail) costs that frame only. When the next frame has the new size
as well, the stream has changed: the state is rescaled to it and tracking goes on, and if the
aspect ratio changed too (the view was cropped or stretched, the mapping is a guess) the
target is declared lost so that the wider search finds it again.
"""

from dataclasses import dataclass, replace
import logging
import math
from numbers import Integral, Real
from typing import List, Optional, Sequence, Tuple

import cv2
from detrack_model.data.crops import (covers_only_image, CropTransform, mean_colour,
                                      search_transform)
from detrack_model.tracking.backends import Backend
from detrack_model.tracking.window import hann_window
import numpy as np

LOG = logging.getLogger(__name__)
# Relative difference of the two scale factors under which a size change keeps the aspect.
ASPECT_TOLERANCE = 0.01
# Distance from the last confident box, in its sqrt(w h), beyond which a lost target's
# candidate needs ``recover_threshold``: a target re-emerging where it was hidden needs less.
RECOVER_RADIUS = 1.0
# The integer settings of TrackerConfig and their least values (search_patience 0: the lost
# patience; reference_frames 0: no reference; redetect_after 0: at the first frame searched).
INTEGER_SETTINGS = {'lost_patience': 1, 'search_patience': 0, 'reference_frames': 0,
                    'redetect_after': 0, 'redetect_tiles': 1, 'template_interval': 1}


class FrameSizeChanged(ValueError):
    """A frame of another size than the tracked stream's, skipped; the message says which."""


@dataclass
class TrackerConfig:
    """Test-time settings of the tracker (the network's own sizes come from its config)."""

    template_factor: float = 2.0
    search_factor: float = 4.0
    # Searched while lost; the crop keeps its pixel size, so the view gets coarser. Chosen on
    # the validation sequences after the template update (docs/robust-tracking.md): for the
    # shipped model no wider view than the tracking crop's paid.
    lost_search_factor: float = 4.0
    # The robustness defaults were chosen on the cross-source validation sequences
    # (docs/robust-tracking.md, tools/make_robustness_docs.py): the grid point (patiences, box
    # dynamics, re-detection, motion) of best AO with false tracking during absences at most
    # 20 %, at the score threshold that best separates boxes on the target from the rest; the
    # threshold itself last, among those that separate as well, by the same rule.
    score_threshold: float = 0.55
    lost_patience: int = 1
    # Misses in a row before the state freezes and the search takes lost_search_factor (0:
    # lost_patience).
    search_patience: int = 1
    # Frames after the start whose mean score is the target's reference (0: off), and the
    # fraction of it under which a frame counts as a miss (see the module docstring).
    reference_frames: int = 0
    relative_threshold: float = 1.0
    # Score a lost target's candidate away from the last confident box needs to be taken
    # back, where higher than the miss threshold (0: the miss threshold), and the box sizes
    # per frame lost by which that distance grows (the target moves on while lost); chosen on
    # the validation sequences after the grid point (docs/robust-tracking.md).
    recover_threshold: float = 0.75
    recover_growth: float = 0.1
    hanning: bool = True
    # Pixels of the box kept inside the frame (OSTrack's clip_box margin).
    clip_margin: float = 10.0
    min_size: float = 2.0
    size_rate: float = 0.5
    max_scale_step: float = 1.2
    motion: bool = False
    # Weight of the newest displacement in the velocity average, and its decay per frame
    # while the target is not confidently seen.
    motion_rate: float = 0.5
    motion_decay: float = 0.8
    redetect: bool = True
    redetect_after: int = 5
    redetect_tiles: int = 2
    redetect_threshold: float = 0.5
    # Template update: a frame scoring at least the threshold, ``template_interval`` frames or
    # more after the last update, becomes the template; a loss goes back to the first one.
    # Chosen on the validation sequences after the recovery threshold, by the same rule
    # (docs/robust-tracking.md).
    template_update: bool = False
    template_threshold: float = 0.8
    template_interval: int = 30

    def __post_init__(self) -> None:
        """Reject settings that cannot work."""
        if not (self.template_factor > 0 and self.search_factor > 0
                and self.lost_search_factor >= self.search_factor):
            raise ValueError('crop factors must be positive and lost_search_factor >= '
                             f'search_factor, got {self.template_factor}, '
                             f'{self.search_factor}, {self.lost_search_factor}')
        for name, low in INTEGER_SETTINGS.items():
            value = getattr(self, name)
            # Runtime changes come from ROS parameters and YAML: 2.5 frames is a mistake.
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')
        for name in ('score_threshold', 'redetect_threshold', 'recover_threshold',
                     'template_threshold'):
            value = getattr(self, name)
            if not (isinstance(value, Real) and 0.0 <= value <= 1.0):
                raise ValueError(f'{name} must be in [0, 1], got {value!r}')
        if not 0.0 < self.relative_threshold <= 1.0:
            raise ValueError(f'relative_threshold must be in (0, 1], got '
                             f'{self.relative_threshold}')
        if self.clip_margin < 0 or self.min_size <= 0:
            raise ValueError('clip_margin must be >= 0 and min_size > 0')
        if not 0.0 < self.size_rate <= 1.0:
            raise ValueError(f'size_rate must be in (0, 1], got {self.size_rate}')
        if not self.max_scale_step > 1.0:
            raise ValueError(f'max_scale_step must be > 1, got {self.max_scale_step}')
        if not (0.0 < self.motion_rate <= 1.0 and 0.0 <= self.motion_decay <= 1.0):
            raise ValueError('motion_rate must be in (0, 1] and motion_decay in [0, 1], got '
                             f'{self.motion_rate}, {self.motion_decay}')
        if not self.recover_growth >= 0.0:
            raise ValueError(f'recover_growth must be >= 0, got {self.recover_growth}')


class Tracker:
    """
    Track one target through a stream of frames.

    ``initialize(frame, box_xywh)`` then ``track(frame) -> (box_xywh, score)`` for every
    following frame. Frames are (H, W) grayscale, (H, W, 1), (H, W, 3) RGB (or BGR with
    ``bgr=True``) or (H, W, 4) RGBA, uint8, of any size; a change of size is handled as the
    module docstring says. ``lost`` tells whether the target is considered lost;
    ``size_changes`` counts the size changes taken over.
    """

    def __init__(self, backend: Backend, config: Optional[TrackerConfig] = None) -> None:
        self.backend = backend
        self.config = config or TrackerConfig()
        grid = backend.grid
        self._window = hann_window(grid).ravel()
        self._template = np.zeros((backend.template_size, backend.template_size, 3), np.uint8)
        self._search = np.zeros((backend.search_size, backend.search_size, 3), np.uint8)
        self._scratch = np.zeros_like(self._search)
        self._template_scratch = np.zeros_like(self._template)
        # The template the target was given with (the backend's, until a template update).
        self._first_template = np.zeros_like(self._template)
        self._template_updated = False
        self._template_at = 0
        # Re-detection tiles of one frame, cropped here and run as one batch.
        self._tiles = np.zeros((0, *self._search.shape), np.uint8)
        self._gray = np.zeros(self._search.shape[:2], np.uint8)
        self.state: Optional[np.ndarray] = None
        # The image region the last search crop covered (for overlays and diagnostics).
        self.search_region: Optional[CropTransform] = None
        self.score = 0.0
        self.lost = False
        self.searching = False
        self.frames_below = 0
        self.frame_index = 0
        # (width, height) of the frames the state refers to, and a new size seen once.
        self.frame_size: Optional[Tuple[int, int]] = None
        self._new_size: Optional[Tuple[int, int]] = None
        self.size_changes = 0
        # Centre velocity in pixels per frame (motion), and the next re-detection tile.
        self.velocity = np.zeros(2)
        # Centre and frame index of the last confident box (for the velocity).
        self._seen_centre = np.zeros(2)
        self._seen_at = 0
        self._next_tile = 0
        self.frames_lost = 0
        self.reacquisitions = 0
        # Sum and count of the scores of the target's reference frames.
        self._reference = [0.0, 0]

    # -- public API ------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        """Tell whether a target has been given."""
        return self.state is not None

    def reset(self) -> None:
        """Forget the target; ``initialize`` must come before the next ``track``."""
        self.state = None
        self.search_region = None
        self.score = 0.0
        self.lost = self.searching = False
        self.frames_below = 0
        self.frame_index = 0

    def replace_backend(self, backend: Backend) -> Backend:
        """
        Run ``backend`` from the next frame on and return the previous one (not released).

        The new backend must take the same crop sizes; the current template is handed over,
        so tracking goes on without a re-initialisation.
        """
        old = self.backend
        if (backend.template_size, backend.search_size, backend.grid) != \
                (old.template_size, old.search_size, old.grid):
            raise ValueError(f'backend {backend.name} takes crops {backend.template_size}/'
                             f'{backend.search_size} (grid {backend.grid}), the tracker '
                             f'{old.template_size}/{old.search_size} (grid {old.grid})')
        if self.state is not None:
            backend.set_template(self._template)
        self.backend = backend
        return old

    def update_config(self, **changes) -> None:
        """Change test-time settings between frames (validated; the state is kept)."""
        self.config = replace(self.config, **changes)

    def initialize(self, frame: np.ndarray, box_xywh: Sequence[float], bgr: bool = False) -> None:
        """Start tracking the target in ``box_xywh`` (pixels, x, y, w, h) of ``frame``."""
        image = _as_image(frame)
        box = _check_box(box_xywh, image.shape)
        transform = search_transform(box, self.config.template_factor, self.backend.template_size)
        self._crop(image, transform, self._template, bgr)
        self.backend.set_template(self._template)
        self._first_template[...] = self._template
        self._template_updated, self._template_at = False, 0
        self.state = box
        self.score = 1.0
        self.lost = self.searching = False
        self.frames_below = 0
        self.frame_index = 0
        self.frame_size = (image.shape[1], image.shape[0])
        self._new_size = None
        self.velocity = np.zeros(2)
        self._seen_centre, self._seen_at = _centre(box), 0
        self._next_tile = 0
        self.frames_lost = 0
        self._reference = [0.0, 0]

    def track(self, frame: np.ndarray, bgr: bool = False) -> Tuple[np.ndarray, float]:
        """Locate the target in ``frame``; return its box x, y, w, h and the network's score."""
        if self.state is None:
            raise RuntimeError('track() called before initialize()')
        image = _as_image(frame)
        size = (image.shape[1], image.shape[0])
        if size != self.frame_size:
            self._follow_size(size)
        self._new_size = None
        config = self.config
        factor = config.lost_search_factor if self.searching else config.search_factor
        transform = search_transform(self.state, factor, self.backend.search_size)
        self.search_region = transform
        self._crop(image, transform, self._search, bgr)
        boxes, scores, cells = self.backend.infer(self._search)
        best = self.pick_candidate(scores, cells)
        score = float(scores[best])
        size = self.backend.search_size
        cx, cy, w, h = (float(v) * size for v in boxes[best])
        box = transform.box_to_image(np.array([cx - 0.5 * w, cy - 0.5 * h, w, h]))
        if config.size_rate < 1.0 or config.max_scale_step < math.inf:
            box = damp_size(box, self.state, score, config.size_rate, config.max_scale_step)
        box = clip_box(box, image.shape[1], image.shape[0], config.clip_margin, config.min_size)
        self._update_state(box, score)
        if config.template_update or self._template_updated:
            self._update_template(image, box, score, bgr)
        if self.searching and config.redetect and self.frames_lost > config.redetect_after:
            found = self._redetect(image, bgr)
            if found is not None:
                box, score = found
        self.frame_index += 1
        return box, score

    def pick_candidate(self, scores: np.ndarray, cells: np.ndarray, window: bool = True) -> int:
        """Return the index of the candidate a crop gives: best score, Hanning-weighted if on."""
        if window and self.config.hanning:
            return int(np.argmax(scores * self._window[cells]))
        return int(np.argmax(scores))

    # -- internals -------------------------------------------------------------------------

    def _follow_size(self, size: Tuple[int, int]) -> None:
        """Skip the first frame of a new size (raise); rescale the state at the second."""
        old = self.frame_size
        if self._new_size != size:
            self._new_size = size
            raise FrameSizeChanged(
                f'frame is {size[0]}x{size[1]}, the target is tracked in {old[0]}x{old[1]} '
                'frames: frame skipped (the next one of this size rescales the track)')
        scale_x, scale_y = size[0] / old[0], size[1] / old[1]
        self.state = self.state * np.array([scale_x, scale_y, scale_x, scale_y])
        self.frame_size, self._new_size = size, None
        self.size_changes += 1
        if abs(scale_x / scale_y - 1.0) > ASPECT_TOLERANCE:
            self.lost = self.searching = True
            self.frames_below = max(self.frames_below, self.config.lost_patience,
                                    self.config.search_patience)
            LOG.warning('frame size changed from %dx%d to %dx%d with another aspect ratio: '
                        'target declared lost, searched around its rescaled box', *old, *size)
        else:
            LOG.warning('frame size changed from %dx%d to %dx%d: target box rescaled', *old,
                        *size)

    def miss_threshold(self) -> float:
        """Return the score under which the current frame counts as a miss."""
        config = self.config
        total, count = self._reference
        if config.reference_frames <= 0 or count == 0:
            return config.score_threshold
        return min(config.score_threshold, config.relative_threshold * total / count)

    def _recover_bar(self, box: np.ndarray, base: float) -> float:
        """Return the score a lost target's candidate needs: ``recover_threshold`` if far."""
        config = self.config
        bar = config.recover_threshold
        if bar <= base:
            return base
        offset = _centre(box) - _centre(self.state)
        radius = RECOVER_RADIUS + config.recover_growth * self.frames_lost
        near = float(offset @ offset) <= radius ** 2 * self.state[2] * self.state[3]
        return base if near else bar

    def _update_state(self, box: np.ndarray, score: float) -> None:
        """Follow the prediction unless lost; count low-score frames."""
        config = self.config
        self.score = score
        if self._reference[1] < config.reference_frames:
            self._reference[0] += score
            self._reference[1] += 1
        threshold = self.miss_threshold()
        if score >= (self._recover_bar(box, threshold) if self.lost else threshold):
            if self.lost:
                LOG.info('target recovered at frame %d (score %.2f)', self.frame_index + 1,
                         score)
            if config.motion:
                centre = _centre(box)
                frames = max(1, self.frame_index - self._seen_at)
                if not self.searching:  # a re-found target says nothing about its speed
                    moved = (centre - self._seen_centre) / frames
                    self.velocity += config.motion_rate * (moved - self.velocity)
                self._seen_centre, self._seen_at = centre, self.frame_index
            self.frames_below = 0
            self.frames_lost = 0
            self.lost = self.searching = False
            self.state = box
            return
        self.frames_below += 1
        if not self.lost and self.frames_below >= config.lost_patience:
            self.lost = True
            LOG.info('target lost at frame %d (score under %.2f for %d frames)',
                     self.frame_index + 1, threshold, self.frames_below)
        self.searching = self.frames_below >= max(config.lost_patience, config.search_patience)
        if not self.searching:
            # Short dips (blur, partial occlusion) are normal: keep following until searching.
            self.state = box
            return
        self.frames_lost += 1
        if config.motion:
            # Coast: the search region keeps moving as the target did, ever slower.
            self.velocity *= config.motion_decay
            self.state = self.state + np.array([*self.velocity, 0.0, 0.0])

    def _update_template(self, image: np.ndarray, box: np.ndarray, score: float,
                         bgr: bool) -> None:
        """Take a confident frame's view of the target as the template; lost: the first one."""
        if self.lost or self.searching or not self.config.template_update:
            # The newest template may be what the tracker drifted with: search with the one
            # it was given (and track with it again once the update is switched off).
            if self._template_updated:
                self._template[...] = self._first_template
                self.backend.set_template(self._template)
                self._template_updated = False
            return
        config = self.config
        if (score < config.template_threshold
                or self.frame_index + 1 - self._template_at < config.template_interval):
            return
        transform = search_transform(box, config.template_factor, self.backend.template_size)
        self._crop(image, transform, self._template, bgr)
        self.backend.set_template(self._template)
        self._template_updated, self._template_at = True, self.frame_index + 1

    def _redetect(self, image: np.ndarray, bgr: bool) -> Optional[Tuple[np.ndarray, float]]:
        """Search the next tiles of the whole frame; take a confident candidate back."""
        config = self.config
        side = config.search_factor * math.sqrt(self.state[2] * self.state[3])
        tiles = frame_tiles(image.shape[1], image.shape[0], side)
        count = min(config.redetect_tiles, len(tiles))
        if len(self._tiles) < count:
            self._tiles = np.zeros((count, *self._search.shape), np.uint8)
        size = self.backend.search_size
        transforms = []
        for index in range(count):
            x, y = tiles[self._next_tile % len(tiles)]
            self._next_tile += 1
            transforms.append(CropTransform(scale=size / side, offset=(x, y), size=size))
            self._crop(image, transforms[-1], self._tiles[index], bgr)
        boxes, scores, cells = self.backend.infer_batch(self._tiles[:count])
        best: Optional[Tuple[float, np.ndarray]] = None
        for index, transform in enumerate(transforms):
            candidate = self._best_candidate(transform, boxes[index], scores[index],
                                             cells[index], window=False)
            if best is None or candidate[0] > best[0]:
                best = candidate
        if best[0] < self._recover_bar(best[1], config.redetect_threshold):
            return None
        # A tile may cut the target: search once more, centred on what it found.
        transform = search_transform(best[1], config.search_factor, size)
        self._crop(image, transform, self._search, bgr)
        refined = self._best_candidate(transform, *self.backend.infer(self._search), window=True)
        if refined[0] >= self._recover_bar(refined[1], config.redetect_threshold):
            best = refined
        box = clip_box(best[1], image.shape[1], image.shape[0], config.clip_margin,
                       config.min_size)
        LOG.info('target re-detected at frame %d (score %.2f)', self.frame_index + 1, best[0])
        self.state, self.score, self.lost, self.searching = box, best[0], False, False
        self.frames_below = self.frames_lost = 0
        self.velocity = np.zeros(2)
        self._seen_centre, self._seen_at = _centre(box), self.frame_index
        self.reacquisitions += 1
        return box, best[0]

    def _best_candidate(self, transform: CropTransform, boxes: np.ndarray, scores: np.ndarray,
                        cells: np.ndarray, window: bool) -> Tuple[float, np.ndarray]:
        """Return the best score of one crop's candidates and its box in the image."""
        index = self.pick_candidate(scores, cells, window)
        size = self.backend.search_size
        cx, cy, w, h = (float(v) * size for v in boxes[index])
        return float(scores[index]), transform.box_to_image(
            np.array([cx - 0.5 * w, cy - 0.5 * h, w, h]))

    def _crop(self, image: np.ndarray, transform: CropTransform, out: np.ndarray,
              bgr: bool) -> None:
        """Warp the region of ``transform`` into ``out`` (RGB), padding with the mean colour."""
        size = out.shape[0]
        inside = covers_only_image(transform, image.shape)
        gray = image.ndim == 2
        if inside:
            border = (0.0, 0.0, 0.0)
        else:
            border = tuple(float(v) for v in mean_colour(image)) * (3 if gray else 1)
        if gray:
            same = size == self._gray.shape[0]
            target = self._gray if same else np.empty((size, size), np.uint8)
            cv2.warpAffine(image, transform.matrix, (size, size), dst=target,
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=border)
            out[...] = target[..., None]
            return
        # BGR is warped into a scratch crop of the same size and converted into ``out``
        # (cvtColor cannot work in place).
        target = out
        if bgr:
            target = self._scratch if out.shape == self._scratch.shape else \
                self._template_scratch
        cv2.warpAffine(image, transform.matrix, (size, size), dst=target,
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=border)
        if bgr:
            cv2.cvtColor(target, cv2.COLOR_BGR2RGB, dst=out)


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([box[0] + 0.5 * box[2], box[1] + 0.5 * box[3]])


def frame_tiles(width: int, height: int, side: float) -> List[Tuple[float, float]]:
    """
    Return the top-left corners of squares of ``side`` covering a frame, half-overlapping.

    Rows and columns are spread evenly from edge to edge (a square larger than the frame is
    centred on it), so every pixel lies in at least one square.
    """
    def starts(length: int) -> List[float]:
        if side >= length:
            return [0.5 * (length - side)]
        count = math.ceil((length - side) / (0.5 * side)) + 1
        return [i * (length - side) / (count - 1) for i in range(count)]
    return [(x, y) for y in starts(height) for x in starts(width)]


def damp_size(box: np.ndarray, previous: np.ndarray, score: float, rate: float,
              max_step: float) -> np.ndarray:
    """
    Return ``box`` with its width and height moved only part of the way from ``previous``.

    In log space, a fraction ``rate * score`` of the change (score clipped to [0, 1]), then
    at most a factor ``max_step``; the centre stays the box's.
    """
    weight = rate * min(max(score, 0.0), 1.0)
    limit = math.log(max_step)
    sizes = []
    for new, old in ((box[2], previous[2]), (box[3], previous[3])):
        change = min(max(weight * math.log(new / old), -limit), limit)
        sizes.append(old * math.exp(change))
    cx, cy = box[0] + 0.5 * box[2], box[1] + 0.5 * box[3]
    return np.array([cx - 0.5 * sizes[0], cy - 0.5 * sizes[1], sizes[0], sizes[1]])


def clip_box(box: np.ndarray, width: int, height: int, margin: float = 10.0,
             min_size: float = 2.0) -> np.ndarray:
    """
    Clip an x, y, w, h box to the frame, keeping at least ``margin`` pixels of it inside.

    A box that drifts off the frame stays partly in view (OSTrack's convention), so the next
    search crop still sees the border region the target left through.
    """
    margin_x, margin_y = min(margin, 0.5 * width), min(margin, 0.5 * height)
    x1, y1 = box[0], box[1]
    x2, y2 = box[0] + box[2], box[1] + box[3]
    x1 = min(max(0.0, x1), width - margin_x)
    x2 = min(max(margin_x, x2), float(width))
    y1 = min(max(0.0, y1), height - margin_y)
    y2 = min(max(margin_y, y2), float(height))
    return np.array([x1, y1, max(min_size, x2 - x1), max(min_size, y2 - y1)])


def _as_image(frame: np.ndarray) -> np.ndarray:
    """Check a frame and return it as (H, W) gray or (H, W, 3) colour, uint8."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f'frame must be a NumPy array, got {type(frame).__name__}')
    if frame.dtype != np.uint8:
        raise ValueError(f'frame must be uint8, got {frame.dtype}')
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB)
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError(f'frame must be HxW, HxWx1, HxWx3 or HxWx4, got shape {frame.shape}')
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f'frame is empty: shape {frame.shape}')
    # Padded rows (a ROS image's step) are fine for OpenCV; only pixels must be packed.
    packed = frame.strides[-1] == 1 and (frame.ndim == 2 or frame.strides[1] == 3)
    if not packed:
        frame = np.ascontiguousarray(frame)
    return frame


def _check_box(box_xywh: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """Return the initial box as float64 after checking it is usable in a frame of ``shape``."""
    box = np.asarray(box_xywh, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f'initial box must be 4 finite numbers x, y, w, h, got {box_xywh}')
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f'initial box must have positive width and height, got {box_xywh}')
    height, width = shape[0], shape[1]
    if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise ValueError(f'initial box {box.tolist()} lies outside the {width}x{height} frame')
    if not math.isfinite(box[2] * box[3]):
        raise ValueError(f'initial box is too large: {box_xywh}')
    return box
