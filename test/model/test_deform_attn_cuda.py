"""
Deformable attention CUDA kernel: compile checks, build fallback, and GPU correctness.

The nvcc compile check and the binding syntax check run wherever a CUDA toolkit is installed
(GPU or not); the fallback and autograd-glue tests run anywhere; the kernel-vs-reference
tests need a CUDA GPU and are skipped without one.
"""

import logging
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import types
from typing import Dict, List, Tuple

from detrack_model.ops import build, deformable_attention, deformable_attention_reference
from detrack_model.ops import select_implementation
import detrack_model.ops.deform_attn as dispatch
from detrack_model.ops.deform_attn_function import DeformableAttentionFunction
from detrack_model.ops.nvcc_check import compile_kernels, DEFAULT_ARCHS
from detrack_model.ops.nvcc_check import find_cuda_include, find_nvcc
import pytest
import torch

LOGGER_NAME = 'detrack_model.ops'
CSRC = pathlib.Path(__file__).resolve().parents[2] / 'detrack_model' / 'ops' / 'csrc'
FLOAT_NAMES = ('value', 'sampling_locations', 'attention_weights')


def needs_gpu(test):
    """Mark ``test`` ``gpu``, and skip it where there is no CUDA GPU."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
    return pytest.mark.gpu(skip(test))


# --- compile checks (CUDA toolkit, no GPU) --------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('arch', DEFAULT_ARCHS)
def test_nvcc_compiles_kernels(arch):
    """deform_attn_cuda.cu compiles with nvcc alone for every architecture we target."""
    if find_nvcc() is None:
        pytest.skip('nvcc (CUDA toolkit) not installed')
    # The source tree's file: an installed package need not carry csrc/.
    result = compile_kernels(arch, source=CSRC / 'deform_attn_cuda.cu')
    assert result.ok, f'nvcc failed for {arch}:\n{" ".join(result.command)}\n{result.output}'


# The CPU wheel lacks ATen/cuda; this stand-in declares exactly what the binding uses from it.
CUDA_CONTEXT_STUB = """
#pragma once
#include <c10/core/Device.h>
#include <cuda_runtime_api.h>
namespace at { namespace cuda {
struct CUDAStream { cudaStream_t stream() const; };
CUDAStream getCurrentCUDAStream(c10::DeviceIndex device_index = -1);
}}  // namespace at::cuda
"""


@pytest.mark.slow
def test_binding_compiles_against_torch_headers(tmp_path):
    """deform_attn_binding.cpp passes a syntax check against this PyTorch's headers."""
    from torch.utils import cpp_extension

    compiler = shutil.which('g++') or shutil.which('c++')
    cuda_include = find_cuda_include()
    python_include = sysconfig.get_paths()['include']
    if compiler is None or cuda_include is None:
        pytest.skip('CUDA toolkit headers or a C++ compiler not installed')
    if not (pathlib.Path(python_include) / 'Python.h').is_file():
        pytest.skip('Python development headers not installed')
    includes = [str(cuda_include), python_include, str(CSRC), *cpp_extension.include_paths()]
    # Always the stand-in, even with a CUDA build of PyTorch: the real header pulls in CUDA
    # libraries' headers (cusparse, cublas) that a toolkit may lack, and the real build on a
    # GPU machine checks it anyway. This test is about our code against PyTorch's API.
    stub = tmp_path / 'ATen' / 'cuda' / 'CUDAContext.h'
    stub.parent.mkdir(parents=True)
    stub.write_text(CUDA_CONTEXT_STUB)
    includes.insert(0, str(tmp_path))
    command = [compiler, '-fsyntax-only', '-std=c++20', '-DTORCH_EXTENSION_NAME=syntax_check',
               *(f'-I{path}' for path in includes), str(CSRC / 'deform_attn_binding.cpp')]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout[-6000:]


# --- build fallback and dispatch (any machine) ----------------------------------------------

@pytest.fixture
def fresh_log(monkeypatch):
    """Forget the one-off log messages and ignore the caller's DETRACK_DEFORM_ATTN."""
    monkeypatch.setattr(dispatch, '_logged', set())
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)


@pytest.fixture
def fresh_state(fresh_log, monkeypatch):
    """Also put the builder's cached result back as it was after the test."""
    for name in ('_attempted', '_module', '_failure'):
        monkeypatch.setattr(build, name, getattr(build, name))


