"""The target in 3-D without ROS: depth statistic, projection, bearing, stamp pairing."""

import math
import threading
import time

from detrack_model.data.synthetic.rgbd import camera_matrix, rgbd_sequence
from detrack_model.tracking.target_3d import (box_bearing, box_centre, box_depth, box_size_3d,
                                              central_region, DepthSettings, Intrinsics,
                                              locate_target, StampedHistory, Target3DError)
import numpy as np
import pytest

K = (500.0, 0.0, 319.5, 0.0, 400.0, 239.5, 0.0, 0.0, 1.0)
SETTINGS = DepthSettings(min_depth=0.2, max_depth=10.0, percentile=50.0, roi_fraction=0.5,
                         min_valid_pixels=10)


def wall(value, dtype=np.uint16, size=(64, 48)) -> np.ndarray:
    """Return a depth image of one value."""
    return np.full(size[::-1], value, dtype)


# -- the depth statistic ---------------------------------------------------------------------

def test_median_ignores_zeros_nan_and_out_of_range_values():
    """Holes, NaN, inf and readings outside [min, max] never enter the statistic."""
    depth = wall(2.0, np.float32)
    rows, columns = central_region((8, 8, 40, 32), 0.5, (64, 48))
    region = depth[rows, columns]       # a view: writing to it writes the image
    region[:, 0::5] = np.nan
    region[:, 1::5] = 0.0
    region[:, 2::5] = 50.0              # beyond max_depth
    region[:, 3::5] = -1.0
    region[0, 4] = np.inf
    measured = box_depth(depth, (8, 8, 40, 32), 1.0, SETTINGS)
    assert measured.depth == pytest.approx(2.0)
    assert measured.spread == pytest.approx(0.0)
    assert measured.valid_pixels == region.size // 5 - 1


def test_percentile_of_a_known_distribution_in_millimetres():
    """The statistic is the asked percentile of the valid values, scaled to metres."""
    depth = wall(0)
    rows, columns = central_region((0, 0, 64, 48), 0.5, (64, 48))
    region = depth[rows, columns]
    values = np.arange(1000, 1000 + region.size, dtype=np.uint16)
    region[...] = values.reshape(region.shape)
    region[0, :4] = 0
    valid = values.reshape(region.shape)[region > 0]
    for percentile in (10.0, 50.0, 90.0):
        settings = DepthSettings(min_depth=0.2, max_depth=10.0, percentile=percentile)
        measured = box_depth(depth, (0, 0, 64, 48), 0.001, settings)
        assert measured.depth == pytest.approx(np.percentile(valid, percentile) / 1000)
    assert measured.spread == pytest.approx((np.percentile(valid, 90)
                                             - np.percentile(valid, 10)) / 1000)


def test_only_the_central_region_counts():
    """Background around the target's outline (inside the box) does not move the median."""
    depth = wall(6000)
    depth[14:34, 18:46] = 1500          # the target fills the box's central part only
    measured = box_depth(depth, (8, 8, 48, 32), 0.001, SETTINGS)
    assert measured.depth == pytest.approx(1.5)
    whole = DepthSettings(min_depth=0.2, max_depth=10.0, roi_fraction=1.0)
    assert box_depth(depth, (8, 8, 48, 32), 0.001, whole).depth == pytest.approx(6.0)


def test_too_few_valid_pixels_is_an_error_with_counts():
    """Below min_valid_pixels there is no answer, and the message says how many there were."""
    depth = wall(0)
    depth[20, 20:29] = 1000             # 9 valid pixels, 10 needed
    with pytest.raises(Target3DError) as raised:
        box_depth(depth, (0, 0, 64, 48), 0.001, SETTINGS)
    assert raised.value.kind == 'too_few_valid'
    assert '9 of ' in str(raised.value) and 'fewer than 10' in str(raised.value)
    depth[21, 20] = 1000
    assert box_depth(depth, (0, 0, 64, 48), 0.001, SETTINGS).valid_pixels == 10


def test_all_nan_depth_is_no_answer():
    """A float image of NaN only (no reading anywhere) gives no depth."""
    with pytest.raises(Target3DError, match='0 of'):
        box_depth(wall(np.nan, np.float32), (0, 0, 64, 48), 1.0, SETTINGS)


def test_box_with_its_centre_outside_the_image_is_refused():
    """No pixel under the box centre: kind 'outside', not a silent edge value."""
    with pytest.raises(Target3DError) as raised:
        box_depth(wall(1000), (100, 10, 20, 20), 0.001, SETTINGS)
    assert raised.value.kind == 'outside'


def test_tiny_box_uses_the_pixel_under_its_centre():
    """A region narrower than a pixel keeps one pixel instead of none."""
    region = central_region((10.2, 20.2, 0.6, 0.6), 0.5, (64, 48))
    assert region == (slice(20, 21), slice(10, 11))


