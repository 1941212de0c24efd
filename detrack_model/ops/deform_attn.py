"""
Deformable attention entry point: input checks and the choice of implementation.

CUDA tensors run our CUDA kernel when it builds (see :mod:`detrack_model.ops.build`) and the
PyTorch reference otherwise; CPU tensors and ONNX export always run the reference. The choice
can be forced per call (``implementation=``) or per process (``DETRACK_DEFORM_ATTN``). Which
implementation runs is logged once per device type at INFO on the ``detrack_model.ops``
logger, and a kernel that could not be built is reported once at WARNING with the reason.
"""

import logging
import os
from typing import List, Sequence, Set, Tuple, Union

from detrack_model.ops import build
from detrack_model.ops.deform_attn_function import DeformableAttentionFunction
from detrack_model.ops.deform_attn_reference import deformable_attention_reference, ShapesLike
import torch

LOGGER = build.LOGGER
ENV_VAR = 'DETRACK_DEFORM_ATTN'
IMPLEMENTATIONS = ('auto', 'kernel', 'reference')

IndexLike = Union[torch.Tensor, Sequence[int]]

# Keys of the messages already logged: each is worth reading once per process, not per call.
_logged: Set[str] = set()


def _log_once(key: str, level: int, message: str, *args: object) -> None:
    if key not in _logged:
        _logged.add(key)
        LOGGER.log(level, message, *args)


def _requested(implementation: str) -> str:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f'implementation must be one of {IMPLEMENTATIONS}, '
                         f'got {implementation!r}')
    if implementation != 'auto':
        return implementation
    from_env = os.environ.get(ENV_VAR, 'auto').strip().lower() or 'auto'
    if from_env not in IMPLEMENTATIONS:
        raise ValueError(f'{ENV_VAR} must be one of {IMPLEMENTATIONS}, '
                         f'got {os.environ[ENV_VAR]!r}')
    return from_env


def select_implementation(device: Union[torch.device, str],
                          implementation: str = 'auto') -> str:
    """
    Return ``'kernel'`` or ``'reference'``: what runs for tensors on ``device``.

    ``implementation='auto'`` defers to ``$DETRACK_DEFORM_ATTN`` (default ``auto``): the
    kernel for CUDA devices when it builds, else the reference. Forcing ``'kernel'`` raises
    ``RuntimeError`` where the kernel cannot run (a CPU device, a failed build) instead of
    silently falling back. May build the extension (first CUDA call only).
    """
    requested = _requested(implementation)
    device = torch.device(device)
    if requested == 'reference':
        return 'reference'
    if torch.onnx.is_in_onnx_export():
        # ONNX has no node for our kernel; grid_sample exports as GridSample.
        if requested == 'kernel':
            raise RuntimeError("implementation='kernel' cannot be exported to ONNX; "
                               "use 'reference' or 'auto'")
        return 'reference'
    if device.type != 'cuda':
        if requested == 'kernel':
            raise RuntimeError("implementation='kernel' needs CUDA tensors, got device "
                               f'{device}')
        return 'reference'
    if build.load_extension() is None:
        reason = build.build_failure() or 'the extension builder returned nothing'
        if requested == 'kernel':
            raise RuntimeError(f'the deformable attention CUDA kernel is unavailable: {reason}')
        _log_once('unavailable', logging.WARNING,
                  'deformable attention: CUDA kernel unavailable, CUDA tensors use the PyTorch '
                  'reference instead. Reason: %s', reason)
        return 'reference'
    return 'kernel'


def _fail(message: str) -> None:
    raise ValueError(f'deformable_attention: {message}')


def _index_rows(name: str, data: Union[ShapesLike, IndexLike], dim: int) -> list:
    if isinstance(data, torch.Tensor):
        if data.dtype.is_floating_point or data.dtype.is_complex or data.dtype == torch.bool:
            _fail(f'{name} must be an integer tensor (int64), got dtype {data.dtype}')
        if data.dim() != dim:
            _fail(f'{name} must be {dim}-D, got shape {tuple(data.shape)}')
        return data.tolist()
    try:
        rows = [[int(v) for v in row] for row in data] if dim == 2 else [int(v) for v in data]
    except (TypeError, ValueError):
        _fail(f'{name} must be a tensor or a {"nested " if dim == 2 else ""}sequence of ints, '
              f'got {data!r}')
    return rows


