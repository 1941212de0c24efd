"""
The CUDA kernels, run on the CPU by a host-compiled harness, against the PyTorch reference.

``detrack_model/ops/csrc/cpu_emulation.cpp`` compiles the kernel source itself with g++ and
runs every CUDA thread as a call (or, for the warp shuffles of the backward pass, as an OS
thread), so the kernels' index math, bounds handling and reductions are exercised on machines
without a GPU. Needs g++ and the CUDA toolkit's headers; skipped where either is missing.
"""

import ctypes
import pathlib
import shutil
import subprocess
from typing import Dict, Tuple

from detrack_model.ops import deformable_attention_reference
from detrack_model.ops.nvcc_check import find_cuda_include
import pytest
import torch

CSRC = pathlib.Path(__file__).resolve().parents[2] / 'detrack_model' / 'ops' / 'csrc'
SUFFIX = {torch.float32: 'f32', torch.float64: 'f64', torch.float16: 'f16',
          torch.bfloat16: 'bf16'}
# Small grids on purpose: grid-stride loops then iterate several times per thread/warp.
FORWARD_LAUNCH = (2, 64)
BACKWARD_LAUNCH = (3, 64)


@pytest.fixture(scope='module')
def emulator(tmp_path_factory) -> ctypes.CDLL:
    """Compile the harness once per module and load it."""
    compiler = shutil.which('g++')
    include = find_cuda_include()
    if compiler is None or include is None:
        pytest.skip('g++ or the CUDA toolkit headers not installed')
    library = tmp_path_factory.mktemp('deform_attn_emulation') / 'emulation.so'
    command = [compiler, '-std=c++17', '-O2', '-shared', '-fPIC', '-pthread',
               f'-I{include}', f'-I{CSRC}', str(CSRC / 'cpu_emulation.cpp'), '-o', str(library)]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    assert done.returncode == 0, 'harness failed to compile:\n' + done.stdout
    return ctypes.CDLL(str(library))


def _ptr(tensor: torch.Tensor) -> ctypes.c_void_p:
    assert tensor.is_contiguous()
    return ctypes.c_void_p(tensor.data_ptr())


def _sizes(value: torch.Tensor, locations: torch.Tensor) -> Tuple[ctypes.c_int64, ...]:
    batch, num_value, heads, channels = value.shape
    _, queries, _, levels, points, _ = locations.shape
    sizes = (batch, num_value, heads, channels, queries, levels, points)
    return tuple(ctypes.c_int64(n) for n in sizes)


def emulated_forward(lib: ctypes.CDLL, value, shapes, starts, locations, weights):
    """Run forward_kernel like the launcher does, on the CPU."""
    batch, _, heads, channels = value.shape
    output = torch.empty(batch, locations.shape[1], heads * channels, dtype=value.dtype)
    status = getattr(lib, f'emu_forward_{SUFFIX[value.dtype]}')(
        _ptr(value), _ptr(shapes), _ptr(starts), _ptr(locations), _ptr(weights), _ptr(output),
        *_sizes(value, locations), *map(ctypes.c_uint, FORWARD_LAUNCH))
    assert status == 0
    return output


def emulated_backward(lib: ctypes.CDLL, grad_output, value, shapes, starts, locations, weights):
    """Run backward_kernel (and, for half types, cast_kernel) like the launcher does."""
    suffix = SUFFIX[value.dtype]
    accumulator = torch.zeros(value.shape, dtype=torch.float64 if suffix == 'f64'
                              else torch.float32)
    # NaN-filled: the kernel must write every element of these (no zeroing in the launcher).
    grad_locations = torch.full_like(locations, float('nan'))
    grad_weights = torch.full_like(weights, float('nan'))
    status = getattr(lib, f'emu_backward_{suffix}')(
        _ptr(grad_output), _ptr(value), _ptr(shapes), _ptr(starts), _ptr(locations),
        _ptr(weights), _ptr(accumulator), _ptr(grad_locations), _ptr(grad_weights),
        *_sizes(value, locations), *map(ctypes.c_uint, BACKWARD_LAUNCH))
    assert status == 0, 'warp divergence at a shuffle' if status == 1 else f'status {status}'
    if accumulator.dtype == value.dtype:
        grad_value = accumulator
    else:
        grad_value = torch.empty_like(value)
        getattr(lib, f'emu_cast_{suffix}')(
            ctypes.cast(_ptr(accumulator), ctypes.POINTER(ctypes.c_float)), _ptr(grad_value),
            ctypes.c_int64(value.numel()), *map(ctypes.c_uint, FORWARD_LAUNCH))
    return grad_value, grad_locations, grad_weights


