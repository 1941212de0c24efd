"""
Pick the tracker's target by dragging a box on the live camera image.

``ros2 run detrack_ros select_target --ros-args -r image:=/camera/image_raw`` shows the newest
image of ``image`` (``--compressed``: ``image/compressed``) in a window. ``s`` or space freezes
the image and lets the user drag a box around the target; Enter sends it as a
``vision_msgs/Detection2D`` on ``init_box``, stamped with the frozen image's header so that the
tracker starts on exactly that image (it keeps recent images for this, ``init_history``); ``c``
cancels; ``q`` or Esc quits. Run it in the tracker's namespace (``-r __ns:=/robot1``) or remap
``init_box`` to reach a tracker elsewhere.

Without a display, or with an OpenCV built without GUI support (the ``-headless`` wheels), the
tool says so and which other inputs the tracker takes, and exits with status 2 before it
starts ROS. The parts that need no window (box arithmetic, the message, the display checks, the
node) are plain functions and classes, tested without a display.
"""

import argparse
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from typing import List, Mapping, Optional, Sequence, Tuple

import cv2
from detrack_ros.debug_overlay import to_bgr
from detrack_ros.detection_messages import detection_from_box
from detrack_ros.image_conversion import (compressed_to_array, image_to_array,
                                          ImageConversionError)
from detrack_ros.init_boxes import InitBoxError, validate_box
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D

WINDOW = 'select_target'
EXIT_NO_DISPLAY = 2
KEY_ESC = 27
KEYS_ENTER = (10, 13, 141)  # 141: keypad Enter (GTK), after & 0xFF
KEYS_QUIT = (ord('q'), ord('Q'), KEY_ESC)
KEYS_FREEZE = (ord('s'), ord('S'), ord(' '))
KEYS_CANCEL = (ord('c'), ord('C'))
BOX_COLOUR = (0, 255, 0)
TEXT_COLOUR = (0, 255, 255)

Box = Tuple[float, float, float, float]

INSTRUCTIONS = """\
select_target: drag a box around the target for the tracker.
  s or space  freeze the current image, then drag a box with the left mouse button
  Enter       send the box on {init_box} (space also sends)
  c           cancel the box and go back to the live image
  q or Esc    quit
Images from {image}."""

ALTERNATIVES = """\
Other ways to give the tracker its target (topics in the tracker's namespace):
  * publish a vision_msgs/msg/Detection2D on init_box yourself: bbox centre and size in image
    pixels (a zero stamp starts on the next image), e.g.
      ros2 topic pub --once init_box vision_msgs/msg/Detection2D \\
        "{bbox: {center: {position: {x: 320.0, y: 240.0}}, size_x: 80.0, size_y: 60.0}}"
  * rqt_image_view: tick "publish click location" with the topic set to init_click, then click
    two opposite corners of the target
  * RViz2 "Publish Point" on clicked_point: click two opposite corners (RViz's Fixed Frame set
    to the camera's optical frame; the tracker needs camera_info)"""

HEADLESS_OPENCV = ('this OpenCV has no GUI support ({detail}), as in the opencv-python-headless '
                   'and opencv-contrib-python-headless wheels: install opencv-contrib-python '
                   'instead (pip uninstall opencv-contrib-python-headless; pip install '
                   'opencv-contrib-python) or use the python3-opencv system package')


# -- pure helpers ------------------------------------------------------------------------------

def roi_to_box(roi: Optional[Sequence[float]]) -> Optional[Box]:
    """
    Return the ``(x, y, w, h)`` float box of an ROI, or None for an empty selection.

    ``roi`` is ``(x, y, w, h)`` with ``(x, y)`` the top-left corner, as ``cv2.selectROI`` and
    :meth:`BoxDrag.roi` give it; a cancelled selection is ``(0, 0, 0, 0)`` or None. A zero,
    negative or non-finite width or height means nothing was selected.
    """
    if roi is None or len(roi) != 4:
        return None
    x, y, w, h = (float(v) for v in roi)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0.0 or h <= 0.0:
        return None
    return (x, y, w, h)


def copy_header(header: Header) -> Header:
    """Return a copy of ``header`` (stamp and frame_id) that shares nothing with it."""
    copy = Header(frame_id=header.frame_id)
    copy.stamp.sec = header.stamp.sec
    copy.stamp.nanosec = header.stamp.nanosec
    return copy


