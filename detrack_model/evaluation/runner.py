"""
One-pass evaluation (OPE): start a tracker on the first ground-truth box, let it run to the end.

:func:`run_sequence` follows the GOT-10k/OTB toolkits: frame 0's predicted box is the initial
box and its time the initialisation time; every other frame's time covers the ``track`` call
only, never the image read. :func:`run_benchmark` drives a tracker factory over a list of
sequences, writing each sequence's result files (:mod:`detrack_model.evaluation.results`) as
soon as it finishes, so a killed run resumes where it stopped.
"""

import hashlib
import os
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union
import warnings

from detrack_model.data.sequences import read_rgb, valid_boxes
from detrack_model.evaluation.results import (read_sequence_result, result_files,
                                              SequenceResult, write_sequence_result)
from detrack_model.evaluation.sequences import EvalSequence
import numpy as np

# Anything with initialize(frame, box_xywh) -> None and track(frame) -> (box_xywh, score).
TrackerFactory = Callable[[], Any]


def check_first_box(sequence: EvalSequence) -> None:
    """Raise ``ValueError`` naming ``sequence`` if its first-frame box cannot start a tracker."""
    if not valid_boxes(sequence.anno[:1]).all():
        raise ValueError(
            f'sequence {sequence.name!r}: the first-frame box {sequence.anno[0].tolist()} is '
            'missing or empty; one-pass evaluation starts the tracker from it')


def run_sequence(tracker: Any, sequence: EvalSequence, visualize: bool = False
                 ) -> SequenceResult:
    """
    Run ``tracker`` once over ``sequence`` and return its predictions and per-frame times.

    ``tracker`` is initialised on frame 0 with ``sequence.anno[0]`` and tracks frames 1..N-1.
    A box that is not finite (a diverged tracker) is recorded as ``0,0,0,0``, the box that
    overlaps nothing, with a warning; results read back from files are then identical. With
    ``visualize`` every frame is drawn with matplotlib (ground truth green, prediction red),
    outside the timed calls.
    """
    check_first_box(sequence)
    frames = sequence.frames
    count = len(frames)
    boxes = np.empty((count, 4), dtype=np.float64)
    times = np.empty(count, dtype=np.float64)
    # Trackers that declare a lost target (a ``lost`` attribute) have it recorded per frame.
    lost = np.zeros(count, dtype=bool) if hasattr(tracker, 'lost') else None
    viewer = _Viewer(sequence.name) if visualize else None
    clock = time.perf_counter
    index = 0
    try:
        image = read_rgb(frames[0])
        image_size = (int(image.shape[1]), int(image.shape[0]))
        start = clock()
        tracker.initialize(image, sequence.anno[0].copy())
        times[0] = clock() - start
        boxes[0] = sequence.anno[0]
        if viewer is not None:
            viewer.show(image, boxes[0], sequence.anno[0])
        for index in range(1, count):
            image = read_rgb(frames[index])
            start = clock()
            box, _ = tracker.track(image)
            times[index] = clock() - start
            boxes[index] = box
            if lost is not None:
                lost[index] = bool(tracker.lost)
            if viewer is not None:
                viewer.show(image, boxes[index], sequence.anno[index])
    except Exception as error:
        error.add_note(f'while tracking frame {index} ({frames[index]}) of sequence '
                       f'{sequence.name!r}')
        raise
    finally:
        if viewer is not None:
            viewer.close()
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        warnings.warn(f'sequence {sequence.name!r}: the tracker returned a non-finite box on '
                      f'{int(bad.sum())} frames (first: frame {int(np.argmax(bad))}); they are '
                      'recorded as 0,0,0,0', RuntimeWarning, stacklevel=2)
        boxes[bad] = 0.0
    return SequenceResult(name=sequence.name, boxes=boxes, anno=sequence.anno,
                          visible=sequence.visible, times=times, image_size=image_size,
                          lost=lost)


def results_tag(weights: Union[str, os.PathLike], settings: Any) -> str:
    """
    Return 12 hex digits that name a weights file's bytes and tracker settings (their repr).

    A results directory named with it is reused by ``run_benchmark(..., resume=True)`` only for
    the same network and settings: boxes of an older model or of other defaults never come back.
    """
    with open(weights, 'rb') as handle:
        digest = hashlib.file_digest(handle, 'sha256')
    digest.update(repr(settings).encode('utf-8'))
    return digest.hexdigest()[:12]


def run_benchmark(tracker_factory: TrackerFactory, sequences: Sequence[EvalSequence],
                  results_dir: str, tracker_name: str, resume: bool = True,
                  progress: bool = False) -> List[SequenceResult]:
    """
    Run a fresh tracker from ``tracker_factory`` on every sequence; return the results in order.

    Results go to ``results_dir/tracker_name/<seq>/`` as each sequence finishes. With
    ``resume`` a sequence whose box file already exists is read back instead of run (the
    factory is not called for it); without, it is run again and overwritten. Every
    first-frame box is checked before anything runs, so a broken sequence fails the run at
    once rather than hours in. ``progress`` prints one line per sequence to stderr.
    """
    sequences = list(sequences)
    name = str(tracker_name)
    if not name or name in ('.', '..') or '/' in name or os.sep in name:
        raise ValueError(f'tracker_name must be a plain directory name, got {tracker_name!r}')
    seen = set()
    for sequence in sequences:
        if sequence.name in seen:
            raise ValueError(f'sequence name {sequence.name!r} occurs twice; their result files '
                             'would overwrite each other')
        seen.add(sequence.name)
        check_first_box(sequence)
    directory = os.path.join(os.fspath(results_dir), name)
    results: List[SequenceResult] = []
    for number, sequence in enumerate(sequences, start=1):
        box_file, _ = result_files(directory, sequence.name)
        if resume and os.path.isfile(box_file):
            result = read_sequence_result(directory, sequence)
            status = 'found'
        else:
            result = run_sequence(tracker_factory(), sequence)
            write_sequence_result(result, directory)
            status = _speed(result.times)
        results.append(result)
        if progress:
            print(f'[{number}/{len(sequences)}] {name} {sequence.name}: {len(sequence)} frames, '
                  f'{status}', file=sys.stderr, flush=True)
    return results


def _speed(times: np.ndarray) -> str:
    tracked = times[1:]
    total = float(tracked.sum())
    return f'{len(tracked) / total:.1f} fps' if total > 0 else 'done'


class _Viewer:
    """A matplotlib window showing each frame with its ground truth and prediction."""

    def __init__(self, title: str) -> None:
        import matplotlib.pyplot as plt

        self._plt = plt
        self._figure, self._axes = plt.subplots(num=title)
        self._image = None
        self._patches: Optional[Tuple[Any, Any]] = None

    def show(self, image: np.ndarray, box: np.ndarray, truth: np.ndarray) -> None:
        from matplotlib.patches import Rectangle

        if self._image is None:
            self._image = self._axes.imshow(image)
            self._axes.set_axis_off()
            self._patches = tuple(
                self._axes.add_patch(Rectangle((0, 0), 0, 0, fill=False, color=colour, lw=2))
                for colour in ('lime', 'red'))
        else:
            self._image.set_data(image)
        for patch, (x, y, w, h) in zip(self._patches, (truth, box)):
            visible = bool(np.isfinite([x, y, w, h]).all())
            patch.set_visible(visible)
            if visible:
                patch.set_bounds(x, y, w, h)
        self._plt.pause(0.001)

    def close(self) -> None:
        self._plt.close(self._figure)