def test_16uc1_32fc1_and_a_custom_scale_agree():
    """The same scene as 16UC1 mm, 32FC1 m and 16-bit tenths of a millimetre, same depth."""
    metres = np.linspace(1.0, 3.0, 64 * 48).reshape(48, 64)
    millimetres = np.rint(metres * 1000).astype(np.uint16)
    tenths = np.rint(metres * 10000).astype(np.uint16)
    box = (10, 6, 40, 30)
    results = [box_depth(millimetres, box, 0.001, SETTINGS).depth,
               box_depth(metres.astype(np.float32), box, 1.0, SETTINGS).depth,
               box_depth(tenths, box, 0.0001, SETTINGS).depth]
    assert results == pytest.approx([results[1]] * 3, abs=1e-3)
    # The valid range is in metres whatever the unit: 0.2 m in tenths of mm is 2000 units.
    near = np.full((48, 64), 1500, np.uint16)   # 0.15 m in tenths of a millimetre
    with pytest.raises(Target3DError):
        box_depth(near, box, 0.0001, SETTINGS)


def test_big_endian_strided_view_reads_like_a_native_array():
    """A view with padded rows and swapped bytes (a message's data) gives the same depth."""
    native = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) % 500 + 1000)
    padded = np.zeros((48, 80), '>u2')
    padded[:, :64] = native
    view = padded[:, :64]
    assert box_depth(view, (4, 4, 50, 40), 0.001, SETTINGS) == \
        box_depth(native, (4, 4, 50, 40), 0.001, SETTINGS)


@pytest.mark.parametrize('kwargs', [{'min_depth': 0.0}, {'min_depth': 2.0, 'max_depth': 1.0},
                                    {'percentile': 101.0}, {'roi_fraction': 0.0},
                                    {'min_valid_pixels': 0}, {'max_depth': math.inf}])
def test_settings_that_cannot_work_are_refused(kwargs):
    """Zero min depth (holes would count), min >= max, out-of-range knobs: ValueError."""
    with pytest.raises(ValueError):
        DepthSettings(**kwargs)


# -- projection and bearing ------------------------------------------------------------------

def test_projection_through_k_matches_a_hand_computed_point():
    """
    Box (300, 200, 80, 60): centre (340, 230) edges, (339.5, 229.5) in K's pixel centres.

    x = (339.5 - 319.5) / 500 * 2 = 0.08 m, y = (229.5 - 239.5) / 400 * 2 = -0.05 m, z = 2.
    """
    intrinsics = Intrinsics.from_k(K)
    assert box_centre((300, 200, 80, 60)) == (339.5, 229.5)
    depth = wall(2000, size=(640, 480))
    target = locate_target(depth, 0.001, (300, 200, 80, 60), intrinsics, SETTINGS)
    assert target.position == pytest.approx((0.08, -0.05, 2.0))
    # Size: the box's sides at 2 m (80 px / 500 px * 2 m, 60 / 400 * 2), flat: no spread.
    assert target.size == pytest.approx((0.32, 0.30, 0.0))
    assert box_size_3d((0, 0, 80, 60), target.depth, intrinsics) == pytest.approx(target.size)


def test_skew_enters_the_back_projection():
    """With skew s, x = (u - cx - s y_n) / fx: the projection of the point gives u back."""
    intrinsics = Intrinsics.from_k((500.0, 10.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0))
    x, y, z = intrinsics.point(400.0, 100.0, 3.0)
    assert 500 * x / z + 10 * y / z + 320 == pytest.approx(400.0)
    assert 500 * y / z + 240 == pytest.approx(100.0)


def test_bearing_is_a_unit_vector_pointing_at_the_box():
    """Centre of the image: the optical axis; right and down of it: +x and +y."""
    intrinsics = Intrinsics.from_k(K)
    assert box_bearing((300, 220, 40, 40), intrinsics) == pytest.approx((0.0, 0.0, 1.0))
    for box in [(500, 400, 30, 30), (0, 0, 10, 10), (600, 10, 5, 50)]:
        ray = np.array(box_bearing(box, intrinsics))
        assert np.linalg.norm(ray) == pytest.approx(1.0)
        u, v = box_centre(box)
        assert np.sign(ray[0]) == np.sign(u - 319.5) and np.sign(ray[1]) == np.sign(v - 239.5)
        # Through K, the ray lands on the box centre.
        assert 500 * ray[0] / ray[2] + 319.5 == pytest.approx(u)
        assert 400 * ray[1] / ray[2] + 239.5 == pytest.approx(v)


