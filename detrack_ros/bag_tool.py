r"""
detrack-bag: the tracker node's session run offline on a recorded ROS 2 bag (MCAP).

Examples::

    detrack-bag recording.mcap --topic /camera/image_raw --box 310,200,80,60
    detrack-bag recording.mcap --topic /camera/image_raw/compressed \\
        --init-topic /tracker/init_box --reference-topic /labels --output tracked.mcap
    detrack-bag rgbd.mcap --topic /camera/color/image_raw --box 310,200,80,60 \\
        --camera-info-topic /camera/color/camera_info \\
        --depth-topic /camera/aligned_depth_to_color/image_raw

The images of ``--topic`` (sensor_msgs/Image or CompressedImage) go through the node's own
:class:`~detrack_model.tracking.session.TrackingSession` with the node's default parameters,
in recording order, every frame. The target starts from ``--box`` on the first image, or from
the first message of ``--init-topic`` (vision_msgs/Detection2D: on the image with its stamp,
as the node does; sensor_msgs/RegionOfInterest: on the next image). The output bag holds what
the node would publish, on ``<namespace>/detection`` (Detection2D, while the target is
tracked) and ``<namespace>/detections`` (Detection2DArray, empty while it is lost), each with
the header of its image and recorded at the image's time, so it plays back beside the input in
RViz or Foxglove. With ``--reference-topic`` (Detection2D boxes, matched to images by stamp)
AO, SR0.5 and SR0.75 are reported under the GOT-10k protocol (the first frame excluded).
With ``--camera-info-topic`` the node's ``target_bearing`` is written too, and with an aligned
``--depth-topic`` its ``target_point`` and ``detection_3d`` (:mod:`detrack_ros.bag_target_3d`).
"""

import argparse
from dataclasses import dataclass, field
import math
import pathlib
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Protocol, Sequence

from detrack_model.cli.common import box_argument  # first: sets the OpenMP wait policy
from detrack_model.evaluation.metrics import got10k_scores, Scores
from detrack_model.evaluation.results import SequenceResult
from detrack_model.export.bundle import BundleError
from detrack_model.shipped import default_model_path
from detrack_model.tracking.boxes import Box, InitBoxError
from detrack_model.tracking.factory import build_tracker, RuntimeConfig
from detrack_model.tracking.session import (FrameData, PendingInit, SessionSettings,
                                            StepResult, TrackingSession)
from detrack_model.tracking.tracker import Tracker, TrackerConfig
from detrack_ros.bag_io import (BagError, BagMessage, BagReader, BagWriter,
                                CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, DETECTION_ARRAY_TYPE,
                                DETECTION_TYPE, IMAGE_TYPE, ROI_TYPE)
from detrack_ros.bag_target_3d import BagTarget3D
from detrack_ros.detection_fields import (box_from_detection, box_from_roi, detection_fields,
                                          stamp_ns)
from detrack_ros.image_decoding import (compressed_to_array, image_to_array,
                                        ImageConversionError)
from detrack_ros.parameters import SPECS
import numpy as np

INIT_TYPES: Dict[str, Callable[[Any], Box]] = {
    DETECTION_TYPE: box_from_detection, ROI_TYPE: box_from_roi}
# Bad images are reported one by one up to this many, then only counted.
SHOWN_BAD_IMAGES = 5


class BagFrame(NamedTuple):
    """An image of the bag as the session holds it."""

    msg: Any
    compressed: bool
    log_time: int


class TrackedFrame(NamedTuple):
    """What the run produced for one image: the node's output for it."""

    header: Any
    log_time: int
    box: np.ndarray
    score: float
    lost: bool
    track_id: str
    frame: FrameData
    # This image started the target (its box is the initial one, score 1).
    started: bool
    # The Detection2D written for this image, as fields (None while lost).
    detection: Optional[Dict[str, Any]]