def init_message(box: Sequence[float], header: Header) -> Detection2D:
    """
    Return the Detection2D that starts the tracker on ``box`` in the image of ``header``.

    The detection carries the image's stamp and frame_id (so the tracker starts on that very
    image), the box centre and size in pixels, and no results: a box drawn by a person has no
    class or score.
    """
    return detection_from_box(box, copy_header(header))


class BoxDrag:
    """The box a left-button drag draws on an image: press at one corner, release at another."""

    def __init__(self, width: int, height: int):
        self.width = width
        self.height = height
        self.start: Optional[Tuple[int, int]] = None
        self.end: Optional[Tuple[int, int]] = None
        self.dragging = False

    def on_mouse(self, event: int, x: int, y: int, flags: int = 0, param=None) -> None:
        """Follow one OpenCV mouse event (the ``cv2.setMouseCallback`` signature)."""
        x = min(max(int(x), 0), self.width)
        y = min(max(int(y), 0), self.height)
        if event == cv2.EVENT_LBUTTONDOWN:
            self.start = self.end = (x, y)
            self.dragging = True
        elif event == cv2.EVENT_MOUSEMOVE and self.dragging:
            self.end = (x, y)
        elif event == cv2.EVENT_LBUTTONUP and self.dragging:
            self.end = (x, y)
            self.dragging = False

    def roi(self) -> Tuple[int, int, int, int]:
        """Return the dragged ``(x, y, w, h)`` inside the image; (0, 0, 0, 0) before any drag."""
        if self.start is None or self.end is None:
            return (0, 0, 0, 0)
        (x0, y0), (x1, y1) = self.start, self.end
        return (min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0))


# -- can a window be shown? --------------------------------------------------------------------

def opencv_gui_backend() -> Optional[str]:
    """Return the GUI backend OpenCV was built with ('NONE' for headless builds), or None."""
    match = re.search(r'^\s*GUI:\s*(\S.*?)\s*$', cv2.getBuildInformation(), re.MULTILINE)
    return match.group(1) if match else None


# With the Qt backend (the opencv-python wheels) cv2.namedWindow aborts the whole process when
# it cannot open the display: nothing to catch. So the first window opens in a child process,
# and how that ends is OpenCV's own answer.
WINDOW_PROBE = ('import sys, cv2\n'
                'try:\n'
                "    cv2.namedWindow('select_target check'); cv2.destroyAllWindows()\n"
                'except cv2.error as error:\n'
                "    sys.exit(getattr(error, 'err', '') or str(error))\n")
WINDOW_PROBE_TIMEOUT_SEC = 30.0


def window_probe() -> Optional[str]:
    """Open and close a window in a child process; return what went wrong, or None."""
    try:
        result = subprocess.run([sys.executable, '-c', WINDOW_PROBE], capture_output=True,
                                text=True, timeout=WINDOW_PROBE_TIMEOUT_SEC)
    except subprocess.TimeoutExpired:
        return f'opening a window took over {WINDOW_PROBE_TIMEOUT_SEC:g} s'
    if result.returncode == 0:
        return None
    # Qt's first line names the display it could not connect to; the rest is about plugins.
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    detail = lines[0] if lines else f'exit status {result.returncode}'
    if result.returncode < 0:
        detail += f' ({signal.strsignal(-result.returncode) or "killed by a signal"})'
    return detail


