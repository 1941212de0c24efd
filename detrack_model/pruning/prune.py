"""
From a sparsity-trained network and a budget to the set of kept channels and the child.

The encoder's attention and MLP masks share the budget: *global* puts one threshold over all
their values, *layerwise* keeps the same fraction in every one of them. The decoder FFN is
pruned only on request and always layerwise, as the pruning paper does with its decoder (a
global threshold emptied decoder layers there).
"""

from typing import Dict, Tuple

from detrack_model.modeling import DETRack
from detrack_model.modeling.prune_masks import prune_masks
from detrack_model.pruning.budget import check_budget, keep_masks, MIN_KEEP_FRACTION
from detrack_model.pruning.slicing import slice_model, SliceReport
import torch


def choose_kept(model: DETRack, budget: float, mode: str = 'global',
                min_keep_fraction: float = MIN_KEEP_FRACTION,
                prune_decoder: bool = False) -> Dict[str, torch.Tensor]:
    """Return, for every mask of ``model``, which of its entries the budget keeps."""
    budget = check_budget(budget)
    groups = prune_masks(model)
    encoder = {**groups['attention'], **groups['mlp']}
    if not encoder:
        raise ValueError('the model has no pruning masks: sparsity-train it first '
                         '(a recipe with masked: true and a sparsity section)')
    keep = keep_masks(encoder, budget, mode, min_keep_fraction)
    decoder = groups['decoder_ffn']
    if prune_decoder and decoder:
        keep.update(keep_masks(decoder, budget, 'layerwise', min_keep_fraction))
    else:
        keep.update({name: torch.ones_like(mask, dtype=torch.bool)
                     for name, mask in decoder.items()})
    return keep


def prune_to_budget(model: DETRack, budget: float, mode: str = 'global',
                    min_keep_fraction: float = MIN_KEEP_FRACTION,
                    prune_decoder: bool = False) -> Tuple[DETRack, SliceReport]:
    """Choose the kept channels for ``budget`` and slice ``model`` into its child."""
    keep = choose_kept(model, budget, mode, min_keep_fraction, prune_decoder)
    return slice_model(model, keep)
