"""
select_target: its refusal without a display, its box arithmetic and messages, and its node.

No test opens a window: the GUI loop runs against a scripted stand-in for OpenCV's HighGUI
(keys and mouse events), with real ROS messages over DDS.
"""

import ast
import os
import pathlib
import subprocess
import sys
import time
import uuid

import cv2
from detrack_ros import select_target
from detrack_ros.image_conversion import array_to_image, Frame
from detrack_ros.init_boxes import box_from_detection
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_graph import assert_messages_equal, spin_until, unique_topic
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith('linux')


def make_header(sec: int = 1_700_000_321, nanosec: int = 987_654_321,
                frame_id: str = 'camera_color_optical_frame') -> Header:
    """Return a header with a distinctive stamp and frame."""
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    return header


def run_tool(env_changes: dict, *arguments: str) -> subprocess.CompletedProcess:
    """Run ``python -m detrack_ros.select_target`` with the environment changed as given."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                      env.get('PYTHONPATH', '')]))
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run([sys.executable, '-m', 'detrack_ros.select_target', *arguments],
                          env=env, capture_output=True, text=True, timeout=60,
                          cwd=PACKAGE_ROOT)


# -- without a display -------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason='DISPLAY / WAYLAND_DISPLAY decide only on Linux')
def test_without_display_exits_2_naming_the_alternatives():
    """Neither DISPLAY nor WAYLAND_DISPLAY: exit 2, say why, and name init_box and the others."""
    result = run_tool({'DISPLAY': None, 'WAYLAND_DISPLAY': None},
                      '--ros-args', '-r', 'image:=/camera/image_raw')
    assert result.returncode == select_target.EXIT_NO_DISPLAY == 2, result.stderr
    assert 'Traceback' not in result.stderr
    assert 'no display' in result.stderr
    assert 'DISPLAY' in result.stderr and 'WAYLAND_DISPLAY' in result.stderr
    for alternative in ('init_box', 'vision_msgs/msg/Detection2D', 'rqt_image_view',
                        'init_click', 'Publish Point', 'clicked_point'):
        assert alternative in result.stderr, alternative
    assert result.stdout == ''  # it never got as far as the instructions


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason='the display variables explain failures on Linux only')
def test_unreachable_display_or_headless_opencv_exits_2():
    """DISPLAY names no X server (or OpenCV has no GUI): exit 2 with a reason, no crash."""
    result = run_tool({'DISPLAY': ':4711', 'WAYLAND_DISPLAY': None})
    assert result.returncode == 2, result.stderr
    assert 'Traceback' not in result.stderr
    if select_target.opencv_gui_backend() == 'NONE':
        assert 'no GUI support' in result.stderr and 'opencv-contrib-python' in result.stderr
    else:  # OpenCV's own complaint, from the child process that tried
        assert 'OpenCV could not open a window' in result.stderr
    assert 'no display' not in result.stderr  # DISPLAY is set: not the reason
    assert 'init_box' in result.stderr


def test_headless_opencv_is_reported_without_trying_a_window(monkeypatch):
    """An OpenCV without GUI is named as the reason, with the wheel to install instead."""
    monkeypatch.setattr(select_target, 'opencv_gui_backend', lambda: 'NONE')
    monkeypatch.setattr(select_target, 'window_probe', lambda: pytest.fail('window tried'))
    problems = select_target.window_problems({'DISPLAY': ':0'}, 'linux')
    assert len(problems) == 1
    assert 'no GUI support' in problems[0] and 'opencv-contrib-python' in problems[0]
    message = select_target.no_display_message(problems)
    assert 'init_box' in message and 'headless' in message


def test_opencv_decides_and_the_display_variables_explain(monkeypatch):
    """A window that opens is enough; a failure is OpenCV's, with the variables as the cause."""
    monkeypatch.setattr(select_target, 'opencv_gui_backend', lambda: 'QT5')
    failure = None
    monkeypatch.setattr(select_target, 'window_probe', lambda: failure)
    for environ, platform in [({'DISPLAY': ':0'}, 'linux'), ({}, 'linux'), ({}, 'darwin')]:
        assert select_target.window_problems(environ, platform) == []
    failure = 'qt.qpa.xcb: could not connect to display :7 (Aborted)'
    (problem,) = select_target.window_problems({'DISPLAY': ':7'}, 'linux')
    assert problem == f'OpenCV could not open a window: {failure}'
    assert select_target.window_problems({'WAYLAND_DISPLAY': 'w'}, 'linux') == [problem]
    assert select_target.window_problems({}, 'win32') == [problem]
    missing, problem = select_target.window_problems({'DISPLAY': ''}, 'linux')
    assert missing.startswith('no display') and 'WAYLAND_DISPLAY' in missing
    monkeypatch.setattr(select_target, 'opencv_gui_backend', lambda: None)  # unknown build
    assert select_target.window_problems({'DISPLAY': ':7'}, 'linux') == [problem]


