"""detrack-bag on real MCAP bags: outputs stamped like the images, near the truth; clear errors."""

import os
import pathlib
import subprocess
import sys
import textwrap

from bag_files import log_time, rendered, stamp, write_bag
from detrack_model.evaluation.metrics import rect_iou
from detrack_model.tracking.factory import build_tracker, RuntimeConfig
from detrack_ros.bag_io import BagError, BagReader, DETECTION_TYPE, IMAGE_TYPE
from detrack_ros.bag_tool import BagRunConfig, run_bag
from detrack_ros.detection_fields import box_from_detection, stamp_ns
from detrack_ros.message_definitions import message_definition, MessageDefinitionError
from detrack_ros.parameters import SPECS
from mcap_ros2.writer import Writer
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / 'models' / 'detrack_tiny_pool'
FRAMES = 40


@pytest.fixture(scope='module')
def sequence():
    """Render a sequence whose target really moves."""
    seq = rendered(FRAMES)
    centres = seq.boxes[:, :2] + seq.boxes[:, 2:] / 2
    assert np.linalg.norm(centres[-1] - centres[0]) > 10
    return seq


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


def test_frame_hooks_see_extra_topics_and_write_beside_the_outputs(tmp_path, sequence, tracker):
    """The per-frame hook gets its topics and every tracked image, and writes to the output."""
    short = type(sequence)(sequence.frames[:8], sequence.boxes[:8])
    extra = [('/camera/camera_info_like', 'vision_msgs/msg/Point2D', {'x': 1.0, 'y': 2.0},
              log_time(i)) for i in range(3)]
    bag = write_bag(tmp_path / 'raw.mcap', short, extra=extra)
    hook = RecordingHook()
    run_bag(BagRunConfig(bag=bag, topic='/camera/image_raw', output=tmp_path / 'out.mcap',
                         box=tuple(short.boxes[0])), tracker=tracker, hooks=[hook],
            log=lambda text: None)
    assert hook.seen == 3
    assert [stamp_ns(t.header) for t in hook.tracked] == [stamp(i) for i in range(8)]
    assert hook.tracked[0].started and not hook.tracked[1].started
    _, messages = read(tmp_path / 'out.mcap')
    assert [m.log_time for m in messages['/tracker/marker']] == [log_time(i) for i in range(8)]


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


def test_ros_free_run(tmp_path, sequence):
    """The tool runs with every ROS module unavailable (a laptop without ROS)."""
    short = type(sequence)(sequence.frames[:6], sequence.boxes[:6])
    bag = write_bag(tmp_path / 'raw.mcap', short)
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
                             '--output', str(tmp_path / 'out.mcap')],
                            capture_output=True, text=True, env=env, cwd='/', timeout=300)
    assert result.returncode == 0, result.stderr
    _, messages = read(tmp_path / 'out.mcap')
    assert len(messages['/tracker/detections']) == 6


def custom_type_bag(path: pathlib.Path) -> pathlib.Path:
    """Write a bag whose /thing topic has a message type no ROS install knows."""
    with open(path, 'wb') as stream:
        writer = Writer(stream)
        schema = writer.register_msgdef('my_robot/msg/Thing', 'float64 value\n')
        writer.write_message('/thing', schema, {'value': 1.0}, log_time=1)
        writer.finish()
    return path


@pytest.mark.parametrize('case', ['truncated', 'not_mcap', 'missing_topic', 'image_type',
                                  'unknown_type', 'bad_box', 'zero_box', 'box_outside',
                                  'no_start', 'empty_init'])
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


def test_demo_names_a_missing_bag_topic(tmp_path, sequence):
    """A bag without the topic: exit 1 naming it, no traceback."""
    bag = write_bag(tmp_path / 'raw.mcap', type(sequence)(sequence.frames[:2],
                                                          sequence.boxes[:2]))
    result = subprocess.run(
        [sys.executable, '-m', 'detrack_ros.demo', '--bag', str(bag), '--topic', '/nope',
         '--box', '1,1,10,10'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "'/nope' is not in bag" in result.stderr
    assert 'Traceback' not in result.stderr
