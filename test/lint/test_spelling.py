"""
Our identifiers are spelt in British English: centre, normalise, colour.

Every Python file git knows (tracked, or new and not ignored) is read with :mod:`tokenize`;
only NAME tokens count, so strings and comments (topic names, message layouts, toolkit
quotes) are free. A name containing ``center``, ``color`` or ``normaliz`` in any case fails,
named by file and line, unless it is another project's name listed below with the reason.
"""

import io
import keyword
import pathlib
import re
import tokenize
from typing import Dict, Iterator, List, Optional, Set, Tuple

from lint_paths import PACKAGE_ROOT as ROOT, python_paths
import pytest

AMERICAN = re.compile('center|color|normaliz', re.IGNORECASE)

# Names other projects spell, allowed wherever they appear.
EXTERNAL_NAMES: Dict[str, str] = {
    'centernet_focal_loss': "CenterNet's focal loss: CenterNet is the paper's name",
    'test_centernet_focal_loss_prefers_the_heatmap': 'the CenterNet loss, by its name',
}

# Attributes of other projects' objects: the name before the dot -> the attributes allowed
# after it (None: any attribute).
EXTERNAL_ATTRIBUTES: Dict[str, Optional[Set[str]]] = {
    # OpenCV's functions and constants: cv2.cvtColor, cv2.COLOR_*, cv2.IMREAD_(ANY)COLOR.
    'cv2': None,
    # vision_msgs BoundingBox2D / BoundingBox3D field: bbox.center.position, .theta.
    'bbox': {'center'},
}

# Keyword arguments of other projects' callables: (callee, keyword) -> what the callee is.
EXTERNAL_KEYWORDS: Dict[Tuple[str, str], str] = {
    ('Rectangle', 'color'): 'matplotlib.patches.Rectangle',
    ('axvline', 'color'): "matplotlib's Axes.axvline",
    ('quantize', 'colors'): "Pillow's Image.quantize",
    ('BoundingBox2D', 'center'): 'vision_msgs message field',
    ('BoundingBox3D', 'center'): 'vision_msgs message field',
}

# Names allowed in one file only.
FILE_NAMES: Dict[str, Dict[str, str]] = {
    'test/tracking/test_evaluation_metrics.py': {
        # The GOT-10k toolkit (got10k.utils.metrics) our metrics are checked against.
        'center_error': "the toolkit's metrics.center_error",
        'normalized_center_error': "the toolkit's metrics.normalized_center_error",
        '_toolkit_normalized_center_error': "the toolkit's function, under its name",
        'centers1': "the toolkit's formula, copied verbatim",
        'centers2': "the toolkit's formula, copied verbatim",
    },
    # OSTrack's conv head: the attribute ``center`` names the state-dict keys
    # ``box_head.center.*`` of saved conv-head checkpoints.
    'detrack_model/modeling/conv_head.py': {
        'center': 'state-dict key box_head.center.* of saved checkpoints',
    },
    'test/training/test_losses.py': {
        'center': 'box_head.center, the state-dict key (conv_head.py)',
    },
}

SKIPPED = (tokenize.NL, tokenize.COMMENT)


def python_files() -> List[str]:
    """Return the Python files the linters cover (lint_paths), relative to the root."""
    files = set()
    for path in map(pathlib.Path, python_paths()):
        files.update([path] if path.is_file() else path.rglob('*.py'))
    return sorted(str(path.relative_to(ROOT)) for path in files
                  if '__pycache__' not in path.parts)


