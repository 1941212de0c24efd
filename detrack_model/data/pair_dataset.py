"""
Training pairs as a ``torch.utils.data.Dataset``: sampler + readers + processing.

A bad sample (unreadable frame, unusable box, crop that lost the target, malformed annotation
file) never stops training: the item is redrawn deterministically from ``(seed, epoch, index,
attempt)``, the skip is counted by reason and carried in the item so a trainer can sum and log
the counts, and each reason is logged (throttled) on logger ``detrack_model.data``.
"""

import logging
import os
import time
from typing import Dict, Optional, Sequence

import cv2
from detrack_model.data.processing import check_box, PairProcessing
from detrack_model.data.sampler import PairSampler, PairSpec
from detrack_model.data.sequences import (AnnotationError, FrameError, SequenceInfo,
                                          TrackingDataset, valid_boxes)
import numpy as np
import torch
import torch.utils.data

LOGGER = logging.getLogger('detrack_model.data')
# Tells a DataLoader worker started by 'spawn' (which imported this module itself) from one
# forked from a process that had imported it already.
_IMPORTED_IN_PID = os.getpid()

# Fixed keys so that DataLoader's default collate can stack the per-item counts.
SKIP_REASONS = ('no_visible_frames', 'bad_annotation', 'frame_error', 'invalid_box',
                'invalid_crop')


def check_absent_fraction(value: float) -> float:
    """Return ``value`` as a float; raise ValueError unless it is in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f'absent_fraction must be in [0, 1), got {value}')
    return float(value)


def check_share(name: str, value: float) -> float:
    """Return ``value`` as a float; raise ValueError naming ``name`` unless it is in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'{name} must be in [0, 1], got {value}')
    return float(value)


