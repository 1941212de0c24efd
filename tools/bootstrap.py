"""
Create or refresh the project's virtual environment (``make setup``).

The environment holds ROS 2 Kilted from its PyPI wheels (rclpy, the message packages, Fast DDS,
the ament/rosidl build tools, colcon), PyTorch, NumPy, OpenCV and the rest, every version pinned
by ``requirements/constraints.txt``. A stamp inside the environment records what it was built
from, so a second run with nothing to do only checks the stamp and a few imports.

Run it with the interpreter the environment should use (``make setup PYTHON=...``).
"""

import argparse
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / 'requirements'
REQUIREMENT_FILES = ('ros.txt', 'python.txt', 'torch.txt', 'test.txt')
CONSTRAINTS = REQUIREMENTS / 'constraints.txt'
STAMP_NAME = '.detrack-setup-stamp'
# The ROS 2 Kilted wheels on PyPI are built for CPython 3.11 only.
REQUIRED_PYTHON = (3, 11)
# Imports that prove the environment is whole; a broken one triggers a reinstall.
SMOKE_IMPORTS = ('rclpy', 'sensor_msgs.msg', 'torch', 'cv2', 'numpy', 'safetensors', 'yaml',
                 'tqdm', 'colcon_core', 'ament_flake8', 'catkin_pkg')


class SetupError(RuntimeError):
    """A problem with the machine that the user has to fix; the message says how."""


def check_python(version: Sequence[int], executable: str) -> None:
    """Refuse interpreters the ROS wheels do not exist for."""
    if tuple(version[:2]) != REQUIRED_PYTHON:
        found = '.'.join(str(v) for v in version[:3])
        raise SetupError(
            f'Python {REQUIRED_PYTHON[0]}.{REQUIRED_PYTHON[1]} is required: the ROS 2 Kilted '
            f'wheels on PyPI are built for CPython 3.11 only, but {executable} is Python '
            f'{found}. Run `make setup PYTHON=/path/to/python3.11`.')


def check_build_tools(env: Optional[Dict[str, str]] = None) -> None:
    """Make sure a C/C++ compiler, CMake and the Python headers exist (colcon needs them)."""
    env = os.environ if env is None else env
    path = env.get('PATH', os.defpath)
    missing = []
    for variable, default, what in (('CC', 'cc', 'C compiler'),
                                    ('CXX', 'c++', 'C++ compiler'),
                                    ('CMAKE', 'cmake', 'CMake')):
        command = env.get(variable) or default
        if shutil.which(command, path=path) is None:
            missing.append(f'{what} ({variable}={command})' if env.get(variable)
                           else f'{what} (`{command}` on PATH)')
    if missing:
        raise SetupError(
            'missing build tools: ' + ', '.join(missing) + '. colcon builds the vision_msgs '
            'interface package with them; on Debian/Ubuntu: '
            '`apt-get install build-essential cmake`.')
    include = pathlib.Path(sysconfig.get_paths()['include'])
    if not (include / 'Python.h').is_file():
        raise SetupError(f'Python headers not found in {include}: install the development '
                         'package of this interpreter (on Debian/Ubuntu: python3.11-dev).')


def requirements_digest() -> str:
    """Hash everything the environment is built from, so a change triggers a reinstall."""
    digest = hashlib.sha256()
    for path in [REQUIREMENTS / name for name in REQUIREMENT_FILES] + [
            CONSTRAINTS, pathlib.Path(__file__).resolve()]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def venv_python(venv: pathlib.Path) -> pathlib.Path:
    """Path of the interpreter inside ``venv``."""
    return venv / 'bin' / 'python'


def run_python(python: pathlib.Path, code: str) -> subprocess.CompletedProcess:
    """Run a snippet in the environment's interpreter, capturing its output."""
    return subprocess.run([str(python), '-c', code], capture_output=True, text=True)


