"""Autograd wrapper of the deformable-attention CUDA kernels."""

from typing import Optional, Tuple

from detrack_model.ops import build
import torch
from torch.autograd.function import once_differentiable


def _extension():
    extension = build.load_extension()
    if extension is None:
        raise RuntimeError('the deformable attention CUDA extension is unavailable: '
                           f'{build.build_failure() or "unknown reason"}')
    return extension


class DeformableAttentionFunction(torch.autograd.Function):
    """
    Run the CUDA kernels forward and backward.

    Takes the inputs of :func:`detrack_model.ops.deformable_attention` already validated,
    on one CUDA device and of one dtype; ``spatial_shapes`` and ``level_start_index`` must be
    int64 tensors on that device. Non-contiguous inputs are copied to contiguous ones.
    """

    @staticmethod
    def forward(ctx, value: torch.Tensor, spatial_shapes: torch.Tensor,
                level_start_index: torch.Tensor, sampling_locations: torch.Tensor,
                attention_weights: torch.Tensor) -> torch.Tensor:
        extension = _extension()
        value = value.contiguous()
        spatial_shapes = spatial_shapes.contiguous()
        level_start_index = level_start_index.contiguous()
        sampling_locations = sampling_locations.contiguous()
        attention_weights = attention_weights.contiguous()
        ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations,
                              attention_weights)
        return extension.forward(value, spatial_shapes, level_start_index, sampling_locations,
                                 attention_weights)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights = \
            ctx.saved_tensors
        # One kernel yields all three gradients, so they are computed together and the
        # unneeded ones dropped.
        grad_value, grad_locations, grad_weights = _extension().backward(
            grad_output.contiguous(), value, spatial_shapes, level_start_index,
            sampling_locations, attention_weights)
        needs = ctx.needs_input_grad
        return (grad_value if needs[0] else None, None, None,
                grad_locations if needs[3] else None, grad_weights if needs[4] else None)
