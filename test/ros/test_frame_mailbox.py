"""The newest-frame mailbox between the image callback and inference, and the rate meter."""

import threading
import time

from detrack_ros.frame_mailbox import FrameMailbox, RateMeter, RecentValues
import numpy as np
import pytest


def test_newest_item_wins_and_replaced_ones_count_as_dropped():
    """Three puts before a take: the third is taken, two are dropped, nothing is queued."""
    box = FrameMailbox()
    for item in (1, 2, 3):
        box.put(item)
    assert box.take(timeout=0) == 3
    assert (box.received, box.dropped) == (3, 2)
    assert box.take(timeout=0.01) is None
    box.put(4)
    assert box.take(timeout=0) == 4 and box.dropped == 2


def test_take_waits_for_a_put_and_close_wakes_waiters():
    """A waiting consumer gets an item put by another thread; close() releases it."""
    box = FrameMailbox()
    got = []
    consumer = threading.Thread(target=lambda: got.append(box.take(timeout=5)))
    consumer.start()
    time.sleep(0.05)
    box.put('frame')
    consumer.join(2)
    assert got == ['frame']
    waiting = threading.Thread(target=lambda: got.append(box.take(timeout=5)))
    waiting.start()
    time.sleep(0.05)
    started = time.monotonic()
    box.close()
    waiting.join(2)
    assert got == ['frame', None] and time.monotonic() - started < 1.0


def test_clear_forgets_without_counting_a_drop():
    """A reset discards the waiting frame; it is not a drop."""
    box = FrameMailbox()
    box.put(1)
    box.clear()
    assert box.take(timeout=0) is None and box.dropped == 0


def test_fast_producer_slow_consumer_never_backs_up():
    """200 puts against a consumer taking 1 in ~10: it always gets the newest one."""
    box = FrameMailbox()
    taken = []
    for item in range(200):
        box.put(item)
        if item % 10 == 9:
            taken.append(box.take(timeout=0))
    assert taken == list(range(9, 200, 10))
    assert box.dropped == 200 - len(taken)


def test_rate_meter_over_a_sliding_window():
    """Ten events 0.1 s apart read 10 Hz; old events fall out of the window."""
    meter = RateMeter(window_s=2.0)
    for index in range(10):
        meter.tick(100.0 + 0.1 * index)
    assert meter.rate(100.9) == pytest.approx(10.0)
    assert meter.rate(105.0) == 0.0
    with pytest.raises(ValueError):
        RateMeter(0)


def test_recent_values_keep_a_window_and_give_percentiles():
    """Only the last ``size`` values count; percentiles follow NumPy's; empty gives None."""
    window = RecentValues(size=4)
    assert window.percentiles(50) is None
    for value in (100.0, 1.0, 2.0, 3.0, 4.0):
        window.add(value)
    median, p95 = window.percentiles(50, 95)
    assert median == pytest.approx(2.5)
    assert p95 == pytest.approx(np.percentile([1.0, 2.0, 3.0, 4.0], 95))
    window.clear()
    assert window.percentiles(50) is None
    with pytest.raises(ValueError):
        RecentValues(size=0)
