"""
The training loop: one CPU to many GPUs, resumable at any step.

Every random choice of a training step is a function of (seed, epoch, sample index): which
pair is drawn, its augmentation and its denoising noise. That is what makes a resumed run
reproduce an uninterrupted one and a DDP run reproduce a single process on the same global
batch; the global torch RNG (dropout, stochastic depth) is saved with each checkpoint.
"""

import contextlib
import gc
import logging
import math
import pathlib
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from detrack_model.data import worker_init
from detrack_model.engine import distributed
from detrack_model.engine.checkpoints import (loop_state, restore_loop, resume_newest,
                                              save_checkpoint)
from detrack_model.engine.data import build_pair_dataset, collate_pairs, materialise_all
from detrack_model.engine.metrics_log import MetricsLog
from detrack_model.engine.recipe import Recipe
from detrack_model.export.bundle import bundle_paths, init_from_bundle, save_bundle
from detrack_model.losses import build_criterion, LossConfig
from detrack_model.modeling import create_model, DETRack
from detrack_model.modeling.box_ops import best_box, box_iou, cxcywh_to_xyxy
from detrack_model.modeling.checkpoint import load_pretrained_encoder
from detrack_model.modeling.detrack import DenoisingQueries
from detrack_model.modeling.prune_masks import named_masks
from detrack_model.pruning.masks import sparsity_penalty, SparsityWeights
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

LOG = logging.getLogger(__name__)


def sample_seed(seed: int, epoch: int, index: int, stream: int) -> int:
    """Derive a 63-bit seed for one sample's random stream (stream 1: denoising noise)."""
    mixed = (seed * 1_000_003 + epoch) * 2_000_003 + index
    return (mixed * 6_364_136_223_846_793_005 + stream * 1_442_695_040_888_963_407) % (1 << 63)


