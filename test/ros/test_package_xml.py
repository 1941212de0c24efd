"""package.xml files are valid format-3 manifests that declare what a ROS 2 install needs."""

import pathlib
import subprocess
import sys

from catkin_pkg.package import InvalidPackage, parse_package
import detrack_model
import detrack_ros
import pytest

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]

RUNTIME_DEPENDENCIES = {
    'rclpy', 'sensor_msgs', 'std_msgs', 'std_srvs', 'geometry_msgs', 'vision_msgs',
    'diagnostic_msgs', 'launch', 'launch_ros', 'python3-numpy', 'python3-opencv',
}
TEST_DEPENDENCIES = {'ament_flake8', 'ament_pep257', 'python3-pytest'}


def test_package_manifest_is_valid_format_3():
    """catkin_pkg parses and validates the manifest without warnings."""
    warnings = []
    package = parse_package(str(PACKAGE_ROOT / 'package.xml'), warnings=warnings)
    package.validate(warnings=warnings)
    assert warnings == []
    assert package.package_format == 3
    assert package.name == 'detrack_ros'
    assert package.get_build_type() == 'ament_python'


def test_package_manifest_declares_runtime_and_test_dependencies():
    """Declare everything the node and the tests import, so rosdep installs it."""
    package = parse_package(str(PACKAGE_ROOT / 'package.xml'))
    runtime = {dep.name for dep in package.exec_depends + package.run_depends}
    tests = {dep.name for dep in package.test_depends}
    assert RUNTIME_DEPENDENCIES <= runtime, RUNTIME_DEPENDENCIES - runtime
    assert TEST_DEPENDENCIES <= tests, TEST_DEPENDENCIES - tests


def test_manifest_setup_py_and_modules_agree():
    """Name and version are the same in package.xml, setup.py and the Python packages."""
    package = parse_package(str(PACKAGE_ROOT / 'package.xml'))
    result = subprocess.run([sys.executable, 'setup.py', '--name', '--version'],
                            cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split()[-2:] == [package.name, package.version]
    assert detrack_model.__version__ == package.version
    assert detrack_ros.__version__ == package.version


def test_interface_package_manifest_is_valid():
    """The bundled vision_msgs manifest is a valid ament_cmake interface package."""
    warnings = []
    package = parse_package(str(PACKAGE_ROOT / 'interfaces' / 'vision_msgs' / 'package.xml'),
                            warnings=warnings)
    package.validate(warnings=warnings)
    assert warnings == []
    assert (package.name, package.version) == ('vision_msgs', '4.1.1')
    assert package.get_build_type() == 'ament_cmake'
    assert 'rosidl_interface_packages' in {group.name for group in package.member_of_groups}


def test_invalid_manifest_is_rejected(tmp_path):
    """The validation above can fail: a manifest without a maintainer is refused."""
    broken = (PACKAGE_ROOT / 'package.xml').read_text()
    start = broken.index('<maintainer')
    end = broken.index('</maintainer>') + len('</maintainer>')
    (tmp_path / 'package.xml').write_text(broken[:start] + broken[end:])
    with pytest.raises(InvalidPackage):
        parse_package(str(tmp_path / 'package.xml'))
