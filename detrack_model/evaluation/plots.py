"""
Success, precision and normalised precision plots of several trackers, written as PNG files.

The figures are drawn on a :class:`matplotlib.figure.Figure` with its own Agg canvas, so no
global backend is selected and pyplot's state is never touched. As in the OTB and GOT-10k
toolkits' plots, trackers are listed in the legend best first with their score in the label.
"""

import math
import pathlib
from typing import Callable, List, Mapping, Optional, Tuple, Union

from detrack_model.evaluation.metrics import Scores
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

PathLike = Union[str, pathlib.Path]

_LINE_STYLES = ('-', '--', '-.', ':')
_PROTOCOL_TITLES = {'got10k': 'GOT-10k', 'otb': 'OTB', 'lasot': 'LaSOT'}


def _protocol(scores_by_tracker: Mapping[str, Scores]) -> str:
    if not scores_by_tracker:
        raise ValueError('no trackers to plot')
    protocols = {scores.protocol for scores in scores_by_tracker.values()}
    if len(protocols) != 1:
        raise ValueError(f'scores of different protocols cannot share a plot: '
                         f'{", ".join(sorted(protocols))}')
    return protocols.pop()


def rank_trackers(scores_by_tracker: Mapping[str, Scores],
                  score: Callable[[Scores], float]) -> List[Tuple[str, Scores]]:
    """Return ``(tracker, scores)`` pairs best first by ``score``; NaN scores go last."""
    def key(item: Tuple[str, Scores]) -> Tuple[bool, float]:
        value = score(item[1])
        return (math.isnan(value), -value if not math.isnan(value) else 0.0)
    return sorted(scores_by_tracker.items(), key=key)


def _label(name: str, value: float) -> str:
    return f'{name}: [{value:.3f}]' if math.isfinite(value) else f'{name}: [n/a]'


def _curve_plot(scores_by_tracker: Mapping[str, Scores], path: PathLike, title: str,
                curve: Callable[[Scores], Tuple[np.ndarray, np.ndarray]],
                score: Callable[[Scores], float], xlabel: str, ylabel: str,
                legend_loc: str) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(6.0, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    xmax = 0.0
    for index, (name, scores) in enumerate(rank_trackers(scores_by_tracker, score)):
        thresholds, values = curve(scores)
        xmax = max(xmax, float(np.max(thresholds)))
        axes.plot(thresholds, values, _LINE_STYLES[(index // 10) % len(_LINE_STYLES)],
                  label=_label(name, score(scores)))
    axes.set(xlabel=xlabel, ylabel=ylabel, xlim=(0.0, xmax), ylim=(0.0, 1.0), title=title)
    axes.grid(True)
    axes.legend(loc=legend_loc, fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    return path


def success_plot(scores_by_tracker: Mapping[str, Scores], path: PathLike,
                 title: Optional[str] = None) -> pathlib.Path:
    """
    Write the success plots (success rate against overlap threshold) of trackers to ``path``.

    The legend ranks trackers by AO under GOT-10k (as its toolkit does) and by success AUC under
    OTB and LaSOT. All scores must come from the same protocol. Return the path written.
    """
    protocol = _protocol(scores_by_tracker)
    return _curve_plot(
        scores_by_tracker, path,
        title or f'Success plots on {_PROTOCOL_TITLES.get(protocol, protocol)}',
        lambda scores: (scores.success_thresholds, scores.success_curve), Scores.primary,
        'Overlap threshold', 'Success rate', 'lower left')


def precision_plot(scores_by_tracker: Mapping[str, Scores], path: PathLike,
                   title: Optional[str] = None) -> pathlib.Path:
    """
    Write the precision plots (precision against centre-error threshold) of trackers to ``path``.

    The legend ranks trackers by their precision at 20 pixels. All scores must come from the
    same protocol. Return the path written.
    """
    protocol = _protocol(scores_by_tracker)
    return _curve_plot(
        scores_by_tracker, path,
        title or f'Precision plots on {_PROTOCOL_TITLES.get(protocol, protocol)}',
        lambda scores: (scores.precision_thresholds, scores.precision_curve),
        lambda scores: scores.precision20,
        'Location error threshold (pixels)', 'Precision', 'lower right')


def norm_precision_plot(scores_by_tracker: Mapping[str, Scores], path: PathLike,
                        title: Optional[str] = None) -> pathlib.Path:
    """
    Write the normalised precision plots of trackers to ``path``.

    The x axis is the centre error normalised by the ground-truth size, on [0, 0.5]. The legend
    ranks trackers by the normalised precision score (the curve's mean, as the LaSOT toolkit
    scores it). All scores must come from the same protocol. Return the path written.
    """
    protocol = _protocol(scores_by_tracker)
    return _curve_plot(
        scores_by_tracker, path,
        title or f'Normalized precision plots on {_PROTOCOL_TITLES.get(protocol, protocol)}',
        lambda scores: (scores.norm_precision_thresholds, scores.norm_precision_curve),
        lambda scores: scores.norm_precision,
        'Normalized location error threshold', 'Normalized precision', 'lower right')