class Trainer:
    """Train a DETRack network from a recipe."""

    def __init__(self, recipe: Recipe, output: Optional[str] = None,
                 device: str = 'auto', progress: bool = True) -> None:
        self.recipe = recipe
        self.output = pathlib.Path(output or recipe.output)
        _refuse_overwriting_inputs(self.output / 'model', recipe)
        self.dist, self.device = distributed.join(device)
        if recipe.optim.threads:
            torch.set_num_threads(recipe.optim.threads)
        torch.manual_seed(recipe.optim.seed)
        self.progress = progress and self.dist.is_main
        optim = recipe.optim
        if optim.batch_size % self.dist.world_size:
            raise ValueError(f'batch_size {optim.batch_size} is not divisible by the '
                             f'{self.dist.world_size} processes')
        self.local_batch = optim.batch_size // self.dist.world_size
        self.steps_per_epoch = recipe.data.pairs_per_epoch // optim.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f'pairs_per_epoch {recipe.data.pairs_per_epoch} is smaller than '
                             f'one batch of {optim.batch_size}')
        self.total_steps = self.steps_per_epoch * optim.epochs
        self.model = create_model(recipe.model).to(self.device)
        if recipe.pretrained:
            load_pretrained_encoder(self.model.encoder, recipe.pretrained)
        if recipe.init:
            init_from_bundle(self.model, recipe.init)
        self.sparsity = None
        if recipe.sparsity is not None:
            self.sparsity = SparsityWeights(recipe.sparsity.attention, recipe.sparsity.mlp,
                                            recipe.sparsity.decoder_ffn)
        self.train_model = self.model
        if self.dist.enabled:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        loss_config = LossConfig(**{**recipe.loss, 'grid': recipe.model.search_grid})
        self.criterion = build_criterion(recipe.model.head, loss_config)
        if self.dist.enabled:
            # Loss normalisers count positives over the whole global batch (see _Criterion).
            self.criterion.reduce_count = lambda count: distributed.all_reduce_mean(
                count, self.dist)
            self.criterion.min_count = 1.0 / self.dist.world_size
        self.optimizer = self._optimizer()
        drop_step = int(optim.lr_drop * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 1.0 if step < drop_step else 0.1)
        self.autocast_dtype = self._autocast_dtype()
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.autocast_dtype == torch.float16)
        # Rank 0 generates missing synthetic splits; the others wait and then read them.
        if self.dist.is_main:
            materialise_all(recipe)
        distributed.barrier(self.dist)
        self.train_pairs = build_pair_dataset(recipe.data.train, recipe, recipe.optim.seed,
                                              training=True)
        self.val_pairs = build_pair_dataset(recipe.data.val, recipe, recipe.optim.seed + 1,
                                            training=False) if recipe.data.val else None
        self.step = 0
        self.skipped = 0
        # Training wall time of earlier invocations of this run (resumes add theirs).
        self.previous_wall_s = 0.0
        self._started = time.perf_counter()

    def _optimizer(self) -> torch.optim.Optimizer:
        """Build the optimizer: AdamW, the encoder at its own (lower) learning rate."""
        optim = self.recipe.optim
        masks = list(named_masks(self.model).values())
        taken = {id(p) for p in masks}
        encoder = [p for p in self.model.encoder.parameters()
                   if p.requires_grad and id(p) not in taken]
        taken.update(id(p) for p in encoder)
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in taken]
        groups = [{'params': encoder, 'lr': optim.lr_encoder}, {'params': rest, 'lr': optim.lr}]
        if masks:
            # Weight decay would pull masks to zero regardless of the sparsity weights.
            sparsity = self.recipe.sparsity
            mask_lr = sparsity.mask_lr if sparsity and sparsity.mask_lr else optim.lr
            groups.append({'params': masks, 'lr': mask_lr, 'weight_decay': 0.0})
        return torch.optim.AdamW(groups, weight_decay=optim.weight_decay)

    def _autocast_dtype(self) -> Optional[torch.dtype]:
        """Choose the mixed-precision type: on GPUs only (fp32 on CPU)."""
        amp = self.recipe.optim.amp
        if self.device.type != 'cuda' or amp == 'off':
            return None
        if amp == 'fp16':
            return torch.float16
        if amp in ('bf16', 'auto') and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast('cuda', dtype=self.autocast_dtype)

    # -- data ------------------------------------------------------------------------------

    def _batches(self, epoch: int, first_step: int) -> Iterator[Dict[str, Any]]:
        """Yield this process's slices of the global batches of ``epoch`` from ``first_step``."""
        self.train_pairs.set_epoch(epoch)
        global_batch = self.recipe.optim.batch_size
        offset = self.dist.rank * self.local_batch
        batches = [list(range(step * global_batch + offset,
                              step * global_batch + offset + self.local_batch))
                   for step in range(first_step, self.steps_per_epoch)]
        workers = self.recipe.data.workers
        loader = torch.utils.data.DataLoader(
            self.train_pairs, batch_sampler=batches, num_workers=workers,
            collate_fn=collate_pairs, worker_init_fn=worker_init, persistent_workers=False,
            pin_memory=self.device.type == 'cuda',
            multiprocessing_context='spawn' if workers else None)
        yield from loader

    def _denoising(self, gt_boxes: torch.Tensor, epoch: int,
                   indices: List[int]) -> Tuple[Optional[DenoisingQueries], Optional[Any]]:
        """
        Denoising queries with noise seeded per sample, concatenated over the batch.

        Seeding by sample index (not by batch) keeps the noise of a sample the same however
        the global batch is split over processes.
        """
        if self.recipe.model.head != 'decoder' or not self.criterion.config.denoising:
            return None, None
        num_queries = self.recipe.model.decoder.num_queries
        parts = [self.criterion.denoising_queries(
            gt_boxes[row:row + 1].detach().cpu(), num_queries,
            torch.Generator().manual_seed(sample_seed(self.recipe.optim.seed, epoch, index, 1)))
            for row, index in enumerate(indices)]
        labels = None
        if parts[0][0].labels is not None:
            labels = torch.cat([q.labels for q, _ in parts]).to(self.device)
        queries = DenoisingQueries(
            torch.cat([q.grid_index for q, _ in parts]).to(self.device),
            torch.cat([q.boxes for q, _ in parts]).to(self.device),
            parts[0][0].attn_mask.to(self.device), labels)
        # Positive/negative roles and groups depend on the layout only, not on the sample.
        return queries, parts[0][1]

    # -- one step --------------------------------------------------------------------------

    def train_step(self, batch: Dict[str, Any], epoch: int) -> Dict[str, float]:
        """Forward, loss, backward and optimizer step on this process's share of a batch."""
        template = batch['template'].to(self.device, non_blocking=True)
        search = batch['search'].to(self.device, non_blocking=True)
        gt_boxes = batch['search_box'].to(self.device, non_blocking=True)
        dn_queries, dn_meta = self._denoising(gt_boxes, epoch, batch['index'])
        kwargs = {'candidate_elimination': epoch >= self.recipe.optim.ce_start_epoch}
        if dn_queries is not None:
            kwargs['denoising'] = dn_queries
        self.train_model.train()
        with self._autocast():
            outputs = self.train_model(template, search, **kwargs)
        loss, parts = self.criterion(outputs, gt_boxes.float(), dn_meta)
        if self.sparsity is not None:
            penalty, sums = sparsity_penalty(self.model, self.sparsity)
            loss = loss + penalty
            parts = {**parts, 'sparsity': penalty.detach(),
                     **{f'mask_l1_{kind}': value.detach() for kind, value in sums.items()}}
        if not torch.isfinite(loss):
            raise FloatingPointError(f'loss is {loss.item()} at step {self.step}: '
                                     f'{ {k: float(v) for k, v in parts.items()} }')
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
                          skipped=self.skipped, wall_time_s=self.wall_time_s())

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
        """Load one checkpoint into the model, optimizer, scheduler, scaler and RNGs."""
        state = restore_loop(checkpoint, self.model, self.optimizer, self.scheduler, self.scaler,
                             self.device)
        self.step = state['step']
        self.skipped = int(state.get('skipped', 0))
        self.previous_wall_s = float(state.get('wall_time_s', 0.0))
        self._started = time.perf_counter()
        if self.dist.is_main:
            LOG.info('resumed from %s at step %d', checkpoint, self.step)

    def wall_time_s(self) -> float:
        """Return the seconds this run has trained, earlier invocations included."""
        return self.previous_wall_s + time.perf_counter() - self._started

    # -- evaluation ------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, pairs: int) -> float:
        """Mean IoU of the top-scoring box on held-out template/search pairs."""
        return mean_pair_iou(self.model, self.val_pairs, pairs, self.recipe.optim.batch_size,
                             self.device)

    # -- the loop --------------------------------------------------------------------------

    def fit(self) -> pathlib.Path:
        """Train to the end of the recipe; return the path of the final bundle."""
        recipe = self.recipe
        log = MetricsLog(self.output, self.step) if self.dist.is_main else None
        bar = tqdm(total=self.total_steps, initial=self.step, unit='batch',
                   disable=not self.progress, dynamic_ncols=True)
        started, pairs_seen = time.perf_counter(), 0
        try:
            while self.step < self.total_steps:
                epoch, first = divmod(self.step, self.steps_per_epoch)
                for batch in self._batches(epoch, first):
                    values = self.train_step(batch, epoch)
                    self.step += 1
                    self.skipped += int(sum(batch['skipped']))
                    pairs_seen += recipe.optim.batch_size
                    rate = pairs_seen / max(time.perf_counter() - started, 1e-9)
                    bar.update(1)
                    bar.set_postfix(loss=f'{values["loss"]:.3f}', pairs_s=f'{rate:.1f}',
                                    epoch=epoch)
                    if log is not None and (self.step % recipe.checkpoint.log_every == 0
                                            or self.step == self.total_steps):
                        lrs = self.scheduler.get_last_lr()
                        log.log(self.step, {**values, 'epoch': epoch, 'lr': lrs[1],
                                            'lr_encoder': lrs[0], 'pairs_per_s': rate,
                                            'skipped': self.skipped,
                                            'wall_time_s': self.wall_time_s()})
                    if self.step % recipe.checkpoint.every_steps == 0:
                        self.save()
                if self.val_pairs is not None and self.dist.is_main and log is not None:
                    iou = self.evaluate(recipe.data.val_pairs)
                    log.log(self.step, {'val_mean_iou': iou})
                    LOG.info('epoch %d: validation mean IoU %.3f', epoch, iou)
            self.save()
        finally:
            bar.close()
            if log is not None:
                log.close()
        bundle = self.output / 'model'
        if self.dist.is_main:
            save_bundle(self.model, bundle,
                        metadata={'steps': self.step,
                                  'recipe': {**recipe.to_dict(), 'output': str(self.output)},
                                  'wall_time_s': round(self.wall_time_s(), 1)})
        distributed.barrier(self.dist)
        return bundle.with_suffix('.safetensors')

    def close(self) -> None:
        """Leave the process group."""
        # The DDP wrapper holds the process group: left alive, the group is destroyed during
        # interpreter finalisation instead, where gloo aborts the process now and then.
        self.train_model = self.model
        gc.collect()
        distributed.shutdown(self.dist)