def test_failed_build_falls_back_to_reference_and_warns_once(fresh_state, monkeypatch, caplog):
    """A kernel that does not build means the reference for CUDA tensors, said once."""
    monkeypatch.setattr(build, 'load_extension', lambda: None)
    monkeypatch.setattr(build, 'build_failure', lambda: 'nvcc fatal: unsupported gpu sm_999')
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        assert select_implementation('cuda') == 'reference'
        assert select_implementation(torch.device('cuda', 0)) == 'reference'
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert 'nvcc fatal: unsupported gpu sm_999' in warnings[0].getMessage()
    assert warnings[0].name == LOGGER_NAME
    with pytest.raises(RuntimeError, match='unavailable: nvcc fatal'):
        select_implementation('cuda', 'kernel')


def test_builder_never_raises(fresh_state, monkeypatch, caplog):
    """Any exception while building becomes None plus a short reason, cached for the process."""
    calls = []

    def broken_build():
        calls.append(1)
        raise RuntimeError('Error building extension\n' + '\n'.join(f'line {i}'
                                                                    for i in range(100)))

    monkeypatch.setattr(build, '_build', broken_build)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    build.reset()
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        assert build.load_extension() is None
        assert build.load_extension() is None
    assert calls == [1]
    reason = build.build_failure()
    assert reason.startswith('RuntimeError: Error building extension')
    assert 'line 99' in reason and 'line 10\n' not in reason
    assert any('line 10\n' in r.getMessage() for r in caplog.records)  # full log at DEBUG


