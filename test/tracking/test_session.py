"""The ROS-free tracking session: inits matched by stamp, enable/reset, hand-over, settings."""

import threading

from detrack_model.tracking.session import FrameData, SessionSettings, TrackingSession
from detrack_model.tracking.tracker import Tracker, TrackerConfig
import numpy as np
import pytest
from session_doubles import Recorder, ScriptedBackend

PERIOD = 1000


def frame(index, size=(240, 320)):
    """Return item ``index``: (stamp, image), the image None for a broken one."""
    return (index * PERIOD, np.full(size + (3,), index % 256, np.uint8))


def convert(item):
    """Convert a test item; None (a bad image) when it has no pixels."""
    return None if item[1] is None else FrameData(item[1], False)


def session(history=30, **settings):
    """Return a session over a scripted tracker, and its recorder."""
    recorder = Recorder()
    tracker = Tracker(ScriptedBackend())
    return TrackingSession(tracker, lambda item: item[0], convert, recorder,
                           SessionSettings(**settings), history, model_layers=2), recorder


def test_an_init_starts_on_the_next_frame_and_tracking_follows():
    """The first frame after a request starts the target; the next ones are tracked."""
    run, recorder = session()
    assert run.step(frame(0)) == [] and run.state_label() == 'idle'
    assert run.request_init((100, 80, 40, 30), 'init_box')
    (started,) = run.step(frame(1))
    assert started.started.source == 'init_box' and started.score == 1.0
    np.testing.assert_allclose(started.box, (100, 80, 40, 30))
    assert started.track_id == run.track_id and len(run.track_id) == 12
    (tracked,) = run.step(frame(2))
    assert tracked.started is None and tracked.track_id == started.track_id
    assert tracked.item[0] == 2 * PERIOD and run.state_label() == 'tracking'
    assert run.counters['inits'] == 1
    assert recorder.events == [('started', 'init_box', (100.0, 80.0, 40.0, 30.0), PERIOD)]


def test_a_stamped_init_starts_on_its_own_frame_then_tracks_the_newest():
    """An init stamped like an older frame in the history starts there; the newest follows."""
    run, recorder = session()
    for index in range(5):
        run.remember(frame(index))
    run.request_init((10, 10, 20, 20), 'init_box', stamp_ns=2 * PERIOD)
    started, tracked = run.step(frame(4))
    assert started.item[0] == 2 * PERIOD and started.started is not None
    assert tracked.item[0] == 4 * PERIOD and tracked.track_id == started.track_id
    assert recorder.events[0][-1] == 2 * PERIOD


def test_an_init_older_than_the_history_starts_on_the_newest_and_is_counted():
    """A stamp that has left the history: counted, reported, started on the newest image."""
    run, recorder = session(history=3)
    for index in range(10):
        run.remember(frame(index))
    run.request_init((10, 10, 20, 20), 'clicked_point', stamp_ns=1 * PERIOD)
    (started,) = run.step(frame(9))
    assert started.item[0] == 9 * PERIOD
    assert run.counters['init_stale'] == 1
    assert ('stale', PERIOD, 9 * PERIOD, 3) in recorder.events


def test_an_init_before_any_frame_waits_for_one():
    """No frame yet: the init is kept, and starts on the first frame that comes."""
    run, _ = session()
    run.request_init((10, 10, 20, 20), 'init_roi')
    assert run.step(None) == [] and run.pending is not None
    (started,) = run.step(frame(0))
    assert started.started.source == 'init_roi' and run.pending is None


def test_rejected_boxes_are_counted_and_the_old_target_kept():
    """A NaN box is refused at once; a box outside the image when it starts, at that frame."""
    run, recorder = session()
    assert not run.request_init((float('nan'), 0, 10, 10), 'init_box')
    run.request_init((10, 10, 20, 20), 'init_box')
    run.step(frame(0))
    first = run.track_id
    run.request_init((5000, 5000, 20, 20), 'init_roi')
    (tracked,) = run.step(frame(1))
    assert tracked.track_id == first and tracked.started is None
    assert run.counters['init_rejected'] == 2
    assert [e[2] for e in recorder.events if e[0] == 'rejected'] == ['non_finite', 'outside']


