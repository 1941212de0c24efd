"""
The tracking trainer: one CPU to many GPUs, resumable at any step.

Every random choice of a training step is a function of (seed, epoch, sample index): which
pair is drawn, its augmentation and its denoising noise. That is what makes a resumed run
reproduce an uninterrupted one and a DDP run reproduce a single process on the same global
batch; the global torch RNG (dropout, stochastic depth) is saved with each checkpoint.

As in pytracking, the parts are separate: the pairs come from ``build_pair_data``, the loss of
a batch from the :class:`~detrack_model.engine.actor.TrackingActor`, the loop (batches,
checkpoints, logs) from :class:`~detrack_model.engine.loop.TrainingLoop`.
"""

import logging
import math
import pathlib
from typing import Any, Callable, Dict, Optional, Tuple

from detrack_model.engine import distributed
from detrack_model.engine.actor import TrackingActor
from detrack_model.engine.data import (build_pair_dataset, collate_pairs, IndexedPairs,
                                       materialise_all)
from detrack_model.engine.loop import TrainingLoop
from detrack_model.engine.recipe import Recipe
from detrack_model.export.bundle import bundle_paths, init_from_bundle, read_bundle_config
from detrack_model.export.bundle import save_bundle
from detrack_model.modeling import create_model, DETRack
from detrack_model.modeling.box_ops import best_box, box_iou, cxcywh_to_xyxy
from detrack_model.modeling.checkpoint import load_pretrained_encoder
from detrack_model.modeling.prune_masks import named_masks
import torch

LOG = logging.getLogger(__name__)
PairData = Tuple[IndexedPairs, Optional[IndexedPairs]]


def build_pair_data(recipe: Recipe, dist: distributed.DistInfo) -> PairData:
    """
    Return a recipe's training pairs and validation pairs (None without a val section).

    Rank 0 generates missing synthetic splits; the others wait and then read them.
    """
    if dist.is_main:
        materialise_all(recipe)
    distributed.barrier(dist)
    train = build_pair_dataset(recipe.data.train, recipe, recipe.optim.seed, training=True)
    val = build_pair_dataset(recipe.data.val, recipe, recipe.optim.seed + 1,
                             training=False) if recipe.data.val else None
    return train, val


def build_model(recipe: Recipe, device: torch.device) -> DETRack:
    """Create the recipe's network on ``device``, from its pretrained encoder or bundle."""
    model = create_model(recipe.model).to(device)
    if recipe.pretrained:
        load_pretrained_encoder(model.encoder, recipe.pretrained)
    if recipe.init:
        init_from_bundle(model, recipe.init)
    return model


class Trainer(TrainingLoop):
    """
    Train a DETRack network from a recipe.

    ``data`` builds the training and validation pairs from the recipe and this process's
    place in the job (``build_pair_data`` by default).
    """

    unit = 'pairs'
    collate = staticmethod(collate_pairs)

    def __init__(self, recipe: Recipe, output: Optional[str] = None,
                 device: str = 'auto', progress: bool = True,
                 data: Callable[[Recipe, distributed.DistInfo], PairData] = build_pair_data
                 ) -> None:
        _refuse_overwriting_inputs(pathlib.Path(output or recipe.output) / 'model', recipe)
        super().__init__(recipe, output, device, progress, 'pairs_per_epoch')
        self.model = build_model(recipe, self.device)
        # A network trained on from a pruned child keeps the child's structure: its record
        # (budget, per-layer widths) travels on with every later stage.
        self.pruning = read_bundle_config(recipe.init).get('metadata', {}).get(
            'pruning') if recipe.init else None
        self.train_model = self._distribute(self.model)
        self.actor = TrackingActor.from_recipe(recipe, self.model, self.dist, self.device,
                                               self.autocast_dtype)
        self.optimizer = self._optimizer()
        drop_step = int(recipe.optim.lr_drop * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 1.0 if step < drop_step else 0.1)
        self.train_data, self.val_data = data(recipe, self.dist)
        self.skipped = 0
        self._start_clock()

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

    # -- the loop's parts ------------------------------------------------------------------

    def _objective(self, batch: Dict[str, Any],
                   epoch: int) -> Tuple[torch.Tensor, Dict[str, Any]]:
        return self.actor(self.train_model, batch, epoch)

    def _after_step(self, batch: Dict[str, Any]) -> None:
        """Count the pairs whose data could not be used (see TrackingPairDataset)."""
        self.skipped += int(sum(batch['skipped']))

    def _counters(self) -> Dict[str, int]:
        return {'skipped': self.skipped}

    def _restore_counters(self, state: Dict[str, Any]) -> None:
        self.skipped = int(state.get('skipped', 0))

    def _learning_rates(self) -> Dict[str, float]:
        encoder, rest = self.scheduler.get_last_lr()[:2]
        return {'lr': rest, 'lr_encoder': encoder}

    def _validate(self, epoch: int) -> Optional[Dict[str, float]]:
        if self.val_data is None:
            return None
        iou = self.evaluate(self.recipe.data.val_pairs)
        LOG.info('epoch %d: validation mean IoU %.3f', epoch, iou)
        return {'val_mean_iou': iou}

    @torch.no_grad()
    def evaluate(self, pairs: int) -> float:
        """Mean IoU of the top-scoring box on held-out template/search pairs."""
        return mean_pair_iou(self.model, self.val_data, pairs, self.recipe.optim.batch_size,
                             self.device)

    def _result_path(self) -> pathlib.Path:
        return self.output / 'model.safetensors'

    def _write_result(self) -> None:
        """Write the final bundle with the steps, the recipe and the training time."""
        recipe = {**self.recipe.to_dict(), 'output': str(self.output)}
        metadata = {'steps': self.step, 'recipe': recipe,
                    'wall_time_s': round(self.wall_time_s(), 1)}
        if self.pruning:
            metadata['pruning'] = self.pruning
        save_bundle(self.model, self.output / 'model', metadata=metadata)


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
