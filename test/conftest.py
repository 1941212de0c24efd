"""
Shared test set-up: the layers, the ``ros`` marker, and a ROS-free run.

The tests are grouped by layer: ``model/`` (network, op, export), ``training/`` (data, losses,
training, pruning), ``tracking/`` (tracker, session, evaluation), ``ros/`` (everything that
needs rclpy or ROS messages, or tests ``detrack_ros``), ``lint/`` (code style and import
checks) and ``environment/`` (``make setup``, the commands' OpenMP policy). Helpers shared by
more than one layer live here in ``test/`` (on ``sys.path`` through pytest.ini's
``pythonpath``); a helper with one layer of users lives in that layer's folder. No folder has
an ``__init__.py``: test module names must be unique across the folders.

Every test under ``ros/`` is marked ``ros``. ``--without-ros`` (``make test-fast``) does not
collect ``ros/`` at all and fails when a collected module has imported rclpy or a ROS message
package, so the ROS-free selection stays ROS-free.

DDS traffic of a test run stays on this machine and in a domain of its own, so parallel runs
(several CI jobs, a developer's robot on the same network) never see each other's topics.
"""

import os
import pathlib
import random
import sys

import pytest

ROS_TESTS = pathlib.Path(__file__).resolve().parent / 'ros'
# Top-level modules of ROS (as lint/test_model_import_without_ros.py counts them), besides
# every message and service package (*_msgs, *_srvs).
ROS_MODULES = {'rclpy', 'rcl_interfaces', 'rosidl_runtime_py', 'rosidl_parser',
               'ament_index_python', 'launch', 'launch_ros'}


def pytest_addoption(parser):
    """Add ``--without-ros``."""
    parser.addoption('--without-ros', action='store_true',
                     help='skip collecting test/ros/ and fail if a collected test module '
                          'imports rclpy or a ROS message package (make test-fast)')


def pytest_configure(config):
    """Isolate DDS discovery before any test creates an rclpy context; passive OpenMP waits."""
    # As the commands and the node run (detrack_model.runtime_env); tests and the processes
    # they start import PyTorch after this.
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if 'ROS_DOMAIN_ID' not in os.environ:
        os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))


def pytest_ignore_collect(collection_path, config):
    """Leave test/ros/ uncollected (its modules unimported) under ``--without-ros``."""
    if config.getoption('without_ros') and collection_path.resolve() == ROS_TESTS:
        return True
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """Mark every test under test/ros/ ``ros``, before ``-m`` selects."""
    for item in items:
        if ROS_TESTS in item.path.resolve().parents:
            item.add_marker(pytest.mark.ros)


def pytest_collection_finish(session):
    """Under ``--without-ros``, refuse a run whose collected modules imported ROS."""
    if not session.config.getoption('without_ros'):
        return
    imported = sorted(name for name in sys.modules if '.' not in name and (
        name in ROS_MODULES or name.endswith(('_msgs', '_srvs'))))
    if imported:
        raise pytest.UsageError(
            '--without-ros: collecting the tests imported ' + ', '.join(imported)
            + '; a test that needs ROS belongs under test/ros/')
