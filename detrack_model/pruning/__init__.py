"""Structured pruning: learned masks, budgets, and slicing into a physically smaller network."""

from detrack_model.pruning.budget import (check_budget, global_threshold, keep_masks,
                                          minimum_kept)
from detrack_model.pruning.masks import masked_child, sparsity_penalty, SparsityWeights
from detrack_model.pruning.prune import choose_kept, prune_to_budget
from detrack_model.pruning.slicing import slice_model, SliceReport

__all__ = ['check_budget', 'choose_kept', 'global_threshold', 'keep_masks', 'masked_child',
           'minimum_kept', 'prune_to_budget', 'slice_model', 'SliceReport', 'sparsity_penalty',
           'SparsityWeights']
