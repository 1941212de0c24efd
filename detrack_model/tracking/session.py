"""
A tracking session: one tracker and the rules of when it tracks what. No ROS in here.

The session owns what a tracker node decides besides the maths: the target waiting to start
(a box, where it came from, and the stamp of the image it was drawn on, matched against a
short history of recent frames), enable and reset, the id of the current target, the
hand-over from a detector, and the runtime settings, an immutable :class:`SessionSettings`
replaced as a whole and checked once. A node, the demo and the evaluation drive the same
session, so they cannot disagree about any of it.

Frames are opaque items (a ROS message, a file name, an array): the session keeps them in its
history by stamp and converts only the ones it uses, through the ``convert`` function it was
given, which returns a :class:`FrameData` or None for an image that cannot be used (the
caller counts and reports those).

Threads: :meth:`TrackingSession.step` runs on one inference thread; every other method may
be called from any thread. A lock serialises each use of the tracker.
"""

import collections
from dataclasses import dataclass, replace
import math
import threading
from typing import (Any, Callable, Deque, Generic, List, NamedTuple, Optional, Protocol,
                    Sequence, Tuple, TypeVar)
import uuid

from detrack_model.tracking.boxes import Box, InitBoxError, validate_box
from detrack_model.tracking.tracker import FrameSizeChanged, Tracker, TrackerConfig
import numpy as np

Item = TypeVar('Item')


# The tracker's defaults, which the session's settings start from.
TRACKER_DEFAULTS = TrackerConfig()
# The session's settings that are the tracker's (TrackerConfig fields of the same name).
TRACKER_SETTINGS = ('score_threshold', 'lost_patience', 'search_patience', 'motion', 'redetect',
                    'reference_frames', 'recover_threshold', 'recover_growth', 'template_update')


@dataclass(frozen=True)
class SessionSettings:
    """The runtime-changeable settings of a session, checked when they are made."""

    score_threshold: float = TRACKER_DEFAULTS.score_threshold
    lost_patience: int = TRACKER_DEFAULTS.lost_patience
    search_patience: int = TRACKER_DEFAULTS.search_patience
    # Decoder layers run per frame; 0: all the model has (checked against it on update).
    decoder_layers: int = 0
    # Most frames processed per second; 0: as fast as the model runs.
    max_rate: float = 0.0
    # Start from detector boxes while no target is tracked or the target is lost.
    auto_init: bool = False
    auto_init_class_id: str = ''
    auto_init_min_score: float = 0.5
    # The tracker's robustness switches (TrackerConfig.motion, .redetect, .reference_frames).
    motion: bool = TRACKER_DEFAULTS.motion
    redetect: bool = TRACKER_DEFAULTS.redetect
    reference_frames: int = TRACKER_DEFAULTS.reference_frames
    # The hysteresis of a lost target's recovery (TrackerConfig.recover_threshold, _growth).
    recover_threshold: float = TRACKER_DEFAULTS.recover_threshold
    recover_growth: float = TRACKER_DEFAULTS.recover_growth
    # Confident views of the target taken as the template (TrackerConfig.template_update).
    template_update: bool = TRACKER_DEFAULTS.template_update

    def __post_init__(self) -> None:
        """Name the first setting outside its range."""
        for name, low, high in (('auto_init_min_score', 0.0, 1.0), ('max_rate', 0.0, math.inf)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f'{name} must be in [{low:g}, {high:g}], got {value!r}')
        if not (isinstance(self.decoder_layers, int) and self.decoder_layers >= 0):
            raise ValueError('decoder_layers must be an integer >= 0 (0: all), got '
                             f'{self.decoder_layers!r}')
        # The tracker's settings are checked by the tracker's own rules, once.
        replace(TRACKER_DEFAULTS, **{name: getattr(self, name) for name in TRACKER_SETTINGS})


class FrameData(NamedTuple):
    """A converted frame: uint8 (H, W) or (H, W, 3), and whether colour is BGR."""

    array: np.ndarray
    bgr: bool


class PendingInit(NamedTuple):
    """A new target waiting for the inference thread."""

    box: Box
    source: str
    # Stamp of the image the box was drawn on (ns); None: the next image.
    stamp_ns: Optional[int]


