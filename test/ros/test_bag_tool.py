"""detrack-bag on real MCAP bags: outputs stamped like the images, near the truth; clear errors."""

import os
import pathlib
import subprocess
import sys
import textwrap

from bag_files import log_time, rendered, stamp, write_bag, write_rgbd_bag
from detrack_model.data.synthetic.rgbd import rgbd_sequence
from detrack_model.evaluation.metrics import rect_iou
from detrack_model.tracking.factory import build_tracker, RuntimeConfig
from detrack_ros.bag_io import BagError, BagReader, CAMERA_INFO_TYPE, DETECTION_TYPE, IMAGE_TYPE
from detrack_ros.bag_tool import BagRunConfig, run_bag
from detrack_ros.detection_fields import box_from_detection, stamp_ns
from detrack_ros.message_definitions import message_definition, MessageDefinitionError
from detrack_ros.parameters import SPECS
from mcap_ros2.writer import Writer
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / 'models' / 'detrack_tiny_pool'
FRAMES = 40
RGBD_FRAMES = 30
DEPTH_TOPIC = '/camera/depth/image_raw'
INFO_TOPIC = '/camera/camera_info'


@pytest.fixture(scope='module')
def sequence():
    """Render a sequence whose target really moves."""
    seq = rendered(FRAMES)
    centres = seq.boxes[:, :2] + seq.boxes[:, 2:] / 2
    assert np.linalg.norm(centres[-1] - centres[0]) > 10
    return seq


@pytest.fixture(scope='module')
def rgbd():
    """Render an RGB-D sequence: the target goes between 0.8 and 4 m, exact 3-D truth."""
    return rgbd_sequence(2, frames=RGBD_FRAMES, size=(320, 240), near=0.8, far=4.0)


@pytest.fixture(scope='module')
def tracker():
    """Build the shipped model on the CPU, shared by the in-process runs."""
    return build_tracker(MODEL, RuntimeConfig(device='cpu', backend='onnxruntime'))


def read(path: pathlib.Path):
    """Return the output bag's topics and its messages by topic."""
    with BagReader(path) as reader:
        messages = {}
        for message in reader.messages(list(reader.topics)):
            messages.setdefault(message.topic, []).append(message)
        return reader.topics, messages


def run(bag, topic='/camera/image_raw', *args, timeout=300):
    """Run the console command on ``bag``; return the finished process."""
    return subprocess.run([sys.executable, '-m', 'detrack_ros.bag_tool', str(bag), '--topic',
                           topic, '--device', 'cpu', *args],
                          capture_output=True, text=True, timeout=timeout)


def test_raw_bag_with_init_box_gives_detections_stamped_like_their_images(
        tmp_path, sequence, tracker):
    """Init on image 2 by stamp, recorded after it: outputs from image 2 on, near the truth."""
    bag = write_bag(tmp_path / 'raw.mcap', sequence, init='detection', init_index=2,
                    reference=True)
    output = tmp_path / 'out.mcap'
    result = run_bag(BagRunConfig(bag=bag, topic='/camera/image_raw', output=output,
                                  init_topic='/tracker/init_box', reference_topic='/labels'),
                     tracker=tracker, log=lambda text: None)
    assert result.images == FRAMES and result.bad_images == 0
    topics, messages = read(output)
    assert topics == {'/tracker/detection': DETECTION_TYPE,
                      '/tracker/detections': 'vision_msgs/msg/Detection2DArray'}
    detections = messages['/tracker/detection']
    arrays = messages['/tracker/detections']
    assert len(detections) + result.lost == FRAMES - 2 == len(arrays)
    for index, message in zip(range(2, FRAMES), arrays):
        assert stamp_ns(message.message.header) == stamp(index)
        assert message.message.header.frame_id == 'camera_optical'
        assert message.log_time == log_time(index)
    first = detections[0].message
    assert stamp_ns(first.header) == stamp(2)
    np.testing.assert_allclose(box_from_detection(first), sequence.boxes[2], atol=0.51)
    assert first.results[0].hypothesis.score == 1.0
    assert first.results[0].hypothesis.class_id == SPECS['class_id'].default
    assert len({d.message.id for d in detections}) == 1 and first.id
    by_stamp = {stamp_ns(d.message.header): box_from_detection(d.message) for d in detections}
    indices = [i for i in range(3, FRAMES) if stamp(i) in by_stamp]
    assert len(indices) >= FRAMES - 5
    ious = rect_iou(np.array([by_stamp[stamp(i)] for i in indices]), sequence.boxes[indices])
    assert ious.mean() > 0.6, ious
    assert result.scores is not None and result.scores.num_frames == FRAMES - 3
    assert abs(result.scores.ao - ious.mean()) < 0.05
    assert len(result.step_ms) == FRAMES - 3 and np.median(result.step_ms) > 0
    report = result.report()
    assert 'median' in report and 'frames/s' in report and 'SR0.75' in report


