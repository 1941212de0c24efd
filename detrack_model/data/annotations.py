"""
Parsers for the small text files tracking datasets annotate with.

Every parser names the file and the 1-based line of the first thing it cannot read, so a
broken download is found from the error message alone.
"""

import os
import re
from typing import List, Sequence, Tuple, Union

from detrack_model.data.sequences import AnnotationError
import numpy as np

# Commas are the rule (GOT-10k, LaSOT, TrackingNet); tabs and spaces occur in older benchmarks.
_SEPARATORS = re.compile(r'[,\s]+')

NameList = Union[str, os.PathLike, Sequence[str]]


def _lines(path: str) -> List[str]:
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise AnnotationError(f'{path}: not a text file ({error})') from None
    except FileNotFoundError:
        # A sequence listed without its directory (a partial download or copy).
        raise AnnotationError(f'{path}: annotation file not found') from None
    except OSError as error:
        raise AnnotationError(f'{path}: cannot read ({error.strerror or error})') from None
    # Trailing blank lines are common and harmless; a blank line inside is not.
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _fields(line: str) -> List[str]:
    return [part for part in _SEPARATORS.split(line.strip()) if part]


def read_boxes(path: str) -> np.ndarray:
    """
    Read one x, y, w, h box per line into an (N, 4) float64 array.

    ``nan`` (any case) is accepted and means "unknown"; anything else that is not four numbers
    raises :class:`AnnotationError` naming the file and line.
    """
    return _number_rows(path, 4, 'x,y,w,h')[1]


def _number_rows(path: str, width: int, layout: str) -> Tuple[List[str], np.ndarray]:
    """Return the lines of ``path`` and their ``width`` numbers each, or name the bad line."""
    lines = _lines(path)
    rows = np.empty((len(lines), width), dtype=np.float64)
    for number, line in enumerate(lines):
        parts = _fields(line)
        try:
            if len(parts) != width:
                raise ValueError
            rows[number] = [float(part) for part in parts]
        except ValueError:
            raise AnnotationError(f'{path}:{number + 1}: expected {width} comma-separated '
                                  f'numbers {layout}, got {line.strip()!r}') from None
    return lines, rows


def read_flags(path: str, single_line: bool = False) -> np.ndarray:
    """
    Read integer per-frame labels into an (N,) int64 array.

    One value per line (GOT-10k's ``absence.label``, ``cover.label``) or, with
    ``single_line``, all values comma-separated on one line (LaSOT's ``full_occlusion.txt``).
    """
    lines = _lines(path)
    if single_line:
        if len(lines) > 1:
            raise AnnotationError(f'{path}:2: expected a single line of comma-separated labels')
        items = [(1, part) for part in _fields(lines[0])] if lines else []
    else:
        items = []
        for number, line in enumerate(lines):
            parts = _fields(line)
            if len(parts) != 1:
                raise AnnotationError(
                    f'{path}:{number + 1}: expected one integer label, got {line.strip()!r}')
            items.append((number + 1, parts[0]))
    values = np.empty(len(items), dtype=np.int64)
    for position, (number, text) in enumerate(items):
        try:
            values[position] = int(float(text))
        except ValueError:
            where = f'{path}:{number}' + (f' (value {position + 1})' if single_line else '')
            raise AnnotationError(f'{where}: expected an integer label, got {text!r}') from None
    return values


def read_frame_boxes(path: str, frames: int) -> np.ndarray:
    """
    Read ``frame,x,y,w,h`` lines (frames numbered from 1) into an (M, 5) float64 array.

    Column 0 comes back 0-based. Any number of boxes per frame, none for most; a line that is
    not five numbers, a frame outside 1..``frames`` or a box without area raises
    :class:`AnnotationError` naming the file and line.
    """
    lines, rows = _number_rows(path, 5, 'frame,x,y,w,h')
    for number, line in enumerate(lines):
        frame, box = rows[number, 0], rows[number, 1:]
        if not (frame.is_integer() and 1 <= frame <= frames and np.isfinite(box).all()
                and box[2] > 0 and box[3] > 0):
            raise AnnotationError(f'{path}:{number + 1}: expected a frame in 1..{frames} and '
                                  f'a box with positive width and height, got {line.strip()!r}')
    rows[:, 0] -= 1
    return rows


def check_length(path: str, values: np.ndarray, expected: int) -> np.ndarray:
    """Return ``values`` if it has one entry per frame; raise :class:`AnnotationError` if not."""
    if len(values) != expected:
        raise AnnotationError(
            f'{path}: {len(values)} labels but the sequence has {expected} annotated frames')
    return values


def read_name_list(names: NameList) -> List[str]:
    """
    Return sequence names from a list, or from a text file with one name per line.

    Blank lines and ``#`` comments in the file are skipped.
    """
    if isinstance(names, (str, os.PathLike)):
        with open(names, 'r', encoding='utf-8') as handle:
            lines = [line.split('#', 1)[0].strip() for line in handle]
        return [line for line in lines if line]
    return [str(name) for name in names]