def test_an_init_on_a_bad_image_is_refused_and_the_frame_dropped():
    """The init's own image cannot be converted: refused (kind image), nothing published."""
    run, recorder = session()
    run.request_init((10, 10, 20, 20), 'init_box')
    assert run.step((0, None)) == []
    assert ('rejected', 'init_box', 'image') in recorder.events
    assert not run.tracker.initialized


def test_a_huge_box_is_clipped_to_the_image():
    """A box larger than the image starts as the part inside it."""
    run, _ = session()
    run.request_init((-100, -100, 10_000, 10_000), 'init_box')
    (started,) = run.step(frame(0))
    np.testing.assert_allclose(started.box, (0, 0, 320, 240))


def test_disable_keeps_the_target_and_the_waiting_init():
    """Disabled: frames are ignored, an init waits; enabled again, it starts."""
    run, _ = session()
    assert run.set_enabled(False) and not run.set_enabled(False)
    run.request_init((10, 10, 20, 20), 'init_box')
    assert run.step(frame(0)) == [] and run.state_label() == 'disabled'
    assert run.pending is not None
    run.set_enabled(True)
    (started,) = run.step(frame(1))
    assert started.started is not None


def test_reset_forgets_the_target_and_the_waiting_init():
    """After reset nothing is tracked or started until a new init."""
    run, _ = session()
    run.request_init((10, 10, 20, 20), 'init_box')
    run.step(frame(0))
    run.request_init((30, 30, 20, 20), 'init_box')
    assert run.reset()
    assert run.step(frame(1)) == [] and run.track_id == '' and run.pending is None
    assert not run.reset()


def test_detections_are_handed_over_only_when_wanted():
    """auto_init takes a detector box with no target or one it searches for, not over an init."""
    run, _ = session()
    assert not run.offer_detection((10, 10, 20, 20), 0.9, 'detector')
    run.update(run.change(auto_init=True))
    assert run.offer_detection((10, 10, 20, 20), 0.9, 'detector')
    assert not run.wants_detections  # an init is waiting
    run.step(frame(0))
    assert not run.wants_detections  # tracking
    run.tracker.lost = True
    assert not run.wants_detections  # a reported dip the tracker still follows
    run.tracker.searching = True
    assert run.wants_detections
    run.set_enabled(False)
    assert not run.wants_detections


def test_settings_are_checked_once_and_replaced_as_a_whole():
    """Out-of-range values and depths the model lacks are refused; an update is atomic."""
    with pytest.raises(ValueError, match='score_threshold'):
        SessionSettings(score_threshold=1.5)
    with pytest.raises(ValueError, match='lost_patience must be an integer >= 1'):
        SessionSettings(lost_patience=0)
    with pytest.raises(ValueError, match='search_patience must be an integer'):
        SessionSettings(search_patience=1.5)
    run, _ = session()
    with pytest.raises(ValueError, match=r'1\.\.2, got 3'):
        run.change(decoder_layers=3)
    before = run.settings
    with pytest.raises(ValueError):
        run.update(SessionSettings(decoder_layers=5))
    assert run.settings is before
    previous = run.update(run.change(score_threshold=0.6, lost_patience=2))
    assert previous is before
    assert (run.tracker.config.score_threshold, run.tracker.config.lost_patience) == (0.6, 2)