def test_opencv_gui_backend_reads_the_build_information():
    """The backend is the GUI line of cv2.getBuildInformation()."""
    backend = select_target.opencv_gui_backend()
    assert backend is not None
    assert f'GUI: {backend}' in ' '.join(cv2.getBuildInformation().split())


def test_open_window_reports_headless_opencv(monkeypatch):
    """cv2.namedWindow failing (headless build) becomes the OpenCV reason, not a traceback."""
    def refuse(*args):
        raise cv2.error('OpenCV(4.x) window.cpp:1284: error: (-2:Unspecified error) The '
                        'function is not implemented. Rebuild the library with GTK+')
    monkeypatch.setattr(cv2, 'namedWindow', refuse)
    problem = select_target.open_window()
    assert 'no GUI support' in problem and 'not implemented' in problem


def test_window_probe_reports_what_opencv_said():
    """The child process really tries: where no window can open, OpenCV's words come back."""
    failure = select_target.window_probe()
    if select_target.opencv_gui_backend() == 'NONE':
        assert 'not implemented' in failure  # cv2.error raised by the headless build
    elif LINUX and not os.environ.get('DISPLAY') and not os.environ.get('WAYLAND_DISPLAY'):
        assert failure
    else:
        pytest.skip('a display and a GUI build of OpenCV are present: the probe would '
                    'open a real window (the failure paths are tested above)')


def test_window_probe_survives_a_child_that_aborts(monkeypatch):
    """Qt aborts the process that cannot open the display: the probe names it and the cause."""
    monkeypatch.setattr(select_target, 'WINDOW_PROBE', (
        'import os, sys\n'
        "print('qt.qpa.xcb: could not connect to display :7', file=sys.stderr, flush=True)\n"
        "print('Available platform plugins are: xcb.', file=sys.stderr, flush=True)\n"
        'os.abort()\n'))
    failure = select_target.window_probe()
    assert failure.startswith('qt.qpa.xcb: could not connect to display :7 (')
    assert failure.endswith(')') and 'xcb.' not in failure
    monkeypatch.setattr(select_target, 'WINDOW_PROBE', 'import sys; sys.exit(3)')
    assert select_target.window_probe() == 'exit status 3'
    monkeypatch.setattr(select_target, 'WINDOW_PROBE', 'pass')
    assert select_target.window_probe() is None


def test_main_strips_ros_arguments_before_refusing(monkeypatch, capsys):
    """ROS arguments are not the tool's; no display still means exit 2 and no ROS started."""
    monkeypatch.setattr(select_target, 'window_problems', lambda: ['no display: test'])
    monkeypatch.setattr(rclpy, 'init', lambda **kwargs: pytest.fail('rclpy started'))
    status = select_target.main(['select_target', '--compressed', '--ros-args', '-r',
                                 'image:=/camera/image_raw', '-r', '__ns:=/robot1'])
    assert status == 2
    assert 'no display: test' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        select_target.main(['select_target', '--no-such-option'])
    assert exit_info.value.code == 2


