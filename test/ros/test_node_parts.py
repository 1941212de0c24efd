"""The tracker node's ROS-free parts: the model host and the inference thread."""

import threading
import time

from detrack_model.export.bundle import BundleError
from detrack_model.shipped import default_model_path
from detrack_model.tracking.factory import RuntimeConfig
from detrack_model.tracking.model_host import ModelHost
from detrack_model.tracking.session import FrameData, SessionSettings, TrackingSession
from detrack_model.tracking.tracker import Tracker
from detrack_ros.inference_worker import InferenceWorker
import numpy as np
import pytest
from session_doubles import Recorder, ScriptedBackend


def scripted_session(**settings):
    """Return a session over a scripted tracker; items are (stamp, image)."""
    return TrackingSession(Tracker(ScriptedBackend()), lambda item: item[0],
                           lambda item: FrameData(item[1], False), Recorder(),
                           SessionSettings(**settings), 30, model_layers=2)


def wait_until(predicate, timeout=10.0):
    """Return whether ``predicate`` became true within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_the_worker_tracks_the_newest_frame_and_survives_a_failing_one():
    session = scripted_session()
    steps, errors = [], []

    def step(item):
        if item is not None and item[0] == 2:
            raise RuntimeError('broken frame')
        steps.append(item)
        session.step(item)

    worker = InferenceWorker(step, lambda: session, errors.append)
    worker.start()
    try:
        image = np.zeros((120, 160, 3), np.uint8)
        worker.mailbox.put((1, image))
        assert wait_until(lambda: (1, image) in [s for s in steps if s is not None])
        worker.mailbox.put((2, image))
        assert wait_until(lambda: len(errors) == 1)
        assert isinstance(errors[0], RuntimeError)
        worker.mailbox.put((3, image))
        assert wait_until(lambda: any(s is not None and s[0] == 3 for s in steps))
        assert worker.running
    finally:
        worker.stop()
    assert not worker.running
    # Items put while stopped are never stepped.
    seen = len(steps)
    worker.mailbox.put((4, np.zeros((120, 160, 3), np.uint8)))
    time.sleep(0.2)
    assert len(steps) == seen


def test_the_worker_paces_a_tracked_target_to_max_rate_and_wakes_for_a_reset():
    session = scripted_session(max_rate=5.0)
    image = np.zeros((120, 160, 3), np.uint8)
    stamps = []
    worker = InferenceWorker(lambda item: (stamps.append(time.monotonic()),
                                           session.step(item)), lambda: session, print)
    session.request_init((60.0, 40.0, 30.0, 30.0), 'test')
    worker.start()
    try:
        started = time.monotonic()
        for index in range(1, 5):
            worker.mailbox.put((index, image))
            time.sleep(0.01)
        # The first frame starts the target; the next one waits out 1/5 s.
        assert wait_until(lambda: session.tracker.initialized)
        assert wait_until(lambda: len([s for s in stamps if s > started]) >= 3, 5.0)
        taken = sorted(s for s in stamps if s > started)
        # Frames replaced while waiting were dropped, not queued.
        assert worker.mailbox.dropped >= 1
        assert taken[2] - taken[1] >= 0.15
        # A reset ends a long wait at once.
        session.update(SessionSettings(max_rate=0.2))
        worker.mailbox.put((10, image))
        time.sleep(0.1)
        session.reset()
        worker.wake()
        before = time.monotonic()
        worker.mailbox.put((11, image))
        assert wait_until(lambda: stamps[-1] >= before, 2.0)
    finally:
        worker.stop()


@pytest.fixture(scope='module')
def host():
    """Return the shipped model on PyTorch, loaded and warmed up."""
    model = ModelHost(str(default_model_path()), RuntimeConfig(device='cpu', backend='torch'),
                      None)
    model.attach(threading.Lock(), lambda layers, seconds, error: None)
    yield model
    model.close(threading.Lock())


def test_the_host_loads_the_default_model_and_refuses_a_depth_it_lacks(host):
    assert host.path == default_model_path()
    assert host.total_layers == 2 and host.depth_label() == '2'
    assert host.load_seconds > 0.0
    assert not host.tracker.initialized  # warmed up, then reset
    with pytest.raises(ValueError, match='decoder_layers 3'):
        ModelHost('', RuntimeConfig(device='cpu', backend='torch'), 3)
    with pytest.raises(BundleError, match='bundle config not found'):
        ModelHost('/nonexistent/model.safetensors', RuntimeConfig(device='cpu'), None)


def test_a_released_host_keeps_its_target_and_reloads_the_asked_depth(host):
    lock = threading.Lock()
    # A checkered target on a dim noisy background: the model follows it, so the checks below
    # see the kept target and not a search for a lost one.
    rng = np.random.default_rng(0)
    frame = rng.integers(40, 90, (240, 320, 3), np.uint8)
    rows, cols = np.mgrid[0:40, 0:50]
    frame[80:120, 100:150] = (255 * (((rows // 8) + (cols // 8)) % 2))[..., None]
    host.tracker.initialize(frame, (100.0, 80.0, 50.0, 40.0))
    before = host.tracker.track(frame)
    host.release(lock)
    assert host.released
    host.release(lock)  # twice is fine
    # A depth change while released is checked now and built on reload.
    with pytest.raises(ValueError):
        host.set_decoder_layers(5)
    host.set_decoder_layers(1)
    host.reload(lock)
    assert not host.released and host.tracker.initialized
    assert host.depth_label() == '1'
    after = host.tracker.track(frame)
    assert np.all(np.isfinite(after[0]))
    host.set_decoder_layers(None)
    assert host.depth_label() == '2'
    assert abs(host.tracker.track(frame)[0][0] - before[0][0]) < 40.0
