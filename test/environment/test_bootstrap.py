"""`make setup` explains a bad environment clearly and does nothing when nothing changed."""

import os
import pathlib
import re
import subprocess
import sys
import time

import pytest
from tools import bootstrap, fix_ros_wheel_paths

TOOLS = pathlib.Path(bootstrap.__file__).resolve().parent


def run_bootstrap(venv: pathlib.Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run tools/bootstrap.py as `make setup` does, with ``env`` as its whole environment."""
    return subprocess.run([sys.executable, str(TOOLS / 'bootstrap.py'), '--venv', str(venv),
                           *args], capture_output=True, text=True, env=env, timeout=600)


def clean_env(**overrides: str) -> dict:
    """Return this environment without pip settings, plus ``overrides``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith('PIP_')}
    env.update(overrides)
    return env


def test_wrong_python_version_is_refused_with_advice():
    """Any interpreter but CPython 3.11 is refused, and the message says what to do."""
    with pytest.raises(bootstrap.SetupError, match=r'Python 3\.11 is required.*3\.12\.1.*'
                       r'make setup PYTHON='):
        bootstrap.check_python((3, 12, 1), '/usr/bin/python3.12')
    bootstrap.check_python((3, 11, 7), sys.executable)


def test_missing_compiler_is_named(tmp_path):
    """A missing C++ compiler stops setup before anything is installed, naming it."""
    result = run_bootstrap(tmp_path / 'venv', clean_env(CXX='/nonexistent/c++'))
    assert result.returncode == 1
    assert 'missing build tools: C++ compiler (CXX=/nonexistent/c++)' in result.stderr
    assert 'build-essential' in result.stderr
    assert not (tmp_path / 'venv').exists()


def test_missing_cmake_is_named():
    """Report a CMake missing from PATH as exactly that."""
    with pytest.raises(bootstrap.SetupError, match=r'CMake \(`cmake` on PATH\)'):
        bootstrap.check_build_tools({'PATH': '/nonexistent', 'CC': sys.executable,
                                     'CXX': sys.executable})


@pytest.mark.slow
def test_unreachable_registry_names_the_package(tmp_path):
    """With no route to the registry, setup fails naming the package it could not fetch."""
    # Port 9 on loopback refuses connections: a registry that cannot be reached.
    env = clean_env(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL='http://127.0.0.1:9/simple',
                    PIP_NO_CACHE_DIR='1')
    result = run_bootstrap(tmp_path / 'venv', env, '--retries', '0', '--timeout', '5')
    assert result.returncode == 1, result.stdout
    match = re.search(r'could not fetch (\S+) from the package registry: '
                      r'http://127\.0\.0\.1:9/simple/\S+ could not be reached '
                      r'\(Connection refused\)', result.stderr)
    assert match, result.stderr
    assert re.fullmatch(r'ros-[a-z0-9-]+==[0-9.]+', match.group(1))


def test_pip_failure_without_network_trouble_blames_the_pins():
    """Name a package with no matching wheel, and point at the pins."""
    output = ('ERROR: Cannot install ros-rclpy because these package versions have conflicting '
              'dependencies.\n')
    asked = []
    message = bootstrap.explain_pip_failure(output, lambda req: asked.append(req))
    assert asked == ['ros-rclpy==' + bootstrap.pin('ros-rclpy').split('==')[1]]
    assert message.startswith(f'could not fetch {asked[0]} from the package registry: no '
                              'distribution')
    assert 'constraints.txt' in message


def test_unrecognised_pip_failure_shows_pips_own_words():
    """An error we cannot classify is passed on as pip's last lines, not swallowed."""
    message = bootstrap.explain_pip_failure('ERROR: disk full\n', lambda req: None)
    assert message == 'pip failed:\nERROR: disk full'


@pytest.mark.parametrize('printed, expected', [
    ('2.11.0+cu130 13.0', '2.11.0+cu130 (CUDA 13.0)'),
    ('2.13.0+cpu None', None),
])
def test_cuda_torch_is_kept_and_cpu_torch_is_not(tmp_path, printed, expected):
    """A CUDA torch already in the environment is kept; a CPU one follows the pins."""
    python = tmp_path / 'python'
    python.write_text(f'#!/bin/sh\necho "{printed}"\n')
    python.chmod(0o755)
    kept = bootstrap.existing_cuda_torch(python)
    assert kept == expected
    names = [path.name for path in bootstrap.requirement_files(keep_torch=kept is not None)]
    assert ('torch.txt' in names) == (expected is None)
    assert {'ros.txt', 'python.txt'} <= set(names)


def test_no_torch_at_all_means_installing_the_pinned_one(tmp_path):
    """An environment whose interpreter cannot import torch gets the pinned torch."""
    python = tmp_path / 'python'
    python.write_text('#!/bin/sh\nexit 1\n')
    python.chmod(0o755)
    assert bootstrap.existing_cuda_torch(python) is None


def test_fix_ros_wheel_paths_rewrites_once(tmp_path):
    """The build machine's paths are replaced by this interpreter's, and only once."""
    cmake = tmp_path / 'share' / 'pkg' / 'cmake' / 'export.cmake'
    cmake.parent.mkdir(parents=True)
    cmake.write_text(f'INTERFACE_INCLUDE_DIRECTORIES "{fix_ros_wheel_paths.BUILD_PY_INCLUDE};'
                     f'{fix_ros_wheel_paths.BUILD_NUMPY_INCLUDE}"\n')
    untouched = tmp_path / 'share' / 'pkg' / 'cmake' / 'other.cmake'
    untouched.write_text('set(X 1)\n')
    assert fix_ros_wheel_paths.rewrite(tmp_path) == 1
    text = cmake.read_text()
    assert '/opt/python' not in text
    assert fix_ros_wheel_paths.numpy.get_include() in text
    assert fix_ros_wheel_paths.rewrite(tmp_path) == 0
    assert untouched.read_text() == 'set(X 1)\n'


@pytest.mark.slow
def test_second_setup_is_a_quick_no_op():
    """In an environment made by `make setup`, running it again changes nothing."""
    venv = pathlib.Path(sys.prefix)
    if not (venv / bootstrap.STAMP_NAME).is_file():
        pytest.skip('not running inside an environment made by `make setup` (ROS from apt)')
    start = time.monotonic()
    result = run_bootstrap(venv, clean_env())
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert 'up to date (nothing to do)' in result.stdout
    assert elapsed < 15.0
    leftovers = [path for path in (venv / 'share').glob('**/*.cmake')
                 if fix_ros_wheel_paths.BUILD_PY_INCLUDE in path.read_text()]
    assert leftovers == []
