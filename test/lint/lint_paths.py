"""The source trees the linters cover (never the virtual environment or build output)."""

import pathlib
from typing import List

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]
LINTED = ('detrack_model', 'detrack_ros', 'launch', 'test', 'tools', 'training', 'setup.py')


def python_paths() -> List[str]:
    """Existing files and directories of the package that hold Python code."""
    return [str(PACKAGE_ROOT / name) for name in LINTED if (PACKAGE_ROOT / name).exists()]
