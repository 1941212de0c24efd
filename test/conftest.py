"""
Shared test set-up.

DDS traffic of a test run stays on this machine and in a domain of its own, so parallel runs
(several CI jobs, a developer's robot on the same network) never see each other's topics.
"""

import contextlib
import gc
import os
import random
from typing import Iterator

import pytest


def pytest_configure(config):
    """Isolate DDS discovery before any test creates an rclpy context; passive OpenMP waits."""
    # As the commands and the node run (detrack_model.runtime_env); tests and the processes
    # they start import PyTorch after this.
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if 'ROS_DOMAIN_ID' not in os.environ:
        os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))


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
