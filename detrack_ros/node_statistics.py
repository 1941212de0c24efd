"""
What the tracker node measures about its own work, and how healthy that looks.

Rates and latencies go into ``/diagnostics``; :meth:`NodeStatistics.health` turns them into
the status level and message: a warning when images stop, when images arrive but none is
processed, and while the target is lost. No rclpy here: the node builds the messages.
"""

import time
from typing import Dict, Tuple

from detrack_ros.frame_mailbox import RateMeter, RecentValues

# Active with no image for this long is worth a warning in the diagnostics; so is tracking
# with images arriving but none processed for this long (or two max_rate periods).
STALE_INPUT_SEC = 2.0
OK, WARN = 'ok', 'warn'


class NodeStatistics:
    """Rates, recent latencies and the moments the health checks count from."""

    def __init__(self) -> None:
        self.input_rate = RateMeter()
        self.processing_rate = RateMeter()
        self.inference_ms = RecentValues()
        self.latency_ms = RecentValues()
        self.node_ms = RecentValues()
        self.last_input = 0.0
        self.last_processed = 0.0
        # When the current target (or processing, after enable) started: the stall check
        # counts from here.
        self.tracking_since = 0.0

    def received(self, monotonic: float) -> None:
        """Count an image as it arrives."""
        self.last_input = monotonic
        self.input_rate.tick(monotonic)

    def started(self) -> None:
        """Note that tracking (re)started now: a new target, or processing enabled."""
        self.tracking_since = time.monotonic()

    def stepped(self, new_target: bool, step_started: float) -> None:
        """Note a step's result: a new target restarts the stall clock, else time the step."""
        if new_target:
            self.started()
        else:
            self.inference_ms.add((time.perf_counter() - step_started) * 1e3)

    def published(self, received_at: float, age_ms: float) -> None:
        """Count an output, with its time in the node and its age since the image's stamp."""
        now = time.monotonic()
        self.last_processed = now
        self.processing_rate.tick(now)
        self.node_ms.add((now - received_at) * 1e3)
        self.latency_ms.add(age_ms)

    def health(self, state: str, now: float, max_rate: float, topic: str) -> Tuple[str, str]:
        """Return (OK or WARN, message) for the node in ``state``."""
        if state not in ('inactive', 'disabled') and now - self.last_input > STALE_INPUT_SEC:
            return WARN, f'{state}; no image on {topic} for over {STALE_INPUT_SEC:g} s'
        if state in ('tracking', 'lost'):
            limit = max(STALE_INPUT_SEC, 2.0 / max_rate if max_rate > 0 else 0.0)
            idle = now - max(self.last_processed, self.tracking_since)
            if idle > limit:
                return WARN, (f'{state}; images arrive but none was processed for {idle:.0f} s '
                              '(see the log for dropped images)')
        if state == 'lost':
            return WARN, 'target lost'
        return OK, state

    def values(self, now: float) -> Dict[str, str]:
        """Return the rates and the median and p95 latencies as diagnostics strings."""
        values = {'input_rate_hz': f'{self.input_rate.rate(now):.1f}',
                  'processing_rate_hz': f'{self.processing_rate.rate(now):.1f}'}
        for key, window in (('inference_ms', self.inference_ms),
                            ('latency_ms', self.latency_ms), ('node_latency_ms', self.node_ms)):
            stats = window.percentiles(50, 95)
            values[f'{key}_median'] = f'{stats[0]:.2f}' if stats else ''
            values[f'{key}_p95'] = f'{stats[1]:.2f}' if stats else ''
        return values
