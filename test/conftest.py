"""
Shared test set-up.

DDS traffic of a test run stays on this machine and in a domain of its own, so parallel runs
(several CI jobs, a developer's robot on the same network) never see each other's topics.
"""

import os
import random

import pytest


def pytest_configure(config):
    """Isolate DDS discovery before any test creates an rclpy context."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if 'ROS_DOMAIN_ID' not in os.environ:
        os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))


@pytest.fixture
def ros_context():
    """Yield an initialised rclpy context of its own, shut down after the test."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()