def environment_is_current(venv: pathlib.Path, digest: str) -> bool:
    """Tell whether the stamp matches the requirements and the key imports work."""
    stamp = venv / STAMP_NAME
    if not stamp.is_file() or stamp.read_text().strip() != digest:
        return False
    probe = run_python(venv_python(venv), 'import ' + ', '.join(SMOKE_IMPORTS))
    return probe.returncode == 0


def requirement_files(keep_torch: bool) -> List[pathlib.Path]:
    """List the requirement files to install; torch's is left out when a CUDA torch is kept."""
    return [REQUIREMENTS / name for name in REQUIREMENT_FILES
            if not (keep_torch and name == 'torch.txt')]


def existing_cuda_torch(python: pathlib.Path) -> Optional[str]:
    """Version of a CUDA-enabled torch already in the environment, else None."""
    probe = run_python(python, 'import torch; print(torch.__version__, torch.version.cuda)')
    if probe.returncode != 0:
        return None
    version, cuda = probe.stdout.split()
    return None if cuda == 'None' else f'{version} (CUDA {cuda})'


# Where pip names the requirement it gave up on.
_FAILED_REQUIREMENT = (
    re.compile(r'No matching distribution found for (\S+)'),
    re.compile(r'Could not find a version that satisfies the requirement (\S+)'),
    re.compile(r'Cannot install (\S+) because these package versions have conflicting'),
    re.compile(r'HTTP error \d+ while getting (\S+)'),
)
_FETCH_FAILURE = re.compile(r'Could not fetch URL (\S+): (.*?) - skipping')
_NETWORK_TROUBLE = re.compile(r'connection error|NewConnectionError|Connection refused|'
                              r'Network is unreachable|Name or service not known|'
                              r'Temporary failure in name resolution|timed out|ProxyError|'
                              r'SSLError|certificate', re.IGNORECASE)


def failed_requirement(output: str) -> Optional[str]:
    """Return the requirement pip says it could not satisfy, pinned as in constraints."""
    for pattern in _FAILED_REQUIREMENT:
        match = pattern.search(output)
        if match:
            requirement = match.group(1).rstrip(')').rstrip(',')
            return requirement if '==' in requirement else pin(requirement)
    return None


def pin(requirement: str) -> str:
    """Add the version constraints.txt pins to ``requirement``, when it pins one."""
    name = re.split(r'[<>=!~ ;\[]', requirement, maxsplit=1)[0].lower()
    for line in CONSTRAINTS.read_text().splitlines():
        pinned, _, version = line.partition('==')
        if pinned.strip().lower().replace('_', '-') == name.replace('_', '-') and version:
            return f'{name}=={version.strip()}'
    return requirement


def fetch_problem(python: pathlib.Path, requirement: str, timeout: int) -> Optional[str]:
    """
    Try to download ``requirement`` alone and say why the registry could not serve it.

    pip's install output does not always show connection errors (with few retries it only
    reports "no versions"), so a failed install is followed by this verbose download, whose
    log names each index URL that could not be fetched. Returns None when nothing failed to
    connect (the package itself is missing or does not fit).
    """
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [str(python), '-m', 'pip', 'download', '-vv', '--no-deps', '--retries', '0',
             '--timeout', str(timeout), '--disable-pip-version-check', '-d', scratch,
             requirement],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for url, reason in _FETCH_FAILURE.findall(result.stdout):
        if _NETWORK_TROUBLE.search(reason):
            detail = re.search(r'\[Errno -?\d+\] ([^\'")]+)', reason)
            return f'{url} could not be reached ({detail.group(1) if detail else reason})'
    return None


def explain_pip_failure(output: str, problem: Callable[[str], Optional[str]]) -> str:
    """Turn pip's output into a sentence naming the package that could not be fetched."""
    requirement = failed_requirement(output)
    if requirement is None:
        return 'pip failed:\n' + '\n'.join(output.strip().splitlines()[-15:])
    network = problem(requirement)
    if network:
        return (f'could not fetch {requirement} from the package registry: {network}. Check '
                'the network connection (and proxy settings) to the registry, then run '
                '`make setup` again.')
    return (f'could not fetch {requirement} from the package registry: no distribution of it '
            f'matches this machine (CPython {sys.version_info[0]}.{sys.version_info[1]}, '
            f'{sysconfig.get_platform()}) and the pins in {CONSTRAINTS.relative_to(ROOT)}.')