@dataclass
class StepResult(Generic[Item]):
    """What one step produced: publish it as the output of ``item``."""

    item: Item
    frame: FrameData
    box: np.ndarray
    score: float
    lost: bool
    track_id: str
    # The image region searched (x, y, w, h), for overlays; None on the first frame.
    search_region: Optional[Tuple[float, float, float, float]] = None
    # The init this frame started, if it did.
    started: Optional[PendingInit] = None


class Reporter(Protocol):
    """Where a session tells what happened (a node logs it; tests record it)."""

    def rejected(self, source: str, error: InitBoxError) -> None:
        """Report an init box that was refused."""

    def stale_init(self, init: PendingInit, used_stamp_ns: int, kept: int) -> None:
        """Report an init whose image left the history: the newest image was used."""

    def started(self, init: PendingInit, box: Box, track_id: str, stamp_ns: int) -> None:
        """Report a new target."""

    def skipped(self, error: Exception) -> None:
        """Report a frame that could not be tracked (another size, bad contents)."""

    def size_changed(self, width: int, height: int, lost: bool) -> None:
        """Report images of a new size taken under the target (``lost``: another aspect)."""


class TrackingSession(Generic[Item]):
    """Decide what ``tracker`` tracks on which frame; see the module docstring."""

    def __init__(self, tracker: Tracker, stamp_of: Callable[[Item], int],
                 convert: Callable[[Item], Optional[FrameData]], reporter: Reporter,
                 settings: Optional[SessionSettings] = None, history: int = 30,
                 model_layers: Optional[int] = None) -> None:
        if history < 0:
            raise ValueError(f'history must be >= 0, got {history}')
        self.tracker = tracker
        self._stamp_of, self._convert, self._report = stamp_of, convert, reporter
        self.model_layers = model_layers
        self.settings = SessionSettings()
        self._history: Deque[Item] = collections.deque(maxlen=max(1, history))
        self._keep_history = history > 0
        self._pending: Optional[PendingInit] = None
        self._init_lock = threading.Lock()
        # Serialises every use of the tracker: the inference thread per frame, resets and
        # setting changes in between frames.
        self.lock = threading.Lock()
        self.enabled = True
        self.track_id = ''
        self.counters: collections.Counter = collections.Counter()
        self._size_changes_seen = tracker.size_changes
        # Without settings, the tracker's own thresholds are the session's.
        config = tracker.config
        self.update(settings or SessionSettings(**{name: getattr(config, name)
                                                   for name in TRACKER_SETTINGS}))

    # -- settings ---------------------------------------------------------------------------

    def check(self, settings: SessionSettings) -> None:
        """Raise ValueError when ``settings`` do not fit this session's model."""
        if settings.decoder_layers and self.model_layers is not None:
            from detrack_model.config import validate_decoder_layers
            validate_decoder_layers(settings.decoder_layers, self.model_layers)

    def update(self, settings: SessionSettings) -> SessionSettings:
        """
        Check and take ``settings`` as a whole; return the previous ones.

        The tracker's thresholds change between two frames. The decoder depth is the caller's
        to apply (a depth switch may build a graph); ``decoder_layers`` here is what it asked.
        """
        self.check(settings)
        with self.lock:
            self.tracker.update_config(**{name: getattr(settings, name)
                                          for name in TRACKER_SETTINGS})
            previous, self.settings = self.settings, settings
        return previous

    def change(self, **values: Any) -> SessionSettings:
        """Return the current settings with ``values`` changed (checked, not yet taken)."""
        changed = replace(self.settings, **values)
        self.check(changed)
        return changed

    # -- inputs (any thread) ----------------------------------------------------------------

    def remember(self, item: Item) -> None:
        """Keep a received frame in the history that stamped inits are matched against."""
        if self._keep_history:
            self._history.append(item)

    def request_init(self, box: Sequence[float], source: str,
                     stamp_ns: Optional[int] = None) -> bool:
        """
        Queue a new target; return whether it was accepted (a rejection is reported).

        The checks that need no image run now; the box is clipped to the image when it starts.
        A newer request replaces one not yet started.
        """
        try:
            checked = validate_box(box)
        except InitBoxError as error:
            self._reject(source, error)
            return False
        with self._init_lock:
            self._pending = PendingInit(checked, source, stamp_ns or None)
        return True

    def offer_detection(self, box: Optional[Box], score: float, source: str,
                        stamp_ns: Optional[int] = None) -> bool:
        """
        Hand a detector's best box over when auto_init wants one; return whether it was taken.

        Taken only while enabled, with auto_init on, no init waiting, and no target tracked
        (or the target lost).
        """
        if not self.wants_detections or box is None:
            return False
        return self.request_init(box, f'{source} (score {score:.2f})', stamp_ns)

    @property
    def wants_detections(self) -> bool:
        """Tell whether a detector's box would be taken now (auto_init hand-over)."""
        if not (self.settings.auto_init and self.enabled):
            return False
        with self._init_lock:
            if self._pending is not None:
                return False
        tracker = self.tracker
        # Only once the tracker has stopped following its target (not on a reported dip).
        return not (tracker.initialized and not tracker.searching)

    @property
    def pending(self) -> Optional[PendingInit]:
        """Return the init waiting to start, if any."""
        return self._pending

    def reset(self) -> bool:
        """Forget the target and any waiting init; return whether a target was tracked."""
        with self._init_lock:
            self._pending = None
        with self.lock:
            had_target = self.tracker.initialized
            self.tracker.reset()
            self.track_id = ''
        return had_target

    def set_enabled(self, enabled: bool) -> bool:
        """Start or stop processing frames (the target is kept); return whether it changed."""
        changed = self.enabled != bool(enabled)
        self.enabled = bool(enabled)
        return changed

    def clear(self) -> None:
        """Forget the history and any waiting init (the tracker keeps its target)."""
        self._history.clear()
        with self._init_lock:
            self._pending = None

    # -- the inference thread ---------------------------------------------------------------

    def step(self, item: Optional[Item]) -> List[StepResult]:
        """
        Apply a waiting init, then track ``item`` (the newest frame, or None if none came).

        Return what to publish, in order: the start of a new target (on ``item`` or on the
        older frame its box was drawn on) and the tracking result of ``item``. Empty when
        there is nothing (no target, disabled, a frame that could not be used).
        """
        with self._init_lock:
            init, self._pending = self._pending, None
        results: List[StepResult] = []
        if init is not None and not self.enabled:
            self._requeue(init)
        elif init is not None:
            source = self._frame_for(init, item)
            if source is None:
                self._requeue(init)  # no image yet: keep it for the next one
            else:
                outcome = self._start(init, source)
                if outcome is not None and outcome is not False:
                    results.append(outcome)
                if outcome is not False and source is item:
                    return results  # started on this very frame, or its image was bad
        if item is not None and self.enabled:
            tracked = self._track(item)
            if tracked is not None:
                results.append(tracked)
        return results

    def _requeue(self, init: PendingInit) -> None:
        with self._init_lock:
            if self._pending is None:
                self._pending = init

    def _frame_for(self, init: PendingInit, newest: Optional[Item]) -> Optional[Item]:
        """Return the frame an init applies to: the one with its stamp, else the newest."""
        if init.stamp_ns is None or not self._keep_history:
            return newest
        history = list(self._history)  # one copy: the receiving thread appends meanwhile
        for item in reversed(history):
            if self._stamp_of(item) == init.stamp_ns:
                return item
        latest = newest if newest is not None else (history[-1] if history else None)
        if latest is None or init.stamp_ns > self._stamp_of(latest):
            return newest  # its image has not arrived yet
        self.counters['init_stale'] += 1
        self._report.stale_init(init, self._stamp_of(latest), self._history.maxlen)
        return latest

    def _start(self, init: PendingInit, item: Item):
        """
        Initialise on ``item``; return the StepResult of the new target, False, or None.

        False: the box does not fit the image (reported); None: the image was bad.
        """
        frame = self._convert(item)
        if frame is None:
            self._reject(init.source, InitBoxError('its image could not be converted', 'image'))
            return None
        height, width = frame.array.shape[:2]
        try:
            box = validate_box(init.box, (width, height))
        except InitBoxError as error:
            self._reject(init.source, error)
            return False
        with self.lock:
            self.tracker.initialize(frame.array, box, bgr=frame.bgr)
            self._size_changes_seen = self.tracker.size_changes
            self.track_id = track_id = uuid.uuid4().hex[:12]
        self.counters['inits'] += 1
        self._report.started(init, box, track_id, self._stamp_of(item))
        return StepResult(item, frame, np.asarray(box, dtype=np.float64), 1.0, False,
                          track_id, None, init)

    def _track(self, item: Item) -> Optional[StepResult]:
        tracker = self.tracker
        if not tracker.initialized:
            return None
        frame = self._convert(item)
        if frame is None:
            return None
        with self.lock:
            if not tracker.initialized:  # reset while converting
                return None
            try:
                box, score = tracker.track(frame.array, bgr=frame.bgr)
            except FrameSizeChanged as error:
                self.counters['frame_size_changes'] += 1
                self._report.skipped(error)
                return None
            except ValueError as error:
                self.counters['bad_images'] += 1
                self._report.skipped(error)
                return None
            region = tracker.search_region
            result = StepResult(item, frame, box, score, tracker.lost, self.track_id,
                                region.image_region() if region is not None else None)
            if tracker.size_changes != self._size_changes_seen:
                self._size_changes_seen = tracker.size_changes
                self.counters['size_changes_taken'] += 1
                height, width = frame.array.shape[:2]
                self._report.size_changed(width, height, result.lost)
        return result

    def _reject(self, source: str, error: InitBoxError) -> None:
        self.counters['init_rejected'] += 1
        self._report.rejected(source, error)

    # -- state ------------------------------------------------------------------------------

    def state_label(self) -> str:
        """Return idle, tracking, lost or disabled."""
        if not self.enabled:
            return 'disabled'
        if not self.tracker.initialized:
            return 'idle'
        return 'lost' if self.tracker.lost else 'tracking'


