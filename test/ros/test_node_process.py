"""
The tracker node as its own process: a 200 Hz flood, the params file, the demo command.

These run ``tracker_node`` the way a robot does (a separate process, DDS in between) and watch
it from outside: its answers, its parameter service, its resident memory.
"""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import uuid

import cv2
from detrack_ros.detection_messages import header_at
from detrack_ros.image_conversion import array_to_image
from detrack_ros.replay import generated_sequence, ReplayClient
from detrack_ros.tracker_node import TrackerNode
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from node_harness import wait_until
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from tools import bench_hostile_input
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLOOD_FRAMES = 500
FLOOD_RATE = 200.0


def rss_mb(pid: int) -> float:
    """Return the resident memory of process ``pid`` in MiB."""
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f'no VmRSS for process {pid}')


class NodeProcess:
    """``tracker_node`` in a subprocess under a namespace of its own, plus a client node."""

    def __init__(self, context, *ros_args: str) -> None:
        self.namespace = f'/proc_{uuid.uuid4().hex[:8]}'
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'detrack_ros.tracker_node', '--ros-args',
             '-r', f'__ns:={self.namespace}', *ros_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.client = ReplayClient(namespace=self.namespace, context=context,
                                   name=f'client_{uuid.uuid4().hex[:6]}')
        self.client.watch_diagnostics_of(f'{self.namespace}/tracker')
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.output = ''
        self.clients = {}

    def wait_connected(self, timeout: float = 60.0) -> None:
        """Wait until the node subscribes to the client's topics."""
        deadline = time.monotonic() + timeout
        while not self.client.connected():
            assert self.process.poll() is None, f'node died:\n{self.stop()}'
            assert time.monotonic() < deadline, f'node never subscribed:\n{self.stop()}'
            time.sleep(0.05)

    def service(self, srv_type, name: str, timeout: float = 10.0):
        """Return a ready client of the node's service ``name`` (created once)."""
        if name not in self.clients:
            client = self.client.create_client(srv_type, f'{self.namespace}/tracker/{name}')
            assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
            self.clients[name] = client
        return self.clients[name]

    def call(self, srv_type, name: str, request, timeout: float = 5.0):
        """Call a service of the node; return (response, seconds it took)."""
        future = self.service(srv_type, name).call_async(request)
        started = time.monotonic()
        assert wait_until(future.done, timeout), f'{name} not answered within {timeout} s'
        return future.result(), time.monotonic() - started

    def stop(self) -> str:
        """Stop the node with Ctrl-C, the client's executor, and return the node's output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.output, _ = self.process.communicate()
        self.executor.shutdown()
        self.client.destroy_node()
        return self.output


def double_parameter(name: str, value: float) -> ParameterMsg:
    """Return a rcl_interfaces Parameter message holding a double."""
    return ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                        double_value=value))


def image_messages(frames, count: int):
    """Return ``count`` Image messages cycling through ``frames`` (stamps set at publish)."""
    return [array_to_image(frames[i % len(frames)], 'rgb8') for i in range(count)]


def flood(client: ReplayClient, messages, rate: float) -> list:
    """Publish ``messages`` at ``rate`` Hz, stamping each with the current time; return stamps."""
    stamps = []
    started = time.monotonic()
    for index, msg in enumerate(messages):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = client.get_clock().now().nanoseconds
        msg.header.stamp = header_at(now).stamp
        client.image_pub.publish(msg)
        stamps.append(now)
    return stamps


@pytest.mark.slow
def test_flood_keeps_node_responsive_newest_first_and_flat_in_memory(ros_context):
    """Drive 500 images at 200 Hz through the node twice while changing a parameter."""
    sequence = generated_sequence(2, 30, size=(320, 240))
    node = NodeProcess(ros_context, '-p', 'diagnostics_period:=0.5',
                       '-p', 'lost_patience:=10000')
    try:
        node.wait_connected()
        header = node.client.publish_frame(sequence.frames[0])
        node.client.send_init(sequence.boxes[0], header)
        assert node.client.wait_for(header, 10.0) is not None, node.stop()
        messages = image_messages(sequence.frames, FLOOD_FRAMES)
        node.service(SetParameters, 'set_parameters')
        node.service(GetParameters, 'get_parameters')
        flood(node.client, messages[:100], FLOOD_RATE)  # warm-up: allocator pools fill
        time.sleep(1.0)
        memory = [rss_mb(node.process.pid)]
        answers = []
        for round_index in range(2):
            worker = threading.Thread(target=lambda: answers.append(
                flood(node.client, messages, FLOOD_RATE)))
            worker.start()
            time.sleep(1.0)
            value = 0.2 + 0.05 * round_index
            request = SetParameters.Request(parameters=[double_parameter('score_threshold',
                                                                         value)])
            response, seconds = node.call(SetParameters, 'set_parameters', request)
            assert response.results[0].successful, response.results[0].reason
            assert seconds < 1.0, f'parameter change answered after {seconds:.2f} s in a flood'
            got, _ = node.call(GetParameters, 'get_parameters',
                               GetParameters.Request(names=['score_threshold']))
            assert got.values[0].double_value == pytest.approx(value)
            worker.join()
            stamps = answers[-1]
            # Newest frame wins: the last image of the flood is answered.
            last = node.client.wait_for(header_at(stamps[-1]), 5.0)
            assert last is not None, 'the newest frame of the flood was not processed'
            time.sleep(1.0)
            memory.append(rss_mb(node.process.pid))
        answered = [s for s in answers[-1] if node.client.result(header_at(s)) is not None]
        # Never a backlog: some frames are skipped, and answers never go back in time.
        assert 0 < len(answered) <= FLOOD_FRAMES
        order = [node.client.detections[s].received_ns for s in answered]
        assert order == sorted(order), 'an older frame was answered after a newer one'
        diagnostics = node.client.diagnostics
        assert int(diagnostics['frames_received']) >= 1000
        growth_first, growth_second = memory[1] - memory[0], memory[2] - memory[1]
        assert growth_second < 15.0, f'RSS grew {growth_second:.1f} MiB in the second flood ' \
                                     f'(first: {growth_first:.1f}; {memory})'
    finally:
        output = node.stop()
    assert 'Traceback' not in output, output


@pytest.mark.slow
def test_params_file_is_loaded_by_the_node(ros_context, tmp_path):
    """Start the node with the shipped params file, one value changed; it must take it."""
    document = yaml.safe_load((ROOT / 'config' / 'tracker.yaml').read_text())
    document['/**']['ros__parameters']['class_id'] = 'drone'
    document['/**']['ros__parameters']['score_threshold'] = 0.4
    params = tmp_path / 'tracker.yaml'
    params.write_text(yaml.safe_dump(document))
    node = NodeProcess(ros_context, '--params-file', str(params))
    try:
        node.wait_connected()
        got, _ = node.call(GetParameters, 'get_parameters',
                           GetParameters.Request(names=['class_id', 'score_threshold']))
        assert got.values[0].string_value == 'drone'
        assert got.values[1].double_value == pytest.approx(0.4)
        sequence = generated_sequence(1, 3, size=(160, 120))
        header = node.client.publish_frame(sequence.frames[0])
        node.client.send_init(sequence.boxes[0], header)
        assert node.client.wait_for(header, 10.0) is not None
        header = node.client.publish_frame(sequence.frames[1])
        result = node.client.wait_for(header, 10.0)
        assert result is not None and result.track_id
    finally:
        node.stop()


@pytest.mark.slow
def test_node_exits_with_an_error_for_a_missing_model(tmp_path):
    """A plain run with a model path that does not exist says so and exits 1."""
    missing = tmp_path / 'nothing_here'
    result = subprocess.run(
        [sys.executable, '-m', 'detrack_ros.tracker_node', '--ros-args',
         '-r', f'__ns:=/missing_{uuid.uuid4().hex[:6]}', '-p', f'model_path:={missing}'],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert str(missing) in result.stderr + result.stdout
    assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_demo_command_reports_accuracy_latency_and_writes_a_video(tmp_path):
    """Run the demo on a short generated sequence; check its figures and its video."""
    result = subprocess.run(
        [sys.executable, '-m', 'detrack_ros.demo', '--frames', '60', '--output',
         str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in ('accuracy               AO', 'end-to-end latency     median',
                     'processing rate', 'frames answered', 'same model offline'):
        assert expected in out, out
    ao = float(out.split('accuracy               AO ')[1].split(',')[0])
    offline = float(out.split('same model offline      AO ')[1].split()[0])
    # The node must score what the same model scores offline. The floor only says it tracks:
    # the default lost state reports frames 16-40 of this sequence lost (low scores, the
    # target visible), and a lost visible frame scores 0, so its AO is about 0.5.
    assert ao > 0.4 and abs(ao - offline) < 0.1, out
    videos = list(tmp_path.glob('*.mp4'))
    assert len(videos) == 1
    capture = cv2.VideoCapture(str(videos[0]))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (480, 640, 3) and frames == 60
    assert np.any(frame[..., 1] > 200)  # the green tracker box is drawn


@pytest.mark.slow
def test_demo_rejects_a_video_without_a_box():
    """--video needs --box: a usage error, not a traceback."""
    result = subprocess.run([sys.executable, '-m', 'detrack_ros.demo', '--video', 'x.mp4'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and '--box' in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('name, value', [('image_transport', 'theora'),
                                         ('qos_reliability', 'sometimes'), ('device', 'gpu')])
def test_start_up_values_outside_their_choices_fail_configure(ros_context, name, value):
    """A launch-time value the node cannot use fails configure instead of being ignored."""
    node = TrackerNode(namespace=f'/bad_{uuid.uuid4().hex[:6]}', context=ros_context,
                       parameter_overrides=[Parameter(name, value=value)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.state_label() == 'inactive' and node.session is None
    finally:
        node.destroy_node()


# -- hostile input, measured from outside the process -----------------------------------------


@pytest.mark.slow
def test_decompression_bombs_leave_memory_flat():
    """
    Replay 20 bombs claiming 30000x30000 (JPEG, PNG) with a debug_image subscriber.

    Decoded, each would need 2.7 GB; the node must refuse them from their headers and stay
    within 200 MB of its idle resident memory, counting every one as a bad image.
    """
    result = bench_hostile_input.bomb_replay(20, log=lambda *_: None)
    assert result.bad_images == result.sent and result.processed_during == 0, result
    assert result.growth_mb < 200.0, result


@pytest.mark.slow
def test_decoder_layers_change_keeps_the_node_answering():
    """
    Switch decoder_layers twice under a 30 Hz camera while get_parameters is called.

    The new onnxruntime graph is built off the executor (the export in a child process), so
    get_parameters keeps answering and the frames go on being answered; built in the
    parameter callback, the switch held get_parameters for over a second and left 40 frames
    unanswered. The acceptance figures (100 ms, 2 frames beyond the node's own rate of drops)
    are measured with tools/bench_hostile_input.py; the bounds here leave room for a CI
    machine busy with other jobs, where the export competes for the cores.
    """
    results = bench_hostile_input.decoder_layers_changes(2, log=lambda *_: None)
    for result in results:
        assert result.slowest_get_parameters_s < 0.25, result
        assert result.excess_unanswered <= 5.0, result


@pytest.mark.slow
def test_start_up_value_out_of_range_is_an_error_line_not_a_traceback():
    """threads:=-4 ends the process with exit 1 and a line naming the parameter."""
    result = subprocess.run(
        [sys.executable, '-m', 'detrack_ros.tracker_node', '--ros-args',
         '-r', f'__ns:=/threads_{uuid.uuid4().hex[:6]}', '-p', 'threads:=-4'],
        capture_output=True, text=True, timeout=60)
    output = result.stderr + result.stdout
    assert result.returncode == 1, output
    assert 'invalid parameter' in output and 'threads' in output, output
    assert 'Traceback' not in output


@pytest.mark.slow
def test_lifecycle_shutdown_ends_the_process(ros_context):
    """A shutdown transition finalizes the node, and the process exits with 0."""
    node = NodeProcess(ros_context)
    try:
        node.wait_connected()
        request = ChangeState.Request()
        request.transition.id = Transition.TRANSITION_ACTIVE_SHUTDOWN
        response, _ = node.call(ChangeState, 'change_state', request)
        assert response.success
        node.process.wait(timeout=20)
        assert node.process.returncode == 0
    finally:
        output = node.stop()
    assert 'Traceback' not in output, output


@pytest.mark.slow
def test_configure_failure_names_its_cause_before_the_fatal_line(tmp_path):
    """A garbage .onnx model: exit 1, and the line before 'could not become active' says why."""
    model = tmp_path / 'garbage.onnx'
    model.write_bytes(b'not a protobuf at all' * 50)
    result = subprocess.run(
        [sys.executable, '-m', 'detrack_ros.tracker_node', '--ros-args',
         '-r', f'__ns:=/garbage_{uuid.uuid4().hex[:6]}', '-p', f'model_path:={model}'],
        capture_output=True, text=True, timeout=60)
    lines = (result.stderr + result.stdout).splitlines()
    assert result.returncode == 1
    fatal = next(i for i, line in enumerate(lines) if 'could not become active' in line)
    assert 'configure failed' in lines[fatal - 1] and 'garbage.onnx' in lines[fatal - 1], lines
    assert 'not a readable ONNX model' in lines[fatal - 1]