def test_builder_without_cuda(fresh_state, monkeypatch):
    """Without CUDA the builder returns None and says why, without compiling anything."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(build, '_build', lambda: pytest.fail('must not compile'))
    build.reset()
    assert build.load_extension() is None
    assert build.build_failure() == 'CUDA is not available to PyTorch'


def _reference_extension() -> types.SimpleNamespace:
    """Stand in for the compiled extension with the reference, to test the glue on CPU."""
    def forward(value, shapes, starts, locations, weights):
        for tensor in (value, shapes, starts, locations, weights):
            assert tensor.is_contiguous()
        return deformable_attention_reference(value, shapes, starts, locations, weights)

    def backward(grad_output, value, shapes, starts, locations, weights):
        assert grad_output.is_contiguous()
        leaves = [t.detach().requires_grad_(True) for t in (value, locations, weights)]
        with torch.enable_grad():
            output = deformable_attention_reference(leaves[0], shapes, starts, *leaves[1:])
            return list(torch.autograd.grad(output, leaves, grad_output))

    return types.SimpleNamespace(forward=forward, backward=backward)


def test_autograd_function_glue(fresh_state, monkeypatch, caplog):
    """The Function passes arguments in order, makes them contiguous and routes gradients."""
    monkeypatch.setattr(build, 'load_extension', _reference_extension)
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        assert select_implementation('cuda') == 'kernel'
    inputs = make_inputs([(4, 5), (2, 3)], batch=2, queries=3, heads=2, channels=4, points=2,
                         dtype=torch.float64, seed=7)
    # Non-contiguous value and weights, a value that needs no gradient.
    value = inputs['value'].transpose(2, 3).contiguous().transpose(2, 3)
    weights = inputs['attention_weights'].transpose(0, 1).contiguous().transpose(0, 1)
    locations = inputs['sampling_locations'].clone().requires_grad_(True)
    weights.requires_grad_(True)
    output = DeformableAttentionFunction.apply(value, inputs['spatial_shapes'],
                                               inputs['level_start_index'], locations, weights)
    expected = deformable_attention_reference(value, inputs['spatial_shapes'],
                                              inputs['level_start_index'], locations, weights)
    torch.testing.assert_close(output, expected, rtol=0, atol=0)
    grad_output = torch.randn_like(output).transpose(0, 1).contiguous().transpose(0, 1)
    got = torch.autograd.grad(output, (locations, weights), grad_output, retain_graph=True)
    wanted = torch.autograd.grad(expected, (locations, weights), grad_output)
    for actual, reference in zip(got, wanted):
        torch.testing.assert_close(actual, reference, rtol=0, atol=1e-12)
    output.backward(grad_output)
    assert value.grad is None


def test_function_without_extension_raises(fresh_state, monkeypatch):
    """Calling the Function directly without a built extension names the reason."""
    monkeypatch.setattr(build, 'load_extension', lambda: None)
    monkeypatch.setattr(build, 'build_failure', lambda: 'no ninja')
    inputs = make_inputs([(2, 2)], 1, 1, 1, 1, 1, torch.float32, seed=0)
    with pytest.raises(RuntimeError, match='unavailable: no ninja'):
        DeformableAttentionFunction.apply(*(inputs[name] for name in (
            'value', 'spatial_shapes', 'level_start_index', 'sampling_locations',
            'attention_weights')))


# --- kernel vs reference on a GPU -------------------------------------------------------------

def make_inputs(shapes: List[Tuple[int, int]], batch: int, queries: int, heads: int,
                channels: int, points: int, dtype: torch.dtype, seed: int,
                device: str = 'cpu', borders: bool = False,
                quantise: bool = True) -> Dict[str, torch.Tensor]:
    """
    Random inputs with softmaxed weights; locations reach past the borders.

    ``quantise`` puts locations on multiples of 1/1024, so that x * W is exact in float32 and
    both implementations see the very same pixel coordinate: the location gradient jumps at
    integer coordinates, and a last-bit difference there would be a false alarm.
    """
    generator = torch.Generator().manual_seed(seed)
    levels = len(shapes)
    areas = [h * w for h, w in shapes]
    locations = torch.rand(batch, queries, heads, levels, points, 2, generator=generator,
                           dtype=torch.float64) * 1.3 - 0.15
    if quantise:
        locations = (locations * 1024).round() / 1024
    if borders:
        specials = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [-2.0, 0.5],
                                 [0.5, 3.0]], dtype=torch.float64)
        flat = locations[0, 0].reshape(-1, 2)
        count = min(len(specials), flat.shape[0])
        flat[:count] = specials[:count]
        locations[0, 0] = flat.view(heads, levels, points, 2)
    logits = torch.randn(batch, queries, heads, levels * points, generator=generator,
                         dtype=torch.float64)
    inputs = {
        'value': torch.randn(batch, sum(areas), heads, channels, generator=generator,
                             dtype=torch.float64),
        'spatial_shapes': torch.tensor(shapes, dtype=torch.int64),
        'level_start_index': torch.tensor([sum(areas[:i]) for i in range(levels)],
                                          dtype=torch.int64),
        'sampling_locations': locations,
        'attention_weights': logits.softmax(-1).view(batch, queries, heads, levels, points),
    }
    return {name: (t.to(dtype) if name in FLOAT_NAMES else t).to(device)
            for name, t in inputs.items()}


@pytest.fixture
def kernel_ready(fresh_log):
    """Build the extension (a failed build fails the test: on a GPU it must work)."""
    assert select_implementation('cuda', 'kernel') == 'kernel', build.build_failure()


def _run(inputs: Dict[str, torch.Tensor], implementation: str, grad_output: torch.Tensor):
    leaves = {name: inputs[name].detach().clone().requires_grad_(True) for name in FLOAT_NAMES}
    output = deformable_attention(leaves['value'], inputs['spatial_shapes'],
                                  inputs['level_start_index'], leaves['sampling_locations'],
                                  leaves['attention_weights'], implementation=implementation)
    grads = torch.autograd.grad(output, list(leaves.values()), grad_output)
    return [output.detach(), *grads]


def _compare(inputs: Dict[str, torch.Tensor], dtype: torch.dtype, tolerance: float) -> None:
    """Kernel in ``dtype`` vs the float64 reference on the same (rounded) inputs."""
    rounded = {name: (t.to(dtype) if name in FLOAT_NAMES else t) for name, t in inputs.items()}
    exact = {name: (t.to(torch.float64) if name in FLOAT_NAMES else t)
             for name, t in rounded.items()}
    value = inputs['value']
    grad_output = torch.randn(value.shape[0], inputs['sampling_locations'].shape[1],
                              value.shape[2] * value.shape[3], device=value.device,
                              generator=torch.Generator(value.device).manual_seed(11))
    got = _run(rounded, 'kernel', grad_output.to(dtype))
    wanted = _run(exact, 'reference', grad_output.to(dtype).to(torch.float64))
    for name, actual, reference in zip(('output', 'value', 'locations', 'weights'), got, wanted):
        assert actual.dtype == dtype, name
        # Each tensor relative to its own range: location gradients scale with H and W.
        scale = max(1.0, float(reference.abs().max()))
        torch.testing.assert_close(actual.double() / scale, reference / scale, rtol=tolerance,
                                   atol=tolerance, msg=lambda m, n=name: f'{n} ({dtype}): {m}')


TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 5e-3,
              torch.bfloat16: 3e-2}


@needs_gpu
@pytest.mark.parametrize('dtype', list(TOLERANCES))
@pytest.mark.parametrize('batch', [2, 32])
def test_kernel_matches_reference_at_decoder_shapes(kernel_ready, dtype, batch):
    """64 queries, 8 heads of 32 channels, one 16x16 level, 4 points: the decoder's shapes."""
    inputs = make_inputs([(16, 16)], batch, 64, 8, 32, 4, torch.float64, seed=batch,
                         device='cuda', borders=True)
    _compare(inputs, dtype, TOLERANCES[dtype])


