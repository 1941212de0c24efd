"""
The masked-autoencoder pretraining loop: one CPU to many GPUs, resumable at any step.

As in tracking training, every random choice is a function of the seed and the position in
the run — the crops of (epoch, sample index), the masks of (step, rank) — and the global
torch RNG is saved with each checkpoint, so a resumed run reproduces an uninterrupted one.
The result is ``<output>/encoder.safetensors``: the encoder's weights under the tracker's own
key names, which a tracking recipe loads with ``pretrained: <output>/encoder.safetensors``.
"""

import contextlib
import logging
import math
import pathlib
import time
from typing import Any, Dict, Iterator, Optional

from detrack_model.data import PairProcessing, worker_init
from detrack_model.data.pretrain_crops import PretrainCrops
from detrack_model.data.synthetic.sources import source_set
from detrack_model.engine import distributed
from detrack_model.engine.checkpoints import (loop_state, restore_loop, resume_newest,
                                              save_checkpoint)
from detrack_model.engine.metrics_log import MetricsLog
from detrack_model.engine.pretrain_recipe import PretrainRecipe
from detrack_model.modeling.mae import MaskedAutoencoder
from safetensors.torch import save_file
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
import yaml

LOG = logging.getLogger(__name__)
ENCODER_FILE = 'encoder.safetensors'


def collate_crops(samples) -> Dict[str, Any]:
    """Stack template and search crops; keep the sample indices."""
    return {'template': torch.stack([s['template'] for s in samples]),
            'search': torch.stack([s['search'] for s in samples]),
            'index': [s['index'] for s in samples]}