class _Quiet:
    """A Reporter for offline runs: rejections are errors, the rest needs no telling."""

    error: Optional[Exception] = None

    def rejected(self, source: str, error: InitBoxError) -> None:
        """Keep the refusal for the caller to raise."""
        self.error = error

    def stale_init(self, init: PendingInit, used_stamp_ns: int, kept: int) -> None:
        """Never happens offline: every init is applied to the frame it came with."""

    def started(self, init: PendingInit, box: Box, track_id: str, stamp_ns: int) -> None:
        """Nothing to tell."""

    def skipped(self, error: Exception) -> None:
        """Keep the reason a frame was not tracked."""
        self.error = error

    def size_changed(self, width: int, height: int, lost: bool) -> None:
        """Nothing to tell: the offline caller sees the frames it gives."""


class OfflineSession:
    """
    A session driven over frames in order, with the Tracker's interface.

    ``initialize(frame, box)`` then ``track(frame) -> (box, score)``: what ``detrack-eval`` and
    the demo's offline run call, so they go through the same session as the node (the same
    init checks and clipping, the same order of events). A refused initial box raises
    :class:`InitBoxError`; a frame the tracker skips (another size) raises its error.
    """

    def __init__(self, tracker: Tracker, settings: Optional[SessionSettings] = None) -> None:
        self._reporter = _Quiet()
        self.session: TrackingSession = TrackingSession(
            tracker, lambda item: item[0], lambda item: FrameData(item[1], item[2]),
            self._reporter, settings, history=0)
        self._stamp = 0

    @property
    def tracker(self) -> Tracker:
        """Return the tracker the session drives."""
        return self.session.tracker

    @property
    def lost(self) -> bool:
        """Tell whether the target is considered lost."""
        return self.session.tracker.lost

    def _step(self, frame: np.ndarray, bgr: bool) -> List[StepResult]:
        self._stamp += 1
        self._reporter.error = None
        return self.session.step((self._stamp, frame, bgr))

    def initialize(self, frame: np.ndarray, box_xywh: Sequence[float], bgr: bool = False) -> None:
        """Start the target in ``box_xywh`` of ``frame`` (clipped to it, as the node does)."""
        self.session.reset()
        if not self.session.request_init(box_xywh, 'initial box'):
            raise self._reporter.error
        if not self._step(frame, bgr):
            raise self._reporter.error or InitBoxError('the initial frame could not be used')

    def track(self, frame: np.ndarray, bgr: bool = False) -> Tuple[np.ndarray, float]:
        """Track ``frame``; return the box x, y, w, h and the network's score."""
        results = self._step(frame, bgr)
        if not results:
            raise self._reporter.error or RuntimeError('track() called before initialize()')
        return results[-1].box, results[-1].score
