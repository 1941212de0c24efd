"""pep257 (pydocstyle) over the package's Python code with the ament conventions."""

from ament_pep257.main import main
from lint_paths import python_paths
import pytest


@pytest.mark.slow
@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    """Every docstring in the package follows the ament pep257 conventions."""
    rc = main(argv=python_paths())
    assert rc == 0, 'Found code style errors / warnings'