def check_inputs(value: torch.Tensor, spatial_shapes: ShapesLike, level_start_index: IndexLike,
                 sampling_locations: torch.Tensor, attention_weights: torch.Tensor
                 ) -> Tuple[List[Tuple[int, int]], List[int]]:
    """
    Validate the arguments of :func:`deformable_attention`; return (H, W) per level and starts.

    Raises ``ValueError`` naming the expected and the actual value on the first mismatch.
    Reads ``spatial_shapes`` and ``level_start_index`` on the host (one small copy each when
    they live on a GPU).
    """
    for name, tensor, dims, layout in (
            ('value', value, 4, '(B, S, M, D)'),
            ('sampling_locations', sampling_locations, 6, '(B, Q, M, L, P, 2)'),
            ('attention_weights', attention_weights, 5, '(B, Q, M, L, P)')):
        if not isinstance(tensor, torch.Tensor):
            _fail(f'{name} must be a tensor {layout}, got {type(tensor).__name__}')
        if not tensor.dtype.is_floating_point:
            _fail(f'{name} must have a floating dtype, got {tensor.dtype}')
        if tensor.dim() != dims:
            _fail(f'{name} must be {dims}-D {layout}, got shape {tuple(tensor.shape)}')
        if tensor.device != value.device:
            _fail(f'{name} must be on the device of value ({value.device}), got {tensor.device}')

    batch, num_value, heads, _ = value.shape
    loc_shape = tuple(sampling_locations.shape)
    queries, levels, points = loc_shape[1], loc_shape[3], loc_shape[4]
    if loc_shape[5] != 2:
        _fail(f'sampling_locations must end in 2 (x, y), got shape {loc_shape}')
    if loc_shape[0] != batch or loc_shape[2] != heads:
        _fail(f'sampling_locations must have B={batch} and M={heads} like value '
              f'{tuple(value.shape)}, got shape {loc_shape}')
    expected = (batch, queries, heads, levels, points)
    if tuple(attention_weights.shape) != expected:
        _fail(f'attention_weights must have shape (B, Q, M, L, P) = {expected} to match value '
              f'and sampling_locations, got {tuple(attention_weights.shape)}')
    if levels < 1:
        _fail('at least one level is needed, got L=0')

    shape_rows = _index_rows('spatial_shapes', spatial_shapes, 2)
    if len(shape_rows) != levels or any(len(row) != 2 for row in shape_rows):
        _fail(f'spatial_shapes must be (L, 2) = ({levels}, 2) with L from sampling_locations, '
              f'got {shape_rows}')
    shapes = [(int(h), int(w)) for h, w in shape_rows]
    if any(h < 1 or w < 1 for h, w in shapes):
        _fail(f'every level needs H >= 1 and W >= 1, got spatial_shapes {shapes}')
    total = sum(h * w for h, w in shapes)
    if total != num_value:
        _fail(f'value has S={num_value} rows but spatial_shapes {shapes} sum to '
              f'sum(H*W)={total}')

    starts = [int(v) for v in _index_rows('level_start_index', level_start_index, 1)]
    expected_starts = [sum(h * w for h, w in shapes[:level]) for level in range(levels)]
    if starts != expected_starts:
        _fail(f'level_start_index must be the running sum of H*W, {expected_starts}, '
              f'got {starts}')
    return shapes, starts


def _device_index(data: Union[ShapesLike, IndexLike], rows: list,
                  device: torch.device) -> torch.Tensor:
    # Reuse a tensor that is already int64 on the right device: no copy, no synchronisation.
    if isinstance(data, torch.Tensor) and data.dtype == torch.int64 and data.device == device:
        return data
    return torch.tensor(rows, dtype=torch.int64, device=device)


def deformable_attention(value: torch.Tensor, spatial_shapes: ShapesLike,
                         level_start_index: IndexLike, sampling_locations: torch.Tensor,
                         attention_weights: torch.Tensor, implementation: str = 'auto'
                         ) -> torch.Tensor:
    """
    Multi-scale deformable attention (Deformable-DETR convention), differentiable in all inputs.

    ``value`` is (B, S, M, D) with the row-major maps of the L levels concatenated along S;
    ``spatial_shapes`` the (L, 2) integer (H, W) per level and ``level_start_index`` the (L,)
    first row of each level (tensors of any device, or Python sequences);
    ``sampling_locations`` (B, Q, M, L, P, 2) normalised (x, y) with pixel column j centred at
    (j + 0.5) / W; ``attention_weights`` (B, Q, M, L, P), already normalised by the caller.
    Returns (B, Q, M * D): per query and head, the attention-weighted sum of the bilinear
    samples; points outside a map read zeros.

    Mixed floating dtypes are promoted as PyTorch's binary ops do (half value with float32
    locations computes in float32). ``implementation`` is ``'auto'``, ``'kernel'`` or
    ``'reference'`` (see :func:`select_implementation`); ``ValueError`` reports malformed
    inputs.
    """
    shapes, starts = check_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                                  attention_weights)
    dtype = torch.promote_types(torch.promote_types(value.dtype, sampling_locations.dtype),
                                attention_weights.dtype)
    value = value.to(dtype)
    sampling_locations = sampling_locations.to(dtype)
    attention_weights = attention_weights.to(dtype)

    device = value.device
    choice = select_implementation(device, implementation)
    _log_once(f'{choice}:{device.type}', logging.INFO,
              'deformable attention: %s for %s tensors',
              'CUDA kernel' if choice == 'kernel' else 'PyTorch reference (grid_sample)',
              device.type)
    if choice == 'kernel':
        return DeformableAttentionFunction.apply(
            value, _device_index(spatial_shapes, shapes, device),
            _device_index(level_start_index, starts, device), sampling_locations,
            attention_weights)
    return deformable_attention_reference(value, shapes, starts, sampling_locations,
                                          attention_weights)
