"""
One tracker's output on one sequence, and its files in the GOT-10k toolkit's result format.

A run writes ``<results>/<tracker>/<seq>/<seq>_001.txt`` (one ``x,y,w,h`` line per frame) and
``<seq>_time.txt`` (seconds per frame), so its results can be scored by the official toolkits
as well as by :mod:`detrack_model.evaluation.metrics`. A tracker that says when it has lost
the target also gets ``<seq>_lost.txt`` (0 or 1 per frame), which the toolkits ignore and the
recovery measures (:mod:`detrack_model.evaluation.recovery`) read.
"""

from dataclasses import dataclass
import os
from typing import Optional, Tuple

from detrack_model.data.annotations import read_boxes
from detrack_model.data.sequences import AnnotationError
from detrack_model.evaluation.sequences import EvalSequence
import numpy as np


@dataclass
class SequenceResult:
    """
    Predictions of one tracker on one sequence, with the ground truth they are scored against.

    ``boxes`` (N, 4) predicted x, y, w, h (frame 0 = the initial box); ``anno`` (N, 4) ground
    truth as the dataset gives it (NaN where unknown); ``visible`` (N,) the dataset's own
    visibility (absence, cover, occlusion and out-of-view flags combined with a valid box);
    ``times`` (N,) seconds per frame; ``image_size`` (width, height) for protocols that clip
    boxes to the frame.
    """

    name: str
    boxes: np.ndarray
    anno: np.ndarray
    visible: np.ndarray
    times: np.ndarray
    image_size: Optional[Tuple[int, int]] = None
    # (N,) bool: the tracker declared the target lost (no box published), if it says so.
    lost: Optional[np.ndarray] = None


def lost_file(directory: str, name: str) -> str:
    """Return the file of per-frame lost flags of sequence ``name`` under a tracker directory."""
    return os.path.join(os.fspath(directory), name, f'{name}_lost.txt')


def result_files(directory: str, name: str) -> Tuple[str, str]:
    """Return the box file and the time file of sequence ``name`` under a tracker directory."""
    sequence_dir = os.path.join(os.fspath(directory), name)
    return (os.path.join(sequence_dir, f'{name}_001.txt'),
            os.path.join(sequence_dir, f'{name}_time.txt'))


def write_sequence_result(result: SequenceResult, directory: str) -> str:
    """
    Write ``result`` into ``directory`` (a tracker's result directory); return the box file.

    ``<directory>/<seq>/<seq>_001.txt`` gets one ``x,y,w,h`` line per frame (``%.4f``,
    comma-separated, as the GOT-10k toolkit's ``np.savetxt`` writes it, one more decimal) and
    ``<seq>_time.txt`` one ``%.8f`` line per frame. Boxes that are not finite are written as
    ``0,0,0,0`` -- no overlap with anything -- because a ``nan`` line would make the official
    toolkits' averages ``nan``. Each file is written to a temporary name and renamed, times
    first, so a run killed mid-write never leaves a box file that looks complete.
    """
    boxes = np.asarray(result.boxes, dtype=np.float64)
    times = np.asarray(result.times, dtype=np.float64).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) != len(times):
        raise ValueError(f'{result.name}: boxes {boxes.shape} and times {times.shape} must be '
                         '(N, 4) and (N,)')
    boxes = np.where(np.isfinite(boxes).all(axis=1, keepdims=True), boxes, 0.0)
    box_file, time_file = result_files(directory, result.name)
    os.makedirs(os.path.dirname(box_file), exist_ok=True)
    _save_atomic(time_file, times[:, None], '%.8f')
    if result.lost is not None:
        _save_atomic(lost_file(directory, result.name),
                     np.asarray(result.lost, dtype=np.int64).reshape(-1, 1), '%d')
    _save_atomic(box_file, boxes, '%.4f')
    return box_file


def read_sequence_result(directory: str, sequence: EvalSequence) -> SequenceResult:
    """
    Read the result files of ``sequence`` from a tracker's result directory.

    The ground truth, visibility and image size come from ``sequence``. A time file with
    several comma-separated columns (the toolkit appends one per repetition) gives its first
    column; a missing time file gives NaN times. A malformed line, or a file whose length
    differs from the sequence, is an :class:`AnnotationError` naming the file.
    """
    box_file, time_file = result_files(directory, sequence.name)
    if not os.path.isfile(box_file):
        raise FileNotFoundError(f'result file not found: {box_file}')
    boxes = read_boxes(box_file)
    _check_result_length(box_file, len(boxes), len(sequence))
    if os.path.isfile(time_file):
        times = _read_times(time_file)
        _check_result_length(time_file, len(times), len(sequence))
    else:
        times = np.full(len(sequence), np.nan)
    lost = None
    flags_file = lost_file(directory, sequence.name)
    if os.path.isfile(flags_file):
        lost = _read_times(flags_file) > 0.5
        _check_result_length(flags_file, len(lost), len(sequence))
    return SequenceResult(name=sequence.name, boxes=boxes, anno=sequence.anno,
                          visible=sequence.visible, times=times,
                          image_size=sequence.image_size, lost=lost)


def _save_atomic(path: str, values: np.ndarray, fmt: str) -> None:
    partial = f'{path}.partial'
    np.savetxt(partial, values, fmt=fmt, delimiter=',')
    os.replace(partial, path)


def _check_result_length(path: str, lines: int, frames: int) -> None:
    if lines != frames:
        raise AnnotationError(f'{path}: {lines} lines but the sequence has {frames} frames')


def _read_times(path: str) -> np.ndarray:
    with open(path, 'r', encoding='utf-8') as handle:
        lines = handle.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    times = np.empty(len(lines), dtype=np.float64)
    for number, line in enumerate(lines):
        try:
            times[number] = float(line.split(',', 1)[0])
        except ValueError:
            raise AnnotationError(f'{path}:{number + 1}: expected seconds as a number, got '
                                  f'{line.strip()!r}') from None
    return times