def test_box_starts_on_the_first_image(tmp_path, sequence, tracker):
    """--box x,y,w,h applies to the first image: one output per image."""
    bag = write_bag(tmp_path / 'raw.mcap',
                    type(sequence)(sequence.frames[:12], sequence.boxes[:12]))
    output = tmp_path / 'out.mcap'
    result = run_bag(BagRunConfig(bag=bag, topic='/camera/image_raw', output=output,
                                  box=tuple(sequence.boxes[0])), tracker=tracker,
                     log=lambda text: None)
    _, messages = read(output)
    arrays = messages['/tracker/detections']
    assert [stamp_ns(m.message.header) for m in arrays] == [stamp(i) for i in range(12)]
    assert result.scores is None and 'AO' not in result.report()


class RecordingHook:
    """A per-frame output: counts the messages of an extra topic, writes one marker per image."""

    topics = ('/camera/camera_info_like',)

    def __init__(self) -> None:
        self.seen = 0
        self.tracked = []

    def on_message(self, message) -> None:
        self.seen += 1

    def on_tracked(self, tracked, writer) -> None:
        self.tracked.append(tracked)
        writer.write('/tracker/marker', 'vision_msgs/msg/Point2D',
                     {'x': float(tracked.box[0]), 'y': float(tracked.box[1])}, tracked.log_time)

    def finish(self, writer, result) -> None:
        result.notes.append(f'markers                {len(self.tracked)}')


def test_frame_hooks_see_extra_topics_and_write_beside_the_outputs(tmp_path, sequence, tracker):
    """The per-frame hook gets its topics and every tracked image, and writes to the output."""
    short = type(sequence)(sequence.frames[:8], sequence.boxes[:8])
    extra = [('/camera/camera_info_like', 'vision_msgs/msg/Point2D', {'x': 1.0, 'y': 2.0},
              log_time(i)) for i in range(3)]
    bag = write_bag(tmp_path / 'raw.mcap', short, extra=extra)
    hook = RecordingHook()
    result = run_bag(BagRunConfig(bag=bag, topic='/camera/image_raw',
                                  output=tmp_path / 'out.mcap', box=tuple(short.boxes[0])),
                     tracker=tracker, hooks=[hook], log=lambda text: None)
    assert hook.seen == 3
    assert [stamp_ns(t.header) for t in hook.tracked] == [stamp(i) for i in range(8)]
    assert hook.tracked[0].started and not hook.tracked[1].started
    _, messages = read(tmp_path / 'out.mcap')
    assert [m.log_time for m in messages['/tracker/marker']] == [log_time(i) for i in range(8)]
    assert result.report().endswith('markers                8')


def vector(message) -> np.ndarray:
    """Return the x, y, z of a geometry_msgs Vector3 or Point."""
    return np.array([message.x, message.y, message.z])