def _refuse_overwriting_inputs(bundle: pathlib.Path, recipe: Recipe) -> None:
    """Raise ValueError when the final bundle would replace a file the recipe reads."""
    written = {path.resolve() for path in bundle_paths(bundle)}
    for key, source in (('init', recipe.init), ('pretrained', recipe.pretrained)):
        if not source:
            continue
        read = {path.resolve() for path in bundle_paths(source)} | \
            {pathlib.Path(source).resolve()}
        if written & read:
            raise ValueError(f'the final bundle {bundle} would overwrite the {key} file '
                             f'{source}; choose another output directory')


@torch.no_grad()
def mean_pair_iou(model: DETRack, pairs, count: int, batch_size: int,
                  device: torch.device) -> float:
    """Mean IoU of the best-scoring box against the ground truth on ``count`` pairs."""
    model.eval()
    ious = []
    indices = list(range(min(count, len(pairs))))
    for start in range(0, len(indices), batch_size):
        batch = collate_pairs([pairs[i] for i in indices[start:start + batch_size]])
        outputs = model(batch['template'].to(device), batch['search'].to(device))
        boxes = best_box(outputs['boxes'], outputs['scores'])
        iou, _ = box_iou(cxcywh_to_xyxy(boxes.float()),
                         cxcywh_to_xyxy(batch['search_box'].to(device).float()))
        ious.append(iou.cpu())
    return float(torch.cat(ious).mean()) if ious else math.nan
