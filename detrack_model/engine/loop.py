"""
The loop training and pretraining share: one CPU to many GPUs, resumable at any step.

:class:`TrainingLoop` runs the global batches of every epoch, the optimizer step with
clipping and mixed precision, logging, validation, checkpoints and their resumption. A
subclass builds the network, its optimizer and schedule and the data, and supplies the loss of
a batch, the validation and the result written at the end.
"""

import contextlib
import gc
import logging
import pathlib
import time
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

from detrack_model.data import worker_init
from detrack_model.engine import distributed
from detrack_model.engine.checkpoints import (loop_state, restore_loop, resume_newest,
                                              save_checkpoint)
from detrack_model.engine.metrics_log import MetricsLog
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

LOG = logging.getLogger(__name__)


def autocast_dtype(device: torch.device, amp: str) -> Optional[torch.dtype]:
    """Choose the mixed-precision type of a recipe's ``amp``: on GPUs only (fp32 on CPU)."""
    if device.type != 'cuda' or amp == 'off':
        return None
    if amp in ('bf16', 'auto') and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(dtype: Optional[torch.dtype]) -> ContextManager:
    """Return the context of a forward pass in ``dtype`` (None: full precision)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast('cuda', dtype=dtype)


class TrainingLoop:
    """
    Train a network over the global batches of a recipe, resumable at any step.

    The recipe needs ``optim`` (batch_size, seed, threads, amp, grad_clip, epochs),
    ``checkpoint`` and ``output``. A subclass's constructor calls this one, then sets
    ``model``, ``train_model`` (``_distribute``), ``optimizer``, ``scheduler``,
    ``train_data`` and ``val_data`` (None: no validation) and calls ``_start_clock``.
    """

    # What a batch holds, in the progress bar and the log (``<unit>_per_s``).
    unit = 'samples'
    # Stacks the items of ``train_data`` into a batch.
    collate: Callable[[List[Dict[str, Any]]], Dict[str, Any]]

    def __init__(self, recipe: Any, output: Optional[str], device: str, progress: bool,
                 epoch_key: str) -> None:
        """Join the job, seed the RNG, lay out epochs of ``recipe.data.<epoch_key>`` samples."""
        self.recipe = recipe
        self.output = pathlib.Path(output or recipe.output)
        self.dist, self.device = distributed.join(device)
        optim = recipe.optim
        if optim.threads:
            torch.set_num_threads(optim.threads)
        torch.manual_seed(optim.seed)
        self.progress = progress and self.dist.is_main
        if optim.batch_size % self.dist.world_size:
            raise ValueError(f'batch_size {optim.batch_size} is not divisible by the '
                             f'{self.dist.world_size} processes')
        self.local_batch = optim.batch_size // self.dist.world_size
        size = getattr(recipe.data, epoch_key)
        self.steps_per_epoch = size // optim.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f'{epoch_key} {size} is smaller than one batch of '
                             f'{optim.batch_size}')
        self.total_steps = self.steps_per_epoch * optim.epochs
        self.autocast_dtype = autocast_dtype(self.device, optim.amp)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.autocast_dtype == torch.float16)
        self.step = 0
        self._start_clock()

    def _distribute(self, model: nn.Module) -> nn.Module:
        """Return ``model`` wrapped for DDP when several processes train, else ``model``."""
        if not self.dist.enabled:
            return model
        return DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == 'cuda' else None)

    def _start_clock(self, previous_s: float = 0.0) -> None:
        """Count training time from now, on top of ``previous_s`` of earlier invocations."""
        self.previous_wall_s = previous_s
        self._started = time.perf_counter()

    # -- what a subclass supplies ----------------------------------------------------------

    def _objective(self, batch: Dict[str, Any],
                   epoch: int) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """Return the loss of this process's share of ``batch`` and its logged components."""
        raise NotImplementedError

    def _validate(self, epoch: int) -> Optional[Dict[str, float]]:
        """Score the network at the end of ``epoch`` (rank 0); None when nothing is scored."""
        return None

    def _learning_rates(self) -> Dict[str, float]:
        """Return the logged learning rates."""
        return {'lr': self.scheduler.get_last_lr()[0]}

    def _counters(self) -> Dict[str, int]:
        """Return the run's counters, logged and saved with each checkpoint."""
        return {}

    def _restore_counters(self, state: Dict[str, Any]) -> None:
        """Set the counters from a checkpoint's state."""

    def _after_step(self, batch: Dict[str, Any]) -> None:
        """Update the counters after a step on ``batch``."""

    def _result_path(self) -> pathlib.Path:
        """Return the path of the run's result."""
        raise NotImplementedError

    def _write_result(self) -> None:
        """Write the run's result (rank 0 only)."""
        raise NotImplementedError

    # -- data and one step -----------------------------------------------------------------

    def _batches(self, epoch: int, first_step: int) -> Iterator[Dict[str, Any]]:
        """Yield this process's slices of the global batches of ``epoch`` from ``first_step``."""
        self.train_data.set_epoch(epoch)
        size = self.recipe.optim.batch_size
        offset = self.dist.rank * self.local_batch
        batches = [list(range(step * size + offset, step * size + offset + self.local_batch))
                   for step in range(first_step, self.steps_per_epoch)]
        workers = self.recipe.data.workers
        loader = torch.utils.data.DataLoader(
            self.train_data, batch_sampler=batches, num_workers=workers,
            collate_fn=self.collate, worker_init_fn=worker_init, persistent_workers=False,
            pin_memory=self.device.type == 'cuda',
            multiprocessing_context='spawn' if workers else None)
        yield from loader

    def train_step(self, batch: Dict[str, Any], epoch: int) -> Dict[str, float]:
        """Forward, loss, backward and optimizer step on this process's share of a batch."""
        self.train_model.train()
        loss, parts = self._objective(batch, epoch)
        if not torch.isfinite(loss):
            detail = f': { {k: float(v) for k, v in parts.items()} }' if parts else ''
            raise FloatingPointError(f'loss is {loss.item()} at step {self.step}{detail}')
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                   self.recipe.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        values = {'loss': float(loss.detach())}
        values.update({k: float(v) for k, v in parts.items() if k != 'total'})
        if self.dist.enabled:
            # Each process's loss is its share of the global loss: their mean is the loss of
            # the whole batch, the number a single process would log.
            averaged = distributed.all_reduce_mean(torch.tensor(list(values.values()),
                                                                dtype=torch.float64), self.dist)
            values = dict(zip(values, averaged.tolist()))
        values['grad_norm'] = float(grad_norm)
        return values

    # -- checkpoints -----------------------------------------------------------------------

    def state(self) -> Dict[str, Any]:
        """Collect everything but the weights needed to continue exactly."""
        return loop_state(self.step, self.optimizer, self.scheduler, self.scaler, self.device,
                          **self._counters(), wall_time_s=self.wall_time_s())

    def save(self) -> None:
        """Checkpoint on rank 0 while the others wait (after checking they agree)."""
        distributed.check_same_weights(self.model, self.dist)
        if self.dist.is_main:
            save_checkpoint(self.output, self.step, self.model, self.state(),
                            self.recipe.checkpoint.keep_last)
        distributed.barrier(self.dist)

    def resume(self, path: Optional[str] = None) -> bool:
        """
        Continue from ``path`` or the newest intact checkpoint in the output directory.

        A named checkpoint that is damaged raises CheckpointError. Without a name, a damaged
        newest checkpoint is reported and the one before it is tried, and so on; only when
        every one is damaged does CheckpointError end the run (starting over would overwrite
        them).
        """
        return resume_newest(self.output, path, self._restore, self.dist.is_main)

    def _restore(self, checkpoint: pathlib.Path) -> None:
        """Load one checkpoint into the model, optimizer, scheduler, scaler, RNGs, counters."""
        state = restore_loop(checkpoint, self.model, self.optimizer, self.scheduler, self.scaler,
                             self.device)
        self.step = state['step']
        self._restore_counters(state)
        self._start_clock(float(state.get('wall_time_s', 0.0)))
        if self.dist.is_main:
            LOG.info('resumed from %s at step %d', checkpoint, self.step)

    def wall_time_s(self) -> float:
        """Return the seconds this run has trained, earlier invocations included."""
        return self.previous_wall_s + time.perf_counter() - self._started

    # -- the loop --------------------------------------------------------------------------

    def fit(self) -> pathlib.Path:
        """Train to the end of the recipe; return the path of the result."""
        log = MetricsLog(self.output, self.step) if self.dist.is_main else None
        bar = tqdm(total=self.total_steps, initial=self.step, unit='batch',
                   disable=not self.progress, dynamic_ncols=True)
        try:
            self._epochs(log, bar)
            self.save()
        finally:
            bar.close()
            if log is not None:
                log.close()
        if self.dist.is_main:
            self._write_result()
        distributed.barrier(self.dist)
        return self._result_path()

    def _epochs(self, log: Optional[MetricsLog], bar: tqdm) -> None:
        """Train the remaining steps, logging, checkpointing and validating as the recipe says."""
        batch_size, checkpoint = self.recipe.optim.batch_size, self.recipe.checkpoint
        rate_key = f'{self.unit}_s'
        started, seen = time.perf_counter(), 0
        while self.step < self.total_steps:
            epoch, first = divmod(self.step, self.steps_per_epoch)
            for batch in self._batches(epoch, first):
                values = self.train_step(batch, epoch)
                self.step += 1
                self._after_step(batch)
                seen += batch_size
                rate = seen / max(time.perf_counter() - started, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f'{values["loss"]:.3f}', **{rate_key: f'{rate:.1f}'},
                                epoch=epoch)
                if log is not None and (self.step % checkpoint.log_every == 0
                                        or self.step == self.total_steps):
                    log.log(self.step, {**values, 'epoch': epoch, **self._learning_rates(),
                                        f'{self.unit}_per_s': rate, **self._counters(),
                                        'wall_time_s': self.wall_time_s()})
                if self.step % checkpoint.every_steps == 0:
                    self.save()
            scores = self._validate(epoch) if log is not None else None
            if scores:
                log.log(self.step, scores)

    def close(self) -> None:
        """Leave the process group."""
        # The DDP wrapper holds the process group: left alive, the group is destroyed during
        # interpreter finalisation instead, where gloo aborts the process now and then.
        self.train_model = self.model
        gc.collect()
        distributed.shutdown(self.dist)
