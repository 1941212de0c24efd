"""Crops and augmentation: geometry by hand, padding colour, flip, grayscale, inverse maps."""

from detrack_model.data import (crop_to_search, IMAGENET_MEAN, IMAGENET_STD, normalise_image,
                                PairProcessing, search_transform)
from detrack_model.data.processing import decoy_region, off_target_region
import numpy as np
import pytest
import torch

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def pixels(tensor):
    """Undo the normalisation: back to 0..255 values, HxWx3."""
    return (tensor * STD + MEAN).mul(255.0).permute(1, 2, 0).numpy()


def still(**overrides):
    """Build processing with every random augmentation off."""
    options = {'centre_jitter': 0.0, 'scale_jitter': 0.0, 'gray_prob': 0.0, 'flip_prob': 0.0,
               'brightness': (1.0, 1.0)}
    options.update(overrides)
    return PairProcessing(**options)


def white_square_image():
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    image[200:240, 300:340] = 255
    return image, np.array([300.0, 200.0, 40.0, 40.0])


def test_box_maps_to_the_centre_at_a_quarter_of_the_search_crop():
    image, box = white_square_image()
    out = still()(image, box, image, box, np.random.default_rng(0))
    assert out['valid']
    assert out['template'].shape == (3, 128, 128) and out['search'].shape == (3, 256, 256)
    assert out['template'].dtype == torch.float32
    # 40x40 box -> 4 * 40 = 160 px region -> the box is 40/160 = 0.25 of the crop, centred.
    np.testing.assert_allclose(out['search_box'].numpy(), [0.5, 0.5, 0.25, 0.25], atol=1e-6)
    np.testing.assert_allclose(out['template_box'].numpy(), [0.5, 0.5, 0.5, 0.5], atol=1e-6)
    # The square covers search pixels [96, 160): inside white, one pixel beyond black.
    search = pixels(out['search'])
    assert search[98:158, 98:158].min() > 254.0
    assert search[94, 128].max() < 1.0 and search[128, 161].max() < 1.0
    template = pixels(out['template'])
    assert template[34:94, 34:94].min() > 254.0


def test_padding_uses_the_image_mean_colour():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    mean = image.reshape(-1, 3).mean(axis=0)
    out = still()(image, [0, 0, 40, 40], image, [0, 0, 40, 40], rng)
    # Search region spans -60..100 px: its top-left corner lies outside the image.
    np.testing.assert_allclose(pixels(out['search'])[0, 0], mean, atol=1.0)
    np.testing.assert_allclose(pixels(out['template'])[0, 0], mean, atol=1.0)
    crop, _ = crop_to_search(image, [0, 0, 40, 40], 4.0, 64)
    np.testing.assert_allclose(crop[0, 0], mean, atol=1.0)
    crop, _ = crop_to_search(image, [0, 0, 40, 40], 4.0, 64, pad_value=(1, 2, 3))
    assert crop[0, 0].tolist() == [1, 2, 3]


def test_flip_mirrors_images_and_boxes():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    box = [70.0, 50.0, 30.0, 60.0]
    plain = PairProcessing(flip_prob=0.0, gray_prob=0.0)
    flipped = PairProcessing(flip_prob=1.0, gray_prob=0.0)
    a = plain(image, box, image, box, np.random.default_rng(5))
    b = flipped(image, box, image, box, np.random.default_rng(5))
    for key in ('template', 'search'):
        torch.testing.assert_close(b[key], a[key].flip(-1))
    for key in ('template_box', 'search_box'):
        expected = a[key].clone()
        expected[0] = 1.0 - expected[0]
        torch.testing.assert_close(b[key], expected)
    assert a['search_box'][0] != pytest.approx(0.5, abs=1e-3)  # jitter moved it off centre


def test_grayscale_makes_channels_equal():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    out = PairProcessing(gray_prob=1.0)(image, [100, 80, 40, 30], image, [100, 80, 40, 30],
                                        rng)
    for key in ('template', 'search'):
        values = pixels(out[key])
        np.testing.assert_allclose(values[..., 0], values[..., 1], atol=1e-3)
        np.testing.assert_allclose(values[..., 0], values[..., 2], atol=1e-3)