def test_rgbd_bag_gives_target_points_near_the_true_position(tmp_path, rgbd, tracker):
    """
    Colour, aligned 16UC1 depth and camera_info: the node's 3-D outputs, near the 3-D truth.

    Depth is recorded after its colour image, so pairing must wait for it as the node does.
    The bound is the tracker's box error (z / f metres per pixel) plus the depth noise.
    """
    bag = write_rgbd_bag(tmp_path / 'rgbd.mcap', rgbd)
    output = tmp_path / 'out.mcap'
    told = []
    result = run_bag(BagRunConfig(bag=bag, topic='/camera/image_raw', output=output,
                                  box=tuple(rgbd.boxes[0]), camera_info_topic=INFO_TOPIC,
                                  depth_topic=DEPTH_TOPIC), tracker=tracker, log=told.append)
    assert result.images == RGBD_FRAMES and result.lost == 0, told
    assert result.counts['target_points'] == RGBD_FRAMES, result.counts
    for name in ('depth_unmatched', 'depth_bad_images', 'depth_too_few_valid',
                 'depth_size_mismatch', 'camera_info_unusable'):
        assert result.counts[name] == 0, name
    topics, messages = read(output)
    assert topics['/tracker/target_bearing'] == 'geometry_msgs/msg/Vector3Stamped'
    assert topics['/tracker/target_point'] == 'geometry_msgs/msg/PointStamped'
    assert topics['/tracker/detection_3d'] == 'vision_msgs/msg/Detection3D'
    streams = [messages[f'/tracker/{name}'] for name in ('detection', 'target_bearing',
                                                         'target_point', 'detection_3d')]
    errors = []
    for index, (detection, bearing, point, box) in enumerate(zip(*streams)):
        for message in (detection, bearing, point, box):
            assert stamp_ns(message.message.header) == stamp(index)
            assert message.message.header.frame_id == 'camera_optical'
            assert message.log_time == log_time(index)
        position = vector(point.message.point)
        ray = vector(bearing.message.vector)
        assert np.linalg.norm(ray) == pytest.approx(1.0)
        assert np.allclose(ray, position / np.linalg.norm(position), atol=1e-9)
        box = box.message
        assert np.allclose(vector(box.bbox.center.position), position)
        assert box.bbox.center.orientation.w == 1.0
        assert box.id == detection.message.id and box.id
        assert box.results[0].hypothesis.score == detection.message.results[0].hypothesis.score
        assert box.results[0].hypothesis.class_id == SPECS['class_id'].default
        assert box.bbox.size.x == pytest.approx(detection.message.bbox.size_x * position[2]
                                                / rgbd.k[0], rel=1e-6)
        errors.append(float(np.linalg.norm(position - rgbd.positions[index])))
    assert len(errors) == RGBD_FRAMES
    errors = np.array(errors)
    print(f'\n3-D position error over {len(errors)} frames at 0.8-4 m: median '
          f'{np.median(errors) * 100:.1f} cm, max {errors.max() * 100:.1f} cm')
    assert np.median(errors) < 0.05
    # A box error of 10 % of the target's 0.4 m width at most, at any distance.
    assert errors.max() < 0.10
    report = result.report()
    assert f'{RGBD_FRAMES} bearings, {RGBD_FRAMES} target points' in report, report
    assert '0 without a depth image within 0.02 s' in report, report


