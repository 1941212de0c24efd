"""
Hostile but well-formed inputs, built the way an attacker or a broken driver would send them.

Each builder starts from a real encoded image or bundle and changes only what the case needs,
so the input passes every check but the one under test.
"""

import pathlib
import shutil

from tools.bench_hostile_input import jpeg_bomb, png_bomb  # noqa: F401 - one definition


def copy_bundle(source: pathlib.Path, directory: pathlib.Path,
                stem: str = 'model') -> pathlib.Path:
    """Copy a bundle's two files into ``directory`` under ``stem``; return the stem path."""
    target = directory / stem
    for suffix in ('.safetensors', '.yaml'):
        shutil.copyfile(source.with_name(source.name + suffix),
                        target.with_name(target.name + suffix))
    return target


ALIAS_BOMB = '\n'.join(
    ['format: detrack-bundle/1', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    + [f'a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * 10) + ']' for i in range(1, 9)]
    + ['model: {name: *a8}']) + '\n'
"""A bundle config of under 1 kB whose values expand to 10**9 strings (billion laughs)."""