class FrameHook(Protocol):
    """
    Further outputs computed per tracked image (e.g. from depth images of the same bag).

    ``topics`` are read from the bag besides the images and handed to :meth:`on_message` in
    recording order; :meth:`on_tracked` follows every tracked image and may write messages of
    its own to the output bag; :meth:`finish` comes once after the last message read.
    """

    topics: Sequence[str]

    def on_message(self, message: BagMessage) -> None:
        """Take a message of one of ``topics``."""

    def on_tracked(self, tracked: TrackedFrame, writer: BagWriter) -> None:
        """Take the output of one image; write to ``writer`` what belongs beside it."""

    def finish(self, writer: BagWriter, result: 'BagRun') -> None:
        """Write what is still held back; add counts and summary lines to ``result``."""


@dataclass
class BagRunConfig:
    """What one run reads, how it starts, and where it writes."""

    bag: pathlib.Path
    topic: str
    output: pathlib.Path
    box: Optional[Sequence[float]] = None
    init_topic: str = ''
    reference_topic: str = ''
    namespace: str = '/tracker'
    class_id: str = SPECS['class_id'].default
    model: str = ''
    device: str = 'auto'
    backend: str = 'auto'
    # Images read at most (0: all).
    max_frames: int = 0
    # The 3-D outputs: camera_info (sensor_msgs/CameraInfo) gives the bearing; with an aligned
    # depth topic (sensor_msgs/Image, 16UC1 or 32FC1) too, the target point and Detection3D.
    camera_info_topic: str = ''
    depth_topic: str = ''


@dataclass
class BagRun:
    """What a run did and measured."""

    output: pathlib.Path
    images: int = 0
    tracked: int = 0
    lost: int = 0
    bad_images: int = 0
    ignored_inits: int = 0
    started: str = ''
    step_ms: List[float] = field(default_factory=list)
    wall_sec: float = 0.0
    scores: Optional[Scores] = None
    reference_boxes: int = 0
    # The hooks' counters (the node's names, e.g. depth_unmatched) and summary lines.
    counts: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def report(self) -> str:
        """Return the human-readable summary."""
        lines = [self.started,
                 f'images read            {self.images} ({self.bad_images} could not be used)',
                 f'outputs written        {self.tracked} tracked, {self.lost} lost '
                 f'-> {self.output}']
        if self.step_ms:
            median = float(np.median(self.step_ms))
            overall = len(self.step_ms) / self.wall_sec if self.wall_sec > 0 else math.nan
            lines.append(f'speed                  {len(self.step_ms)} frames, median '
                         f'{median:.1f} ms/frame, {1000.0 / median:.1f} frames/s (whole run '
                         f'with reading and writing: {overall:.1f} frames/s)')
        if self.ignored_inits:
            lines.append(f'init topic             {self.ignored_inits} later messages ignored '
                         '(the run starts from the first)')
        if self.scores is not None:
            scores = self.scores
            if scores.num_frames:
                lines.append(f'accuracy               AO {scores.ao:.3f}, SR0.5 '
                             f'{scores.sr50:.3f}, SR0.75 {scores.sr75:.3f} over '
                             f'{scores.num_frames} frames (GOT-10k protocol, first frame '
                             'excluded)')
            else:
                lines.append(f'accuracy               none: of {self.reference_boxes} reference '
                             'boxes, none shares its stamp with a scored image')
        lines.extend(self.notes)
        return '\n'.join(line for line in lines if line)


class _Reporter:
    """The session's reporter: a refused init is the run's error; the rest is told."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.error: Optional[str] = None
        self.start_line = ''
        self._log = log

    def rejected(self, source: str, error: InitBoxError) -> None:
        self.error = f'{source} rejected: {error}'

    def stale_init(self, init: PendingInit, used_stamp_ns: int, kept: int) -> None:
        self._log(f'{init.source}: the image stamped {init.stamp_ns * 1e-9:.3f} is not among '
                  f'the {kept} images kept; starting on the image stamped '
                  f'{used_stamp_ns * 1e-9:.3f}')

    def started(self, init: PendingInit, box: Box, track_id: str, stamp: int) -> None:
        self.start_line = (f'target {track_id} from {init.source}: ({box[0]:.0f}, '
                           f'{box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f}) on the image stamped '
                           f'{stamp * 1e-9:.3f}')

    def skipped(self, error: Exception) -> None:
        self._log(f'image not tracked: {error}')

    def size_changed(self, width: int, height: int, lost: bool) -> None:
        self._log(f'images are {width}x{height} from here on' +
                  (' (another aspect ratio: the target is searched again)' if lost else ''))


class _Converter:
    """Turn bag images into frames by the node's rules; count and tell the bad ones."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.bad = 0
        self._log = log
        self._shift = SPECS['mono16_shift'].default
        self._max_pixels = SPECS['max_image_pixels'].default

    def __call__(self, item: BagFrame) -> Optional[FrameData]:
        try:
            if item.compressed:
                return compressed_to_array(item.msg, self._max_pixels)
            return image_to_array(item.msg, self._shift, self._max_pixels)
        except ImageConversionError as error:
            self.bad += 1
            if self.bad <= SHOWN_BAD_IMAGES:
                self._log(f'image stamped {stamp_ns(item.msg.header) * 1e-9:.3f} dropped: '
                          f'{error}')
            return None