@pytest.mark.slow
def test_camera_info_without_depth_gives_the_bearing_only(tmp_path, rgbd):
    """
    Console command with --camera-info-topic only: bearings towards the target, no 3-D point.

    A depth topic named but not in the bag is the missing-topic error, before any tracking.
    """
    bag = write_rgbd_bag(tmp_path / 'colour.mcap', rgbd, depth=False)
    output = tmp_path / 'out.mcap'
    box = ','.join(f'{v:.2f}' for v in rgbd.boxes[0])
    result = run(bag, '/camera/image_raw', '--box', box, '--camera-info-topic', INFO_TOPIC,
                 '--depth-topic', DEPTH_TOPIC, '--output', str(output))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"depth topic '{DEPTH_TOPIC}' is not in bag" in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr and not output.exists()
    result = run(bag, '/camera/image_raw', '--box', box, '--camera-info-topic', INFO_TOPIC,
                 '--output', str(output))
    assert result.returncode == 0, result.stderr
    # One bearing for every tracked frame (a frame the target is lost on has no box to aim at).
    tracked = int(result.stdout.split('outputs written')[1].split('tracked')[0])
    assert tracked >= RGBD_FRAMES // 2, result.stdout
    assert f'3-D outputs            {tracked} bearings' in result.stdout, result.stdout
    assert '0 without usable camera_info' in result.stdout, result.stdout
    topics, messages = read(output)
    assert '/tracker/target_point' not in topics and '/tracker/detection_3d' not in topics
    bearings = messages['/tracker/target_bearing']
    detections = messages['/tracker/detection']
    assert len(bearings) == len(detections) == tracked
    fx, _, cx, _, fy, cy = rgbd.k[:6]
    for bearing, detection in zip(bearings, detections):
        index = (stamp_ns(bearing.message.header) - stamp(0)) // (stamp(1) - stamp(0))
        assert stamp_ns(bearing.message.header) == stamp(index)
        assert stamp_ns(detection.message.header) == stamp(index)
        assert bearing.log_time == log_time(index)
        ray = vector(bearing.message.vector)
        assert np.linalg.norm(ray) == pytest.approx(1.0)
        # Through K the ray lands on the detection's centre (pixel centres at integers) ...
        centre = detection.message.bbox.center.position
        assert fx * ray[0] / ray[2] + cx == pytest.approx(centre.x - 0.5)
        assert fy * ray[1] / ray[2] + cy == pytest.approx(centre.y - 0.5)
        # ... and towards the target, off by the tracker's box-centre error only.
        true = rgbd.positions[index] / np.linalg.norm(rgbd.positions[index])
        assert np.degrees(np.arccos(np.clip(ray @ true, -1, 1))) < 3.0, index


def test_bad_depth_images_are_counted_and_tracking_goes_on(tmp_path, rgbd, tracker):
    """Depth of an encoding that is not depth: every image counted, bearings and 2-D kept."""
    frames = 8
    short = type(rgbd)(**{**rgbd.__dict__, 'frames': rgbd.frames[:frames],
                          'depth_mm': rgbd.depth_mm[:frames]})
    bag = write_rgbd_bag(tmp_path / 'rgbd.mcap', short, depth_encoding='rgb8')
    output = tmp_path / 'out.mcap'
    told = []
    result = run_bag(BagRunConfig(bag=bag, topic='/camera/image_raw', output=output,
                                  box=tuple(rgbd.boxes[0]), camera_info_topic=INFO_TOPIC,
                                  depth_topic=DEPTH_TOPIC), tracker=tracker, log=told.append)
    assert result.tracked == frames
    assert result.counts['depth_bad_images'] == frames
    assert result.counts['depth_unmatched'] == frames
    assert result.counts['target_points'] == 0
    assert any("unsupported depth encoding 'rgb8'" in line for line in told), told
    # Told a few times, then only counted.
    assert len([line for line in told if 'rgb8' in line]) == 3
    topics, messages = read(output)
    assert '/tracker/target_point' not in topics
    assert len(messages['/tracker/target_bearing']) == frames
    assert f'depth images: {frames} read, {frames} could not be used' in result.report()


@pytest.mark.slow
def test_console_command_on_compressed_images_with_an_roi_init(tmp_path, sequence):
    """Run the console command on JPEG images with a RegionOfInterest init and references."""
    bag = write_bag(tmp_path / 'jpeg.mcap', sequence, compressed=True,
                    topic='/camera/image_raw/compressed', init='roi', init_index=0,
                    reference=True)
    output = tmp_path / 'tracked.mcap'
    result = run(bag, '/camera/image_raw/compressed', '--init-topic', '/tracker/init_roi',
                 '--reference-topic', '/labels', '--output', str(output), '--namespace', '/t1')
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f'speed                  {FRAMES - 1} frames, median' in out, out
    ao = float(out.split('AO ')[1].split(',')[0])
    assert ao > 0.6, out
    _, messages = read(output)
    stamps = [stamp_ns(m.message.header) for m in messages['/t1/detections']]
    assert stamps == [stamp(i) for i in range(FRAMES)]


