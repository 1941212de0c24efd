"""detrack_model imports, every submodule of it, on a machine with no ROS at all."""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter. The environment's site-packages may hold the ROS wheels, so
# besides dropping the ROS paths, any attempt to import a ROS module fails as if it were absent.
IMPORT_ALL = textwrap.dedent("""
    import importlib, importlib.abc, pkgutil, sys

    ROS_MODULES = {'rclpy', 'rcl_interfaces', 'rosidl_runtime_py', 'rosidl_parser',
                   'ament_index_python', 'launch', 'launch_ros', 'rosgraph_msgs'}

    class NoRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition('.')[0]
            if top in ROS_MODULES or top.endswith(('_msgs', '_srvs')):
                raise ModuleNotFoundError(f'No module named {name!r}', name=name)
            return None

    sys.meta_path.insert(0, NoRos())
    sys.path.insert(0, sys.argv[1])
    package = importlib.import_module(sys.argv[2])
    names = [info.name for info in pkgutil.walk_packages(package.__path__, sys.argv[2] + '.')]
    for name in names:
        importlib.import_module(name)
    print('imported', 1 + len(names), 'modules')
""")


def import_without_ros(root: pathlib.Path, package: str) -> subprocess.CompletedProcess:
    """Import ``package`` and all its submodules from ``root`` with ROS made unavailable."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(('ROS_', 'RMW_', 'AMENT_', 'COLCON_', 'CMAKE_PREFIX'))
           and key not in ('PYTHONPATH', 'LD_LIBRARY_PATH')}
    return subprocess.run([sys.executable, '-I', '-c', IMPORT_ALL, str(root), package],
                          capture_output=True, text=True, env=env, cwd='/', timeout=300)


@pytest.mark.slow
def test_detrack_model_imports_without_ros():
    """The ROS-free library really is free of ROS."""
    result = import_without_ros(PACKAGE_ROOT, 'detrack_model')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('imported ')


def test_a_module_importing_rclpy_is_caught(tmp_path):
    """The harness above does fail for a package that imports rclpy somewhere inside."""
    package = tmp_path / 'leaky'
    (package / 'sub').mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'sub' / '__init__.py').write_text('')
    (package / 'sub' / 'node.py').write_text('import rclpy\n')
    result = import_without_ros(tmp_path, 'leaky')
    assert result.returncode != 0
    assert "No module named 'rclpy'" in result.stderr
