"""
The tracker node's inference thread: it tracks the newest frame whenever it is free.

Frames arrive in a one-slot :class:`FrameMailbox` (newest wins, replaced ones count as
dropped). After a frame the thread waits out the rest of the ``max_rate`` period unless there
is no target to pace (a new init, a reset) or it is told to stop. No rclpy here: the node gives
the step to run per frame and what to do with an error, and plain tests drive it.
"""

import threading
import time
from typing import Callable, Generic, Optional

from detrack_model.tracking.session import TrackingSession
from detrack_ros.frame_mailbox import FrameMailbox, Item

# Wake-up period while no frame arrives (to notice stop requests).
POLL_SEC = 0.1


class InferenceWorker(Generic[Item]):
    """Run ``step`` on each newest item (None while none came: pending inits still start)."""

    def __init__(self, step: Callable[[Optional[Item]], None],
                 session: Callable[[], Optional[TrackingSession]],
                 failed: Callable[[Exception], None]) -> None:
        self._step, self._session, self._failed = step, session, failed
        self.mailbox: FrameMailbox[Item] = FrameMailbox()
        self._stop = threading.Event()
        # Ends a max_rate wait early: a parameter change, reset, an init, stopping.
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        """Tell whether the thread was started and not stopped."""
        return self._thread is not None

    def start(self) -> None:
        """Start the thread with an empty mailbox (its counts start from zero)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self.mailbox = FrameMailbox()
        self._thread = threading.Thread(target=self._loop, name='detrack-inference',
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """End a max_rate wait now (new settings, a new target or a reset)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread after the frame in progress, if any."""
        self._stop.set()
        self._wake.set()
        self.mailbox.close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self.mailbox.take(timeout=POLL_SEC)
            if self._stop.is_set():
                break
            started = time.monotonic()
            try:
                self._step(item)
            except Exception as error:  # noqa: B902 - the thread must outlive any one frame
                self._failed(error)
            if item is not None:
                self._pace(started)

    def _pace(self, started: float) -> None:
        """
        Wait out the rest of the max_rate period that began at ``started``.

        The wait follows max_rate as it changes and ends early for a stop, a new init and a
        reset (no target, nothing to pace), so a long period set once never outlives it.
        """
        while not self._stop.is_set():
            session = self._session()
            if session is None:
                return
            max_rate = session.settings.max_rate
            remaining = 1.0 / max_rate - (time.monotonic() - started) if max_rate > 0 else 0
            if remaining <= 0.0 or session.pending is not None \
                    or not session.tracker.initialized:
                return
            self._wake.wait(remaining)
            self._wake.clear()