@pytest.mark.slow
def test_ros_free_run(tmp_path, rgbd):
    """The tool, 3-D outputs included, runs with every ROS module unavailable (no ROS)."""
    short = type(rgbd)(**{**rgbd.__dict__, 'frames': rgbd.frames[:6],
                          'depth_mm': rgbd.depth_mm[:6]})
    bag = write_rgbd_bag(tmp_path / 'rgbd.mcap', short)
    script = textwrap.dedent("""
        import importlib.abc, sys

        class NoRos(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                top = name.partition('.')[0]
                if top in ('rclpy', 'rcl_interfaces', 'ament_index_python', 'launch') \\
                        or top.endswith(('_msgs', '_srvs')):
                    raise ModuleNotFoundError(f'No module named {name!r}', name=name)

        sys.meta_path.insert(0, NoRos())
        sys.path.insert(0, sys.argv[1])
        from detrack_ros.bag_tool import main
        sys.exit(main(sys.argv[2:]))
    """)
    box = ','.join(f'{v:.1f}' for v in short.boxes[0])
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'AMENT_PREFIX_PATH')}
    result = subprocess.run([sys.executable, '-I', '-c', script, str(ROOT), str(bag),
                             '--topic', '/camera/image_raw', '--box', box, '--device', 'cpu',
                             '--camera-info-topic', INFO_TOPIC, '--depth-topic', DEPTH_TOPIC,
                             '--output', str(tmp_path / 'out.mcap')],
                            capture_output=True, text=True, env=env, cwd='/', timeout=300)
    assert result.returncode == 0, result.stderr
    _, messages = read(tmp_path / 'out.mcap')
    assert len(messages['/tracker/detections']) == 6
    assert len(messages['/tracker/target_point']) == len(messages['/tracker/detection']) == 6


def custom_type_bag(path: pathlib.Path) -> pathlib.Path:
    """Write a bag whose /thing topic has a message type no ROS install knows."""
    with open(path, 'wb') as stream:
        writer = Writer(stream)
        schema = writer.register_msgdef('my_robot/msg/Thing', 'float64 value\n')
        writer.write_message('/thing', schema, {'value': 1.0}, log_time=1)
        writer.finish()
    return path


@pytest.mark.slow
@pytest.mark.parametrize('case', ['truncated', 'not_mcap', 'missing_topic', 'image_type',
                                  'unknown_type', 'bad_box', 'zero_box', 'box_outside',
                                  'no_start', 'empty_init', 'camera_info_type',
                                  'depth_without_camera_info'])
