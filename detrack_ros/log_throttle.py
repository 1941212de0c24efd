"""
Throttle repeated warnings per kind, so that a flood of one bad input cannot fill the log.

rclpy's own ``throttle_duration_sec`` throttles per call site: every rejected init box would
share one budget, and the first NaN box would hide a different mistake made a second later.
:class:`KeyedThrottle` keeps one budget per key (the input and the rule it broke) and counts
what it held back, so the next message can say how many there were.
"""

import threading
import time
from typing import Dict, Hashable, Optional, Tuple


class KeyedThrottle:
    """Admit the first event of every key, then at most one per ``period_s`` seconds."""

    def __init__(self, period_s: float) -> None:
        if not period_s > 0.0:
            raise ValueError(f'period_s must be positive, got {period_s!r}')
        self.period_s = float(period_s)
        # key -> (monotonic time of the last admitted event, events held back since)
        self._state: Dict[Hashable, Tuple[float, int]] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable, now: Optional[float] = None) -> Optional[int]:
        """
        Record one event of ``key``; return None to hold it back, else how many were held back.

        The count returned is the number of events of ``key`` suppressed since the last one
        admitted (0 for the first).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            last, held = self._state.get(key, (None, 0))
            if last is not None and now - last < self.period_s:
                self._state[key] = (last, held + 1)
                return None
            self._state[key] = (now, 0)
            return held