def node_settings() -> SessionSettings:
    """Return the session settings of the node's default parameters."""
    return SessionSettings(**{name: SPECS[name].default
                              for name in SessionSettings.__dataclass_fields__ if name in SPECS})


def load_tracker(config: BagRunConfig) -> Tracker:
    """Build the tracker the node would (the shipped model unless ``config.model``)."""
    path = pathlib.Path(config.model).expanduser() if config.model else default_model_path()
    runtime = RuntimeConfig(device=config.device, backend=config.backend)
    try:
        return build_tracker(path, runtime, TrackerConfig())
    except (BundleError, OSError, ValueError) as error:
        raise BagError(f'cannot load model {path}: {error}') from None


class BagTopics(NamedTuple):
    """What the topics of a run are: whether the images are compressed, the init's type."""

    compressed: bool
    init_type: str


def check_topics(config: BagRunConfig, reader: BagReader,
                 hooks: Sequence[FrameHook] = ()) -> BagTopics:
    """Check that every topic the run reads is in the bag with a type it reads."""
    image_type = reader.require(config.topic, (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE),
                                'image topic')
    init_type = ''
    if config.init_topic:
        init_type = reader.require(config.init_topic, tuple(INIT_TYPES), 'init topic')
    if config.reference_topic:
        reader.require(config.reference_topic, (DETECTION_TYPE,), 'reference topic')
    if config.camera_info_topic:
        reader.require(config.camera_info_topic, (CAMERA_INFO_TYPE,), 'camera_info topic')
    if config.depth_topic:
        reader.require(config.depth_topic, (IMAGE_TYPE,), 'depth topic')
    for hook in hooks:
        for topic in hook.topics:
            if topic not in reader.topics:
                raise BagError(f'topic {topic!r} is not in bag {reader.path}')
    return BagTopics(image_type == COMPRESSED_IMAGE_TYPE, init_type)