def american_names(source: str) -> Iterator[Tuple[int, str, str]]:
    """
    Yield (line, name, context) for every NAME token of ``source`` that an allow-list misses.

    ``context`` is the name before the dot of an attribute, or the callee of a keyword
    argument, or ''. File-specific names are the caller's to filter.
    """
    tokens = [token for token in tokenize.generate_tokens(io.StringIO(source).readline)
              if token.type not in SKIPPED]
    # One entry per open bracket: the callee of a call, 'def' for a signature, else None.
    brackets: List[Optional[str]] = []
    for index, token in enumerate(tokens):
        before = tokens[index - 1] if index > 0 else None
        if token.type == tokenize.OP and token.string in ('(', '[', '{'):
            brackets.append(_callee(tokens, index) if token.string == '(' else None)
        elif token.type == tokenize.OP and token.string in (')', ']', '}'):
            if brackets:
                brackets.pop()
        if token.type != tokenize.NAME or not AMERICAN.search(token.string):
            continue
        if token.string in EXTERNAL_NAMES:
            continue
        if before is not None and before.type == tokenize.OP and before.string == '.':
            owner = tokens[index - 2].string if index >= 2 else ''
            allowed = EXTERNAL_ATTRIBUTES.get(owner, set())
            if owner in EXTERNAL_ATTRIBUTES and (allowed is None or token.string in allowed):
                continue
            yield token.start[0], token.string, owner
            continue
        after = tokens[index + 1] if index + 1 < len(tokens) else None
        keyword_argument = (after is not None and after.string == '=' and brackets
                            and before is not None and before.string in ('(', ','))
        callee = brackets[-1] if keyword_argument else None
        if callee is not None and (callee, token.string) in EXTERNAL_KEYWORDS:
            continue
        yield token.start[0], token.string, callee or ''


def _callee(tokens: List[tokenize.TokenInfo], index: int) -> Optional[str]:
    """Return the name called by the '(' at ``index``, 'def' for a signature, else None."""
    if index == 0 or tokens[index - 1].type != tokenize.NAME:
        return None
    name = tokens[index - 1].string
    if keyword.iskeyword(name):
        return None
    if index >= 2 and tokens[index - 2].string in ('def', 'class'):
        return 'def'
    return name


def test_identifiers_are_spelt_british():
    """No NAME token of our Python files spells center, color or normaliz(e) the US way."""
    found = []
    for path in python_files():
        source = (ROOT / path).read_text(encoding='utf-8')
        kept = FILE_NAMES.get(path, {})
        for line, name, _ in american_names(source):
            if name not in kept:
                found.append(f'{path}:{line}: {name}')
    assert not found, ('American spelling in identifiers (use centre, colour, normalise; '
                       'or list a name of another project in test/lint/test_spelling.py):\n'
                       + '\n'.join(found))


def test_file_allow_list_is_current():
    """Every file-specific allowed name still occurs there, so the list does not go stale."""
    files = set(python_files())
    stale = []
    for path, names in FILE_NAMES.items():
        if path not in files:
            stale.append(f'{path} (no such file)')
            continue
        source = (ROOT / path).read_text(encoding='utf-8')
        present = {name for _, name, _ in american_names(source)}
        stale.extend(f'{path}: {name}' for name in sorted(set(names) - present))
    assert not stale, 'allowed names that no longer occur:\n' + '\n'.join(stale)


@pytest.mark.parametrize('source, expected', [
    ('center = 1\n', ['center']),
    ('def f(color=None):\n    pass\n', ['color']),
    ('x.center_error(1)\n', ['center_error']),
    ('f(center=1)\n', ['center']),
    ("s = 'center color' # normalize\n", []),
    ('cv2.cvtColor(a, cv2.COLOR_RGB2BGR)\n', []),
    ('msg.bbox.center.position.x = 1\n', []),
    ('Rectangle((0, 0), 1, 1,\n          color=colour)\n', []),
    ('BoundingBox2D(center=Pose2D())\n', []),
    ('Sprite(center=(1, 2))\n', ['center']),
    ('other.center\n', ['center']),
    ('centernet_focal_loss(a, b)\n', []),
])
def test_scanner(source, expected):
    """The scanner flags our own names and lets strings, comments and external names pass."""
    flagged = [name for _, name, _ in american_names(source)]
    assert flagged == expected
