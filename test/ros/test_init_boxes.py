"""Initial-box inputs of the tracker node become boxes, or rejections that say why."""

import math

from detrack_ros.init_boxes import (
    box_from_detection, box_from_roi, ClickPair, InitBoxError, MIN_BOX_SIDE, project_point,
    select_detection, validate_box)
from geometry_msgs.msg import PointStamped
import pytest
from sensor_msgs.msg import CameraInfo, RegionOfInterest
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

CAMERA_FRAME = 'camera_optical_frame'
FX, FY, CX, CY = 500.0, 400.0, 320.0, 240.0


def detection(cx, cy, w, h, hypotheses=()):
    """Return a Detection2D centred at (cx, cy) with the given (class_id, score) hypotheses."""
    msg = Detection2D()
    msg.bbox.center.position.x = float(cx)
    msg.bbox.center.position.y = float(cy)
    msg.bbox.size_x = float(w)
    msg.bbox.size_y = float(h)
    for class_id, score in hypotheses:
        result = ObjectHypothesisWithPose()
        result.hypothesis.class_id = class_id
        result.hypothesis.score = float(score)
        msg.results.append(result)
    return msg


def camera_info(k=True, p=False, tx=0.0, frame=CAMERA_FRAME):
    """Return a CameraInfo with K and/or P filled from FX, FY, CX, CY."""
    msg = CameraInfo()
    msg.header.frame_id = frame
    if k:
        msg.k = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
    if p:
        # Different from K so the test can tell which matrix was used.
        msg.p = [2 * FX, 0.0, CX + 10, tx, 0.0, 2 * FY, CY + 20, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def point(x, y, z, frame=CAMERA_FRAME):
    """Return a PointStamped at (x, y, z) in ``frame``."""
    msg = PointStamped()
    msg.header.frame_id = frame
    msg.point.x, msg.point.y, msg.point.z = float(x), float(y), float(z)
    return msg


def test_box_from_detection_converts_centre_to_top_left():
    """Centre (100, 50), size 40x20 gives the box starting at (80, 40)."""
    assert box_from_detection(detection(100.0, 50.0, 40.0, 20.0)) == (80.0, 40.0, 40.0, 20.0)


def test_box_from_detection_ignores_theta():
    """A rotation angle does not change the axis-aligned box."""
    msg = detection(10.5, 20.25, 5.0, 3.5)
    msg.bbox.center.theta = 0.7
    assert box_from_detection(msg) == (8.0, 18.5, 5.0, 3.5)


def test_box_from_roi_reads_offsets_and_size():
    """A RegionOfInterest maps straight to floats; do_rectify changes nothing."""
    roi = RegionOfInterest(x_offset=12, y_offset=34, width=56, height=78, do_rectify=False)
    assert box_from_roi(roi) == (12.0, 34.0, 56.0, 78.0)
    assert all(isinstance(v, float) for v in box_from_roi(roi))
    roi.do_rectify = True
    assert box_from_roi(roi) == (12.0, 34.0, 56.0, 78.0)


def test_validate_box_accepts_inside_boxes_and_clips_partly_outside_ones():
    """A valid box comes back as floats; with the image size it is clipped to the image."""
    assert validate_box((10, 20, 30, 40), (640, 480)) == (10.0, 20.0, 30.0, 40.0)
    assert validate_box([-10.0, -5.0, 30.0, 40.0], (640, 480)) == (0.0, 0.0, 20.0, 35.0)
    assert validate_box((630.0, 470.0, 50.0, 50.0), (640, 480)) == (630.0, 470.0, 10.0, 10.0)
    assert validate_box((5000.0, 5000.0, 4.0, 4.0), None) == (5000.0, 5000.0, 4.0, 4.0)
    assert validate_box((0.0, 0.0, MIN_BOX_SIDE, MIN_BOX_SIDE)) == (0.0, 0.0, 2.0, 2.0)


@pytest.mark.parametrize('box', [
    (math.nan, 0.0, 10.0, 10.0), (0.0, 0.0, math.inf, 10.0), (0.0, 0.0, 10.0, -math.inf)])
def test_validate_box_rejects_non_finite(box):
    """Non-finite values (NaN, infinities) are named in the message."""
    with pytest.raises(InitBoxError, match='NaN or infinite'):
        validate_box(box, (640, 480))


@pytest.mark.parametrize('box', [
    (10.0, 10.0, 0.0, 10.0), (10.0, 10.0, 10.0, 0.0), (10.0, 10.0, -5.0, -5.0)])
def test_validate_box_rejects_zero_or_negative_area(box):
    """A zero or negative side is rejected as no area, even when w*h would be positive."""
    with pytest.raises(InitBoxError, match='zero or negative area'):
        validate_box(box, (640, 480))


def test_validate_box_rejects_an_all_zero_roi():
    """The CameraInfo 'full image' ROI is not taken as a target."""
    with pytest.raises(InitBoxError, match='zero or negative area'):
        validate_box(box_from_roi(RegionOfInterest()), (640, 480))


@pytest.mark.parametrize('box', [(10.0, 10.0, 1.5, 30.0), (10.0, 10.0, 30.0, 1.0)])
def test_validate_box_rejects_too_small(box):
    """A side under MIN_BOX_SIDE is too small, and the message gives the limit."""
    with pytest.raises(InitBoxError, match='too small') as info:
        validate_box(box, (640, 480))
    assert '2 px' in str(info.value)


@pytest.mark.parametrize('box', [
    (640.0, 10.0, 20.0, 20.0), (10.0, 480.0, 20.0, 20.0), (-20.0, 10.0, 20.0, 20.0),
    (10.0, -20.0, 20.0, 20.0), (-100.0, -100.0, 50.0, 50.0)])
def test_validate_box_rejects_entirely_outside(box):
    """A box touching the image only at its border has no pixel inside and is rejected."""
    with pytest.raises(InitBoxError, match='entirely outside the 640x480 image'):
        validate_box(box, (640, 480))


@pytest.mark.parametrize('box', [(0.0, 0.0, 4294967295.0, 4294967295.0),
                                 (-1e300, -1e300, 2e300, 2e300), (10.0, 10.0, 1e308, 1e308)])
def test_validate_box_clips_huge_boxes_to_the_image(box):
    """An ROI of 2**32 - 1 pixels (a -1 sent unsigned) or 1e300 becomes the visible part."""
    x, y, w, h = validate_box(box, (640, 480))
    assert x >= 0.0 and y >= 0.0 and x + w <= 640.0 and y + h <= 480.0
    assert all(math.isfinite(v) for v in (x, y, w, h))


def test_validate_box_rejects_a_sliver_inside_the_image():
    """A box that keeps under MIN_BOX_SIDE pixels inside the image is refused."""
    with pytest.raises(InitBoxError, match='inside the 640x480 image') as refused:
        validate_box((639.0, 10.0, 50.0, 50.0), (640, 480))
    assert refused.value.kind == 'outside'


def test_validate_box_rejects_wrong_length():
    """Three values are not a box."""
    with pytest.raises(InitBoxError, match='4 values'):
        validate_box((1.0, 2.0, 3.0))


@pytest.mark.parametrize('a, b', [
    ((10.0, 20.0), (130.0, 90.0)), ((130.0, 90.0), (10.0, 20.0)),
    ((10.0, 90.0), (130.0, 20.0)), ((130.0, 20.0), (10.0, 90.0))])
def test_click_pair_any_corner_order(a, b):
    """Any two opposite corners, in either order, span the same box."""
    clicks = ClickPair()
    assert clicks.add(a[0], a[1], 1.0) is None
    assert clicks.pending == a
    assert clicks.add(b[0], b[1], 2.0) == (10.0, 20.0, 120.0, 70.0)


def test_click_pair_resets_after_a_box():
    """After a box the next click is a first click again."""
    clicks = ClickPair()
    assert clicks.add(0.0, 0.0, 0.0) is None
    assert clicks.add(10.0, 10.0, 1.0) == (0.0, 0.0, 10.0, 10.0)
    assert clicks.pending is None
    assert clicks.add(20.0, 20.0, 2.0) is None
    assert clicks.add(25.0, 30.0, 3.0) == (20.0, 20.0, 5.0, 10.0)


def test_click_pair_discards_a_stale_first_click():
    """A first click older than the timeout is dropped; the new click becomes the first."""
    clicks = ClickPair()
    assert clicks.timeout_sec == 10.0
    assert clicks.add(0.0, 0.0, 100.0) is None
    assert clicks.add(50.0, 50.0, 110.5) is None
    assert clicks.pending == (50.0, 50.0)
    assert clicks.add(60.0, 70.0, 111.0) == (50.0, 50.0, 10.0, 20.0)


def test_click_pair_timeout_is_a_parameter_and_inclusive():
    """A second click exactly at the timeout still pairs; just after it does not."""
    clicks = ClickPair(timeout_sec=2.0)
    assert clicks.add(0.0, 0.0, 5.0) is None
    assert clicks.add(4.0, 4.0, 7.0) == (0.0, 0.0, 4.0, 4.0)
    assert clicks.add(0.0, 0.0, 5.0) is None
    assert clicks.add(4.0, 4.0, 7.01) is None
    assert clicks.pending == (4.0, 4.0)
    with pytest.raises(ValueError):
        ClickPair(timeout_sec=0.0)


def test_click_pair_restarts_when_time_goes_backwards():
    """A stamp before the first click's (a replayed bag) starts a new pair."""
    clicks = ClickPair()
    assert clicks.add(0.0, 0.0, 50.0) is None
    assert clicks.add(10.0, 10.0, 1.0) is None
    assert clicks.pending == (10.0, 10.0)


@pytest.mark.parametrize('second', [(10.0, 20.0), (10.0, 80.0), (90.0, 20.0)])
def test_click_pair_rejects_degenerate_pair_and_resets(second):
    """Same point, same column or same row: rejected, and the next click starts over."""
    clicks = ClickPair()
    assert clicks.add(10.0, 20.0, 0.0) is None
    with pytest.raises(InitBoxError, match='span no area'):
        clicks.add(second[0], second[1], 1.0)
    assert clicks.pending is None
    assert clicks.add(30.0, 30.0, 2.0) is None


def test_click_pair_rejects_non_finite_click_and_keeps_the_first():
    """A NaN click is refused without losing the pending corner."""
    clicks = ClickPair()
    assert clicks.add(1.0, 2.0, 0.0) is None
    with pytest.raises(InitBoxError, match='not a finite'):
        clicks.add(math.nan, 5.0, 1.0)
    assert clicks.pending == (1.0, 2.0)


def test_project_point_with_k_only():
    """Without P the point goes through K: u = fx x / z + cx, v = fy y / z + cy."""
    u, v = project_point(point(0.5, -0.25, 2.0), camera_info(k=True, p=False))
    assert u == pytest.approx(FX * 0.5 / 2.0 + CX)
    assert v == pytest.approx(FY * -0.25 / 2.0 + CY)


def test_project_point_prefers_p():
    """With P set it is used instead of K."""
    u, v = project_point(point(0.5, -0.25, 2.0), camera_info(k=True, p=True))
    assert u == pytest.approx(2 * FX * 0.5 / 2.0 + CX + 10)
    assert v == pytest.approx(2 * FY * -0.25 / 2.0 + CY + 20)


def test_project_point_applies_p_tx():
    """The stereo Tx term of P shifts u by Tx / z."""
    tx = -0.12 * 2 * FX
    u, v = project_point(point(0.5, -0.25, 2.0), camera_info(k=False, p=True, tx=tx))
    assert u == pytest.approx((2 * FX * 0.5 + tx) / 2.0 + CX + 10)
    assert v == pytest.approx(2 * FY * -0.25 / 2.0 + CY + 20)


def test_project_point_leading_slash_is_the_same_frame():
    """'/frame' and 'frame' are the same frame, in either message."""
    expected = (CX, CY)
    assert project_point(point(0.0, 0.0, 1.0, '/' + CAMERA_FRAME), camera_info()) == expected
    info = camera_info(frame='/' + CAMERA_FRAME)
    assert project_point(point(0.0, 0.0, 1.0), info) == expected


def test_project_point_rejects_other_frames_naming_both():
    """A point in another frame asks for RViz's Fixed Frame to be the camera frame."""
    with pytest.raises(InitBoxError) as info:
        project_point(point(0.0, 0.0, 1.0, 'map'), camera_info())
    message = str(info.value)
    assert 'Fixed Frame' in message
    assert "'map'" in message
    assert f"'{CAMERA_FRAME}'" in message
    assert '\n' not in message


def test_project_point_without_camera_info():
    """No camera_info yet says which topic it is waited for on."""
    with pytest.raises(InitBoxError, match='camera_info has not been received on the '
                                           "'camera_info' topic"):
        project_point(point(0.0, 0.0, 1.0), None)


@pytest.mark.parametrize('z', [0.0, -1.0])
def test_project_point_rejects_points_not_in_front(z):
    """A point with z <= 0 cannot be projected, with either matrix."""
    for info in (camera_info(), camera_info(p=True)):
        with pytest.raises(InitBoxError, match='z <= 0'):
            project_point(point(0.1, 0.1, z), info)


def test_project_point_rejects_uncalibrated_and_frameless_cameras():
    """All-zero K and P, or no camera frame_id, cannot be used."""
    with pytest.raises(InitBoxError, match='not calibrated'):
        project_point(point(0.0, 0.0, 1.0), camera_info(k=False, p=False))
    with pytest.raises(InitBoxError, match='empty header.frame_id'):
        project_point(point(0.0, 0.0, 1.0, ''), camera_info(frame=''))
    with pytest.raises(InitBoxError, match='NaN or infinite'):
        project_point(point(math.nan, 0.0, 1.0), camera_info())


def detections(*items):
    """Return a Detection2DArray of the given detections."""
    msg = Detection2DArray()
    msg.detections = list(items)
    return msg


def test_select_detection_by_class_and_score():
    """The best detection of the class above the threshold wins, scored by that class."""
    msg = detections(
        detection(10, 10, 4, 4, [('person', 0.6)]),
        detection(50, 50, 8, 8, [('car', 0.99)]),
        detection(100, 100, 20, 10, [('car', 0.95), ('person', 0.8)]),
        detection(200, 200, 6, 6, [('person', 0.7)]))
    box, score = select_detection(msg, 'person', 0.5)
    assert box == (90.0, 95.0, 20.0, 10.0)
    assert score == pytest.approx(0.8)
    box, score = select_detection(msg, 'person', 0.75)
    assert box == (90.0, 95.0, 20.0, 10.0)
    box, score = select_detection(msg, 'car', 0.0)
    assert box == (46.0, 46.0, 8.0, 8.0)
    assert score == pytest.approx(0.99)


def test_select_detection_any_class():
    """An empty class_id takes the best hypothesis of any class."""
    msg = detections(
        detection(10, 10, 4, 4, [('person', 0.6)]),
        detection(50, 50, 8, 8, [('dog', 0.3), ('cat', 0.9)]))
    box, score = select_detection(msg, '', 0.5)
    assert box == (46.0, 46.0, 8.0, 8.0)
    assert score == pytest.approx(0.9)


def test_select_detection_ties_keep_the_first_and_min_score_is_inclusive():
    """Equal scores keep the earlier detection; a score equal to min_score qualifies."""
    msg = detections(detection(10, 10, 4, 4, [('a', 0.5)]), detection(50, 50, 8, 8, [('a', 0.5)]))
    assert select_detection(msg, 'a', 0.5) == ((8.0, 8.0, 4.0, 4.0), 0.5)


def test_select_detection_none_cases():
    """Nothing qualifies: no detections, wrong class, low score, no hypotheses, NaN score."""
    assert select_detection(detections(), '', 0.0) is None
    msg = detections(detection(10, 10, 4, 4, [('car', 0.9)]))
    assert select_detection(msg, 'person', 0.0) is None
    assert select_detection(msg, 'car', 0.95) is None
    assert select_detection(detections(detection(10, 10, 4, 4)), '', 0.0) is None


@pytest.mark.parametrize('score', [math.nan, math.inf, -math.inf])
def test_select_detection_refuses_non_finite_scores(score):
    """A non-finite score never qualifies; alone, it is an error of kind 'score'."""
    with pytest.raises(InitBoxError, match='not a finite number') as refused:
        select_detection(detections(detection(10, 10, 4, 4, [('a', score)])), '', 0.0)
    assert refused.value.kind == 'score'
    msg = detections(detection(10, 10, 4, 4, [('a', score)]),
                     detection(50, 50, 8, 8, [('a', 0.7)]))
    assert select_detection(msg, '', 0.5) == ((46.0, 46.0, 8.0, 8.0), pytest.approx(0.7))