class _Run:
    """One pass over the bag; see :func:`run_bag`."""

    def __init__(self, config: BagRunConfig, topics: 'BagTopics', tracker: Tracker,
                 hooks: Sequence[FrameHook], log: Callable[[str], None]) -> None:
        self.config, self.hooks, self.log = config, hooks, log
        self.compressed, self.init_type = topics
        self.reporter = _Reporter(log)
        self.convert = _Converter(log)
        self.session: TrackingSession[BagFrame] = TrackingSession(
            tracker, lambda item: stamp_ns(item.msg.header), self.convert, self.reporter,
            node_settings(), SPECS['init_history'].default)
        self.result = BagRun(config.output)
        self.predicted: Dict[int, np.ndarray] = {}
        self.references: Dict[int, Box] = {}
        self.stamps: List[int] = []
        self.first_stamp: Optional[int] = None
        self.image_size = (0, 0)
        self.init_seen = False
        self.hook_topics: Dict[str, FrameHook] = {t: hook for hook in hooks for t in hook.topics}

    def run(self, reader: BagReader, writer: BagWriter) -> BagRun:
        config = self.config
        if config.box is not None and not self.session.request_init(config.box, '--box'):
            raise BagError(self.reporter.error or '--box rejected')
        topics = [t for t in (config.topic, config.init_topic, config.reference_topic) if t]
        started = time.perf_counter()
        for message in reader.messages(topics + list(self.hook_topics)):
            if message.topic == config.topic:
                if config.max_frames and self.result.images >= config.max_frames:
                    break
                self.image(BagFrame(message.message, self.compressed, message.log_time), writer)
            elif message.topic == config.init_topic:
                self.init(message)
            elif message.topic == config.reference_topic:
                self.references[stamp_ns(message.message.header)] = \
                    box_from_detection(message.message)
            if message.topic in self.hook_topics:
                self.hook_topics[message.topic].on_message(message)
        for hook in self.hooks:
            hook.finish(writer, self.result)
        self.result.wall_sec = time.perf_counter() - started
        self.finish(reader)
        return self.result

    def init(self, message: BagMessage) -> None:
        if self.init_seen:
            self.result.ignored_inits += 1
            return
        self.init_seen = True
        msg = message.message
        box = INIT_TYPES[self.init_type](msg)
        stamp = stamp_ns(msg.header) if self.init_type == DETECTION_TYPE else None
        if not self.session.request_init(box, self.config.init_topic, stamp):
            raise BagError(self.reporter.error or f'{self.config.init_topic} rejected')

    def image(self, item: BagFrame, writer: BagWriter) -> None:
        self.result.images += 1
        self.stamps.append(stamp_ns(item.msg.header))
        self.session.remember(item)
        started = time.perf_counter()
        results = self.session.step(item)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        if self.reporter.error is not None:
            raise BagError(self.reporter.error)
        for result in results:
            if result.started is None:
                self.result.step_ms.append(elapsed_ms)
            self.write(result, writer)

    def write(self, result: StepResult, writer: BagWriter) -> None:
        item: BagFrame = result.item
        header = item.msg.header
        stamp = stamp_ns(header)
        namespace = self.config.namespace.rstrip('/')
        detection = None
        if result.lost:
            self.result.lost += 1
            writer.write(f'{namespace}/detections', DETECTION_ARRAY_TYPE,
                         {'header': header, 'detections': []}, item.log_time)
        else:
            self.result.tracked += 1
            detection = detection_fields(result.box, self.config.class_id, result.score,
                                         result.track_id)
            detection['header'] = header
            writer.write(f'{namespace}/detection', DETECTION_TYPE, detection, item.log_time)
            writer.write(f'{namespace}/detections', DETECTION_ARRAY_TYPE,
                         {'header': header, 'detections': [detection]}, item.log_time)
        if result.started is not None:
            self.first_stamp = stamp
            self.image_size = (result.frame.array.shape[1], result.frame.array.shape[0])
        self.predicted[stamp] = result.box
        tracked = TrackedFrame(header, item.log_time, result.box, result.score, result.lost,
                               result.track_id, result.frame, result.started is not None,
                               detection)
        for hook in self.hooks:
            hook.on_tracked(tracked, writer)

    def finish(self, reader: BagReader) -> None:
        config, result = self.config, self.result
        if result.images == 0:
            raise BagError(f'image topic {config.topic!r} of bag {reader.path} has no messages')
        if config.init_topic and not self.init_seen:
            raise BagError(f'init topic {config.init_topic!r} of bag {reader.path} has no '
                           'message: nothing to start from')
        if self.first_stamp is None:
            raise BagError(f'the target never started: no usable image of {config.topic!r} '
                           f'came at or after the initial box ({self.convert.bad} images could '
                           'not be used)')
        result.bad_images = self.convert.bad
        result.started = self.reporter.start_line
        if config.reference_topic:
            result.scores = self.scores()
            result.reference_boxes = len(self.references)

    def scores(self) -> Scores:
        """Score the images from the first one tracked on against the reference boxes."""
        stamps = self.stamps[self.stamps.index(self.first_stamp):]
        missing = np.full(4, np.nan)
        boxes = np.array([self.predicted.get(s, missing) for s in stamps], np.float64)
        anno = np.array([self.references.get(s, missing) for s in stamps], np.float64)
        visible = np.isfinite(anno).all(axis=1)
        return got10k_scores([SequenceResult(self.config.topic, boxes, anno, visible,
                                             np.zeros(len(stamps)), self.image_size)])


