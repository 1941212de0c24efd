"""
The OpenMP wait policy: set by the programs that run the model, before PyTorch loads.

Importing the library leaves the environment alone; every command and the node's executable
prefer passive waits, keep an explicit value, and do so before the first ``import torch``,
the only time the OpenMP runtime reads it. Each case runs in a fresh interpreter.
"""

import ast
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
from typing import Dict, List, Optional

from detrack_model.runtime_env import prefer_passive_openmp, WAIT_POLICY
import pytest

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]
# Console scripts that never run the model (select_target only shows camera images).
WITHOUT_MODEL = {'select_target'}

# Imports detrack_model and every module of it except the command package, then prints what
# changed in the environment (the package alone) and the policy (after everything).
IMPORT_LIBRARY = textwrap.dedent("""
    import importlib, json, os, pkgutil, sys

    sys.path.insert(0, sys.argv[1])
    before = dict(os.environ)
    import detrack_model
    changed = sorted(key for key in set(before) | set(os.environ)
                     if before.get(key) != os.environ.get(key))

    def walk(package):
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(getattr(module, '__path__', []), package + '.'):
            if info.name != 'detrack_model.cli':  # pkgutil.walk_packages would import it
                importlib.import_module(info.name)
                if info.ispkg:
                    walk(info.name)

    walk('detrack_model')
    print(json.dumps({'changed': changed, 'policy': os.environ.get('OMP_WAIT_POLICY'),
                      'cli': 'detrack_model.cli' in sys.modules}))
""")

# Starts a command as its console script (``module:function``) or as ``python -m module``,
# with --help, and reports the policy at the moment anything first imports torch.
AT_TORCH_IMPORT = textwrap.dedent("""
    import importlib.abc, os, runpy, sys
    from importlib.metadata import EntryPoint

    class AtTorchImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == 'torch':
                print('policy:', os.environ.get('OMP_WAIT_POLICY'), flush=True)
                os._exit(0)

    sys.meta_path.insert(0, AtTorchImport())
    how, target = sys.argv[1:3]
    sys.argv = [target, '--help']
    try:
        if how == '-m':
            runpy.run_module(target, run_name='__main__', alter_sys=True)
        else:
            EntryPoint(name=target, value=target, group='console_scripts').load()()
    except SystemExit:
        pass
    print('torch never imported')
""")


def child_env(policy: Optional[str] = None, **extra: str) -> Dict[str, str]:
    """Return this environment without OMP_WAIT_POLICY (or with ``policy``), package first."""
    env = {key: value for key, value in os.environ.items() if key != WAIT_POLICY}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                      env.get('PYTHONPATH', '')]))
    if policy is not None:
        env[WAIT_POLICY] = policy
    env.update(extra)
    return env


def run_python(arguments: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
    """Run this interpreter with ``arguments`` from the package root."""
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True,
                          env=env, cwd=PACKAGE_ROOT, timeout=300)


def policy_at_torch_import(how: str, target: str, policy: Optional[str] = None) -> str:
    """Return what the command saw as OMP_WAIT_POLICY when torch was first imported."""
    result = run_python(['-c', AT_TORCH_IMPORT, how, target], child_env(policy))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('policy: '), result.stdout + result.stderr
    return result.stdout.split()[1]


def console_scripts() -> Dict[str, str]:
    """Return setup.py's console_scripts as {name: 'module:function'}."""
    tree = ast.parse((PACKAGE_ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'entry_points':
            entries = ast.literal_eval(node.value)['console_scripts']
            return dict(tuple(part.strip() for part in entry.split('=')) for entry in entries)
    raise AssertionError('setup.py declares no entry_points')


def model_scripts() -> List[str]:
    """Return the targets of the console scripts that run the model."""
    return [target for name, target in sorted(console_scripts().items())
            if name not in WITHOUT_MODEL]


def command_modules() -> List[str]:
    """Return the modules started with ``python -m`` (README, Makefile, torchrun)."""
    commands = sorted(f'detrack_model.cli.{path.stem}'
                      for path in (PACKAGE_ROOT / 'detrack_model' / 'cli').glob('*.py')
                      if path.stem not in ('__init__', 'common'))
    return commands + ['detrack_ros.bag_tool', 'detrack_ros.demo',
                       'detrack_ros.tracker_node_entry']


def test_prefer_passive_openmp_keeps_an_explicit_value():
    """Unset: PASSIVE; any value already there stays, whatever it is."""
    environ = {}
    assert prefer_passive_openmp(environ) == 'PASSIVE'
    assert environ == {WAIT_POLICY: 'PASSIVE'}
    for explicit in ('ACTIVE', 'passive', ''):
        environ = {WAIT_POLICY: explicit, 'OTHER': '1'}
        assert prefer_passive_openmp(environ) == explicit
        assert environ == {WAIT_POLICY: explicit, 'OTHER': '1'}


@pytest.mark.slow
def test_importing_the_library_leaves_the_environment_alone():
    """Neither the package nor any library module sets OMP_WAIT_POLICY on import."""
    result = run_python(['-I', '-c', IMPORT_LIBRARY, str(PACKAGE_ROOT)], child_env())
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {'changed': [], 'policy': None, 'cli': False}


@pytest.mark.parametrize('target', model_scripts())
def test_console_scripts_prefer_passive_before_torch_loads(target):
    """Every installed command that runs the model has set PASSIVE when torch is imported."""
    assert policy_at_torch_import('script', target) == 'PASSIVE'


@pytest.mark.parametrize('module', command_modules())
def test_python_m_commands_prefer_passive_before_torch_loads(module):
    """So do the commands as the README, the Makefile and torchrun start them (python -m)."""
    assert policy_at_torch_import('-m', module) == 'PASSIVE'


@pytest.mark.parametrize('how, target', [('script', 'detrack_ros.tracker_node_entry:main'),
                                         ('-m', 'detrack_model.cli.train')])
def test_an_explicit_policy_wins(how, target):
    """OMP_WAIT_POLICY given by the user reaches PyTorch unchanged."""
    assert policy_at_torch_import(how, target, policy='ACTIVE') == 'ACTIVE'


def spin_count(arguments: List[str]) -> str:
    """Return the spin count the OpenMP runtime reports at start-up (GNU OpenMP only)."""
    result = run_python(arguments, child_env(OMP_DISPLAY_ENV='VERBOSE'))
    assert result.returncode == 0, result.stderr
    match = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)
    if match is None:
        pytest.skip("PyTorch's OpenMP runtime is not GNU OpenMP: no GOMP_SPINCOUNT to read")
    return match.group(1)


@pytest.mark.slow
def test_the_openmp_runtime_of_a_command_sleeps_when_idle():
    """
    The runtime itself, not just the environment, got PASSIVE: it spins 0 times before it sleeps.

    A plain ``import torch`` without the policy is the control: GNU OpenMP's default spins.
    """
    assert spin_count(['-m', 'detrack_model.cli.export', '--help']) == '0'
    assert spin_count(['-c', 'import torch']) != '0'
