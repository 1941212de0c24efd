"""
The launch file, the parameters file, setup.py and parameters.py agree with one another.

Most checks read the launch file with ``ast``, so they run without the ROS 2 launch packages;
one builds the real launch description where ``launch_ros`` is importable.
"""

import ast
import importlib.util
import math
import os
import pathlib
import re
import subprocess

from detrack_ros.parameters import NAMES, PARAMETERS, SPECS
import pytest
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
import rclpy
from rclpy.node import Node
import yaml

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCH_FILE = PACKAGE_ROOT / 'launch' / 'tracker.launch.py'
PARAMS_FILE = PACKAGE_ROOT / 'config' / 'tracker.yaml'
SETUP_PY = PACKAGE_ROOT / 'setup.py'

LAUNCH_ARGUMENTS = {'namespace', 'image', 'params_file', 'device', 'model_path'}
# Launch arguments that are not node parameters; every other one sets the parameter it names.
NON_PARAMETER_ARGUMENTS = {'namespace', 'image', 'params_file'}
PYTHON_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
ENTRY_POINT = re.compile(r'^\s*(?P<name>[\w.-]+)\s*=\s*(?P<module>[\w.]+):(?P<function>\w+)\s*$')


# -- helpers: reading the launch file and setup.py without running them ----------------------

def call_name(node: ast.AST) -> str:
    """Return the name a call calls (``f`` for ``f()`` and ``a.b.f()``), or ''."""
    if not isinstance(node, ast.Call):
        return ''
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ''


def calls(tree: ast.AST, name: str) -> list:
    """Return every call of ``name`` in ``tree``."""
    return [node for node in ast.walk(tree) if call_name(node) == name]


def keyword(call: ast.Call, name: str) -> ast.AST:
    """Return the value of keyword argument ``name`` of ``call``; fail if it is missing."""
    for item in call.keywords:
        if item.arg == name:
            return item.value
    raise AssertionError(f'{call_name(call)}() has no {name}= argument')


class LaunchFile:
    """The launch file's syntax tree and the string constants its module assigns."""

    def __init__(self, path: pathlib.Path = None):
        path = LAUNCH_FILE if path is None else path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.assigned = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                self.assigned[node.targets[0].id] = node.value

    def resolve(self, node: ast.AST) -> ast.AST:
        """Follow a name to the expression last assigned to it in the file."""
        seen = set()
        while isinstance(node, ast.Name) and node.id in self.assigned and node.id not in seen:
            seen.add(node.id)
            node = self.assigned[node.id]
        return node

    def constant(self, node: ast.AST):
        """Return the constant value of ``node`` (through names); fail if it has none."""
        node = self.resolve(node)
        assert isinstance(node, ast.Constant), f'not a constant: {ast.unparse(node)}'
        return node.value

    def launch_configurations(self, node: ast.AST, _seen: set = None) -> set:
        """Return the names of the LaunchConfigurations that ``node`` uses (through names)."""
        seen = set() if _seen is None else _seen
        names = set()
        for sub in ast.walk(node):
            if call_name(sub) == 'LaunchConfiguration':
                argument = sub.args[0] if sub.args else keyword(sub, 'variable_name')
                names.add(self.constant(argument))
            elif isinstance(sub, ast.Name) and sub.id in self.assigned and sub.id not in seen:
                seen.add(sub.id)
                names |= self.launch_configurations(self.assigned[sub.id], seen)
        return names

    def declared_arguments(self) -> dict:
        """Return ``{name: DeclareLaunchArgument call}`` of every declared argument."""
        declared = {}
        for call in calls(self.tree, 'DeclareLaunchArgument'):
            name = self.constant(call.args[0] if call.args else keyword(call, 'name'))
            assert name not in declared, f'launch argument {name} is declared twice'
            declared[name] = call
        return declared

    def lifecycle_node(self) -> ast.Call:
        """Return the one LifecycleNode call of the file."""
        nodes = calls(self.tree, 'LifecycleNode')
        assert len(nodes) == 1, f'expected one LifecycleNode, found {len(nodes)}'
        return nodes[0]


def setup_call() -> ast.Call:
    """Return the ``setup(...)`` call of setup.py."""
    tree = ast.parse(SETUP_PY.read_text(), filename=str(SETUP_PY))
    found = calls(tree, 'setup')
    assert len(found) == 1
    return found[0]


def setup_helpers() -> dict:
    """Run setup.py's imports, constants and helper functions, but not setup() itself."""
    tree = ast.parse(SETUP_PY.read_text(), filename=str(SETUP_PY))
    body = [node for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.FunctionDef))
            and not (isinstance(node, ast.ImportFrom) and node.module == 'setuptools')]
    namespace = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(SETUP_PY), 'exec'), namespace)
    return namespace


