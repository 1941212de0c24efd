"""
Point the ROS 2 wheels' CMake exports at this interpreter instead of their build machine.

The PyPI ROS 2 wheels are built under ``/opt/python/cp311-cp311`` and their exported CMake
files name that interpreter's include directory and NumPy's include directory. Building any
interface package (vision_msgs here) against them fails until those two paths name the
interpreter and NumPy of this virtual environment. Only files inside the environment are
touched, and a second run finds nothing left to rewrite.
"""

import argparse
import pathlib
import sys
import sysconfig

import numpy

BUILD_PREFIX = '/opt/python/cp311-cp311'
BUILD_PY_INCLUDE = BUILD_PREFIX + '/include/python3.11'
BUILD_NUMPY_INCLUDE = BUILD_PREFIX + '/lib/python3.11/site-packages/numpy/_core/include'


def rewrite(prefix: pathlib.Path) -> int:
    """Rewrite the hard-coded paths in ``prefix/share/**/*.cmake``; return files changed."""
    replacements = (
        (BUILD_NUMPY_INCLUDE, numpy.get_include()),
        (BUILD_PY_INCLUDE, sysconfig.get_paths()['include']),
    )
    changed = 0
    for path in (prefix / 'share').glob('**/*.cmake'):
        text = path.read_text(encoding='utf-8')
        if BUILD_PREFIX not in text:
            continue
        new = text
        for old, current in replacements:
            new = new.replace(old, current)
        if new != text:
            path.write_text(new, encoding='utf-8')
            changed += 1
    return changed


def main() -> int:
    """Command-line entry: rewrite under the given prefix (default: this interpreter's)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--prefix', type=pathlib.Path, default=pathlib.Path(sys.prefix))
    args = parser.parse_args()
    include = pathlib.Path(sysconfig.get_paths()['include'])
    if not (include / 'Python.h').is_file():
        print(f'error: Python headers not found in {include}; install the Python development '
              'package for this interpreter', file=sys.stderr)
        return 1
    changed = rewrite(args.prefix)
    print(f'fixed build paths in {changed} CMake file(s) under {args.prefix / "share"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
