"""
Which mask entries survive a budget: global, layerwise, and the minimum barrier.

A budget ``b`` in (0, 1] is the fraction of masked channels kept. Masks are compared by their
absolute values (sparsity training drives unneeded ones towards zero from either side).

- *global*: one threshold over every mask value of every group, the value at position
  ``int((1 - b) * N)`` of the ascending sorted values; entries at or above it are kept, so
  layers whose masks are all small lose most (the pruning paper's finding: early attention).
- *layerwise*: the same rule inside each group, so every group keeps the same fraction.
- *minimum barrier*: whatever the rule says, a group keeps at least ``max(1, ceil(1 % of its
  size))`` of its largest entries, so no layer dies at extreme budgets.
"""

import math
from typing import Dict, Mapping

import torch

MODES = ('global', 'layerwise')
MIN_KEEP_FRACTION = 0.01


def check_budget(budget: float) -> float:
    """Return ``budget`` as a float, or raise ValueError when it is not in (0, 1]."""
    value = float(budget)
    if not 0.0 < value <= 1.0:
        raise ValueError(f'budget must be in (0, 1] (the fraction of channels kept), got '
                         f'{budget!r}')
    return value


def _threshold(values: torch.Tensor, budget: float) -> float:
    ordered = torch.sort(values.abs().flatten()).values
    position = min(int((1.0 - budget) * ordered.numel()), ordered.numel() - 1)
    return float(ordered[position])


def global_threshold(masks: Mapping[str, torch.Tensor], budget: float) -> float:
    """Return the one threshold that keeps the fraction ``budget`` of all mask values."""
    budget = check_budget(budget)
    if not masks:
        raise ValueError('no masks to threshold')
    return _threshold(torch.cat([m.detach().flatten().float() for m in masks.values()]), budget)


def minimum_kept(size: int, fraction: float = MIN_KEEP_FRACTION) -> int:
    """Return how many entries a group of ``size`` keeps at least (the minimum barrier)."""
    return min(size, max(1, math.ceil(fraction * size)))


def keep_masks(masks: Mapping[str, torch.Tensor], budget: float, mode: str = 'global',
               min_keep_fraction: float = MIN_KEEP_FRACTION) -> Dict[str, torch.Tensor]:
    """
    Return, per group, a boolean tensor of its mask's shape: True where the entry is kept.

    ``mode`` is 'global' or 'layerwise'; the minimum barrier applies in both (set
    ``min_keep_fraction`` to 0 for exactly one entry per group at least).
    """
    budget = check_budget(budget)
    if mode not in MODES:
        raise ValueError(f'unknown pruning mode {mode!r}; choose one of {MODES}')
    if mode == 'global':
        threshold = global_threshold(masks, budget)
    keep = {}
    for name, mask in masks.items():
        values = mask.detach().float().abs()
        if values.numel() == 0:
            raise ValueError(f'mask {name!r} is empty')
        limit = threshold if mode == 'global' else _threshold(values, budget)
        kept = values >= limit
        floor = minimum_kept(values.numel(), min_keep_fraction)
        if int(kept.sum()) < floor:
            # Ties broken by position, so the result is deterministic.
            top = torch.topk(values.flatten(), floor, sorted=False).indices
            kept = torch.zeros(values.numel(), dtype=torch.bool)
            kept[top] = True
            kept = kept.view_as(values)
        keep[name] = kept
    return keep
