"""
The sparsity penalty on pruning masks and the masked child network of a budget.

Sparsity training adds ``w_attn * sum|attention masks| + w_mlp * sum|MLP masks|`` (and,
optionally, a weight on the decoder FFN masks) to the training loss, so masks of channels the
tracker does not need drift towards zero and a budget can cut them.
"""

import copy
from dataclasses import dataclass
from typing import Dict, Mapping, Tuple

from detrack_model.modeling.prune_masks import KINDS, named_masks, prune_masks
import torch
from torch import nn


@dataclass
class SparsityWeights:
    """L1 weights per mask kind (the pruning paper's OSTrack values by default)."""

    attention: float = 1.5e-4
    mlp: float = 7.5e-5
    decoder_ffn: float = 0.0


def sparsity_penalty(model: nn.Module,
                     weights: SparsityWeights) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """
    Return the weighted L1 penalty on the model's masks and its unweighted sum per kind.

    Raises ValueError when the model has no masks (it was not built with ``masked: true``).
    """
    groups = prune_masks(model)
    if not any(groups.values()):
        raise ValueError('the model has no pruning masks: build it with masked: true')
    total = None
    sums = {}
    for kind in KINDS:
        if not groups[kind]:
            continue
        value = sum(mask.abs().sum() for mask in groups[kind].values())
        sums[kind] = value
        term = getattr(weights, kind) * value
        total = term if total is None else total + term
    return total, sums


def masked_child(model: nn.Module, keep: Mapping[str, torch.Tensor]) -> nn.Module:
    """
    Return a copy of ``model`` whose pruned mask entries are zero: the reference child.

    This is all the reference implementation ever builds (it never gets faster); slicing
    must reproduce its outputs.
    """
    child = copy.deepcopy(model)
    masks = named_masks(child)
    unknown = sorted(set(keep) - set(masks))
    if unknown:
        raise ValueError(f'no masks named {unknown}')
    with torch.no_grad():
        for name, kept in keep.items():
            masks[name].mul_(kept.to(masks[name]))
    return child
