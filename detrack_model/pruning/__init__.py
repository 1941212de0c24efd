"""Structured pruning: learned masks, budgets, and slicing into a physically smaller network."""

from detrack_model.pruning.budget import (check_budget, global_threshold, keep_masks,
                                          minimum_kept)

__all__ = ['check_budget', 'global_threshold', 'keep_masks', 'minimum_kept']
