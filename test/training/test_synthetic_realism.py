"""Tests of the generator's realism features: cut-out objects, camera, perspective, sensor."""

import cv2
from detrack_model.data import synthetic
from detrack_model.data.synthetic.render import mask_box
import numpy as np
import pytest

SIZE = (160, 120)


def _object_file(directory, name, colour, shape):
    """Write a BGRA PNG of a filled shape with a transparent surround; return its path."""
    alpha = np.zeros((48, 64), np.uint8)
    if shape == 'ellipse':
        cv2.ellipse(alpha, (32, 24), (30, 20), 0, 0, 360, 255, -1)
    else:
        cv2.rectangle(alpha, (4, 4), (59, 43), 255, -1)
    image = np.dstack([np.full((48, 64, 3), colour, np.uint8), alpha])
    path = directory / f'{name}.png'
    cv2.imwrite(str(path), image)
    return str(path)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    """Return a source set with six objects in two groups, one pool background and two photos."""
    directory = tmp_path_factory.mktemp('objects')
    objects = []
    for i in range(6):
        group = 'animals/cats' if i < 3 else 'vehicles/buses'
        path = _object_file(directory, f'o{i}', (40 * i, 200 - 30 * i, 90), 'ellipse'
                            if i % 2 else 'rect')
        objects.append(synthetic.ObjectSource(path, f'fake/o{i}', group, group.split('/')[0]))
    background = directory / 'wall.jpg'
    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    cv2.imwrite(str(background), cv2.GaussianBlur(noise, (0, 0), 3))
    return synthetic.SourceSet(('astronaut', 'coffee'), (('fake/wall', str(background)),),
                               tuple(objects))


def _scenes(sources, count, frames=12):
    return [synthetic.build_scene(synthetic.sequence_seed(1, 'train', i), frames, SIZE, sources)
            for i in range(count)]


def test_object_targets_have_exact_mask_boxes(sources):
    """Cut-out targets are used, their labels come from the alpha mask, frame 0 is clean."""
    kinds = []
    for scene in _scenes(sources, 30):
        kinds.append(scene.info['target_kind'])
        for t in range(scene.num_frames):
            frame = synthetic.render_frame(scene, t)
            if frame.in_frame_pixels:
                assert frame.box == tuple(float(v) for v in mask_box(frame.target_mask))
        assert synthetic.render_frame(scene, 0).cover == 8
    assert 'object' in kinds and kinds.count('object') >= 15


def test_distractors_come_from_the_targets_group(sources):
    """Look-alike distractors of an object target are other objects of its own group."""
    by_id = {o.key: o for o in sources.objects}
    seen = 0
    for scene in _scenes(sources, 40, frames=4):
        info = scene.info
        if info['target_kind'] != 'object' or not info['distractor_sources']:
            continue
        group = by_id[info['sources']['target']].group
        for source in info['distractor_sources']:
            assert source != info['sources']['target']
            assert by_id[source].group == group
            seen += 1
    assert seen > 0


def test_perspective_warp_is_exact_and_foreshortens():
    """A tilted sprite's label is its mask's box and its near side renders larger."""
    scene = synthetic.build_scene(3, 1, SIZE, synthetic.SPLIT_SOURCES['train'])
    scene.distractors, scene.occluders = [], []
    texture = np.full((64, 64, 3), 200, np.uint8)
    scene.target = synthetic.Sprite.constant(texture, np.full((64, 64), 255, np.uint8), 1,
                                             (80.0, 60.0), (60.0, 60.0))
    scene.target.tilt[0] = (0.3, 0.0)
    frame = synthetic.render_frame(scene, 0)
    assert frame.box == tuple(float(v) for v in mask_box(frame.target_mask))
    columns = frame.target_mask.sum(axis=0)
    left, right = columns[columns > 0][2], columns[columns > 0][-3]
    # Dividing by 1 + 0.3 u shrinks the u > 0 (right) side: the left edge is taller.
    assert left > right + 4
    matrix = synthetic.sprite_homography(scene.target, 0, (64, 64))
    centre = matrix @ np.array([31.5, 31.5, 1.0])
    np.testing.assert_allclose(centre[:2] / centre[2], (80.0, 60.0), atol=1e-9)