def run_bag(config: BagRunConfig, tracker: Optional[Tracker] = None,
            hooks: Sequence[FrameHook] = (), log: Callable[[str], None] = print) -> BagRun:
    """
    Track ``config.topic`` of ``config.bag`` and write the outputs to ``config.output``.

    ``tracker`` defaults to the one the node builds; ``hooks`` add outputs per image (with
    ``config.camera_info_topic``, :class:`~detrack_ros.bag_target_3d.BagTarget3D` is one of
    them). Exactly one of ``config.box`` and ``config.init_topic`` starts the target. Raise
    :class:`BagError` for a bag, topic, type or initial box that cannot be used; the output is
    then not written.
    """
    if (config.box is None) == (not config.init_topic):
        raise BagError('give exactly one of --box and --init-topic')
    if config.depth_topic and not config.camera_info_topic:
        raise BagError('--depth-topic needs --camera-info-topic: depth pixels become a 3-D '
                       'point through the camera matrix K')
    if pathlib.Path(config.output).resolve() == pathlib.Path(config.bag).resolve():
        raise BagError(f'the output {config.output} would overwrite the input bag')
    if config.camera_info_topic:
        hooks = [*hooks, BagTarget3D(config.camera_info_topic, config.depth_topic,
                                     config.namespace, log)]
    with BagReader(config.bag) as reader:
        topics = check_topics(config, reader, hooks)
        run = _Run(config, topics, tracker or load_tracker(config), hooks, log)
        writer = BagWriter(config.output)
        try:
            result = run.run(reader, writer)
        except BaseException:
            writer.abort()
            raise
        writer.commit()
    return result


def default_output(bag: pathlib.Path) -> pathlib.Path:
    """Return ``<bag>_detrack.mcap`` beside the bag file or directory."""
    bag = pathlib.Path(bag)
    stem = bag.name if bag.is_dir() else bag.stem
    return bag.parent / f'{stem}_detrack.mcap'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line, run, print the summary; 0 on success."""
    lines = __doc__.strip().splitlines()
    parser = argparse.ArgumentParser(prog='detrack-bag', description=lines[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n'.join(lines[2:]))
    parser.add_argument('bag', type=pathlib.Path, help='MCAP bag file or rosbag2 directory')
    parser.add_argument('--topic', required=True,
                        help='image topic (sensor_msgs/Image or CompressedImage)')
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument('--box', type=box_argument, help='initial box x,y,w,h on the first image')
    start.add_argument('--init-topic', default='',
                       help='start from its first message (Detection2D or RegionOfInterest)')
    parser.add_argument('--reference-topic', default='',
                        help='reference boxes (Detection2D) to score against')
    parser.add_argument('--camera-info-topic', default='',
                        help='sensor_msgs/CameraInfo of the images: write target_bearing')
    parser.add_argument('--depth-topic', default='',
                        help='depth aligned to the images (sensor_msgs/Image, 16UC1 or 32FC1; '
                        'needs --camera-info-topic): write target_point and detection_3d')
    parser.add_argument('--output', type=pathlib.Path,
                        help='output bag (default: <bag>_detrack.mcap beside the input)')
    parser.add_argument('--namespace', default='/tracker',
                        help='namespace of the output topics (default: /tracker)')
    parser.add_argument('--class-id', default=SPECS['class_id'].default,
                        help="class_id of the detections' hypothesis (the node's class_id)")
    parser.add_argument('--max-frames', type=int, default=0, help='images to read (0: all)')
    parser.add_argument('--model', default='', help='model bundle or .onnx (default: shipped)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--backend', default='auto', choices=('auto', 'torch', 'onnxruntime'))
    args = parser.parse_args(argv)
    if args.max_frames < 0:
        parser.error(f'--max-frames must be >= 0, got {args.max_frames}')
    config = BagRunConfig(bag=args.bag, topic=args.topic,
                          output=args.output or default_output(args.bag), box=args.box,
                          init_topic=args.init_topic, reference_topic=args.reference_topic,
                          namespace=args.namespace, class_id=args.class_id, model=args.model,
                          device=args.device, backend=args.backend, max_frames=args.max_frames,
                          camera_info_topic=args.camera_info_topic,
                          depth_topic=args.depth_topic)
    try:
        result = run_bag(config, log=lambda text: print(text, file=sys.stderr))
    except BagError as error:
        parser.exit(1, f'detrack-bag: error: {error}\n')
    print(result.report())
    return 0


if __name__ == '__main__':
    sys.exit(main())