@needs_gpu
@pytest.mark.parametrize('dtype', list(TOLERANCES))
@pytest.mark.parametrize('shapes, heads, channels, points', [
    ([(16, 16), (8, 8), (4, 4), (2, 2)], 8, 32, 4),
    ([(13, 7), (5, 3), (1, 1)], 3, 20, 3),      # odd sizes, channels below a warp
    ([(9, 11), (4, 6)], 2, 72, 2),              # channels above a warp, not a multiple
])
def test_kernel_matches_reference_multi_level(kernel_ready, dtype, shapes, heads, channels,
                                              points):
    """Random multi-level shapes, including points outside the maps."""
    inputs = make_inputs(shapes, 3, 50, heads, channels, points, torch.float64, seed=3,
                         device='cuda', borders=True)
    _compare(inputs, dtype, TOLERANCES[dtype])


@needs_gpu
def test_kernel_gradcheck_float64(kernel_ready):
    """The double instantiation of the kernel passes gradcheck in all three inputs."""
    # Unquantised: finite differences must not straddle an integer pixel coordinate.
    inputs = make_inputs([(3, 4), (2, 2)], 1, 2, 2, 5, 2, torch.float64, seed=5, device='cuda',
                         quantise=False)
    leaves = [inputs[name].clone().requires_grad_(True) for name in FLOAT_NAMES]

    def function(value, locations, weights):
        return deformable_attention(value, inputs['spatial_shapes'], inputs['level_start_index'],
                                    locations, weights, implementation='kernel')

    # The value gradient is summed with atomics in no fixed order: repeated backward passes
    # differ in the last bits, which gradcheck's reentrancy check must tolerate.
    assert torch.autograd.gradcheck(function, leaves, eps=1e-6, atol=1e-5, nondet_tol=1e-12)


@needs_gpu
def test_kernel_accepts_lists_noncontiguous_and_mixed_dtypes(kernel_ready):
    """Python shapes, strided tensors and half value + float32 locations all work."""
    inputs = make_inputs([(8, 8), (4, 4)], 2, 10, 4, 16, 4, torch.float32, seed=9,
                         device='cuda')
    expected = deformable_attention(*(inputs[n] for n in ('value', 'spatial_shapes',
                                                          'level_start_index',
                                                          'sampling_locations',
                                                          'attention_weights')),
                                    implementation='reference')
    value = inputs['value'].transpose(1, 2).contiguous().transpose(1, 2)
    got = deformable_attention(value, [[8, 8], [4, 4]], [0, 64], inputs['sampling_locations'],
                               inputs['attention_weights'], implementation='kernel')
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    mixed = deformable_attention(value.half(), inputs['spatial_shapes'].cuda(),
                                 inputs['level_start_index'].cuda(),
                                 inputs['sampling_locations'], inputs['attention_weights'],
                                 implementation='kernel')
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, expected, rtol=1e-2, atol=1e-2)


@needs_gpu
def test_cuda_auto_uses_kernel_and_says_so_once(kernel_ready, caplog):
    """On a GPU, auto picks the kernel and logs that once."""
    inputs = make_inputs([(4, 4)], 1, 2, 2, 8, 2, torch.float32, seed=1, device='cuda')
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        for _ in range(2):
            deformable_attention(*(inputs[n] for n in ('value', 'spatial_shapes',
                                                       'level_start_index',
                                                       'sampling_locations',
                                                       'attention_weights')))
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert messages == ['deformable attention: CUDA kernel for cuda tensors']


if __name__ == '__main__':
    sys.exit(pytest.main([__file__, '-v']))