def test_entry_point_is_declared_in_setup_py():
    """setup.py installs the tool as select_target (lib/detrack_ros/select_target)."""
    tree = ast.parse((PACKAGE_ROOT / 'setup.py').read_text())
    scripts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'entry_points':
            scripts = ast.literal_eval(node.value).get('console_scripts', [])
    entries = {entry.split('=')[0].strip(): entry.split('=')[1].strip() for entry in scripts}
    assert entries.get('select_target') == 'detrack_ros.select_target:main'
    assert callable(select_target.main)


# -- pure helpers ------------------------------------------------------------------------------

def test_roi_to_box():
    """A selectROI-style (x, y, w, h) becomes a float box; an empty selection becomes None."""
    box = select_target.roi_to_box((10, 20, 30, 40))
    assert box == (10.0, 20.0, 30.0, 40.0)
    assert all(type(value) is float for value in box)
    assert select_target.roi_to_box(np.array([1, 2, 3, 4], np.int32)) == (1.0, 2.0, 3.0, 4.0)
    for empty in [(0, 0, 0, 0), (10, 20, 0, 40), (10, 20, 30, 0), (10, 20, -5, 5), None,
                  (1, 2, 3), (0, 0, float('nan'), 4), (0, 0, float('inf'), 4)]:
        assert select_target.roi_to_box(empty) is None, empty


def test_init_message_carries_box_and_the_image_header():
    """Centre and size of the box, the image's stamp and frame, no results."""
    header = make_header()
    message = select_target.init_message((10.0, 20.0, 30.0, 40.0), header)
    assert isinstance(message, Detection2D)
    assert message.bbox.center.position.x == 25.0
    assert message.bbox.center.position.y == 40.0
    assert (message.bbox.size_x, message.bbox.size_y) == (30.0, 40.0)
    assert message.bbox.center.theta == 0.0
    assert list(message.results) == [] and message.id == ''
    assert message.header == header
    assert message.header is not header
    header.stamp.sec += 1
    header.frame_id = 'changed'
    assert message.header.stamp.sec == 1_700_000_321
    assert message.header.frame_id == 'camera_color_optical_frame'
    # The tracker reads back exactly the box that was drawn.
    assert box_from_detection(message) == (10.0, 20.0, 30.0, 40.0)


def test_to_bgr_gives_an_independent_bgr_image():
    """Mono becomes three equal channels, RGB is swapped, BGR is copied."""
    mono = np.arange(12, dtype=np.uint8).reshape(3, 4)
    bgr = select_target.to_bgr(Frame(mono, False))
    assert bgr.shape == (3, 4, 3) and all(np.array_equal(bgr[..., c], mono) for c in range(3))
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200  # red
    assert np.all(select_target.to_bgr(Frame(rgb, False))[..., 2] == 200)
    assert np.all(select_target.to_bgr(Frame(rgb, False))[..., 0] == 0)
    shown = select_target.to_bgr(Frame(rgb, True))
    assert np.array_equal(shown, rgb) and not np.shares_memory(shown, rgb)
    with pytest.raises(ValueError):
        select_target.to_bgr(Frame(np.zeros((2, 2, 4), np.uint8), True))


def test_box_drag_follows_the_mouse():
    """Press, move and release in any direction; the box stays inside the image."""
    drag = select_target.BoxDrag(100, 80)
    assert drag.roi() == (0, 0, 0, 0)
    drag.on_mouse(cv2.EVENT_MOUSEMOVE, 50, 50)  # moving without a press draws nothing
    assert drag.roi() == (0, 0, 0, 0)
    drag.on_mouse(cv2.EVENT_LBUTTONDOWN, 60, 50)
    drag.on_mouse(cv2.EVENT_MOUSEMOVE, 40, 30)
    assert drag.dragging and drag.roi() == (40, 30, 20, 20)
    drag.on_mouse(cv2.EVENT_LBUTTONUP, 10, 5)
    assert not drag.dragging and drag.roi() == (10, 5, 50, 45)
    drag.on_mouse(cv2.EVENT_MOUSEMOVE, 0, 0)  # after the release the box stays
    assert drag.roi() == (10, 5, 50, 45)
    drag.on_mouse(cv2.EVENT_LBUTTONDOWN, 90, 70)
    drag.on_mouse(cv2.EVENT_LBUTTONUP, 500, -20)
    assert drag.roi() == (90, 0, 10, 70)