def test_bearing_angle_matches_the_field_of_view():
    """The ray through the image's right edge is at atan(320 / 500) from the axis."""
    ray = Intrinsics.from_k(K).ray(639.5, 239.5)
    assert math.atan2(ray[0], ray[2]) == pytest.approx(math.atan(320.0 / 500.0))


@pytest.mark.parametrize('k, size, needle', [
    ((0.0,) * 9, None, 'not calibrated'),
    ((500.0, 0.0, 320.0, 0.0, float('nan'), 240.0, 0.0, 0.0, 1.0), None, 'NaN'),
    ((1.0,) * 4, None, '9 values'),
    (K, (1280, 720), 'camera_info is for 640x480'),
])
def test_unusable_calibration_is_refused(k, size, needle):
    """Uncalibrated, non-finite, malformed K, or K for another resolution: kind camera_info."""
    with pytest.raises(Target3DError, match=needle) as raised:
        Intrinsics.from_k(k, (640, 480), size)
    assert raised.value.kind == 'camera_info'


def test_unknown_calibrated_size_is_accepted():
    """A calibration of unknown size (CameraInfo width and height 0) fits any image."""
    assert Intrinsics.from_k(K, (0, 0), (320, 240)).fx == 500.0


# -- stamp pairing ---------------------------------------------------------------------------

def test_history_pairs_the_closest_stamp_within_tolerance():
    """Closest within tolerance wins; outside the tolerance nothing matches."""
    history: StampedHistory[str] = StampedHistory(4)
    for stamp in (1000, 2000, 3000):
        history.add(stamp, f'd{stamp}')
    assert history.match(2100, 200) == (2000, 'd2000')
    assert history.match(2600, 500) == (3000, 'd3000')
    assert history.match(2500, 499) is None
    assert history.match(5000, 100) is None


def test_history_keeps_only_the_newest_items():
    """The oldest item leaves when the history is full."""
    history: StampedHistory[int] = StampedHistory(2)
    for stamp in (1, 2, 3):
        history.add(stamp, stamp)
    assert len(history) == 2 and history.match(1, 0) is None and history.match(3, 0) == (3, 3)
    history.clear()
    assert len(history) == 0


def test_match_waits_for_a_late_item_and_not_for_a_stream_past_the_stamp():
    """A live stream behind the stamp is waited for; one already past it is not."""
    history: StampedHistory[str] = StampedHistory(4)
    history.add(1000, 'old')
    adder = threading.Timer(0.1, history.add, args=(5000, 'late'))
    adder.start()
    started = time.monotonic()
    assert history.match(5000, 10, wait_sec=2.0) == (5000, 'late')
    assert time.monotonic() - started < 1.5
    adder.join()
    started = time.monotonic()
    assert history.match(3000, 10, wait_sec=2.0) is None     # 5000 is past 3000 + 10
    assert time.monotonic() - started < 0.1


def test_match_does_not_wait_on_a_stream_that_stopped(monkeypatch):
    """No item within ALIVE_SEC: the stream is gone, a frame does not pay the wait."""
    history: StampedHistory[str] = StampedHistory(4)
    history.add(1000, 'old')
    monkeypatch.setattr(StampedHistory, 'ALIVE_SEC', 0.0)
    started = time.monotonic()
    assert history.match(9000, 10, wait_sec=2.0) is None
    assert time.monotonic() - started < 0.1


# -- the rendered sequences ------------------------------------------------------------------

def test_rendered_sequence_depth_and_box_give_the_true_position():
    """With the true box, the located point is the true centre to within the depth noise."""
    sequence = rgbd_sequence(1, frames=12, size=(320, 240), near=0.8, far=4.0)
    intrinsics = Intrinsics.from_k(sequence.k)
    assert sequence.k == camera_matrix((320, 240))
    for index in range(len(sequence.frames)):
        depth = sequence.depth_mm[index]
        assert depth.dtype == np.uint16 and (depth == 0).any()      # holes
        target = locate_target(depth, 0.001, sequence.boxes[index], intrinsics, SETTINGS)
        true = sequence.positions[index]
        error = np.linalg.norm(np.subtract(target.position, true))
        assert error < 0.002 + 0.003 * true[2] ** 2, (index, target.position, true)
        assert target.size[0] == pytest.approx(0.40, rel=0.02)
        assert target.size[1] == pytest.approx(0.30, rel=0.02)
    # The wall is elsewhere: a box on it measures the wall's depth, not the target's.
    box = (2, 2, 20, 20) if sequence.boxes[0][0] > 40 else (290, 210, 20, 20)
    wall_depth = locate_target(sequence.depth_mm[0], 0.001, box, intrinsics, SETTINGS)
    assert wall_depth.position[2] == pytest.approx(sequence.wall_depth, rel=0.01)