def build_crops(recipe: PretrainRecipe, split: str, samples: int, seed: int) -> PretrainCrops:
    """Return the crop dataset of ``split`` as the recipe describes it."""
    data, model = recipe.data, recipe.model
    sources = source_set(split, data.pool, None if data.photos else [])
    processing = PairProcessing(model.template_size, model.search_size,
                                center_jitter=data.center_jitter,
                                scale_jitter=data.scale_jitter)
    return PretrainCrops(sources, processing, samples, seed, data.per_image, data.max_objects)


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Return the learning-rate multiplier: linear warm-up, then cosine down to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Pretrainer:
    """Pretrain the tracker's encoder as a masked autoencoder."""

    def __init__(self, recipe: PretrainRecipe, output: Optional[str] = None,
                 device: str = 'auto', progress: bool = True) -> None:
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
        self.steps_per_epoch = recipe.data.samples_per_epoch // optim.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f'samples_per_epoch {recipe.data.samples_per_epoch} is smaller '
                             f'than one batch of {optim.batch_size}')
        self.total_steps = self.steps_per_epoch * optim.epochs
        self.model = MaskedAutoencoder(recipe.model, recipe.mae).to(self.device)
        self.train_model = self.model
        if self.dist.enabled:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        self.optimizer = self._optimizer()
        warmup = int(optim.warmup_epochs * self.steps_per_epoch)
        floor = optim.min_lr / optim.lr
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, warmup, self.total_steps, floor))
        self.autocast_dtype = None
        if self.device.type == 'cuda' and optim.amp != 'off':
            self.autocast_dtype = torch.bfloat16 if optim.amp in ('bf16', 'auto') and \
                torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.autocast_dtype == torch.float16)
        self.crops = build_crops(recipe, recipe.data.split, recipe.data.samples_per_epoch,
                                 optim.seed)
        self.val_crops = build_crops(recipe, 'val', recipe.data.val_samples, optim.seed + 1) \
            if recipe.data.val_samples else None
        self.step = 0
        self.previous_wall_s = 0.0
        self._started = time.perf_counter()

    def _optimizer(self) -> torch.optim.Optimizer:
        """Build AdamW with MAE's betas; no decay on norms, biases, embeddings, tokens."""
        decay, plain = [], []
        for name, parameter in self.model.named_parameters():
            if not parameter.requires_grad:
                continue
            skip = parameter.ndim < 2 or 'pos_embed' in name or name in (
                'mask_token', 'decoder_crop')
            (plain if skip else decay).append(parameter)
        optim = self.recipe.optim
        return torch.optim.AdamW([{'params': decay, 'weight_decay': optim.weight_decay},
                                  {'params': plain, 'weight_decay': 0.0}],
                                 lr=optim.lr, betas=(0.9, 0.95))

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast('cuda', dtype=self.autocast_dtype)

    def _batches(self, epoch: int, first_step: int) -> Iterator[Dict[str, Any]]:
        """Yield this process's slices of the global batches of ``epoch`` from ``first_step``."""
        self.crops.set_epoch(epoch)
        size = self.recipe.optim.batch_size
        offset = self.dist.rank * self.local_batch
        batches = [list(range(step * size + offset, step * size + offset + self.local_batch))
                   for step in range(first_step, self.steps_per_epoch)]
        workers = self.recipe.data.workers
        loader = torch.utils.data.DataLoader(
            self.crops, batch_sampler=batches, num_workers=workers, collate_fn=collate_crops,
            worker_init_fn=worker_init, persistent_workers=False,
            pin_memory=self.device.type == 'cuda',
            multiprocessing_context='spawn' if workers else None)
        yield from loader

    def _masks(self, step: int) -> torch.Generator:
        """Return the generator of one step's masks (each process draws its own)."""
        seed = (self.recipe.optim.seed * 1_000_003 + step) * 4099 + self.dist.rank
        return torch.Generator().manual_seed(seed)

    def train_step(self, batch: Dict[str, Any]) -> Dict[str, float]:
        """Forward, loss, backward and optimizer step on this process's share of a batch."""
        template = batch['template'].to(self.device, non_blocking=True)
        search = batch['search'].to(self.device, non_blocking=True)
        self.train_model.train()
        with self._autocast():
            outputs = self.train_model(template, search, self._masks(self.step))
        loss = outputs['loss'].float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f'loss is {loss.item()} at step {self.step}')
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                   self.recipe.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        value = distributed.all_reduce_mean(loss.detach().double().cpu(), self.dist)
        return {'loss': float(value), 'grad_norm': float(grad_norm)}

    @torch.no_grad()
    def evaluate(self) -> float:
        """Return the masked-patch loss on the val split's crops, with fixed masks."""
        self.model.eval()
        generator = torch.Generator().manual_seed(12345)
        total, count = 0.0, 0
        size = self.recipe.optim.batch_size
        for start in range(0, len(self.val_crops), size):
            batch = collate_crops([self.val_crops[i] for i in
                                   range(start, min(start + size, len(self.val_crops)))])
            outputs = self.model(batch['template'].to(self.device),
                                 batch['search'].to(self.device), generator)
            total += float(outputs['loss']) * len(batch['index'])
            count += len(batch['index'])
        return total / max(count, 1)

    def state(self) -> Dict[str, Any]:
        """Collect everything but the weights needed to continue exactly."""
        return loop_state(self.step, self.optimizer, self.scheduler, self.scaler, self.device,
                          wall_time_s=self.wall_time_s())

    def save(self) -> None:
        """Checkpoint on rank 0 while the others wait."""
        distributed.check_same_weights(self.model, self.dist)
        if self.dist.is_main:
            save_checkpoint(self.output, self.step, self.model, self.state(),
                            self.recipe.checkpoint.keep_last)
        distributed.barrier(self.dist)

    def resume(self, path: Optional[str] = None) -> bool:
        """Continue from ``path`` or the newest intact checkpoint (see ``resume_newest``)."""
        return resume_newest(self.output, path, self._restore, self.dist.is_main)

    def _restore(self, checkpoint: pathlib.Path) -> None:
        state = restore_loop(checkpoint, self.model, self.optimizer, self.scheduler, self.scaler,
                             self.device)
        self.step, self.previous_wall_s = state['step'], float(state.get('wall_time_s', 0.0))
        self._started = time.perf_counter()
        if self.dist.is_main:
            LOG.info('resumed from %s at step %d', checkpoint, self.step)

    def wall_time_s(self) -> float:
        """Return the seconds this run has trained, earlier invocations included."""
        return self.previous_wall_s + time.perf_counter() - self._started

    def fit(self) -> pathlib.Path:
        """Pretrain to the end of the recipe; return the path of the encoder weights."""
        recipe = self.recipe
        log = MetricsLog(self.output, self.step) if self.dist.is_main else None
        bar = tqdm(total=self.total_steps, initial=self.step, unit='batch',
                   disable=not self.progress, dynamic_ncols=True)
        started, seen = time.perf_counter(), 0
        try:
            while self.step < self.total_steps:
                epoch, first = divmod(self.step, self.steps_per_epoch)
                for batch in self._batches(epoch, first):
                    values = self.train_step(batch)
                    self.step += 1
                    seen += recipe.optim.batch_size
                    rate = seen / max(time.perf_counter() - started, 1e-9)
                    bar.update(1)
                    bar.set_postfix(loss=f'{values["loss"]:.3f}', samples_s=f'{rate:.1f}',
                                    epoch=epoch)
                    if log is not None and (self.step % recipe.checkpoint.log_every == 0
                                            or self.step == self.total_steps):
                        log.log(self.step, {**values, 'epoch': epoch,
                                            'lr': self.scheduler.get_last_lr()[0],
                                            'samples_per_s': rate,
                                            'wall_time_s': self.wall_time_s()})
                    if self.step % recipe.checkpoint.every_steps == 0:
                        self.save()
                if self.val_crops is not None and log is not None:
                    loss = self.evaluate()
                    log.log(self.step, {'val_loss': loss})
                    LOG.info('epoch %d: validation masked-patch loss %.4f', epoch, loss)
            self.save()
        finally:
            bar.close()
            if log is not None:
                log.close()
        path = self.output / ENCODER_FILE
        if self.dist.is_main:
            save_encoder(self.model, path, {'steps': self.step,
                                            'samples': self.step * recipe.optim.batch_size,
                                            'wall_time_s': round(self.wall_time_s(), 1),
                                            'recipe': recipe.to_dict()})
        distributed.barrier(self.dist)
        return path

    def close(self) -> None:
        """Leave the process group."""
        self.train_model = self.model
        distributed.shutdown(self.dist)


def save_encoder(model: MaskedAutoencoder, path: pathlib.Path,
                 metadata: Dict[str, Any]) -> None:
    """Write the encoder's weights (float32) and, beside them, a YAML of how they were made."""
    weights = {k: v.detach().float().cpu().contiguous()
               for k, v in model.encoder.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path))
    path.with_suffix('.yaml').write_text(yaml.safe_dump(
        {'model': model.config.to_dict(), 'metadata': metadata}, sort_keys=False))
