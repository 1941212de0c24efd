"""
The ``tracker_node`` executable: the DETRack tracker as a ROS 2 lifecycle node.

Lifecycle: ``configure`` loads the model and runs it on a blank frame (the first real frame is
then as fast as the rest); ``activate`` subscribes and starts the inference thread;
``deactivate`` stops both and frees the inference backend (GPU memory on a GPU; ``activate``
loads it again and keeps the target); ``cleanup`` and ``shutdown`` release everything. With
``auto_activate`` (default) the node drives itself to active, so ``ros2 run`` tracks at once.

Latency model: the image callback only drops the message into a one-slot mailbox; a thread of
its own converts and tracks whatever is newest when it is free. A slow model therefore skips
frames instead of queueing them, and services and parameter calls stay responsive.

What to track on which frame is the tracking session's decision; this node wires ROS to it.
Its topics and services are the table of :mod:`detrack_ros.interface`, its parameters that of
:mod:`detrack_ros.parameters`; the README's section "The tracker node" shows both (written by
``tools/make_interface_docs.py``). Inputs: :mod:`detrack_ros.image_input` and ``init_inputs``;
outputs: :mod:`detrack_ros.track_outputs` and ``target_3d_messages``.
"""

import collections
import functools
import gc
import sys
import time
from typing import Any, Callable, List, Optional, Tuple

from detrack_model.tracking.model_host import ModelHost
from detrack_model.tracking.session import TrackingSession
from detrack_ros.detection_messages import stamp_ns
from detrack_ros.diagnostic_values import diagnostic_values
from detrack_ros.image_input import ImageInput, Received
from detrack_ros.inference_worker import InferenceWorker
from detrack_ros.init_inputs import InitInputs
from detrack_ros.node_statistics import NodeStatistics, WARN
from detrack_ros.parameters import (apply_change, NAMES, PARAMETERS, refusal,
                                    runtime_config, session_settings, SPECS)