def test_the_robustness_switches_come_from_the_tracker_unless_settings_say():
    """Without settings the tracker's motion/redetect stay; settings switch them as a whole."""
    tracker = Tracker(ScriptedBackend(), TrackerConfig(motion=True, redetect=True,
                                                       score_threshold=0.4, reference_frames=7))
    run = TrackingSession(tracker, lambda item: item[0], convert, Recorder())
    assert (run.settings.motion, run.settings.redetect) == (True, True)
    assert (tracker.config.motion, tracker.config.redetect) == (True, True)
    assert tracker.config.score_threshold == 0.4 and run.settings.reference_frames == 7
    run.update(run.change(redetect=False, reference_frames=0))
    assert (tracker.config.motion, tracker.config.redetect) == (True, False)
    assert tracker.config.reference_frames == 0
    with pytest.raises(ValueError, match='reference_frames'):
        run.change(reference_frames=-1)
    run.update(run.change(recover_threshold=0.7, recover_growth=0.2))
    assert (tracker.config.recover_threshold, tracker.config.recover_growth) == (0.7, 0.2)
    with pytest.raises(ValueError, match='recover_threshold'):
        run.change(recover_threshold=1.2)
    with pytest.raises(ValueError, match='recover_growth'):
        run.change(recover_growth=-0.1)
    assert run.settings.template_update == TrackerConfig().template_update
    run.update(run.change(template_update=not run.settings.template_update))
    assert tracker.config.template_update != TrackerConfig().template_update
    explicit = TrackingSession(Tracker(ScriptedBackend(), TrackerConfig(motion=True)),
                               lambda item: item[0], convert, Recorder(),
                               SessionSettings(motion=False))
    assert not explicit.tracker.config.motion


def test_a_frame_of_another_size_is_skipped_and_counted():
    """One odd-sized frame: counted, reported, nothing published; the target goes on."""
    run, recorder = session()
    run.request_init((10, 10, 20, 20), 'init_box')
    run.step(frame(0))
    assert run.step(frame(1, size=(60, 80))) == []
    assert run.counters['frame_size_changes'] == 1 and recorder.events[-1][0] == 'skipped'
    assert len(run.step(frame(2))) == 1


def test_a_new_frame_size_taken_over_is_counted_and_reported_once():
    """Two frames of a new size: the first skipped, the second rescales; told once."""
    run, recorder = session()
    run.request_init((10, 10, 20, 20), 'init_box')
    run.step(frame(0))
    run.step(frame(1, size=(480, 640)))
    assert len(run.step(frame(2, size=(480, 640)))) == 1
    run.step(frame(3, size=(480, 640)))
    assert run.counters['size_changes_taken'] == 1
    assert [e for e in recorder.events if e[0] == 'size'] == [('size', 640, 480, False)]


def test_inits_and_resets_from_other_threads_never_break_a_step():
    """Inits, resets and setting changes race 300 steps: no error, a consistent state."""
    run, _ = session()
    stop = threading.Event()
    errors = []

    def hammer():
        index = 0
        while not stop.is_set():
            index += 1
            try:
                if index % 3 == 0:
                    run.reset()
                else:
                    run.request_init((10 + index % 50, 10, 20, 20), 'init_box')
                run.update(run.change(score_threshold=(index % 10) / 10))
            except Exception as error:  # noqa: B902 - any failure fails the test
                errors.append(error)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for index in range(300):
            for result in run.step(frame(index)):
                assert result.track_id
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert (run.track_id == '') == (not run.tracker.initialized)


def test_the_offline_session_tracks_like_the_tracker_and_refuses_like_the_node():
    """Same boxes as a bare Tracker; an initial box outside the frame is the node's error."""
    from detrack_model.tracking.boxes import InitBoxError
    from detrack_model.tracking.session import OfflineSession
    frames = [frame(i) for i in range(5)]
    bare = Tracker(ScriptedBackend())
    bare.initialize(frames[0][1], (100, 80, 40, 30))
    offline = OfflineSession(Tracker(ScriptedBackend()))
    offline.initialize(frames[0][1], (100, 80, 40, 30))
    for _, image in frames[1:]:
        expected, score = bare.track(image)
        box, got = offline.track(image)
        np.testing.assert_allclose(box, expected)
        assert got == score and offline.lost == bare.lost
    with pytest.raises(InitBoxError, match='outside'):
        offline.initialize(frames[0][1], (1000, 1000, 10, 10))
    with pytest.raises(InitBoxError, match='NaN'):
        offline.initialize(frames[0][1], (float('nan'), 0, 10, 10))
