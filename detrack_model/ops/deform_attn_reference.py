"""
Multi-scale deformable attention in plain PyTorch: the reference and the CPU/ONNX path.

Built only from ``grid_sample`` (bilinear, zero padding, ``align_corners=False``), reshapes and
a weighted sum, so it runs on any device, differentiates through autograd and exports to ONNX
(opset 16+, where ``GridSample`` exists). The CUDA kernel in ``csrc/`` is tested against it.
"""

import functools
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

ShapesLike = Union[torch.Tensor, Sequence[Sequence[int]]]

_HALF_TYPES = (torch.float16, torch.bfloat16)


def level_shapes(spatial_shapes: ShapesLike) -> List[Tuple[int, int]]:
    """Return the per-level ``(H, W)`` as Python ints, from a tensor or a nested sequence."""
    if isinstance(spatial_shapes, torch.Tensor):
        # One device-to-host copy for all levels; shapes must be static Python ints to reshape.
        rows = spatial_shapes.tolist()
    else:
        rows = [list(row) for row in spatial_shapes]
    return [(int(row[0]), int(row[1])) for row in rows]


@functools.lru_cache(maxsize=None)
def _cpu_grid_sample_supports(dtype: torch.dtype) -> bool:
    # Older PyTorch releases raise "not implemented for 'Half'" in the CPU grid_sampler; probe
    # once per dtype instead of pinning a version, since support differs per build.
    try:
        F.grid_sample(torch.zeros(1, 1, 2, 2, dtype=dtype), torch.zeros(1, 1, 1, 2, dtype=dtype),
                      mode='bilinear', padding_mode='zeros', align_corners=False)
    except RuntimeError:
        return False
    return True


def deformable_attention_reference(value: torch.Tensor, spatial_shapes: ShapesLike,
                                   level_start_index: Union[torch.Tensor, Sequence[int]],
                                   sampling_locations: torch.Tensor,
                                   attention_weights: torch.Tensor) -> torch.Tensor:
    """
    Sample every level at each query's points and sum the samples weighted by attention.

    Shapes: ``value`` (B, S, M, D) with the levels' row-major maps concatenated along S,
    ``spatial_shapes`` (L, 2) as (H, W) per level, ``sampling_locations`` (B, Q, M, L, P, 2)
    as normalised (x, y) with pixel column j centred at (j + 0.5) / W, ``attention_weights``
    (B, Q, M, L, P). Returns (B, Q, M * D) in the dtype of ``value``. Points outside a map
    read zeros, with partial bilinear weights at the border.

    The levels are split off ``value`` by their sizes, so ``level_start_index`` must be the
    exclusive cumulative sum of H * W; it is accepted for the common signature and checked by
    :func:`detrack_model.ops.deformable_attention`, not here. Inputs are assumed validated
    and of one floating dtype; half and bfloat16 are computed in float32 on a CPU whose
    ``grid_sample`` lacks them and cast back.
    """
    del level_start_index  # implied by spatial_shapes; see the docstring
    dtype = value.dtype
    on_cpu = value.device.type == 'cpu'
    if on_cpu and dtype in _HALF_TYPES and not _cpu_grid_sample_supports(dtype):
        value = value.float()
        sampling_locations = sampling_locations.float()
        attention_weights = attention_weights.float()

    shapes = level_shapes(spatial_shapes)
    batch, _, heads, channels = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape

    # grid_sample works on (N, C, H, W) maps; fold the heads into N so every head samples its
    # own channels, and map [0, 1] locations to grid_sample's [-1, 1].
    grids = sampling_locations * 2 - 1
    value_levels = value.split([h * w for h, w in shapes], dim=1)
    samples = []
    for level, (height, width) in enumerate(shapes):
        value_map = value_levels[level].permute(0, 2, 3, 1)
        value_map = value_map.reshape(batch * heads, channels, height, width)
        grid = grids[:, :, :, level].transpose(1, 2).reshape(batch * heads, queries, points, 2)
        samples.append(F.grid_sample(value_map, grid, mode='bilinear', padding_mode='zeros',
                                     align_corners=False))
    # (B*M, D, Q, L, P) -> (B*M, D, Q, L*P), weighted sum over the levels' points.
    sampled = torch.stack(samples, dim=-2).flatten(-2)
    weights = attention_weights.transpose(1, 2).reshape(batch * heads, 1, queries,
                                                        levels * points)
    output = (sampled * weights).sum(-1).view(batch, heads * channels, queries)
    return output.transpose(1, 2).contiguous().to(dtype)
