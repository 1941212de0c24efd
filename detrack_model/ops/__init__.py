"""
Custom operators of the DETRack network: multi-scale deformable attention.

:func:`deformable_attention` is the entry point: it validates its inputs and runs our CUDA
kernel on CUDA tensors (built on first use, see :mod:`detrack_model.ops.build`) or the
``grid_sample`` reference everywhere else. Set ``DETRACK_DEFORM_ATTN=reference|kernel|auto``
to force a choice for the whole process.
"""

from detrack_model.ops.deform_attn import check_inputs, deformable_attention
from detrack_model.ops.deform_attn import select_implementation
from detrack_model.ops.deform_attn_reference import deformable_attention_reference

__all__ = [
    'check_inputs',
    'deformable_attention',
    'deformable_attention_reference',
    'select_implementation',
]
