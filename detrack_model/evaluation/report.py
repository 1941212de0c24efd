"""
Comparison tables and report directories for the scores of several trackers.

A report directory holds ``table.md`` (the Markdown comparison table), ``scores.json`` (every
tracker's :meth:`~detrack_model.evaluation.metrics.Scores.to_dict`) and the success, precision
and normalised precision plots as PNG files.
"""

import json
import math
import pathlib
from typing import Dict, List, Mapping, Tuple, Union

from detrack_model.evaluation.metrics import FRAME_SELECTION, PROTOCOLS, Scores
from detrack_model.evaluation.plots import (norm_precision_plot, precision_plot,
                                            rank_trackers, success_plot)

PathLike = Union[str, pathlib.Path]

# Column header, Scores attribute, decimals.
COLUMNS: Tuple[Tuple[str, str, int], ...] = (
    ('AO', 'ao', 3),
    ('SR0.5', 'sr50', 3),
    ('SR0.75', 'sr75', 3),
    ('AUC', 'success_auc', 3),
    ('P@20', 'precision20', 3),
    ('NP', 'norm_precision', 3),
    ('FPS', 'fps', 1),
)

_NOTES = ('AO: average overlap. SR0.5 / SR0.75: fraction of frames with IoU above 0.5 / 0.75. '
          'AUC: mean of the success curve. P@20: precision at 20 px. NP: normalised precision, '
          'the mean of its curve over [0, 0.5] as the LaSOT toolkit scores it. '
          'Best value per column in bold.')


def _checked(scores_by_tracker: Mapping[str, Scores], protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f'unknown protocol {protocol!r}; expected one of {", ".join(PROTOCOLS)}')
    if not scores_by_tracker:
        raise ValueError('no trackers to report')
    other = sorted(name for name, scores in scores_by_tracker.items()
                   if scores.protocol != protocol)
    if other:
        raise ValueError(f'scores not computed under the {protocol} protocol: {", ".join(other)}')


def _cell(value: float, decimals: int) -> str:
    return f'{value:.{decimals}f}' if math.isfinite(value) else 'n/a'


def comparison_table(scores_by_tracker: Mapping[str, Scores], protocol: str) -> str:
    """
    Return a Markdown table comparing trackers under ``protocol``, best tracker first.

    Columns: tracker, AO, SR0.5, SR0.75, AUC, P@20, NP, FPS. Rows are ordered by the protocol's
    ranking score (AO for GOT-10k, success AUC otherwise). In each column the best value as
    shown (highest; ties all) is bold; undefined values are shown as ``n/a``.
    """
    _checked(scores_by_tracker, protocol)
    rows = rank_trackers(scores_by_tracker, Scores.primary)
    best: Dict[str, float] = {}
    for _, attribute, decimals in COLUMNS:
        shown = [round(getattr(scores, attribute), decimals) for _, scores in rows]
        shown = [value for value in shown if math.isfinite(value)]
        best[attribute] = max(shown) if shown else math.nan
    lines: List[str] = [
        '| Tracker | ' + ' | '.join(header for header, _, _ in COLUMNS) + ' |',
        '|:--|' + '--:|' * len(COLUMNS),
    ]
    for name, scores in rows:
        cells = [name.replace('|', '\\|')]
        for _, attribute, decimals in COLUMNS:
            value = getattr(scores, attribute)
            cell = _cell(value, decimals)
            if math.isfinite(value) and round(value, decimals) == best[attribute]:
                cell = f'**{cell}**'
            cells.append(cell)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def write_report(scores_by_tracker: Mapping[str, Scores], directory: PathLike,
                 protocol: str) -> Dict[str, pathlib.Path]:
    """
    Write ``table.md``, ``scores.json`` and the three plots for ``protocol`` into ``directory``.

    The directory is created if needed. Return the written files by kind: ``table``,
    ``scores``, ``success``, ``precision`` and ``norm_precision``.
    """
    _checked(scores_by_tracker, protocol)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        'table': directory / 'table.md',
        'scores': directory / 'scores.json',
        'success': directory / 'success_plot.png',
        'precision': directory / 'precision_plot.png',
        'norm_precision': directory / 'norm_precision_plot.png',
    }
    table = comparison_table(scores_by_tracker, protocol)
    paths['table'].write_text(
        f'# Tracker comparison ({protocol})\n\n{FRAME_SELECTION[protocol]}.\n\n{table}\n'
        f'{_NOTES}\n', encoding='utf-8')
    document = {'protocol': protocol,
                'trackers': {name: scores.to_dict() for name, scores in scores_by_tracker.items()}}
    paths['scores'].write_text(json.dumps(document, indent=2, allow_nan=False) + '\n',
                               encoding='utf-8')
    success_plot(scores_by_tracker, paths['success'])
    precision_plot(scores_by_tracker, paths['precision'])
    norm_precision_plot(scores_by_tracker, paths['norm_precision'])
    return paths