def test_brightness_scales_pixel_values():
    image, box = white_square_image()
    image = image // 2 + 40
    out = still(brightness=(1.1, 1.1))(image, box, image, box, np.random.default_rng(0))
    plain = still()(image, box, image, box, np.random.default_rng(0))
    np.testing.assert_allclose(pixels(out['search']), np.minimum(pixels(plain['search']) * 1.1,
                                                                 255.0), atol=1e-2)


def test_jittered_boxes_stay_normalised_and_validity_holds():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    processing = PairProcessing(centre_jitter=6.0, scale_jitter=0.5)
    valid = 0
    for _ in range(200):
        out = processing(image, [100, 80, 40, 30], image, [100, 80, 40, 30], rng)
        box = out['search_box'].numpy()
        assert (box >= 0).all() and (box <= 1).all()
        valid += out['valid']
        if out['valid']:
            assert box[2] * 256 >= 2 and box[3] * 256 >= 2
    assert 0 < valid < 200  # strong jitter pushes some targets out of the crop


def test_unusable_boxes_raise():
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match='positive'):
        still()(image, [0, 0, 10, 10], image, [np.nan, 0, 10, 10], np.random.default_rng())
    with pytest.raises(ValueError, match='positive'):
        crop_to_search(image, [0, 0, 0, 10], 4.0, 64)


def test_crop_to_search_transform_round_trips():
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    box = np.array([123.4, 56.7, 33.3, 21.9])
    crop, transform = crop_to_search(image, box, 4.0, 256)
    assert crop.shape == (256, 256, 3)
    in_crop = transform.box_to_crop(box)
    np.testing.assert_allclose(in_crop[:2] + in_crop[2:] / 2, [128.0, 128.0], atol=1e-9)
    assert transform.scale == pytest.approx(256 / (4 * np.sqrt(33.3 * 21.9)))
    points = rng.uniform(-50, 300, size=(20, 2))
    np.testing.assert_allclose(transform.points_to_crop(transform.points_to_image(points)),
                               points, atol=1e-6)
    boxes = rng.uniform(1, 200, size=(20, 4))
    np.testing.assert_allclose(transform.box_to_image(transform.box_to_crop(boxes)), boxes,
                               atol=1e-6)
    # The crop's pixel (i, j) shows image point points_to_image(i + 0.5, j + 0.5).
    smooth = np.tile(np.arange(400, dtype=np.float32)[None, :, None] / 2, (300, 1, 3))
    crop, transform = crop_to_search(smooth.astype(np.uint8), box, 4.0, 256)
    centre_x = transform.points_to_image([[100.5, 100.5]])[0, 0]
    assert abs(float(crop[100, 100, 0]) - (centre_x - 0.5) / 2) <= 1.0
    assert search_transform(box, 4.0, 256) == transform


def test_normalise_image_matches_the_formula():
    crop = np.random.default_rng(7).integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    expected = (np.minimum(crop * 1.15, 255.0) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    result = normalise_image(crop, 1.15)
    assert result.shape == (3, 9, 11) and result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), expected.transpose(2, 0, 1), atol=1e-5)


def test_target_absent_crop_shares_no_pixel_with_the_target():
    """present=False: the search region, of its usual size, lies beside the box, never on it."""
    image, box = white_square_image()
    out = still()(image, box, image, box, np.random.default_rng(0), present=False)
    assert out['valid'] and out['present'] is False
    assert out['search_box'].tolist() == [0.0, 0.0, 0.0, 0.0]
    # The only white pixels of the image are the target's: none may reach the crop.
    assert pixels(out['search']).max() < 1.0
    template = pixels(out['template'])
    assert template[34:94, 34:94].min() > 254.0


def test_off_target_regions_are_disjoint_from_the_box_and_mostly_over_the_image():
    rng = np.random.default_rng(3)
    inside = []
    for trial in range(300):
        height, width = int(rng.integers(60, 600)), int(rng.integers(60, 600))
        # Large boxes (a region wider than the image) first, then ones whose region fits.
        most = 0.6 if trial < 100 else 0.1
        w, h = rng.uniform(4, most * width), rng.uniform(4, most * height)
        box = np.array([rng.uniform(0, width - w), rng.uniform(0, height - h), w, h])
        usual = search_transform(box, 4.0, 64)
        moved = off_target_region(usual, box, (height, width), rng)
        x, y, side, side_y = moved.image_region()
        assert side == pytest.approx(usual.image_region()[2])
        apart_x = x >= box[0] + box[2] or x + side <= box[0]
        apart_y = y >= box[1] + box[3] or y + side_y <= box[1]
        assert apart_x or apart_y
        if trial >= 100:
            # The side with more room is likelier: the region's centre falls in the image.
            centre = np.array([x + side / 2, y + side / 2])
            inside.append(bool((centre >= 0).all() and (centre <= [width, height]).all()))
    assert np.mean(inside) > 0.8


