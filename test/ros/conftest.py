"""
Set-up of the ROS tests: rclpy contexts, the shipped model run offline beside the node.

Every test in this folder is marked ``ros`` (test/conftest.py).
"""

import contextlib
import gc
from typing import Iterator

from detrack_model.shipped import default_model_path
from detrack_model.tracking.factory import build_tracker, resolve_backend, RuntimeConfig
from detrack_model.tracking.tracker import TrackerConfig
from node_harness import FOLLOWING
import pytest


@contextlib.contextmanager
def rclpy_context() -> Iterator:
    """Yield an initialised rclpy context; shut it down and destroy it at the end."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        # Free closed nodes while the context lives (see node_harness.NodeHarness.close).
        gc.collect()
        context.try_shutdown()
        context.destroy()


@pytest.fixture
def ros_context():
    """Yield an initialised rclpy context of its own, shut down after the test."""
    with rclpy_context() as context:
        yield context


@pytest.fixture(scope='module')
def module_ros_context():
    """Yield an rclpy context shared by the nodes of one test module."""
    with rclpy_context() as context:
        yield context


@pytest.fixture(scope='module')
def offline():
    """Yield the shipped model run outside ROS, on the backend the node resolves to."""
    backend = resolve_backend(default_model_path(), RuntimeConfig(backend='auto'))
    tracker = build_tracker(default_model_path(), RuntimeConfig(backend=backend),
                            TrackerConfig(**FOLLOWING))
    try:
        yield tracker
    finally:
        tracker.backend.release()
