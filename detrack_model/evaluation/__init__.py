"""
Tracking-benchmark evaluation: per-sequence results, toolkit-compatible scores, plots, tables.

:class:`SequenceResult` holds one tracker's output on one sequence; :func:`evaluate` scores a
list of them under the GOT-10k, OTB or LaSOT protocol; :func:`write_report` writes the
comparison table, the scores as JSON and the plots of several trackers.
"""

from detrack_model.evaluation.metrics import (centre_error, clamp_to_image, evaluate,
                                              FRAME_SELECTION, got10k_scores, lasot_scores,
                                              normalised_centre_error, otb_scores,
                                              precision_curve, PROTOCOLS, rect_iou, Scores,
                                              SequenceScores, success_curve)
from detrack_model.evaluation.plots import (norm_precision_plot, precision_plot, rank_trackers,
                                            success_plot)
from detrack_model.evaluation.report import comparison_table, write_report
from detrack_model.evaluation.results import SequenceResult

__all__ = [
    'centre_error', 'clamp_to_image', 'comparison_table', 'evaluate', 'FRAME_SELECTION',
    'got10k_scores', 'lasot_scores', 'norm_precision_plot', 'normalised_centre_error',
    'otb_scores', 'precision_curve', 'precision_plot', 'PROTOCOLS', 'rank_trackers', 'rect_iou',
    'Scores', 'SequenceResult', 'SequenceScores', 'success_curve', 'success_plot',
    'write_report',
]
