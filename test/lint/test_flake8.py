"""flake8 over the package's Python code with the ament configuration (line length 99)."""

import pathlib

from ament_flake8.main import main_with_errors
from lint_paths import python_paths
import pytest


@pytest.mark.slow
@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    """Every Python file in the package passes ament_flake8."""
    paths = python_paths()
    assert any(pathlib.Path(p).name == 'setup.py' for p in paths)
    rc, errors = main_with_errors(argv=paths)
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