def test_bad_input_is_one_clear_error(tmp_path, sequence, case):
    """Each problem exits non-zero with a message naming it, never a traceback or a file."""
    short = type(sequence)(sequence.frames[:4], sequence.boxes[:4])
    bag = write_bag(tmp_path / 'in.mcap', short, reference=True)
    output = tmp_path / 'out.mcap'
    args = ['--box', '10,10,20,20', '--output', str(output)]
    topic = '/camera/image_raw'
    if case == 'truncated':
        data = bag.read_bytes()
        bag.write_bytes(data[:len(data) * 2 // 3])
        code, expected = 1, 'is truncated'
    elif case == 'not_mcap':
        bag.write_bytes(b'#ROSBAG V2.0\n' + bytes(100))
        code, expected = 1, 'is not an MCAP bag'
    elif case == 'missing_topic':
        topic = '/camera/nothing'
        code, expected = 1, "'/camera/nothing' is not in bag"
    elif case == 'image_type':
        topic = '/labels'
        code, expected = 1, f'has type {DETECTION_TYPE}; expected {IMAGE_TYPE}'
    elif case == 'unknown_type':
        bag = custom_type_bag(tmp_path / 'custom.mcap')
        topic = '/thing'
        code, expected = 1, 'has type my_robot/msg/Thing'
    elif case == 'bad_box':
        args[1] = '10,20,abc'
        code, expected = 2, '--box needs four numbers x,y,w,h'
    elif case == 'zero_box':
        args[1] = '10,20,0,5'
        code, expected = 2, "--box '10,20,0,5'"
    elif case == 'box_outside':
        args[1] = '5000,5000,20,20'
        code, expected = 1, '--box rejected'
    elif case == 'no_start':
        args = ['--output', str(output)]
        code, expected = 2, 'one of the arguments --box --init-topic is required'
    elif case == 'camera_info_type':
        args += ['--camera-info-topic', '/labels']
        code, expected = 1, (f"camera_info topic '/labels' of bag {bag} has type "
                             f'{DETECTION_TYPE}; expected {CAMERA_INFO_TYPE}')
    elif case == 'depth_without_camera_info':
        args += ['--depth-topic', '/camera/image_raw']
        code, expected = 1, '--depth-topic needs --camera-info-topic'
    else:
        args = ['--init-topic', '/camera/image_raw', '--output', str(output)]
        code, expected = 1, "init topic '/camera/image_raw'"
    result = run(bag, topic, *args, timeout=120)
    assert result.returncode == code, result.stdout + result.stderr
    assert expected in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr
    assert not output.exists() and not list(tmp_path.glob('*.part'))


def test_reader_errors_are_bag_errors(tmp_path):
    """Opening what is not a bag raises BagError, naming the path."""
    with pytest.raises(BagError, match='does not exist'):
        BagReader(tmp_path / 'missing.mcap')
    (tmp_path / 'dir').mkdir()
    with pytest.raises(BagError, match='exactly one .mcap'):
        BagReader(tmp_path / 'dir')


def test_message_definition_is_built_from_msg_files(tmp_path):
    """Every type a definition uses follows it once; a missing .msg file is named."""
    text = message_definition('vision_msgs/msg/Detection2D')
    names = [line[5:] for line in text.splitlines() if line.startswith('MSG: ')]
    assert len(names) == len(set(names))
    assert {'std_msgs/Header', 'builtin_interfaces/Time', 'vision_msgs/BoundingBox2D',
            'geometry_msgs/PoseWithCovariance', 'geometry_msgs/Quaternion'} <= set(names)
    (tmp_path / 'pkg' / 'msg').mkdir(parents=True)
    (tmp_path / 'pkg' / 'msg' / 'A.msg').write_text('other_pkg/B b\n')
    with pytest.raises(MessageDefinitionError, match='other_pkg/msg/B.msg'):
        message_definition('pkg/msg/A', [tmp_path])


@pytest.mark.slow
def test_demo_replays_a_bag_into_the_node_over_dds(tmp_path, sequence):
    """Replay a bag into the node over DDS (make demo's --bag): AO against its references."""
    bag = write_bag(tmp_path / 'raw.mcap', sequence, reference=True)
    box = ','.join(f'{v:.2f}' for v in sequence.boxes[0])
    result = subprocess.run(
        [sys.executable, '-m', 'detrack_ros.demo', '--bag', str(bag), '--topic',
         '/camera/image_raw', '--box', box, '--reference-topic', '/labels', '--frames', '0',
         '--device', 'cpu', '--no-video'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f'frames published       {FRAMES - 1} in' in out, out
    assert float(out.split('accuracy               AO ')[1].split(',')[0]) > 0.5, out


@pytest.mark.slow
def test_demo_names_a_missing_bag_topic(tmp_path, sequence):
    """A bag without the topic: exit 1 naming it, no traceback."""
    bag = write_bag(tmp_path / 'raw.mcap', type(sequence)(sequence.frames[:2],
                                                          sequence.boxes[:2]))
    result = subprocess.run(
        [sys.executable, '-m', 'detrack_ros.demo', '--bag', str(bag), '--topic', '/nope',
         '--box', '1,1,10,10'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "'/nope' is not in bag" in result.stderr
    assert 'Traceback' not in result.stderr