def installed_data_files(monkeypatch) -> dict:
    """Return ``{source file: install directory}`` for setup.py's ``shared(...)`` entries."""
    helpers = setup_helpers()
    monkeypatch.chdir(PACKAGE_ROOT)  # setup.py globs relative to its own directory
    installed = {}
    for call in calls(keyword(setup_call(), 'data_files'), 'shared'):
        directory, pattern = (ast.literal_eval(arg) for arg in call.args)
        target, sources = helpers['shared'](directory, pattern)
        for source in sources:
            installed[pathlib.PurePosixPath(source).as_posix()] = target
    return installed


def console_scripts() -> dict:
    """Return setup.py's console_scripts as ``{name: 'module:function'}``."""
    entry_points = ast.literal_eval(keyword(setup_call(), 'entry_points'))
    scripts = {}
    for entry in entry_points.get('console_scripts', []):
        match = ENTRY_POINT.match(entry)
        assert match, f'malformed console_scripts entry {entry!r}'
        scripts[match['name']] = f'{match["module"]}:{match["function"]}'
    return scripts


def load_params_file() -> dict:
    """Return the ``ros__parameters`` of config/tracker.yaml."""
    document = yaml.safe_load(PARAMS_FILE.read_text())
    assert list(document) == ['/**'], 'the parameters must apply to any node name: /**'
    assert list(document['/**']) == ['ros__parameters']
    return document['/**']['ros__parameters']


# -- the launch file -------------------------------------------------------------------------

def test_launch_file_starts_the_tracker_lifecycle_node():
    """The node is a LifecycleNode of detrack_ros/tracker_node named tracker, on screen."""
    launch = LaunchFile()
    node = launch.lifecycle_node()
    assert launch.constant(keyword(node, 'package')) == 'detrack_ros'
    assert launch.constant(keyword(node, 'executable')) == 'tracker_node'
    assert launch.constant(keyword(node, 'name')) == 'tracker'
    assert launch.launch_configurations(keyword(node, 'namespace')) == {'namespace'}
    assert launch.constant(keyword(node, 'output')) == 'screen'
    assert launch.constant(keyword(node, 'emulate_tty')) is True
    functions = [n.name for n in launch.tree.body if isinstance(n, ast.FunctionDef)]
    assert 'generate_launch_description' in functions


def test_tracker_node_is_a_console_script():
    """The executable the launch file starts is installed by setup.py's console_scripts."""
    launch = LaunchFile()
    executable = launch.constant(keyword(launch.lifecycle_node(), 'executable'))
    scripts = console_scripts()
    assert scripts.get(executable) == 'detrack_ros.tracker_node_entry:main', (
        'setup.py needs the console_scripts entry '
        f"'{executable} = detrack_ros.tracker_node_entry:main' (has {sorted(scripts)})")