# -- the node over DDS -------------------------------------------------------------------------

class Receiver:
    """A node of its own that records what arrives on one topic."""

    def __init__(self, context, message_type, topic: str):
        self.node = rclpy.create_node(f'receiver_{uuid.uuid4().hex[:8]}', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.received = []
        self.subscription = self.node.create_subscription(message_type, topic,
                                                          self.received.append, 10)

    def spin_until(self, condition, timeout: float = 10.0) -> bool:
        """Spin this node until ``condition()`` holds."""
        return spin_until(self.executor, condition, timeout)

    def close(self) -> None:
        """Destroy the node."""
        self.executor.shutdown()
        self.node.destroy_node()


def test_init_message_survives_dds(ros_context):
    """The init box goes from one node to another over DDS with every field intact."""
    topic = unique_topic('init_box')
    receiver = Receiver(ros_context, Detection2D, topic)
    sender = rclpy.create_node('init_box_sender', context=ros_context)
    receiver.executor.add_node(sender)
    try:
        publisher = sender.create_publisher(
            Detection2D, topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        assert receiver.spin_until(lambda: publisher.get_subscription_count() == 1)
        sent = select_target.init_message((12.5, 7.0, 64.0, 48.0), make_header())
        publisher.publish(sent)
        assert receiver.spin_until(lambda: receiver.received)
        (received,) = receiver.received
        assert_messages_equal(sent, received)
        assert received.header.stamp.sec == 1_700_000_321
        assert received.header.stamp.nanosec == 987_654_321
        assert received.header.frame_id == 'camera_color_optical_frame'
        assert box_from_detection(received) == (12.5, 7.0, 64.0, 48.0)
    finally:
        sender.destroy_node()
        receiver.close()


def test_node_keeps_the_newest_image_and_sends_its_stamp(ros_context):
    """Images arrive over DDS; a box for the newest one goes out with that image's header."""
    namespace = '/' + unique_topic('select_target_test')
    node = select_target.SelectTargetNode(context=ros_context, namespace=namespace)
    receiver = Receiver(ros_context, Detection2D, f'{namespace}/init_box')
    receiver.executor.add_node(node)
    camera = rclpy.create_node('camera', context=ros_context)
    try:
        assert node.image_topic == f'{namespace}/image'
        assert node.publisher.topic_name == f'{namespace}/init_box'
        images = camera.create_publisher(Image, f'{namespace}/image', 10)
        assert receiver.spin_until(lambda: images.get_subscription_count() == 1
                                   and node.publisher.get_subscription_count() == 1)
        rgb = np.zeros((48, 64, 3), np.uint8)
        rgb[..., 0] = 255
        # Right after discovery a best-effort reader may miss a sample: repeat the first one.
        assert receiver.spin_until(
            lambda: node.latest.count > 0 or images.publish(
                array_to_image(rgb, 'rgb8', make_header(sec=99))), timeout=10.0)
        for sec in (100, 101, 102):
            images.publish(array_to_image(rgb, 'rgb8', make_header(sec=sec)))
            assert receiver.spin_until(lambda: node.latest.get()[1].stamp.sec == sec)
        image, header = node.latest.get()
        assert header.stamp.sec == 102 and header.frame_id == 'camera_color_optical_frame'
        assert image.shape == (48, 64, 3) and np.all(image[..., 2] == 255)  # shown as BGR

        sent = node.publish_box((4.0, 6.0, 20.0, 10.0), header)
        assert receiver.spin_until(lambda: receiver.received)
        (received,) = receiver.received
        assert_messages_equal(sent, received)
        assert received.header == header
        assert box_from_detection(received) == (4.0, 6.0, 20.0, 10.0)
    finally:
        camera.destroy_node()
        node.destroy_node()
        receiver.close()


def test_bad_images_are_skipped_with_one_message(ros_context, capsys):
    """An image that cannot be converted is dropped, said once per reason, and then forgotten."""
    node = select_target.SelectTargetNode(context=ros_context,
                                          namespace='/' + unique_topic('bad_images'))
    try:
        bad = Image(height=2, width=2, step=2, encoding='bogus', data=bytes(4))
        assert not node.store(bad)
        assert not node.store(bad)
        short = Image(height=4, width=4, step=4, encoding='mono8', data=bytes(3))
        assert not node.store(short)
        err = capsys.readouterr().err
        assert err.count('bogus') == 1 and err.count('skipping an image') == 2
        assert node.latest.get() is None
        good = array_to_image(np.full((4, 4), 7, np.uint8), 'mono8', make_header())
        assert node.store(good)
        image, header = node.latest.get()
        assert image.shape == (4, 4, 3) and header == make_header()
    finally:
        node.destroy_node()


# -- the window loop, with HighGUI scripted ----------------------------------------------------

class ScriptedGui:
    """
    Stand in for OpenCV's window functions: each waitKey plays the next step of a script.

    A step is a key code, or a callable run with this object (to move the mouse, or to wait
    for something) that returns the key code to report.
    """

    def __init__(self, monkeypatch, script):
        self.script = list(script)
        self.mouse = None
        self.shown = []
        self.closed = False
        monkeypatch.setattr(cv2, 'imshow', self.imshow)
        monkeypatch.setattr(cv2, 'waitKey', self.wait_key)
        monkeypatch.setattr(cv2, 'setMouseCallback', self.set_mouse_callback)
        monkeypatch.setattr(cv2, 'getWindowProperty', self.get_window_property)
        monkeypatch.setattr(cv2, 'destroyAllWindows', lambda: None)

    def imshow(self, name, image):
        """Record what would be shown."""
        assert name == select_target.WINDOW
        self.shown.append(image.copy())

    def wait_key(self, delay=0):
        """Play the next step; -1 (no key) once the script ran out would loop forever: quit."""
        if not self.script:
            return ord('q')
        step = self.script.pop(0)
        return step(self) if callable(step) else step

    def set_mouse_callback(self, name, callback, param=None):
        """Keep the callback so that a step can drag."""
        self.mouse = callback

    def get_window_property(self, name, prop):
        """Report the window as visible until a step closes it."""
        return 0.0 if self.closed else 1.0


def drag(x0, y0, x1, y1):
    """Return a script step that drags the left button from (x0, y0) to (x1, y1)."""
    def step(gui):
        gui.mouse(cv2.EVENT_LBUTTONDOWN, x0, y0, 0, None)
        gui.mouse(cv2.EVENT_MOUSEMOVE, (x0 + x1) // 2, (y0 + y1) // 2, 0, None)
        gui.mouse(cv2.EVENT_LBUTTONUP, x1, y1, 0, None)
        return -1
    return step


def test_main_sends_the_dragged_box_for_the_frozen_image(ros_context, monkeypatch, capsys):
    """
    Run main() end to end with a scripted window: s, an empty try, c, then a drag and Enter.

    The tool starts ROS with its own command line (namespace and image remapping), receives
    images over DDS, and sends exactly one box, stamped with the frozen image's header.
    """
    namespace = '/' + unique_topic('select_target_main')
    camera_topic = f'{namespace}/camera/image_raw'
    monkeypatch.setattr(select_target, 'window_problems', lambda: [])
    monkeypatch.setattr(select_target, 'open_window', lambda: None)
    receiver = Receiver(ros_context, Detection2D, f'{namespace}/init_box')
    images = receiver.node.create_publisher(Image, camera_topic, 10)
    frame = np.zeros((120, 160), np.uint8)
    frozen_header = make_header(sec=5000)
    tools = []

    class RecordedNode(select_target.SelectTargetNode):
        """The tool's node, kept so that the test can see what its publisher matched."""

        def __init__(self, **options):
            super().__init__(**options)
            tools.append(self)

    monkeypatch.setattr(select_target, 'SelectTargetNode', RecordedNode)

    def wait_for_tool(gui):
        # The tool's node is up once it subscribes to the camera and publishes init_box, and
        # discovery has matched both ends of init_box (each side learns of the other apart).
        assert receiver.spin_until(lambda: images.get_subscription_count() == 1
                                   and receiver.subscription.get_publisher_count() == 1
                                   and tools[0].publisher.get_subscription_count() == 1)
        images.publish(array_to_image(frame, 'mono8', frozen_header))
        return -1

    deadline = time.monotonic() + 10.0

    def until_image_shown(gui):
        # One step per loop turn: repeat until the window shows the camera image. The image
        # is sent again meanwhile: right after discovery, a best-effort reader can miss one.
        if gui.shown[-1].shape != (120, 160, 3):
            assert time.monotonic() < deadline, 'the tool never showed the camera image'
            images.publish(array_to_image(frame, 'mono8', frozen_header))
            gui.script.insert(0, until_image_shown)
            time.sleep(0.05)
        return -1

    def newer_image(gui):
        # Arrives while the first image is frozen: the box must keep the frozen stamp.
        images.publish(array_to_image(frame, 'mono8', make_header(sec=6000)))
        receiver.spin_until(lambda: False, timeout=0.3)
        return -1

    def wait_for_box(gui):
        assert receiver.spin_until(lambda: receiver.received)
        return -1

    script = [
        wait_for_tool, until_image_shown,
        ord('s'), ord('\r'),                                # nothing dragged: not sent
        ord('s'), drag(10, 10, 60, 40), ord('c'),           # cancelled: not sent
        ord('s'), newer_image, drag(150, 100, 30, 20), 13,  # sent
        wait_for_box, ord('q')]
    gui = ScriptedGui(monkeypatch, script)
    try:
        status = select_target.main(['select_target', '--ros-args', '-r', f'__ns:={namespace}',
                                     '-r', f'image:={camera_topic}'])
        assert status == 0
        out = capsys.readouterr().out
        assert f'{namespace}/init_box' in out and camera_topic in out
        assert 'Empty selection' in out and 'Cancelled' in out and 'Sent box' in out
        receiver.spin_until(lambda: len(receiver.received) > 1, timeout=0.5)
        (received,) = receiver.received
        assert received.header == frozen_header
        assert box_from_detection(received) == (30.0, 20.0, 120.0, 80.0)
        assert list(received.results) == []
        # The drag was drawn on the frozen image.
        assert any(np.array_equal(image[100, 90], select_target.BOX_COLOUR)
                   for image in gui.shown)
    finally:
        receiver.close()
        rclpy.try_shutdown()


def test_window_watch_needs_the_window_seen_before_it_counts_as_closed(monkeypatch):
    """A backend that cannot report visibility (-1) never ends the tool; a closed window does."""
    answers = []

    def window_property(name, prop):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    monkeypatch.setattr(cv2, 'getWindowProperty', window_property)
    watch = select_target.WindowWatch()
    answers.extend([-1.0, -1.0, 0.0])
    assert not any(watch.closed() for _ in range(3))
    answers.extend([1.0, 1.0, 0.0])
    assert [watch.closed() for _ in range(3)] == [False, False, True]
    watch = select_target.WindowWatch()
    answers.extend([1.0, cv2.error('window destroyed')])
    assert [watch.closed() for _ in range(2)] == [False, True]


def test_closing_the_window_quits_and_freezing_needs_an_image(monkeypatch, capsys):
    """Before any image, s says there is nothing to select; closing the window ends main()."""
    monkeypatch.setattr(select_target, 'window_problems', lambda: [])
    monkeypatch.setattr(select_target, 'open_window', lambda: None)
    namespace = '/' + unique_topic('select_target_close')

    def close(gui):
        gui.closed = True
        return -1
    gui = ScriptedGui(monkeypatch, [-1, ord('s'), -1, close, ord('s')])
    try:
        assert select_target.main(['select_target', '--compressed', '--ros-args', '-r',
                                   f'__ns:={namespace}']) == 0
    finally:
        rclpy.try_shutdown()
    captured = capsys.readouterr()
    assert f'No image yet on {namespace}/image/compressed' in captured.err
    assert gui.script == [ord('s')]  # it stopped at the close, not at the end of the script
    assert gui.shown[0].shape == (240, 640, 3)  # the "waiting for images" picture