def test_a_present_pair_is_the_same_with_the_absent_option_available():
    image, box = white_square_image()
    processing = PairProcessing()
    default = processing(image, box, image, box, np.random.default_rng(5))
    explicit = processing(image, box, image, box, np.random.default_rng(5), present=True)
    assert explicit['present'] is True
    for key in ('template', 'search', 'search_box', 'template_box'):
        torch.testing.assert_close(default[key], explicit[key])


def two_squares_image():
    """Return an image with a white target square and a grey look-alike 200 pixels right."""
    image, box = white_square_image()
    image[200:240, 500:540] = 128
    return image, box, np.array([500.0, 200.0, 40.0, 40.0])


def test_an_absent_crop_centres_on_a_look_alike_and_shows_none_of_the_target():
    image, box, decoy = two_squares_image()
    out = still()(image, box, image, box, np.random.default_rng(0), present=False, decoy=decoy)
    assert out['valid'] and out['present'] is False and out['decoy'] is True
    assert out['search_box'].tolist() == [0.0, 0.0, 0.0, 0.0]
    search = pixels(out['search'])
    # The look-alike fills the middle quarter of the 256-pixel crop (factor 4, no jitter) ...
    assert np.abs(search[100:156, 100:156] - 128).max() < 2.0
    # ... and no white target pixel reaches the crop.
    assert search.max() < 140.0


def test_a_look_alike_next_to_the_target_falls_back_to_an_off_target_region():
    image, box = white_square_image()
    decoy = np.array([350.0, 200.0, 40.0, 40.0])  # a region on it would show the target
    out = still()(image, box, image, box, np.random.default_rng(0), present=False, decoy=decoy)
    assert out['valid'] and out['decoy'] is False
    assert pixels(out['search']).max() < 1.0
    assert decoy_region(search_transform(box, 4.0, 64), decoy, box, 0.0,
                        np.random.default_rng(0)) is None


def test_decoy_regions_are_jittered_like_search_regions_and_never_touch_the_target():
    rng = np.random.default_rng(7)
    box = np.array([300.0, 200.0, 40.0, 40.0])
    usual = search_transform(box, 4.0, 64)
    offsets = []
    for _ in range(300):
        decoy = np.array([rng.uniform(0, 600), rng.uniform(0, 440), 40.0, 40.0])
        region = decoy_region(usual, decoy, box, 0.75, rng)
        if region is None:
            continue
        x, y, side, _ = region.image_region()
        assert side == pytest.approx(160.0)
        assert x >= 340 or x + side <= 300 or y >= 240 or y + side <= 200
        offsets.append(np.array([x + side / 2, y + side / 2]) - (decoy[:2] + 20.0))
    offsets = np.abs(np.array(offsets))
    # Up to 0.375 of the side either way, as a centre jitter of 3 at search factor 4 gives.
    assert len(offsets) > 100 and offsets.max() <= 60.0 + 1e-9 and offsets.max() > 45.0


def test_a_hidden_target_keeps_the_search_region_on_its_box():
    """hidden=True: the image hides the target, so the crop stays where the target would be."""
    image, box = white_square_image()
    image[190:250, 290:350] = 90  # an occluder over the whole target
    out = still()(image, box, image, box, np.random.default_rng(0), present=False, hidden=True)
    assert out['valid'] and out['present'] is False and out['decoy'] is False
    assert out['search_box'].tolist() == [0.0, 0.0, 0.0, 0.0]
    # The occluder, centred like the target was, fills the crop's middle.
    assert np.abs(pixels(out['search'])[96:160, 96:160] - 90).max() < 2.0
    with pytest.raises(ValueError, match='hidden=True needs present=False'):
        still()(image, box, image, box, np.random.default_rng(0), hidden=True)