def pip_install(python: pathlib.Path, args: List[str], retries: int, timeout: int) -> None:
    """Run pip in the environment; raise SetupError with an explanation on failure."""
    command = [str(python), '-m', 'pip', 'install', '--disable-pip-version-check',
               '--retries', str(retries), '--timeout', str(timeout)] + args
    print('+ pip install ' + ' '.join(args), flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Keep pip's own lines visible in logs, minus its noise about missing local index mirrors.
    for line in result.stdout.splitlines():
        if 'is ignored: it is neither a file nor a directory' not in line:
            print('  ' + line)
    if result.returncode != 0:
        raise SetupError(explain_pip_failure(
            result.stdout, lambda requirement: fetch_problem(python, requirement, timeout)))


def install(venv: pathlib.Path, retries: int, timeout: int) -> Tuple[str, str]:
    """Install the pinned requirements into ``venv``; return (torch note, cmake note)."""
    python = venv_python(venv)
    kept_torch = existing_cuda_torch(python)
    requirement_args = []
    for path in requirement_files(keep_torch=kept_torch is not None):
        requirement_args += ['-r', str(path)]
    pip_install(python, requirement_args + ['-c', str(CONSTRAINTS)], retries, timeout)
    torch_note = f'kept existing torch {kept_torch}' if kept_torch else 'installed pinned torch'
    fix = subprocess.run([str(python), str(ROOT / 'tools' / 'fix_ros_wheel_paths.py'),
                          '--prefix', str(venv)], capture_output=True, text=True)
    if fix.returncode != 0:
        raise SetupError(fix.stderr.strip() or fix.stdout.strip())
    return torch_note, fix.stdout.strip()


def create_venv(venv: pathlib.Path) -> None:
    """Create ``venv`` with this interpreter (pip included)."""
    print(f'+ {sys.executable} -m venv {venv}', flush=True)
    result = subprocess.run([sys.executable, '-m', 'venv', str(venv)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError(f'could not create the virtual environment {venv}: '
                         f'{result.stderr.strip()} (on Debian/Ubuntu: apt-get install '
                         'python3.11-venv)')


def setup(venv: pathlib.Path, force: bool, retries: int, timeout: int) -> str:
    """Bring ``venv`` up to date; return a one-line summary of what was done."""
    check_python(sys.version_info, sys.executable)
    digest = requirements_digest()
    if not force and environment_is_current(venv, digest):
        return f'{venv} is up to date (nothing to do)'
    check_build_tools()
    if venv.exists() and not venv_python(venv).exists():
        raise SetupError(f'{venv} exists but is not a virtual environment; remove it first')
    if not venv.exists():
        create_venv(venv)
    (venv / STAMP_NAME).unlink(missing_ok=True)
    torch_note, cmake_note = install(venv, retries, timeout)
    # Keep colcon from crawling into the environment's share/*/package.xml files.
    (venv / 'COLCON_IGNORE').touch()
    (venv / STAMP_NAME).write_text(digest + '\n')
    return f'{venv} ready: {torch_note}; {cmake_note}'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--venv', type=pathlib.Path, default=ROOT / '.venv',
                        help='environment directory (default: .venv in the repository)')
    parser.add_argument('--force', action='store_true', help='reinstall even if up to date')
    parser.add_argument('--retries', type=int, default=3, help='pip retries per download')
    parser.add_argument('--timeout', type=int, default=60, help='pip socket timeout (s)')
    args = parser.parse_args(argv)
    try:
        print(setup(args.venv.absolute(), args.force, args.retries, args.timeout))
    except SetupError as error:
        print(f'make setup: error: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
