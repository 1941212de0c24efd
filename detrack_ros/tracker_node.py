"""
The ``tracker_node`` executable: the DETRack tracker as a ROS 2 lifecycle node.

Lifecycle: ``configure`` loads the model and runs it on a blank frame (the first real frame is
then as fast as the rest); ``activate`` subscribes and starts the inference thread;
``deactivate`` stops both and frees the inference backend (GPU memory on a GPU; ``activate``
loads it again and keeps the target); ``cleanup`` and ``shutdown`` release everything. With
``auto_activate`` (default) the node drives itself to active, so ``ros2 run`` tracks at once.

Latency model: the image callback only drops the message into a one-slot mailbox; a thread of
its own converts and tracks whatever is newest when it is free. A slow model therefore skips
frames instead of queueing them, and services and parameter calls stay responsive. Every
output carries the header of the image it was computed on.

Topics (relative, so a namespace or remapping per camera works):

- in: ``image`` or ``image/compressed``; ``init_box`` (Detection2D), ``init_roi``
  (RegionOfInterest), ``init_click`` (Point pairs, rqt_image_view), ``clicked_point``
  (PointStamped pairs, RViz "Publish Point", through ``camera_info``), ``detector/detections``
  (Detection2DArray, with ``auto_init``);
- out: ``detection`` (Detection2D, while the target is tracked), ``detections``
  (Detection2DArray every processed frame, empty while lost), ``debug_image`` (only while
  subscribed), ``/diagnostics``;
- 3-D (:mod:`detrack_ros.target_3d_messages`): out ``target_bearing`` (with ``camera_info``);
  with ``depth``, in ``depth/image``, out ``target_point`` and ``detection_3d``;
- services: ``reset`` (Trigger), ``enable`` (SetBool).
"""

import collections
import gc
import pathlib
import sys
import threading
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from detrack_model.config import validate_decoder_layers
from detrack_model.shipped import default_model_path
from detrack_model.tracking.boxes import Box, ClickPair, InitBoxError
from detrack_model.tracking.factory import (build_tracker, check_decoder_layers,
                                            model_decoder_layers, resolve_backend,
                                            RuntimeConfig)
from detrack_model.tracking.session import (FrameData, PendingInit, SessionSettings,
                                            TrackingSession)
from detrack_model.tracking.switcher import DepthSwitcher
from detrack_model.tracking.tracker import Tracker, TrackerConfig
from detrack_ros.debug_overlay import draw_overlay
from detrack_ros.detection_messages import detection_array, detection_from_box, stamp_ns
from detrack_ros.frame_mailbox import FrameMailbox
from detrack_ros.image_conversion import (array_to_image, compressed_to_array, Frame,
                                          image_to_array, ImageConversionError)
from detrack_ros.init_boxes import (box_from_detection, box_from_roi, project_point,
                                    select_detection)
from detrack_ros.log_throttle import KeyedThrottle
from detrack_ros.node_statistics import NodeStatistics, WARN
from detrack_ros.parameters import check_together, NAMES, PARAMETERS, SPECS
from detrack_ros.target_3d_messages import diagnostics_values, Target3DOutput
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PointStamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_srvs.srv import SetBool, Trigger
from vision_msgs.msg import Detection2D, Detection2DArray

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
LOG_THROTTLE_SEC = 5.0
# Wake-up period of the inference thread while no frame arrives (to notice stop requests).
POLL_SEC = 0.1
# Node parameters that are fields of the session's settings.
SESSION_SETTINGS = tuple(name for name in NAMES if name in SessionSettings.__dataclass_fields__)


class Received(NamedTuple):
    """An image message as the callback stored it."""

    msg: Any
    compressed: bool
    monotonic: float


