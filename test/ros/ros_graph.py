"""Helpers for tests that run a real rclpy graph over DDS."""

import array
import time
import uuid

import numpy as np
from rclpy.executors import SingleThreadedExecutor


def unique_topic(stem: str) -> str:
    """Return a topic name no other test (or concurrent run) uses."""
    return f'{stem}_{uuid.uuid4().hex[:12]}'


def spin_until(executor: SingleThreadedExecutor, condition, timeout: float = 10.0) -> bool:
    """Spin ``executor`` until ``condition()`` holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.05)
    return True


def assert_messages_equal(sent, received, path: str = 'msg') -> None:
    """Compare two ROS messages field by field, naming the first field that differs."""
    if hasattr(type(sent), 'get_fields_and_field_types'):
        assert type(sent) is type(received), f'{path}: {type(sent)} != {type(received)}'
        for field in type(sent).get_fields_and_field_types():
            assert_messages_equal(getattr(sent, field), getattr(received, field),
                                  f'{path}.{field}')
    elif isinstance(sent, (list, tuple)):
        assert len(sent) == len(received), f'{path}: length {len(sent)} != {len(received)}'
        for index, (a, b) in enumerate(zip(sent, received)):
            assert_messages_equal(a, b, f'{path}[{index}]')
    elif isinstance(sent, (np.ndarray, array.array, bytes)):
        assert np.array_equal(np.asarray(sent), np.asarray(received)), f'{path} differs'
    else:
        assert sent == received, f'{path}: {sent!r} != {received!r}'