class TrackingPairDataset(torch.utils.data.Dataset):
    """
    ``pairs_per_epoch`` template/search pairs drawn from ``datasets`` mixed by ``ratios``.

    Items are dicts: ``template`` (3,T,T) and ``search`` (3,S,S) float32, ``template_box`` and
    ``search_box`` (4,) normalised cx, cy, w, h, ``present`` (False for the
    ``absent_fraction`` of pairs whose search crop is moved off the target, drawn per pair from
    its own random stream; their search box is zeros), ``decoy`` (True for an absent pair
    whose search crop is centred on a look-alike of the target: ``decoy_fraction`` of the
    absent pairs whose search frame has one recorded, see :class:`SequenceInfo`), ``hidden``
    (True for an absent pair whose search frame is one where the target is fully occluded or
    out of view, its crop around the hidden box: ``hidden_fraction`` of the absent pairs
    whose sequence has such a frame within ``max_gap`` of the template; tried before a
    look-alike), the provenance ``dataset``, ``sequence``,
    ``template_frame``, ``search_frame``, ``attempt``, and ``skipped`` (total redraws) with
    ``skips`` (redraws per reason in :data:`SKIP_REASONS`). Call :meth:`set_epoch` before
    each epoch (every DataLoader worker gets its own copy, so do it before iterating).
    """

    def __init__(self, datasets: Sequence[TrackingDataset],
                 ratios: Optional[Sequence[float]] = None, pairs_per_epoch: int = 60000,
                 processing: Optional[PairProcessing] = None, max_gap: int = 200,
                 seed: int = 0, max_attempts: int = 100, log_interval_s: float = 60.0,
                 absent_fraction: float = 0.0, decoy_fraction: float = 0.0,
                 hidden_fraction: float = 0.0) -> None:
        self.absent_fraction = check_absent_fraction(absent_fraction)
        self.decoy_fraction = check_share('decoy_fraction', decoy_fraction)
        self.hidden_fraction = check_share('hidden_fraction', hidden_fraction)
        self.sampler = PairSampler(datasets, ratios, pairs_per_epoch, max_gap=max_gap, seed=seed)
        self.datasets = self.sampler.datasets
        if self.absent_fraction * self.decoy_fraction > 0 and not any(
                len(d) and d.sequence_info(0).distractors is not None for d in self.datasets):
            raise ValueError('decoy_fraction needs datasets that record look-alikes of the '
                             'target (distractors.txt, written by the generator); none of '
                             f'{[d.name for d in self.datasets]} does: generate them again')
        self.processing = processing if processing is not None else PairProcessing()
        self.max_attempts = int(max_attempts)
        self.log_interval_s = float(log_interval_s)
        self.epoch = 0
        # Totals in this process (a DataLoader worker has its own); items carry theirs.
        self.skip_counts: Dict[str, int] = dict.fromkeys(SKIP_REASONS, 0)
        self._last_logged: Dict[str, float] = {}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose pairs ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Return the number of pairs per epoch."""
        return len(self.sampler)

    def __getitem__(self, index: int) -> Dict[str, object]:
        """Return pair ``index`` of the current epoch, redrawing bad samples."""
        skips = dict.fromkeys(SKIP_REASONS, 0)
        for attempt in range(self.max_attempts):
            try:
                spec = self.sampler.sample(self.epoch, index, attempt)
            except AnnotationError as error:
                self._skip(skips, 'bad_annotation', str(error))
                continue
            if spec.rejected:
                self._skip(skips, 'no_visible_frames',
                           f'{self.datasets[spec.dataset].name}: {spec.rejected} sequence(s) '
                           'without visible frames passed over', spec.rejected)
            item = self._try(spec, index, attempt, skips)
            if item is not None:
                item['attempt'] = attempt
                item['skipped'] = sum(skips.values())
                item['skips'] = skips
                return item
        raise RuntimeError(
            f'no usable training pair for index {index} of epoch {self.epoch} after '
            f'{self.max_attempts} attempts (skips: {skips}); see the warnings of logger '
            f'"{LOGGER.name}" for the files involved')

    def _try(self, spec: PairSpec, index: int, attempt: int,
             skips: Dict[str, int]) -> Optional[Dict[str, object]]:
        dataset = self.datasets[spec.dataset]
        info = dataset.sequence_info(spec.sequence)
        where = f'{dataset.name}/{info.name}'
        present, hidden, decoy, search_frame = True, False, None, spec.search_frame
        if self.absent_fraction > 0.0:
            choice = self.sampler.rng(self.epoch, index, attempt, stream=2)
            present = choice.random() >= self.absent_fraction
            if not present:
                found = self._hidden_frame(info, spec.template_frame, choice)
                if found is not None:
                    hidden, search_frame = True, found
                else:
                    decoy = self._decoy(info, search_frame, choice)
        try:
            template_box = check_box(info.boxes[spec.template_frame])
            search_box = check_box(info.boxes[search_frame])
        except ValueError as error:
            self._skip(skips, 'invalid_box', f'{where}: {error}')
            return None
        try:
            template_img = dataset.frame(spec.sequence, spec.template_frame)
            search_img = (template_img if search_frame == spec.template_frame
                          else dataset.frame(spec.sequence, search_frame))
        except FrameError as error:
            self._skip(skips, 'frame_error', str(error))
            return None
        rng = self.sampler.rng(self.epoch, index, attempt, stream=1)
        try:
            out = self.processing(template_img, template_box, search_img, search_box, rng,
                                  present, decoy, hidden)
        except ValueError as error:
            # check_box passed, so the jittered crop itself failed: still the data's fault.
            self._skip(skips, 'invalid_box', f'{where}: {error}')
            return None
        if not out.pop('valid'):
            self._skip(skips, 'invalid_crop',
                       f'{where} frames {spec.template_frame}/{spec.search_frame}: target '
                       'centre left the jittered search crop or the box became too small')
            return None
        out.update(dataset=spec.dataset, sequence=spec.sequence, hidden=hidden,
                   template_frame=spec.template_frame, search_frame=search_frame)
        return out

    def _hidden_frame(self, info: SequenceInfo, template: int,
                      choice: np.random.Generator) -> Optional[int]:
        """Return, for ``hidden_fraction`` of the calls that can, a frame hiding the target."""
        if self.hidden_fraction == 0.0:
            return None
        hidden = np.flatnonzero(valid_boxes(info.boxes) & ~info.visible)
        hidden = hidden[np.abs(hidden - template) <= self.sampler.max_gap]
        if not len(hidden) or choice.random() >= self.hidden_fraction:
            return None
        return int(hidden[choice.integers(len(hidden))])

    def _decoy(self, info: SequenceInfo, frame: int,
               choice: np.random.Generator) -> Optional[np.ndarray]:
        """Return, for ``decoy_fraction`` of the calls that can, a look-alike in ``frame``."""
        decoys = info.distractors_in(frame)
        if not len(decoys) or choice.random() >= self.decoy_fraction:
            return None
        return decoys[choice.integers(len(decoys))]

    def _skip(self, skips: Dict[str, int], reason: str, detail: str, count: int = 1) -> None:
        skips[reason] += count
        self.skip_counts[reason] += count
        now = time.monotonic()
        last = self._last_logged.get(reason)
        if last is None:
            LOGGER.warning('skipping training sample (%s): %s', reason, detail)
        elif now - last >= self.log_interval_s:
            LOGGER.warning('skipping training samples (%s): %d so far in this process, '
                           'latest: %s', reason, self.skip_counts[reason], detail)
        else:
            return
        self._last_logged[reason] = now


def limit_opencv_threads(threads: int = 0) -> int:
    """
    Set OpenCV's thread count in this process (0: no thread pool); return the old count.

    Call it in the training process before a DataLoader starts its workers (pytracking and
    mmcv do the same): forked workers inherit it, and already run in parallel, so OpenCV's own
    pool would only oversubscribe the cores. Do not call ``cv2.setNumThreads`` inside a forked
    worker instead: when the parent has used OpenCV's pool, the child waits forever for pool
    threads that were not forked with it.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(int(threads))
    return previous


def worker_init(worker_id: int) -> None:
    """
    Limit OpenCV to one thread in a DataLoader worker; pass as ``worker_init_fn``.

    Acts only in workers started with ``multiprocessing_context='spawn'`` (or any start
    method that gives the worker a fresh interpreter). A forked worker is left alone: setting
    OpenCV's thread count there hangs when the parent has used OpenCV's thread pool, so with
    fork call :func:`limit_opencv_threads` in the parent before the workers start.
    """
    if os.getpid() == _IMPORTED_IN_PID:
        cv2.setNumThreads(1)
