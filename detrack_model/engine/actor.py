"""
The tracking actor: the forward pass and the loss of one batch of template/search pairs.

The training loop owns the optimisation; the actor turns a batch into a loss. It draws the
denoising queries with noise seeded per sample, runs the network with candidate elimination
from the recipe's epoch on, applies the criterion and adds the sparsity penalty of a masked
network.
"""

import functools
from typing import Any, Dict, List, Optional, Tuple

from detrack_model.engine import distributed
from detrack_model.engine.loop import autocast
from detrack_model.engine.recipe import Recipe
from detrack_model.losses import build_criterion
from detrack_model.losses.criterion import placeholder_gt
from detrack_model.losses.denoising import DenoisingMeta
from detrack_model.modeling import DETRack
from detrack_model.modeling.detrack import DenoisingQueries
from detrack_model.pruning.masks import sparsity_penalty, SparsityWeights
import torch
from torch import nn


def sample_seed(seed: int, epoch: int, index: int, stream: int) -> int:
    """Derive a 63-bit seed for one sample's random stream (stream 1: denoising noise)."""
    mixed = (seed * 1_000_003 + epoch) * 2_000_003 + index
    return (mixed * 6_364_136_223_846_793_005 + stream * 1_442_695_040_888_963_407) % (1 << 63)


class TrackingActor:
    """Compute the loss of a DETRack network on a batch, as a recipe describes it."""

    def __init__(self, model: DETRack, criterion: nn.Module, recipe: Recipe,
                 device: torch.device, autocast_dtype: Optional[torch.dtype] = None) -> None:
        self.model = model
        self.criterion = criterion
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.seed = recipe.optim.seed
        self.ce_start_epoch = recipe.optim.ce_start_epoch
        self.num_queries = recipe.model.decoder.num_queries
        self.denoises = recipe.model.head == 'decoder' and criterion.config.denoising
        sparsity = recipe.sparsity
        self.sparsity = None if sparsity is None else SparsityWeights(
            sparsity.attention, sparsity.mlp, sparsity.decoder_ffn)

    @classmethod
    def from_recipe(cls, recipe: Recipe, model: DETRack, dist: distributed.DistInfo,
                    device: torch.device,
                    autocast_dtype: Optional[torch.dtype] = None) -> 'TrackingActor':
        """Build the actor with the recipe's criterion, its normalisers global over ``dist``."""
        criterion = build_criterion(
            recipe.model.head, recipe.loss, grid=recipe.model.search_grid,
            reduce_count=functools.partial(distributed.all_reduce_mean, info=dist),
            processes=dist.world_size)
        return cls(model, criterion, recipe, device, autocast_dtype)

    def __call__(self, network: nn.Module, batch: Dict[str, Any],
                 epoch: int) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """
        Return the loss of this process's share of ``batch`` and its logged components.

        ``network`` runs the forward pass: the actor's model or its DDP wrapper.
        """
        template = batch['template'].to(self.device, non_blocking=True)
        search = batch['search'].to(self.device, non_blocking=True)
        present = batch.get('present')
        if present is not None:
            present = present.to(self.device, non_blocking=True)
        # An absent pair's zero box would make degenerate denoising queries: a placeholder box
        # stands in, and the criterion gives it no positive.
        gt_boxes = placeholder_gt(batch['search_box'].to(self.device, non_blocking=True),
                                  present)
        dn_queries, dn_meta = self.denoising(gt_boxes, epoch, batch['index'])
        kwargs = {'candidate_elimination': epoch >= self.ce_start_epoch}
        if dn_queries is not None:
            kwargs['denoising'] = dn_queries
        with autocast(self.autocast_dtype):
            outputs = network(template, search, **kwargs)
        loss, parts = self.criterion(outputs, gt_boxes, dn_meta, present=present)
        if self.sparsity is not None:
            penalty, sums = sparsity_penalty(self.model, self.sparsity)
            loss = loss + penalty
            parts = {**parts, 'sparsity': penalty.detach(),
                     **{f'mask_l1_{kind}': value.detach() for kind, value in sums.items()}}
        return loss, parts

    def denoising(self, gt_boxes: torch.Tensor, epoch: int, indices: List[int]
                  ) -> Tuple[Optional[DenoisingQueries], Optional[DenoisingMeta]]:
        """
        Denoising queries with noise seeded per sample, concatenated over the batch.

        Seeding by sample index (not by batch) keeps the noise of a sample the same however
        the global batch is split over processes.
        """
        if not self.denoises:
            return None, None
        parts = [self.criterion.denoising_queries(
            gt_boxes[row:row + 1].detach().cpu(), self.num_queries,
            torch.Generator().manual_seed(sample_seed(self.seed, epoch, index, 1)))
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
