"""
Write the tracker node's topic and parameter tables into README.md, between marker comments.

    python -m tools.make_interface_docs            # rewrite the tables
    python -m tools.make_interface_docs --check    # exit 1 if README.md is not up to date

The topics and services come from :mod:`detrack_ros.interface`, the parameters from
:data:`detrack_ros.parameters.PARAMETERS`; the prose around the tables is the README's own.
``test/ros/test_interface_docs.py`` fails when the README differs from what this writes.
"""

import argparse
import pathlib
import re
import sys
from typing import Any, Dict, List, Optional, Sequence

from detrack_ros.interface import SERVICES, Topic, TOPICS
from detrack_ros.parameters import PARAMETERS, ParameterSpec

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / 'README.md'
COMMAND = '.venv/bin/python -m tools.make_interface_docs'
# Each generated block sits between these two lines; the names are the blocks'.
BEGIN = '<!-- interface {}: begin (written by python -m tools.make_interface_docs) -->'
END = '<!-- interface {}: end -->'


def topic_block(topics: Sequence[Topic] = TOPICS) -> str:
    """Return the topic table and the services line, as markdown."""
    lines = ['| topic (relative to the namespace) | in/out | type | |', '|:--|:--|:--|:--|']
    for topic in topics:
        lines.append(_row(f'`{topic.name}`', topic.direction, f'`{topic.type_name}`',
                          _condition(topic) + topic.description))
    services = '; '.join(f'`{service.name}` (`{service.type_name}`): {service.description}'
                         for service in SERVICES)
    return '\n'.join(lines) + f'\n\nServices (relative): {services}.'


def parameter_block(parameters: Sequence[ParameterSpec] = PARAMETERS) -> str:
    """Return the parameter table (name, default, read-only or not, range, description)."""
    lines = ['| parameter | default | set | range | |', '|:--|:--|:--|:--|:--|']
    for spec in parameters:
        lines.append(_row(f'`{spec.name}`', f'`{_value(spec.default)}`',
                          'at launch (read-only)' if spec.read_only else 'any time',
                          _range(spec), spec.description))
    return '\n'.join(lines)


def blocks() -> Dict[str, str]:
    """Return every generated block by its marker name."""
    return {'topics': topic_block(), 'parameters': parameter_block()}


def render(text: str) -> str:
    """Return ``text`` with each block between its markers replaced (ValueError: no markers)."""
    for name, body in blocks().items():
        begin, end = BEGIN.format(name), END.format(name)
        pattern = re.compile(re.escape(begin) + r'\n.*?' + re.escape(end), re.DOTALL)
        found = len(pattern.findall(text))
        if found != 1:
            raise ValueError(f'README.md needs the markers of block {name!r} exactly once, '
                             f'found {found}: {begin} ... {end}')
        # A function, so that backslashes in the tables are not read as group references.
        text = pattern.sub(lambda _: f'{begin}\n{body}\n{end}', text)
    return text


def stale(text: str) -> Optional[str]:
    """Return why ``text`` (the README) is not what this script writes, or None."""
    current = render(text)
    if current == text:
        return None
    changed = [name for name, body in blocks().items() if f'\n{body}\n' not in text]
    return (f'README.md: the generated {" and ".join(changed) or "interface"} table is out of '
            f'date with detrack_ros/interface.py / detrack_ros/parameters.py; run `{COMMAND}`')


def _row(*cells: str) -> str:
    return '| ' + ' | '.join(_cell(cell) for cell in cells) + ' |'


def _cell(text: str) -> str:
    """Escape ``text`` for a markdown table cell: pipes everywhere, '<' outside code spans."""
    parts = text.replace('|', '\\|').split('`')
    # Even parts lie outside code spans: there '<stem>' would be read as an HTML tag.
    return '`'.join(part if index % 2 else part.replace('<', '&lt;')
                    for index, part in enumerate(parts))


def _condition(topic: Topic) -> str:
    terms = [f'`{name}`' if value is True else f'`{name}: {_value(value)}`'
             for name, value in topic.when]
    return f'with {" and ".join(terms)}: ' if terms else ''


def _value(value: Any) -> str:
    """Return ``value`` as a parameters file writes it (floats keep their point)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value or "''"
    return repr(value)


def _range(spec: ParameterSpec) -> str:
    if spec.choices is not None:
        return ', '.join(spec.choices)
    bounds = spec.integer_range or spec.float_range
    if bounds is None:
        return ''
    return f'{bounds[0]:g} to {bounds[1]:g}' if spec.float_range else f'{bounds[0]} to {bounds[1]}'


def main(argv: Optional[List[str]] = None) -> int:
    """Rewrite the README's tables, or with ``--check`` only say whether they are current."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--check', action='store_true',
                        help='change nothing; exit 1 if README.md is not up to date')
    parser.add_argument('--readme', type=pathlib.Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding='utf-8')
    if args.check:
        reason = stale(text)
        print(reason or f'{args.readme}: up to date')
        return 1 if reason else 0
    args.readme.write_text(render(text), encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())