class TrackerNode(LifecycleNode):
    """Track one target in an image stream; see the module docstring for the interface."""

    def __init__(self, node_name: str = 'tracker', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        # Runtime-changeable values as the inference thread reads them (a dict read is
        # atomic; the parameter callback replaces entries after validation).
        self._live = {name: self.get_parameter(name).value for name in NAMES}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # What to track on which frame (built by configure, with the model).
        self.session: Optional[TrackingSession[Received]] = None
        self._switcher: Optional[DepthSwitcher] = None
        self._runtime: Optional[RuntimeConfig] = None
        self._model_path: Optional[pathlib.Path] = None
        self._model_layers = 0
        self._backend_released = False
        self._mailbox: FrameMailbox[Received] = FrameMailbox()
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        # Ends a max_rate wait early: a parameter change, reset, an init, deactivation.
        self._wake = threading.Event()
        self._camera_info: Optional[CameraInfo] = None
        self._clicks = ClickPair(self._live['click_timeout'])
        self._rviz_clicks = ClickPair(self._live['click_timeout'])

        self._stats = NodeStatistics()
        self._counts: collections.Counter = collections.Counter()
        self._init_warnings = KeyedThrottle(LOG_THROTTLE_SEC)
        # Set once the lifecycle reached finalized: main() then returns.
        self.finished = Future()

        self._own_publishers: List[Any] = []
        self._own_subscriptions: List[Any] = []
        self._own_services: List[Any] = []
        self._own_timers: List[Any] = []
        self._detection_pub = self._detections_pub = self._debug_pub = None
        self._diagnostics_pub = None
        self._target_3d: Optional[Target3DOutput] = None

    @property
    def counters(self) -> collections.Counter:
        """Return every count of the node and its session (images, inits, errors)."""
        session = self.session
        return self._counts + session.counters if session is not None else \
            collections.Counter(self._counts)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> bool:
        """Configure and activate; return whether the node ended up active."""
        if self.trigger_configure() != SUCCESS:
            return False
        return self.trigger_activate() == SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model, warm it up, create publishers, services and the diagnostics timer."""
        # Values given at start-up never pass the set-parameters callback: check them here.
        for spec in PARAMETERS:
            reason = spec.check(self.get_parameter(spec.name).value)
            if reason is not None:
                self.get_logger().error(f'configure failed: {reason}')
                return FAILURE
        reason = check_together(self._live)
        if reason is not None:
            self.get_logger().error(f'configure failed: {reason}')
            return FAILURE
        try:
            self._load_model()
        except Exception as error:  # noqa: B902 - every cause is logged, none ends the node
            self.get_logger().error(f'configure failed: {describe(error)}')
            self.session = None
            return FAILURE
        self._detection_pub = self._publisher(Detection2D, 'detection')
        self._detections_pub = self._publisher(Detection2DArray, 'detections')
        self._debug_pub = self._publisher(Image, 'debug_image', 1)
        self._diagnostics_pub = self._publisher(DiagnosticArray, '/diagnostics', 1)
        self._target_3d = Target3DOutput(self, self._publisher, self._counts, self._live,
                                         lambda: self._camera_info)
        self._own_services = [self.create_service(Trigger, 'reset', self._on_reset),
                              self.create_service(SetBool, 'enable', self._on_enable)]
        period = self.get_parameter('diagnostics_period').value
        self._own_timers = [self.create_timer(period, self._publish_diagnostics)]
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Reload the model if deactivate freed it, subscribe, start the inference thread."""
        if self._backend_released:
            try:
                self._reload_backend()
            except (OSError, ValueError, RuntimeError) as error:
                self.get_logger().error(f'activate failed: cannot reload the model: {error}')
                return FAILURE
        self._create_subscriptions()
        self._stop.clear()
        self._mailbox = FrameMailbox()
        self._thread = threading.Thread(target=self._inference_loop, name='detrack-inference',
                                        daemon=True)
        self._thread.start()
        self.get_logger().info(f'active: waiting for images on {self._image_topic()}')
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, stop the inference thread, free GPU memory (the target is kept)."""
        self._stop_inference()
        if self._switcher is not None:
            self._switcher.cancel()  # activate builds the asked depth anew
        # Released on the CPU as well: one path for every device, and an inactive node holds
        # no inference session.
        if self.session is not None and not self._backend_released:
            with self.session.lock:
                self.session.tracker.backend.release()
                self._backend_released = True
            gc.collect()
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model and every publisher, service and timer."""
        self.release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from whichever state; main() then ends the process."""
        self.release()
        if not self.finished.done():
            self.finished.set_result(True)
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything; the node goes back to unconfigured."""
        self.release()
        return SUCCESS

    # -- model ------------------------------------------------------------------------------

    def _load_model(self) -> None:
        value = self.get_parameter('model_path').value
        path = pathlib.Path(value).expanduser() if value else default_model_path()
        threads = self.get_parameter('threads').value
        runtime = RuntimeConfig(device=self.get_parameter('device').value,
                                backend=self.get_parameter('backend').value,
                                fp16=self.get_parameter('fp16').value,
                                threads=threads or None)
        runtime.backend = resolve_backend(path, runtime)
        total = model_decoder_layers(path)
        layers = self._live['decoder_layers']
        try:
            validate_decoder_layers(layers or None, total)
        except ValueError as error:
            raise ValueError(f'decoder_layers {layers}: {path}: {error} (0 runs them '
                             'all)') from None
        runtime.decoder_layers = layers or None
        settings = self._session_settings(self._live)
        started = time.monotonic()
        tracker = build_tracker(path, runtime, TrackerConfig())
        self._warm_up(tracker)
        self.session = TrackingSession(tracker, lambda item: stamp_ns(item.msg.header),
                                       self._convert, _NodeReporter(self), settings,
                                       self.get_parameter('init_history').value, total)
        self._runtime, self._model_path = runtime, path
        self._switcher = DepthSwitcher(tracker, path, runtime, self.session.lock,
                                       self._on_depth_switched)
        self._model_layers = total
        self._backend_released = False
        self.get_logger().info(
            f'model {path} loaded on {tracker.backend.name} ({total} decoder layers, running '
            f'{layers or total}) in {time.monotonic() - started:.1f} s')

    @staticmethod
    def _session_settings(values: Dict[str, Any]) -> SessionSettings:
        """Return the session settings the parameter ``values`` describe."""
        return SessionSettings(**{name: values[name] for name in SESSION_SETTINGS})

    @staticmethod
    def _warm_up(tracker: Tracker) -> None:
        # First calls pay for lazy allocations and kernel selection: take that hit now.
        frame = np.full((240, 320, 3), 127, np.uint8)
        tracker.initialize(frame, (140.0, 100.0, 40.0, 40.0))
        for _ in range(3):
            tracker.track(frame)
        tracker.reset()

    def _reload_backend(self) -> None:
        fresh = build_tracker(self._model_path, self._runtime)
        self._warm_up(fresh)
        with self.session.lock:
            self.session.tracker.replace_backend(fresh.backend)
            self._backend_released = False

    # -- entities ---------------------------------------------------------------------------

    def _publisher(self, msg_type, topic: str, depth: int = 10):
        publisher = self.create_publisher(msg_type, topic, depth)
        self._own_publishers.append(publisher)
        return publisher

    def _image_topic(self) -> str:
        if self.get_parameter('image_transport').value == 'compressed':
            return self.resolve_topic_name('image/compressed')
        return self.resolve_topic_name('image')

    def _create_subscriptions(self) -> None:
        reliability = (ReliabilityPolicy.RELIABLE
                       if self.get_parameter('qos_reliability').value == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST,
                         depth=self.get_parameter('qos_depth').value, reliability=reliability,
                         durability=qos_profile_sensor_data.durability)
        if self.get_parameter('image_transport').value == 'compressed':
            image = self.create_subscription(CompressedImage, 'image/compressed',
                                             self._on_compressed, qos)
        else:
            image = self.create_subscription(Image, 'image', self._on_image, qos)
        self._own_subscriptions = [
            image,
            self.create_subscription(Detection2D, 'init_box', self._on_init_box, 10),
            self.create_subscription(RegionOfInterest, 'init_roi', self._on_init_roi, 10),
            self.create_subscription(Point, 'init_click', self._on_init_click, 10),
            self.create_subscription(PointStamped, 'clicked_point', self._on_clicked_point, 10),
            self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info,
                                     qos_profile_sensor_data),
            self.create_subscription(Detection2DArray, 'detector/detections',
                                     self._on_detector, 10),
        ] + self._target_3d.subscriptions(qos)

    def _stop_inference(self) -> None:
        for subscription in self._own_subscriptions:
            self.destroy_subscription(subscription)
        self._own_subscriptions = []
        self._stop.set()
        self._wake.set()
        self._mailbox.close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        """Stop the inference thread and free the model, publishers, services and timers."""
        self._stop_inference()
        for timer in self._own_timers:
            self.destroy_timer(timer)
        for service in self._own_services:
            self.destroy_service(service)
        for publisher in self._own_publishers:
            self.destroy_publisher(publisher)
        self._own_timers, self._own_services, self._own_publishers = [], [], []
        self._detection_pub = self._detections_pub = self._debug_pub = None
        self._diagnostics_pub = None
        if self._switcher is not None:
            self._switcher.close()
            self._switcher = None
        session, self.session = self.session, None
        if session is not None:
            session.clear()
            with session.lock:
                if not self._backend_released:
                    session.tracker.backend.release()
        self._backend_released = False
        gc.collect()

    # -- image input ------------------------------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        self._receive(Received(msg, False, time.monotonic()))

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._receive(Received(msg, True, time.monotonic()))

    def _receive(self, item: Received) -> None:
        self._stats.received(item.monotonic)
        session = self.session
        if session is not None:
            session.remember(item)
        self._mailbox.put(item)

    def _convert(self, item: Received) -> Optional[FrameData]:
        """Return the frame of a message, or None after counting and logging a bad one."""
        try:
            if item.compressed:
                return compressed_to_array(item.msg, self._live['max_image_pixels'])
            return image_to_array(item.msg, self._live['mono16_shift'],
                                  self._live['max_image_pixels'])
        except ImageConversionError as error:
            self._counts['bad_images'] += 1
            self.get_logger().warning(
                f'image dropped ({self.counters["bad_images"]} so far): {error}',
                throttle_duration_sec=LOG_THROTTLE_SEC)
            return None

    # -- initial boxes ----------------------------------------------------------------------

    def _request_init(self, box: Box, source: str, stamp_ns: Optional[int] = None) -> None:
        """Hand a new target to the session (it checks what needs no image now)."""
        session = self.session
        if session is not None and session.request_init(box, source, stamp_ns):
            self._wake.set()

    def _reject_init(self, source: str, error: InitBoxError) -> None:
        """Count a rejected init; log it unless the same rule refused this source just now."""
        if self.session is not None:
            self.session.counters['init_rejected'] += 1
        else:
            self._counts['init_rejected'] += 1
        self._log_rejection(source, error)

    def _log_rejection(self, source: str, error: InitBoxError) -> None:
        held = self._init_warnings.admit((source, error.kind))
        if held is not None:
            more = f' ({held} more like it since the last message)' if held else ''
            self.get_logger().warning(f'{source} rejected: {error}{more}')

    def _on_init_box(self, msg: Detection2D) -> None:
        self._request_init(box_from_detection(msg), 'init_box', stamp_ns(msg.header))

    def _on_init_roi(self, msg: RegionOfInterest) -> None:
        self._request_init(box_from_roi(msg), 'init_roi')

    def _on_init_click(self, msg: Point) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        self._add_click(self._clicks, 'init_click', msg.x, msg.y, now)

    def _on_clicked_point(self, msg: PointStamped) -> None:
        try:
            u, v = project_point(msg, self._camera_info)
        except InitBoxError as error:
            self._rviz_clicks.reset()
            self._reject_init('clicked_point', error)
            return
        stamp = stamp_ns(msg.header) * 1e-9 or self.get_clock().now().nanoseconds * 1e-9
        self._add_click(self._rviz_clicks, 'clicked_point', u, v, stamp)

    def _add_click(self, pair: ClickPair, source: str, x: float, y: float,
                   stamp_sec: float) -> None:
        pair.timeout_sec = self._live['click_timeout']
        try:
            box = pair.add(x, y, stamp_sec)
        except InitBoxError as error:
            self._reject_init(source, error)
            return
        if box is None:
            self.get_logger().info(f'{source}: first corner ({x:.0f}, {y:.0f}); click the '
                                   'opposite corner')
            return
        self._request_init(box, source)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_detector(self, msg: Detection2DArray) -> None:
        session = self.session
        if session is None or not session.wants_detections:
            return
        settings = session.settings
        try:
            best = select_detection(msg, settings.auto_init_class_id,
                                    settings.auto_init_min_score)
        except InitBoxError as error:
            self._reject_init('detector', error)
            return
        if best is not None and session.offer_detection(best[0], best[1], 'detector',
                                                        stamp_ns(msg.header)):
            self._wake.set()

    # -- inference thread -------------------------------------------------------------------

    def _inference_loop(self) -> None:
        while not self._stop.is_set():
            item = self._mailbox.take(timeout=POLL_SEC)
            if self._stop.is_set():
                break
            started = time.monotonic()
            try:
                self._step(item)
            except Exception as error:  # noqa: B902 - the thread must outlive any one frame
                self._counts['errors'] += 1
                self.get_logger().error(f'frame failed: {type(error).__name__}: {error}',
                                        throttle_duration_sec=LOG_THROTTLE_SEC)
            if item is not None:
                self._pace(started)

    def _pace(self, started: float) -> None:
        """
        Wait out the rest of the max_rate period that began at ``started``.

        The wait follows max_rate as it changes and ends early for a stop, a new init and a
        reset (no target, nothing to pace), so a long period set once never outlives it.
        """
        while not self._stop.is_set():
            session = self.session
            if session is None:
                return
            max_rate = session.settings.max_rate
            remaining = 1.0 / max_rate - (time.monotonic() - started) if max_rate > 0 else 0
            if remaining <= 0.0 or session.pending is not None \
                    or not session.tracker.initialized:
                return
            self._wake.wait(remaining)
            self._wake.clear()

    def _step(self, item: Optional[Received]) -> None:
        """Let the session apply a waiting init and track ``item``; publish what it gives."""
        session = self.session
        if session is None:
            return
        sizes = session.counters['size_changes_taken']
        started = time.perf_counter()
        results = session.step(item)
        for result in results:
            if result.started is not None:
                self._stats.started()
            else:
                self._stats.inference_ms.add((time.perf_counter() - started) * 1e3)
                if session.counters['size_changes_taken'] != sizes:
                    self._log_size_change(result.frame, result.lost)
            self._publish(result.item, result.frame, result.box, result.score, result.lost,
                          result.track_id, result.search_region)

    def _log_size_change(self, frame: Frame, lost: bool) -> None:
        height, width = frame.array.shape[:2]
        outcome = ('another aspect ratio: target declared lost, searched around its rescaled '
                   'box') if lost else 'target box rescaled'
        self.get_logger().warning(f'images are {width}x{height} now: {outcome}')

    def _publish(self, item: Received, frame: Frame, box: np.ndarray, score: float, lost: bool,
                 track_id: str, search: Optional[Tuple[float, ...]] = None) -> None:
        header = item.msg.header
        if lost:
            self._detections_pub.publish(detection_array(header))
        else:
            detection = detection_from_box(box, header, self._live['class_id'], score, track_id)
            self._detection_pub.publish(detection)
            self._detections_pub.publish(detection_array(header, [detection]))
            height, width = frame.array.shape[:2]
            self._target_3d.publish(header, box, detection, (width, height))
        self._counts['processed'] += 1
        age_ns = self.get_clock().now().nanoseconds - stamp_ns(header)
        self._stats.published(item.monotonic, age_ns * 1e-6)
        if self._live['debug_image'] and self._debug_pub.get_subscription_count() > 0:
            overlay = draw_overlay(frame, box, score, lost, search)
            self._debug_pub.publish(array_to_image(overlay, 'bgr8', header))

    # -- services ---------------------------------------------------------------------------

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        self._clicks.reset()
        self._rviz_clicks.reset()
        had_target = self.session is not None and self.session.reset()
        self._wake.set()
        response.success = True
        response.message = 'target cleared' if had_target else 'no target was tracked'
        self.get_logger().info(f'reset: {response.message}')
        return response

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        session = self.session
        changed = session is not None and session.set_enabled(request.data)
        self._stats.started()
        response.success = True
        state = 'enabled' if request.data else 'disabled (images are ignored)'
        response.message = state if changed else f'already {state}'
        if changed:
            self.get_logger().info(f'tracking {state}')
        return response

    # -- parameters -------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        # Every value is checked before any takes effect, so a refused (atomic) set changes
        # nothing.
        ours = [p for p in parameters if p.name in SPECS]
        for parameter in ours:
            reason = SPECS[parameter.name].check(parameter.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        values = {**self._live, **{p.name: p.value for p in ours}}
        reason = check_together(values)
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        session = self.session
        if session is not None:
            try:
                settings = self._session_settings(values)
                session.check(settings)
                if settings.decoder_layers != session.settings.decoder_layers:
                    self._set_decoder_layers(session.tracker, settings.decoder_layers or None)
            except (ValueError, OSError, RuntimeError) as error:
                return SetParametersResult(successful=False,
                                           reason=f'{self._model_path}: {describe(error)}')
            session.update(settings)
        self._live.update(values)
        self._wake.set()  # a max_rate wait recomputes with the new values
        return SetParametersResult(successful=True)

    def _set_decoder_layers(self, tracker: Tracker, layers: Optional[int]) -> None:
        """
        Ask for another decoder depth; never waits for it.

        An onnxruntime graph of the new depth is built off this (executor) thread while the
        current one keeps tracking, then swapped in between frames; an inactive node builds
        it on activate.
        """
        if self._backend_released:
            check_decoder_layers(tracker.backend, self._model_path, layers)
        else:
            self._switcher.request(layers)
        self._runtime.decoder_layers = layers

    def _on_depth_switched(self, layers: Optional[int], seconds: float,
                           error: Optional[BaseException]) -> None:
        """Log the outcome of a decoder depth change (called on the switcher's thread)."""
        wanted = layers or self._model_layers
        if error is None:
            self.get_logger().info(f'decoder_layers: {wanted} of {self._model_layers} layers '
                                   f'running (ready after {seconds:.1f} s)')
        else:
            self.get_logger().error(f'decoder_layers {wanted} could not be applied: '
                                    f'{describe(error)}; the previous depth keeps running')

    # -- diagnostics ------------------------------------------------------------------------

    def _depth_label(self) -> str:
        """Return the decoder layers running, and the ones asked for while they are built."""
        switcher = self._switcher
        if switcher is None or self._model_layers == 0:
            return ''
        running = str(switcher.running_layers or self._model_layers)
        if switcher.pending:
            wanted = self._runtime.decoder_layers or self._model_layers
            return f'{running} (switching to {wanted})'
        return running

    def state_label(self) -> str:
        """Return idle/tracking/lost/disabled/inactive for diagnostics and tests."""
        session = self.session
        if self._thread is None or session is None:
            return 'inactive'
        return session.state_label()

    def _publish_diagnostics(self) -> None:
        state = self.state_label()
        now = time.monotonic()
        health, message = self._stats.health(state, now, self._live['max_rate'],
                                             self._image_topic())
        level = DiagnosticStatus.WARN if health == WARN else DiagnosticStatus.OK
        session = self.session
        tracker = session.tracker if session is not None else None
        counters = self.counters
        values = {
            'state': state,
            'track_id': session.track_id if session is not None else '',
            'score': f'{tracker.score:.3f}' if tracker is not None else '',
            'frames_received': str(self._mailbox.received),
            'frames_processed': str(counters['processed']),
            'frames_dropped': str(self._mailbox.dropped),
            'bad_images': str(counters['bad_images']),
            'frame_size_changes': str(counters['frame_size_changes']),
            'init_rejected': str(counters['init_rejected']),
            'init_stale': str(counters['init_stale']),
            'errors': str(counters['errors']),
            'backend': tracker.backend.name if tracker is not None else '',
            'decoder_layers': self._depth_label(),
            'model': str(self._model_path or ''),
            **diagnostics_values(counters),
            **self._stats.values(now),
        }
        status = DiagnosticStatus(level=level, name=f'{self.get_fully_qualified_name()}: tracker',
                                  message=message, hardware_id=self._image_topic(),
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


class _NodeReporter:
    """Log what the session reports, the way the node logs everything else."""

    def __init__(self, node: TrackerNode) -> None:
        self._node = node

    def rejected(self, source: str, error: InitBoxError) -> None:
        """Log a refused init (throttled per source and rule)."""
        self._node._log_rejection(source, error)

    def stale_init(self, init: PendingInit, used_stamp_ns: int, kept: int) -> None:
        """Warn that an init's image had left the history."""
        self._node.get_logger().warning(
            f'{init.source}: the image stamped {init.stamp_ns * 1e-9:.3f} is not among the '
            f'{kept} images kept (init_history); starting on the newest, stamped '
            f'{used_stamp_ns * 1e-9:.3f}: the target may have moved',
            throttle_duration_sec=LOG_THROTTLE_SEC)

    def started(self, init: PendingInit, box: Box, track_id: str, stamp: int) -> None:
        """Log a new target."""
        clipped = '' if tuple(box) == tuple(init.box) else \
            ' (clipped to the image from ({:.0f}, {:.0f}, {:g}, {:g}))'.format(*init.box)
        self._node.get_logger().info(
            f'tracking target {track_id} from {init.source}: box ({box[0]:.0f}, '
            f'{box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f}){clipped} on the image stamped '
            f'{stamp * 1e-9:.3f}')

    def skipped(self, error: Exception) -> None:
        """Warn about a frame that was not tracked."""
        self._node.get_logger().warning(f'image skipped: {error}',
                                        throttle_duration_sec=LOG_THROTTLE_SEC)


def describe(error: BaseException) -> str:
    """Return an error as one line: our own errors by message, others with their type."""
    text = ' '.join(str(error).split()) or type(error).__name__
    ours = isinstance(error, (OSError, ValueError, RuntimeError))
    return text if ours else f'{type(error).__name__}: {text}'


def main(args: Optional[List[str]] = None) -> int:
    """Run the node until Ctrl-C or shutdown; exit 1 when auto-activation fails."""
    rclpy.init(args=args)
    try:
        node = TrackerNode()
    except ParameterException as error:
        # A start-up value outside its declared range or of the wrong type.
        rclpy.logging.get_logger('tracker').fatal(f'invalid parameter: {describe(error)}')
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if node.get_parameter('auto_activate').value and not node.start():
            node.get_logger().fatal('could not become active; see the error above')
            code = 1
        else:
            # Until Ctrl-C or a lifecycle shutdown (the node is finalized then).
            executor.spin_until_future_complete(node.finished)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.release()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