def make_inputs(shapes, batch: int, queries: int, heads: int, channels: int, points: int,
                seed: int) -> Dict[str, torch.Tensor]:
    """
    Build float64 inputs with random points plus points on and beyond the borders.

    Border points use dyadic fractions on power-of-two levels so that both implementations
    compute exactly the same pixel coordinate (the location gradient jumps there).
    """
    generator = torch.Generator().manual_seed(seed)
    shapes_t = torch.tensor(shapes, dtype=torch.int64)
    areas = shapes_t.prod(1)
    starts = torch.cat((areas.new_zeros(1), areas.cumsum(0)[:-1]))
    levels = len(shapes)
    value = torch.randn(batch, int(areas.sum()), heads, channels, generator=generator,
                        dtype=torch.float64)
    # Multiples of 1/1024: x * W is then exact in float32 too, so reduced-precision kernels
    # and the float64 reference agree on which side of a pixel a point lies.
    locations = ((torch.rand(batch, queries, heads, levels, points, 2, generator=generator,
                             dtype=torch.float64) * 1.4 - 0.2) * 1024).round() / 1024
    weights = torch.rand(batch, queries, heads, levels, points, generator=generator,
                         dtype=torch.float64)
    for level, (height, width) in enumerate(shapes):
        if height & (height - 1) or width & (width - 1):
            continue
        specials = torch.tensor([
            [0.0, 0.0], [1.0, 1.0], [0.0, 1.0],                 # map corners: partial weights
            [-0.5 / width, 0.5], [0.5, -0.5 / height],          # pixel coordinate exactly -1
            [(width + 0.5) / width, 0.5],                       # pixel coordinate exactly W
            [0.5 / width, 1.5 / height],                        # exactly on pixel centres
            [-3.0, 0.5], [0.5, 7.0],                            # far outside
        ], dtype=torch.float64)
        count = min(len(specials), queries * points)
        flat = locations[0, :, 0, level].reshape(-1, 2)
        flat[:count] = specials[:count]
        locations[0, :, 0, level] = flat.view(queries, points, 2)
    return {'value': value, 'spatial_shapes': shapes_t, 'level_start_index': starts,
            'sampling_locations': locations, 'attention_weights': weights}


def reference_with_grads(inputs: Dict[str, torch.Tensor], grad_output: torch.Tensor):
    """Return the reference output and the gradients of <output, grad_output>."""
    leaves = {name: inputs[name].detach().clone().requires_grad_(True)
              for name in ('value', 'sampling_locations', 'attention_weights')}
    output = deformable_attention_reference(leaves['value'], inputs['spatial_shapes'],
                                            inputs['level_start_index'],
                                            leaves['sampling_locations'],
                                            leaves['attention_weights'])
    grads = torch.autograd.grad(output, list(leaves.values()), grad_output)
    return output.detach(), grads


CASES = [
    # (spatial shapes, B, Q, M, D, P): single level, multi-level with odd sizes, D above and
    # below the warp width, and a non-power-of-two channel count.
    ([(4, 8)], 2, 5, 3, 40, 4),
    ([(4, 4), (3, 5), (2, 2)], 2, 3, 2, 8, 3),
    ([(8, 8), (2, 4)], 1, 4, 2, 33, 2),
]


@pytest.mark.parametrize('shapes, batch, queries, heads, channels, points', CASES)
def test_float64_matches_reference(emulator, shapes, batch, queries, heads, channels, points):
    """The double instantiation equals the reference to rounding, gradients included."""
    inputs = make_inputs(shapes, batch, queries, heads, channels, points, seed=1)
    grad_output = torch.randn(batch, queries, heads * channels, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(2))
    expected, (grad_value, grad_locations, grad_weights) = reference_with_grads(inputs,
                                                                                grad_output)
    args = (inputs['value'], inputs['spatial_shapes'], inputs['level_start_index'],
            inputs['sampling_locations'], inputs['attention_weights'])
    torch.testing.assert_close(emulated_forward(emulator, *args), expected, rtol=0, atol=1e-12)
    got = emulated_backward(emulator, grad_output, *args)
    torch.testing.assert_close(got[0], grad_value, rtol=0, atol=1e-12)
    torch.testing.assert_close(got[1], grad_locations, rtol=0, atol=1e-10)
    torch.testing.assert_close(got[2], grad_weights, rtol=0, atol=1e-12)


@pytest.mark.parametrize('dtype, tolerance', [(torch.float32, 1e-5), (torch.float16, 2e-2),
                                              (torch.bfloat16, 1e-1)])
@pytest.mark.parametrize('shapes, batch, queries, heads, channels, points', CASES[:2])
def test_reduced_precision_matches_reference(emulator, dtype, tolerance, shapes, batch,
                                             queries, heads, channels, points):
    """float32, half and bfloat16 kernels match the float64 reference of the rounded inputs."""
    inputs = make_inputs(shapes, batch, queries, heads, channels, points, seed=3)
    # Round the inputs to the dtype first so only the kernel's own arithmetic is compared.
    for name in ('value', 'sampling_locations', 'attention_weights'):
        inputs[name] = inputs[name].to(dtype).to(torch.float64)
    grad_output = torch.randn(batch, queries, heads * channels, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(4)).to(dtype)
    expected, grads = reference_with_grads(inputs, grad_output.to(torch.float64))
    args = (inputs['value'].to(dtype), inputs['spatial_shapes'], inputs['level_start_index'],
            inputs['sampling_locations'].to(dtype), inputs['attention_weights'].to(dtype))
    output = emulated_forward(emulator, *args)
    assert output.dtype == dtype
    torch.testing.assert_close(output.double(), expected, rtol=tolerance, atol=tolerance)
    got = emulated_backward(emulator, grad_output, *args)
    for name, actual, wanted in zip(('value', 'locations', 'weights'), got, grads):
        assert actual.dtype == dtype, name
        # Location gradients scale with the map size, so compare them relative to their range.
        scale = max(1.0, float(wanted.abs().max())) if name == 'locations' else 1.0
        torch.testing.assert_close(actual.double() / scale, wanted / scale, rtol=tolerance,
                                   atol=tolerance, msg=lambda m, n=name: f'grad {n}: {m}')