def window_problems(environ: Optional[Mapping[str, str]] = None,
                    platform: Optional[str] = None) -> List[str]:
    """
    Return why OpenCV cannot show a window here; an empty list when it can.

    OpenCV decides (:func:`window_probe`); the display variables only explain a failure: on
    Linux, a window needs DISPLAY or WAYLAND_DISPLAY.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    backend = opencv_gui_backend()
    if backend is not None and backend.upper() == 'NONE':
        problems = [HEADLESS_OPENCV.format(detail='GUI backend: NONE')]
    else:
        failure = window_probe()
        if failure is None:
            return []
        problems = [f'OpenCV could not open a window: {failure}']
    if platform.startswith('linux') and not environ.get('DISPLAY') \
            and not environ.get('WAYLAND_DISPLAY'):
        problems.insert(0, 'no display: neither DISPLAY nor WAYLAND_DISPLAY is set (run it '
                           'in a desktop session, or over ssh -X)')
    return problems


def open_window() -> Optional[str]:
    """Create the window; return why it could not be created, or None once it exists."""
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
    except cv2.error as error:
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else 'cv2.namedWindow failed'
        return HEADLESS_OPENCV.format(detail=f'cv2.namedWindow failed: {detail}')
    return None


def no_display_message(problems: Sequence[str]) -> str:
    """Return the message for when no window can be shown: the reasons and the alternatives."""
    reasons = [textwrap.fill(problem, width=96, initial_indent='  * ',
                             subsequent_indent='    ') for problem in problems]
    return '\n'.join(['select_target cannot show its window:'] + reasons + [ALTERNATIVES])


# -- the node ----------------------------------------------------------------------------------

class LatestFrame:
    """The newest displayable image and its header, handed from the ROS thread to the GUI."""

    def __init__(self):
        self._lock = threading.Lock()
        self._latest: Optional[Tuple[np.ndarray, Header]] = None
        self.count = 0

    def put(self, image: np.ndarray, header: Header) -> None:
        """Replace the newest image."""
        with self._lock:
            self._latest = (image, header)
            self.count += 1

    def get(self) -> Optional[Tuple[np.ndarray, Header]]:
        """Return the newest ``(BGR image, header)``, or None before the first image."""
        with self._lock:
            return self._latest


class SelectTargetNode(Node):
    """Subscribe to the camera image, keep its newest frame, and publish boxes on init_box."""

    def __init__(self, compressed: bool = False, mono16_shift: int = 8, **kwargs):
        super().__init__('select_target', **kwargs)
        self.latest = LatestFrame()
        self._mono16_shift = mono16_shift
        self._last_error: Optional[str] = None
        if compressed:
            self.subscription = self.create_subscription(
                CompressedImage, 'image/compressed', self._on_compressed,
                qos_profile_sensor_data)
        else:
            self.subscription = self.create_subscription(Image, 'image', self._on_image,
                                                         qos_profile_sensor_data)
        self.publisher = self.create_publisher(Detection2D, 'init_box', 10)

    @property
    def image_topic(self) -> str:
        """Return the resolved image topic (after remapping)."""
        return self.subscription.topic_name

    def _on_image(self, msg: Image) -> None:
        self.store(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self.store(msg)

    def store(self, msg) -> bool:
        """
        Convert an image message and keep it as the newest frame; return whether it was kept.

        A message that cannot be converted is skipped with a message on stderr (once per
        distinct reason in a row, so a camera with a wrong encoding does not flood the
        terminal).
        """
        try:
            if isinstance(msg, CompressedImage):
                frame = compressed_to_array(msg)
            else:
                frame = image_to_array(msg, self._mono16_shift)
            image = to_bgr(frame)
        except (ImageConversionError, cv2.error, ValueError) as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
            if reason != self._last_error:
                print(f'select_target: skipping an image on {self.image_topic}: {reason}',
                      file=sys.stderr, flush=True)
            self._last_error = reason
            return False
        self._last_error = None
        self.latest.put(image, copy_header(msg.header))
        return True

    def publish_box(self, box: Sequence[float], header: Header) -> Detection2D:
        """Publish ``box`` on init_box for the image of ``header``; return the message sent."""
        message = init_message(box, header)
        self.publisher.publish(message)
        return message


# -- the window --------------------------------------------------------------------------------

class WindowWatch:
    """
    Tell whether the user closed the window.

    A backend that cannot report visibility answers -1 from the start; the window then counts
    as closed only after it was once reported visible, so such a backend never ends the tool.
    """

    def __init__(self):
        self.seen_visible = False

    def closed(self) -> bool:
        """Return whether the window was visible before and is not any more."""
        try:
            visible = cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE)
        except cv2.error:
            return self.seen_visible
        if visible >= 1:
            self.seen_visible = True
            return False
        return self.seen_visible


def _label(image: np.ndarray, text: str) -> np.ndarray:
    scale = max(0.4, min(1.0, image.shape[1] / 1200.0))
    origin = (8, int(24 * scale) + 6)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, 1,
                cv2.LINE_AA)
    return image


def _waiting_image(topic: str) -> np.ndarray:
    return _label(np.zeros((240, 640, 3), np.uint8), f'waiting for images on {topic}')


def _drag_box(image: np.ndarray,
              window: WindowWatch) -> Tuple[Optional[Tuple[int, int, int, int]], bool]:
    """Let the user drag a box on ``image``; return (ROI or None if cancelled, quit?)."""
    height, width = image.shape[:2]
    drag = BoxDrag(width, height)
    cv2.setMouseCallback(WINDOW, drag.on_mouse)
    try:
        while True:
            view = image.copy()
            x, y, w, h = drag.roi()
            if w > 0 and h > 0:
                cv2.rectangle(view, (x, y), (x + w, y + h), BOX_COLOUR, 2)
            _label(view, 'drag a box - Enter: send, c: cancel, q: quit')
            cv2.imshow(WINDOW, view)
            key = cv2.waitKey(20) & 0xFF
            if window.closed() or key in KEYS_QUIT:
                return None, True
            if key in KEYS_CANCEL:
                return None, False
            if (key in KEYS_ENTER or key == ord(' ')) and not drag.dragging:
                return drag.roi(), False
    finally:
        cv2.setMouseCallback(WINDOW, lambda *unused: None)


def _select_and_publish(node: SelectTargetNode, image: np.ndarray, header: Header,
                        window: WindowWatch) -> bool:
    """Freeze ``image``, let the user drag a box and send it; return False to quit."""
    stamp = f'{header.stamp.sec}.{header.stamp.nanosec:09d}'
    print(f'Frozen the image stamped {stamp}: drag a box, then Enter to send it (c: cancel).',
          flush=True)
    roi, quit_requested = _drag_box(image, window)
    if quit_requested:
        return False
    if roi is None:
        print('Cancelled: nothing sent.', flush=True)
        return True
    box = roi_to_box(roi)
    if box is None:
        print('Empty selection (no box dragged): nothing sent. Press s to try again.',
              flush=True)
        return True
    try:
        validate_box(box, (image.shape[1], image.shape[0]))
    except InitBoxError as error:
        print(f'Box not sent: {error}. Press s to try again.', flush=True)
        return True
    node.publish_box(box, header)
    x, y, w, h = box
    print(f'Sent box x={x:g} y={y:g} w={w:g} h={h:g} on {node.publisher.topic_name} for the '
          f'image stamped {stamp}.', flush=True)
    if node.publisher.get_subscription_count() == 0:
        print(f'Warning: nothing subscribes to {node.publisher.topic_name}; is the tracker '
              'running, in this namespace?', file=sys.stderr, flush=True)
    return True


def _gui_loop(node: SelectTargetNode) -> None:
    waiting = _waiting_image(node.image_topic)
    window = WindowWatch()
    while node.context.ok():
        latest = node.latest.get()
        cv2.imshow(WINDOW, waiting if latest is None else latest[0])
        key = cv2.waitKey(30) & 0xFF
        if window.closed() or key in KEYS_QUIT:
            return
        if key in KEYS_FREEZE:
            if latest is None:
                print(f'No image yet on {node.image_topic}: nothing to select on.',
                      file=sys.stderr, flush=True)
            elif not _select_and_publish(node, *latest, window):
                return


# -- entry point -------------------------------------------------------------------------------

def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line without its program name and ROS arguments."""
    parser = argparse.ArgumentParser(
        prog='select_target',
        description='Drag a box on the live camera image and send it to the tracker on '
                    'init_box. Remap the image topic with --ros-args -r image:=/camera/...')
    parser.add_argument('--compressed', action='store_true',
                        help="subscribe to 'image/compressed' (sensor_msgs/CompressedImage) "
                             "instead of 'image'")
    parser.add_argument('--mono16-shift', type=int, default=8, choices=range(17),
                        metavar='{0..16}',
                        help='mono16 images are shown as value >> shift (default: 8)')
    return parser.parse_args(argv)