def test_camera_zoom_and_rotation():
    """Zoom magnifies the background about the frame centre; rotation turns it."""
    scene = synthetic.build_scene(3, 3, SIZE, synthetic.SPLIT_SOURCES['train'])
    canvas = np.zeros((320, 400, 3), np.uint8)
    cv2.rectangle(canvas, (190, 150), (209, 169), (255, 255, 255), -1)  # 20 px square
    scene.background = canvas
    scene.camera = np.tile(np.array([120.0, 100.0]), (3, 1))
    scene.camera_zoom = np.array([1.0, 2.0, 1.0])
    scene.camera_angle = np.array([0.0, 0.0, 45.0])
    plain, zoomed, turned = (synthetic.background_view(scene, t) for t in range(3))
    side = mask_box(plain[:, :, 0] > 128)[2]
    assert side == 20
    assert abs(mask_box(zoomed[:, :, 0] > 128)[2] - 40) <= 2
    diagonal = mask_box(turned[:, :, 0] > 128)[2]
    assert abs(diagonal - 20 * np.sqrt(2)) <= 3


def test_sensor_noise_and_jpeg_are_deterministic_per_frame():
    """Noise and JPEG artefacts change the image but render the same frame identically."""
    scene = synthetic.build_scene(3, 3, SIZE, synthetic.SPLIT_SOURCES['train'])
    clean = synthetic.render_frame(scene, 1).image
    scene.noise_sigma, scene.jpeg_quality = 6.0, 20
    noisy = synthetic.render_frame(scene, 1).image
    again = synthetic.render_frame(scene, 1).image
    assert np.array_equal(noisy, again)
    difference = noisy.astype(float) - clean.astype(float)
    assert 2.0 < difference.std() < 20.0


def test_small_and_large_targets(sources):
    """Small targets reach about 12 px, large ones about half the frame's short side."""
    small, large = [], []
    for i in range(120):
        scene = synthetic.build_scene(synthetic.sequence_seed(9, 'train', i), 2, (480, 360),
                                      sources)
        side = float(np.sqrt(np.prod(synthetic.render_frame(scene, 0).box[2:])))
        if scene.info['attributes']['small_target']:
            small.append(side)
        elif scene.info['attributes']['large_target']:
            large.append(side)
    assert small and large
    assert min(small) < 24 and max(small) < 40
    assert max(large) > 0.3 * 360


def test_scene_is_a_pure_function(sources):
    """The same seed gives the same frames and labels, clutter and camera included."""
    a, b = (synthetic.build_scene(synthetic.sequence_seed(4, 'val', 2), 6, SIZE, sources)
            for _ in range(2))
    for t in range(6):
        fa, fb = synthetic.render_frame(a, t), synthetic.render_frame(b, t)
        assert np.array_equal(fa.image, fb.image) and fa.box == fb.box


def test_shapes_are_never_slivers():
    """Every drawn shape and look-alike covers a good part of its square (none is erased)."""
    from detrack_model.data.synthetic.sprites import jitter_shape, shape_mask, shape_params

    rng = np.random.default_rng(0)
    smallest = 1.0
    for _ in range(2000):
        params = shape_params(rng, ('ellipse', 'rect', 'polygon'))
        for shape in (params, jitter_shape(rng, params)):
            smallest = min(smallest, float((shape_mask(shape, 128) > 0).mean()))
    assert smallest > 0.15


def test_first_frames_are_whole_over_many_seeds():
    """The target is fully visible in the first frame of every sequence, pool or not."""
    for i in range(150):
        scene = synthetic.build_scene(synthetic.sequence_seed(1, 'train', i), 1, SIZE,
                                      synthetic.SPLIT_SOURCES['train'])
        assert synthetic.render_frame(scene, 0).cover == 8, i


def test_a_target_that_vanishes_when_small_is_redrawn(tmp_path):
    """A cut-out of scattered 1-px dots renders empty when shrunk: such draws are redrawn."""
    alpha = np.zeros((64, 64), np.uint8)
    alpha[::4, ::4] = 255
    path = tmp_path / 'dust.png'
    cv2.imwrite(str(path), np.dstack([np.full((64, 64, 3), 200, np.uint8), alpha]))
    dust = synthetic.ObjectSource(str(path), 'fake/dust', 'dust', 'dust')
    background = tmp_path / 'wall.jpg'
    cv2.imwrite(str(background), np.random.default_rng(1).integers(0, 255, (300, 400, 3),
                                                                   dtype=np.uint8))
    sources = synthetic.SourceSet(('astronaut', 'coffee'), (('fake/wall', str(background)),),
                                  (dust,))
    draws = []
    for index in range(12):
        scene = synthetic.build_sequence_scene(3, 'train', index, 2, SIZE, sources)
        assert synthetic.render_frame(scene, 0).cover == 8
        draws.append(scene.info['seed']['draw'])
        first = synthetic.build_scene(synthetic.sequence_seed(3, 'train', index), 2, SIZE,
                                      sources)
        # The first draw is kept whenever it shows its target: older datasets do not change.
        assert (draws[-1] == 0) == (synthetic.render_frame(first, 0).cover == 8)
    assert max(draws) > 0