from detrack_ros.session_log import describe, LOG_THROTTLE_SEC, SessionLog
from detrack_ros.target_3d_messages import Target3DOutput
from detrack_ros.track_outputs import TrackOutputs
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.task import Future
from std_srvs.srv import SetBool, Trigger

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


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
        self.session: Optional[TrackingSession[Received]] = None
        self.model: Optional[ModelHost] = None
        self.worker: InferenceWorker[Received] = InferenceWorker(
            self._step, lambda: self.session, self._frame_failed)
        self._stats = NodeStatistics()
        self._counts: collections.Counter = collections.Counter()
        self._log = SessionLog(self.get_logger())
        self.images = ImageInput(self, self._live, self._counts, self._receive)
        self.inits = InitInputs(self, self._live, lambda: self.session, self.worker.wake,
                                self._counts, self._log)
        self.outputs: Optional[TrackOutputs] = None
        self.target_3d: Optional[Target3DOutput] = None
        self._own_subscriptions: List[Any] = []
        # (destroy function, handle) of the services and timers configure created.
        self._own_handles: List[Tuple[Callable[[Any], Any], Any]] = []
        # Set once the lifecycle reached finalized: main() then returns.
        self.finished = Future()

    @property
    def counters(self) -> collections.Counter:
        """Return every count of the node and its session (images, inits, errors)."""
        session = self.session
        return self._counts + session.counters if session is not None else \
            collections.Counter(self._counts)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> bool:
        """Configure and activate; return whether the node ended up active."""
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model, warm it up, create publishers, services and the diagnostics timer."""
        # Values given at start-up never pass the set-parameters callback: check them here.
        reason = refusal(self._live)
        if reason is not None:
            self.get_logger().error(f'configure failed: {reason}')
            return FAILURE
        try:
            self._load_model()
        except Exception as error:  # noqa: B902 - every cause is logged, none ends the node
            self.get_logger().error(f'configure failed: {describe(error)}')
            self.session = self.model = None
            return FAILURE
        self.outputs = TrackOutputs(self)
        self.target_3d = Target3DOutput(self, self.outputs.publisher, self._counts, self._live,
                                        lambda: self.inits.camera_info)
        period = self.get_parameter('diagnostics_period').value
        self._own_handles = [
            (self.destroy_service, self.create_service(Trigger, 'reset', self._on_reset)),
            (self.destroy_service, self.create_service(SetBool, 'enable', self._on_enable)),
            (self.destroy_timer, self.create_timer(period, self._publish_diagnostics))]
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Reload the model if deactivate freed it, subscribe, start the inference thread."""
        try:
            self.model.reload(self.session.lock)
        except (OSError, ValueError, RuntimeError) as error:
            self.get_logger().error(f'activate failed: cannot reload the model: {error}')
            return FAILURE
        self._own_subscriptions = [self.images.subscribe(), *self.inits.subscribe(),
                                   *self.target_3d.subscriptions(self.images.qos())]
        self.worker.start()
        self.get_logger().info(f'active: waiting for images on {self.images.topic()}')
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, stop the inference thread, free GPU memory (the target is kept)."""
        self._stop_inference()
        # Released on the CPU as well: one path for every device, and an inactive node holds
        # no inference session.
        if self.model is not None:
            self.model.release(self.session.lock)
            gc.collect()
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model and every publisher, service and timer."""
        self.release()
        return SUCCESS

    # From an error the node goes back to unconfigured, holding nothing.
    on_error = on_cleanup

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from whichever state; main() then ends the process."""
        self.release()
        if not self.finished.done():
            self.finished.set_result(True)
        return SUCCESS

    def _load_model(self) -> None:
        runtime = runtime_config(self._live)
        model = ModelHost(self._live['model_path'], runtime, runtime.decoder_layers)
        session = TrackingSession(model.tracker, lambda item: stamp_ns(item.msg.header),
                                  self.images.convert, self._log, session_settings(self._live),
                                  self._live['init_history'], model.total_layers)
        model.attach(session.lock,
                     functools.partial(self._log.depth_switched, model.total_layers))
        self.model, self.session = model, session
        self._log.loaded(model)

    def _stop_inference(self) -> None:
        for subscription in self._own_subscriptions:
            self.destroy_subscription(subscription)
        self._own_subscriptions = []
        self.worker.stop()

    def release(self) -> None:
        """Stop the inference thread and free the model, publishers, services and timers."""
        self._stop_inference()
        for destroy, handle in self._own_handles:
            destroy(handle)
        self._own_handles = []
        if self.outputs is not None:
            self.outputs.destroy()
            self.outputs = self.target_3d = None
        session, self.session = self.session, None
        model, self.model = self.model, None
        if session is not None:
            session.clear()
            model.close(session.lock)
        gc.collect()

    # -- images and frames ----------------------------------------------------------------------

    def _receive(self, item: Received) -> None:
        self._stats.received(item.monotonic)
        session = self.session
        if session is not None:
            session.remember(item)
        self.worker.mailbox.put(item)

    def _frame_failed(self, error: Exception) -> None:
        self._counts['errors'] += 1
        self.get_logger().error(f'frame failed: {type(error).__name__}: {error}',
                                throttle_duration_sec=LOG_THROTTLE_SEC)

    def _step(self, item: Optional[Received]) -> None:
        """Let the session apply a waiting init and track ``item``; publish what it gives."""
        session, outputs = self.session, self.outputs
        if session is None or outputs is None:
            return
        started = time.perf_counter()
        for result in session.step(item):
            self._stats.stepped(result.started is not None, started)
            # Counted before publishing: whoever receives the result sees it counted.
            self._counts['processed'] += 1
            detection = outputs.publish(result, self._live['class_id'],
                                        self._live['debug_image'])
            if detection is not None:
                self.target_3d.publish(result, detection)
            header = result.item.msg.header
            age_ns = self.get_clock().now().nanoseconds - stamp_ns(header)
            self._stats.published(result.item.monotonic, age_ns * 1e-6)

    # -- services and parameters ------------------------------------------------------------

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        self.inits.forget_clicks()
        had_target = self.session is not None and self.session.reset()
        self.worker.wake()
        response.success = True
        response.message = 'target cleared' if had_target else 'no target was tracked'
        self.get_logger().info(f'reset: {response.message}')
        return response

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        changed = self.session is not None and self.session.set_enabled(request.data)
        self._stats.started()
        response.success = True
        state = 'enabled' if request.data else 'disabled (images are ignored)'
        response.message = state if changed else f'already {state}'
        if changed:
            self.get_logger().info(f'tracking {state}')
        return response

    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        ours = {p.name: p.value for p in parameters if p.name in SPECS}
        reason = apply_change(self._live, ours, self.session, self.model)
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        self.worker.wake()  # a max_rate wait recomputes with the new values
        return SetParametersResult(successful=True)

    # -- diagnostics ------------------------------------------------------------------------

    def state_label(self) -> str:
        """Return idle/tracking/lost/disabled/inactive for diagnostics and tests."""
        session = self.session
        if not self.worker.running or session is None:
            return 'inactive'
        return session.state_label()

    def _publish_diagnostics(self) -> None:
        state, now = self.state_label(), time.monotonic()
        health, message = self._stats.health(state, now, self._live['max_rate'],
                                             self.images.topic())
        values = diagnostic_values(state, self.session, self.model, self.counters,
                                   self.worker.mailbox, self._stats.values(now))
        self.outputs.publish_diagnostics(health == WARN, message, self.images.topic(), values)


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