def main(args: Optional[Sequence[str]] = None) -> int:
    """
    Run the tool; return the exit status (0, or 2 when no window can be shown).

    ``args`` is a full command line, program name first (``sys.argv`` when None); ROS
    arguments after ``--ros-args`` go to rclpy, the rest to the tool.
    """
    argv = list(sys.argv if args is None else args)
    options = parse_arguments(remove_ros_args(args=argv)[1:])

    problems = window_problems()
    if not problems:
        problem = open_window()
        problems = [problem] if problem else []
    if problems:
        print(no_display_message(problems), file=sys.stderr, flush=True)
        return EXIT_NO_DISPLAY

    rclpy.init(args=argv)
    node = None
    executor = None
    spinner = None
    try:
        node = SelectTargetNode(compressed=options.compressed,
                                mono16_shift=options.mono16_shift)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
        spinner.start()
        print(INSTRUCTIONS.format(init_box=node.publisher.topic_name, image=node.image_topic),
              flush=True)
        _gui_loop(node)
    except KeyboardInterrupt:
        pass
    finally:
        cv2.destroyAllWindows()
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        if spinner is not None:
            spinner.join(timeout=2.0)
    return 0


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except (ExternalShutdownException, KeyboardInterrupt):
        pass


if __name__ == '__main__':
    sys.exit(main())