@pytest.mark.slow
def test_every_console_script_is_installed_and_answers_help():
    """Each console script is an executable of the built package that prints its help."""
    packages = pytest.importorskip('ament_index_python.packages',
                                   reason='ament_index_python (a ROS environment) not importable')
    try:
        executables = pathlib.Path(packages.get_package_prefix('detrack_ros')) / 'lib' / \
            'detrack_ros'
    except packages.PackageNotFoundError:
        pytest.skip('detrack_ros is not built and sourced (make build; source the workspace)')
    for name in sorted(console_scripts()):
        path = executables / name
        assert path.is_file() and os.access(path, os.X_OK), f'{path} is not installed'
        if name in ('tracker_node', 'select_target'):
            continue  # ROS executables: --help is a ROS argument, tested by their own tests
        result = subprocess.run([str(path), '--help'], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0 and 'usage' in result.stdout, (name, result.stderr)


def test_launch_arguments_are_the_documented_ones():
    """The declared arguments are exactly the five documented, and every one is used."""
    launch = LaunchFile()
    declared = launch.declared_arguments()
    assert set(declared) == LAUNCH_ARGUMENTS
    used = launch.launch_configurations(launch.lifecycle_node())
    assert used == LAUNCH_ARGUMENTS, 'every argument is used by the node, no undeclared one'
    for name, call in declared.items():
        assert launch.constant(keyword(call, 'description')).strip(), f'{name}: no description'
    assert launch.constant(keyword(declared['namespace'], 'default_value')) == ''
    assert launch.constant(keyword(declared['image'], 'default_value')) == 'image'


def test_parameter_arguments_name_real_parameters_with_their_defaults():
    """The device and model_path arguments set those parameters, defaulting to the spec's."""
    launch = LaunchFile()
    declared = launch.declared_arguments()
    parameter_arguments = set(declared) - NON_PARAMETER_ARGUMENTS
    assert parameter_arguments == {'device', 'model_path'}
    assert parameter_arguments <= set(NAMES)
    parameters = launch.resolve(keyword(launch.lifecycle_node(), 'parameters'))
    assert isinstance(parameters, ast.List)
    # First the file, then the arguments, so that the arguments override the file.
    assert launch.launch_configurations(parameters.elts[0]) == {'params_file'}
    overrides = [element for element in parameters.elts[1:] if isinstance(element, ast.Dict)]
    assert len(overrides) == 1
    keys = [launch.constant(key) for key in overrides[0].keys]
    assert set(keys) == parameter_arguments
    for key, value in zip(keys, overrides[0].values):
        assert key in SPECS, f'{key} is no parameter of the tracker node'
        assert launch.launch_configurations(value) == {key}, f'{key} is set from another arg'
        default = launch.constant(keyword(declared[key], 'default_value'))
        assert default == SPECS[key].default, f'launch argument {key} default differs'
        assert SPECS[key].check(default) is None
        if isinstance(SPECS[key].default, str):
            # A bare LaunchConfiguration is read as YAML ('' becomes null): keep it a string.
            assert call_name(value) == 'ParameterValue'
            assert ast.unparse(keyword(value, 'value_type')) == 'str'


def test_image_remappings_follow_the_image_argument():
    """Remap image to $(image) and image/compressed to $(image)/compressed."""
    launch = LaunchFile()
    remappings = launch.resolve(keyword(launch.lifecycle_node(), 'remappings'))
    assert isinstance(remappings, ast.List)
    pairs = {}
    for pair in remappings.elts:
        assert isinstance(pair, ast.Tuple) and len(pair.elts) == 2
        pairs[launch.constant(pair.elts[0])] = launch.resolve(pair.elts[1])
    assert set(pairs) == {'image', 'image/compressed'}
    assert launch.launch_configurations(pairs['image']) == {'image'}
    compressed = pairs['image/compressed']
    assert isinstance(compressed, ast.List) and len(compressed.elts) == 2
    assert launch.launch_configurations(compressed.elts[0]) == {'image'}
    assert launch.constant(compressed.elts[1]) == '/compressed'


def test_default_params_file_is_the_installed_config(monkeypatch):
    """The default params_file is <share>/config/tracker.yaml, and setup.py installs it."""
    launch = LaunchFile()
    default = launch.resolve(keyword(launch.declared_arguments()['params_file'],
                                     'default_value'))
    assert call_name(default) == 'join', ast.unparse(default)
    share, *parts = default.args
    assert call_name(share) == 'get_package_share_directory'
    assert launch.constant(share.args[0]) == 'detrack_ros'
    relative = '/'.join(launch.constant(part) for part in parts)
    assert relative == 'config/tracker.yaml'
    assert (PACKAGE_ROOT / relative).is_file()

    installed = installed_data_files(monkeypatch)
    assert installed.get('config/tracker.yaml') == 'share/detrack_ros/config'
    assert installed.get('launch/tracker.launch.py') == 'share/detrack_ros/launch'


def test_launch_file_builds_a_launch_description(monkeypatch):
    """Where launch_ros is installed, generate_launch_description() returns the node."""
    pytest.importorskip('launch', reason='needs launch (the ROS 2 launch packages; no PyPI '
                                         'wheel)')
    pytest.importorskip('launch_ros', reason='needs launch_ros (the ROS 2 launch packages; no '
                                             'PyPI wheel)')
    import ament_index_python.packages
    from launch import LaunchContext, LaunchDescription
    from launch.utilities import perform_substitutions
    from launch_ros.actions import LifecycleNode

    # The source tree has the install's layout (config/, launch/); use it whether or not the
    # package is installed, so that the test checks this checkout's files.
    monkeypatch.setattr(ament_index_python.packages, 'get_package_share_directory',
                        lambda package: str(PACKAGE_ROOT))
    spec = importlib.util.spec_from_file_location('tracker_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()

    assert isinstance(description, LaunchDescription)
    nodes = [entity for entity in description.entities if isinstance(entity, LifecycleNode)]
    assert len(nodes) == 1
    assert nodes[0].node_package == 'detrack_ros'
    assert nodes[0].node_executable == 'tracker_node'
    context = LaunchContext()
    defaults = {argument.name: perform_substitutions(context, argument.default_value)
                for argument in description.get_launch_arguments()}
    assert set(defaults) == LAUNCH_ARGUMENTS
    assert pathlib.Path(defaults['params_file']) == PARAMS_FILE
    assert defaults['device'] == SPECS['device'].default
    assert defaults['model_path'] == SPECS['model_path'].default


# -- the parameters file ---------------------------------------------------------------------

def test_params_file_lists_every_parameter_with_its_default():
    """config/tracker.yaml holds each parameter once, with the default and its exact type."""
    values = load_params_file()
    assert set(values) == set(NAMES), (
        f'missing: {sorted(set(NAMES) - set(values))}, '
        f'unknown: {sorted(set(values) - set(NAMES))}')
    for name, value in values.items():
        default = SPECS[name].default
        assert type(value) is type(default), (
            f'{name}: {value!r} is {type(value).__name__}, the default is '
            f'{type(default).__name__} (write 0.0, not 0, for a double)')
        assert value == default, f'{name}: {value!r} != default {default!r}'


def test_params_file_values_are_in_range():
    """Each value lies in its parameter's range and among its choices."""
    for name, value in load_params_file().items():
        spec = SPECS[name]
        if spec.integer_range is not None:
            assert spec.integer_range[0] <= value <= spec.integer_range[1], name
        if spec.float_range is not None:
            assert spec.float_range[0] <= value <= spec.float_range[1], name
        if spec.choices is not None:
            assert value in spec.choices, name
        assert spec.check(value) is None, name


def test_params_file_loads_in_a_namespaced_node_with_the_declared_types():
    """The rcl YAML parser gives a namespaced 'tracker' node every value, typed as declared."""
    context = rclpy.Context()
    rclpy.init(args=['test_launch_config', '--ros-args', '--params-file', str(PARAMS_FILE)],
               context=context)
    try:
        # What the file gives a node: the parameters it declares from the overrides alone.
        node = Node('tracker', namespace='/robot1/camera', context=context,
                    automatically_declare_parameters_from_overrides=True)
        try:
            for name in NAMES:
                assert node.has_parameter(name), f'{name} not applied by /**'
                value = node.get_parameter(name).value
                assert type(value) is type(SPECS[name].default), name
                assert value == SPECS[name].default, name
        finally:
            node.destroy_node()
        # The declarations the tracker makes (types, ranges, read-only) accept the file.
        node = Node('tracker', context=context)
        try:
            for spec in PARAMETERS:
                parameter = node.declare_parameter(spec.name, spec.default, spec.descriptor())
                assert parameter.value == spec.default
        finally:
            node.destroy_node()
    finally:
        context.try_shutdown()


# -- parameters.py itself --------------------------------------------------------------------

def test_parameter_table_is_consistent():
    """Names are unique ROS names; SPECS and NAMES index PARAMETERS in order."""
    names = [spec.name for spec in PARAMETERS]
    assert len(names) == len(set(names))
    assert tuple(names) == NAMES
    assert list(SPECS) == names and all(SPECS[spec.name] is spec for spec in PARAMETERS)
    for name in names:
        assert re.fullmatch(r'[a-z][a-z0-9_]*', name), name


@pytest.mark.parametrize('spec', PARAMETERS, ids=lambda spec: spec.name)
def test_parameter_default_satisfies_its_own_rules(spec):
    """Each default has a ROS type, lies in its range and choices, and passes check()."""
    assert type(spec.default) in PYTHON_TYPES
    assert isinstance(spec.description, str) and spec.description.strip()
    if spec.integer_range is not None:
        assert type(spec.default) is int
        low, high = spec.integer_range
        assert low <= spec.default <= high
    if spec.float_range is not None:
        assert type(spec.default) is float and math.isfinite(spec.default)
        low, high = spec.float_range
        assert low <= spec.default <= high
    if spec.choices is not None:
        assert type(spec.default) is str
        assert spec.default in spec.choices
    assert spec.check(spec.default) is None


@pytest.mark.parametrize('spec', PARAMETERS, ids=lambda spec: spec.name)
def test_parameter_descriptor_matches_the_spec(spec):
    """descriptor() carries the name, type, description, read-only flag and range."""
    descriptor = spec.descriptor()
    assert isinstance(descriptor, ParameterDescriptor)
    assert descriptor.name == spec.name
    assert descriptor.type == PYTHON_TYPES[type(spec.default)]
    assert descriptor.description == spec.description
    assert descriptor.read_only is spec.read_only
    if spec.integer_range is not None:
        (integer_range,) = descriptor.integer_range
        assert (integer_range.from_value, integer_range.to_value) == spec.integer_range
    else:
        assert len(descriptor.integer_range) == 0
    if spec.float_range is not None:
        (float_range,) = descriptor.floating_point_range
        assert (float_range.from_value, float_range.to_value) == spec.float_range
    else:
        assert len(descriptor.floating_point_range) == 0


def test_device_and_choices_are_checked():
    """check() refuses a device it cannot parse and a string outside the choices."""
    assert SPECS['device'].check('cuda:1') is None
    assert 'device' in SPECS['device'].check('gpu')
    assert 'backend' in SPECS['backend'].check('tensorrt')
