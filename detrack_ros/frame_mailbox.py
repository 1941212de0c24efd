"""
The hand-over between the image callback and the inference thread: newest frame wins.

The image callback only drops the message into a one-slot mailbox; the inference thread
takes whatever is newest when it is ready. A slow model therefore never builds a backlog:
a frame that is replaced before it was taken is counted as dropped, never queued.
"""

import collections
import threading
import time
from typing import Deque, Generic, Optional, Tuple, TypeVar

import numpy as np

Item = TypeVar('Item')


class FrameMailbox(Generic[Item]):
    """A thread-safe single slot: ``put`` replaces, ``take`` waits for and empties it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Optional[Item] = None
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, item: Item) -> None:
        """Store ``item`` as the newest; an untaken older one counts as dropped."""
        with self._condition:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._condition.notify()

    def take(self, timeout: Optional[float] = None) -> Optional[Item]:
        """Return the newest item, waiting up to ``timeout`` s; None on timeout or close."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._item is not None or self._closed,
                                            timeout):
                return None
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        """Forget a waiting item without counting it as dropped (e.g. on reset)."""
        with self._condition:
            self._item = None

    def close(self) -> None:
        """Wake every waiter; ``take`` returns None from now on once the slot is empty."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class RateMeter:
    """Events per second over a sliding time window (for diagnostics)."""

    def __init__(self, window_s: float = 2.0) -> None:
        if window_s <= 0:
            raise ValueError(f'window_s must be positive, got {window_s}')
        self.window_s = window_s
        self._stamps: Deque[float] = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: Optional[float] = None) -> None:
        """Record one event at ``now`` (monotonic seconds; default: the current time)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._stamps.append(now)
            self._expire(now)

    def rate(self, now: Optional[float] = None) -> float:
        """Return events per second over the last window (0 with fewer than two events)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            if len(self._stamps) < 2:
                return 0.0
            span = self._stamps[-1] - self._stamps[0]
            return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def _expire(self, now: float) -> None:
        while self._stamps and self._stamps[0] < now - self.window_s:
            self._stamps.popleft()


class RecentValues:
    """The last ``size`` values of a measurement (latency, model time) and their percentiles."""

    def __init__(self, size: int = 300) -> None:
        if size < 1:
            raise ValueError(f'size must be at least 1, got {size}')
        self._values: Deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        """Record one value; the oldest falls out once ``size`` are held."""
        with self._lock:
            self._values.append(value)

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._values.clear()

    def percentiles(self, *quantiles: float) -> Optional[Tuple[float, ...]]:
        """Return the held values at the given quantiles (0..100), or None when empty."""
        with self._lock:
            if not self._values:
                return None
            values = np.fromiter(self._values, np.float64, len(self._values))
        return tuple(float(v) for v in np.percentile(values, quantiles))
