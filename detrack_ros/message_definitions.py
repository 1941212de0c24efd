"""
ROS 2 message definitions as rosbag2 stores them in an MCAP schema, built from ``.msg`` files.

An MCAP schema of encoding ``ros2msg`` holds the message's own ``.msg`` text followed by the
text of every message type it uses, each after a line of 80 ``=`` and a ``MSG: pkg/Name`` line.
The ``.msg`` files are looked up under ``<prefix>/share/<pkg>/msg/`` for every prefix of
``AMENT_PREFIX_PATH`` and this Python environment's own prefix (where the ROS 2 wheels put
them), then in the source tree's ``interfaces/``. No ROS import is needed.
"""

import functools
import os
import pathlib
import re
import sys
from typing import List, Optional, Sequence, Tuple

SEPARATOR = '=' * 80
PRIMITIVE_TYPES = frozenset((
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32',
    'uint32', 'int64', 'uint64', 'string', 'wstring'))
_SOURCE_INTERFACES = pathlib.Path(__file__).resolve().parents[1] / 'interfaces'


class MessageDefinitionError(LookupError):
    """A message type whose ``.msg`` file is not found or cannot be read (the text says why)."""


def split_type(name: str) -> Tuple[str, str]:
    """Return the package and the message name of ``pkg/msg/Name`` or ``pkg/Name``."""
    parts = name.strip().split('/')
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != 'msg') \
            or not all(parts):
        raise MessageDefinitionError(f'{name!r} is not a message type name (pkg/msg/Name)')
    return parts[0], parts[-1]


def search_roots() -> List[pathlib.Path]:
    """Return the directories holding ``<pkg>/msg/<Name>.msg``, in lookup order."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    roots = [pathlib.Path(prefix) / 'share' for prefix in prefixes]
    roots.append(_SOURCE_INTERFACES)
    return list(dict.fromkeys(roots))


def _find(package: str, name: str, roots: Sequence[pathlib.Path]) -> pathlib.Path:
    for root in roots:
        path = root / package / 'msg' / f'{name}.msg'
        if path.is_file():
            return path
    raise MessageDefinitionError(
        f'no definition of {package}/msg/{name}: {package}/msg/{name}.msg is in none of '
        f'{", ".join(str(root) for root in roots)} (source a ROS 2 environment that has '
        f'{package})')


def used_types(text: str, package: str) -> List[Tuple[str, str]]:
    """Return the message types the fields of a ``.msg`` text use, in order of appearance."""
    used = []
    for line in text.splitlines():
        words = line.split('#', 1)[0].split()
        if len(words) < 2:
            continue
        field_type = re.sub(r'\[[^\]]*\]$', '', words[0]).split('<=', 1)[0]
        if field_type in PRIMITIVE_TYPES:
            continue
        if '/' in field_type:
            used.append(split_type(field_type))
        elif field_type == 'Header':
            used.append(('std_msgs', 'Header'))
        else:
            used.append((package, field_type))
    return used


@functools.lru_cache(maxsize=None)
def _definition(type_name: str, roots: Tuple[pathlib.Path, ...]) -> str:
    package, name = split_type(type_name)
    texts: List[str] = []
    seen = {(package, name)}
    pending = [(package, name)]
    while pending:
        current = pending.pop(0)
        path = _find(*current, roots)
        try:
            text = path.read_text(encoding='utf-8')
        except (OSError, UnicodeDecodeError) as error:
            raise MessageDefinitionError(f'cannot read {path}: {error}') from None
        texts.append(text.rstrip('\n') if not texts else
                     f'{SEPARATOR}\nMSG: {current[0]}/{current[1]}\n{text.rstrip()}')
        for used in used_types(text, current[0]):
            if used not in seen:
                seen.add(used)
                pending.append(used)
    return '\n'.join(texts) + '\n'


def message_definition(type_name: str,
                       roots: Optional[Sequence[pathlib.Path]] = None) -> str:
    """
    Return the full ``ros2msg`` schema text of ``type_name`` (``pkg/msg/Name``).

    Raise :class:`MessageDefinitionError` naming the first ``.msg`` file not found.
    """
    return _definition(type_name, tuple(search_roots() if roots is None else roots))
