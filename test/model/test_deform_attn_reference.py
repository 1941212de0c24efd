"""
Deformable attention reference: against a naive loop, gradcheck, input checks and dispatch.

Everything here runs on the CPU; the CUDA kernel has its own suites
(test_deform_attn_cuda.py on a GPU, test_deform_attn_emulated.py on the CPU).
"""

import logging
import math
from typing import Dict, List, Sequence, Tuple

from detrack_model.ops import check_inputs, deformable_attention
from detrack_model.ops import deformable_attention_reference, select_implementation
import detrack_model.ops.deform_attn as dispatch
import detrack_model.ops.deform_attn_reference as reference_module
import pytest
import torch

LOGGER_NAME = 'detrack_model.ops'


def naive_deformable_attention(value: torch.Tensor, shapes: Sequence[Tuple[int, int]],
                               locations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Evaluate the definition with explicit loops and hand-written bilinear interpolation."""
    batch, _, heads, channels = value.shape
    queries, levels, points = locations.shape[1], locations.shape[3], locations.shape[4]
    starts = [sum(h * w for h, w in shapes[:level]) for level in range(levels)]
    output = torch.zeros(batch, queries, heads, channels, dtype=torch.float64)
    for b in range(batch):
        for q in range(queries):
            for m in range(heads):
                for level in range(levels):
                    height, width = shapes[level]
                    for p in range(points):
                        x, y = locations[b, q, m, level, p].tolist()
                        # Pixel centres at integers: column j spans [j - 0.5, j + 0.5).
                        px, py = x * width - 0.5, y * height - 0.5
                        x0, y0 = math.floor(px), math.floor(py)
                        fx, fy = px - x0, py - y0
                        for row, wy in ((y0, 1 - fy), (y0 + 1, fy)):
                            for col, wx in ((x0, 1 - fx), (x0 + 1, fx)):
                                if 0 <= row < height and 0 <= col < width:
                                    index = starts[level] + row * width + col
                                    output[b, q, m] += (weights[b, q, m, level, p] * wy * wx
                                                        * value[b, index, m])
    return output.reshape(batch, queries, heads * channels)


def make_inputs(shapes: List[Tuple[int, int]], batch: int = 2, queries: int = 3, heads: int = 2,
                channels: int = 4, points: int = 3, dtype: torch.dtype = torch.float64,
                seed: int = 0, spread: float = 1.4) -> Dict[str, object]:
    """Random inputs; locations cover [-0.2, 1.2] so some points fall outside the maps."""
    generator = torch.Generator().manual_seed(seed)
    levels = len(shapes)
    total = sum(h * w for h, w in shapes)
    starts = [sum(h * w for h, w in shapes[:level]) for level in range(levels)]
    return {
        'value': torch.randn(batch, total, heads, channels, generator=generator).to(dtype),
        'spatial_shapes': torch.tensor(shapes, dtype=torch.int64),
        'level_start_index': torch.tensor(starts, dtype=torch.int64),
        'sampling_locations': (torch.rand(batch, queries, heads, levels, points, 2,
                                          generator=generator) * spread
                               - (spread - 1) / 2).to(dtype),
        'attention_weights': torch.rand(batch, queries, heads, levels, points,
                                        generator=generator).to(dtype),
    }


def _args(inputs: Dict[str, object]) -> tuple:
    return (inputs['value'], inputs['spatial_shapes'], inputs['level_start_index'],
            inputs['sampling_locations'], inputs['attention_weights'])


@pytest.mark.parametrize('shapes', [[(4, 5)], [(4, 5), (2, 3)], [(1, 1), (3, 2), (2, 4)]])
def test_reference_matches_naive_loops(shapes):
    """Single- and multi-level results equal the loop definition to 1e-10 in float64."""
    inputs = make_inputs(shapes)
    expected = naive_deformable_attention(inputs['value'], shapes, inputs['sampling_locations'],
                                          inputs['attention_weights'])
    got = deformable_attention_reference(*_args(inputs))
    assert got.shape == expected.shape and got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_reference_matches_naive_loops_on_borders():
    """Points on the map edges, on the support's edge and beyond it follow the definition."""
    shapes = [(4, 8), (3, 5)]
    inputs = make_inputs(shapes, batch=1, queries=4, heads=1, points=4)
    locations = inputs['sampling_locations']
    border = torch.tensor([
        [0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0],       # map corners: partial weights
        [-0.5 / 8, 0.5], [0.5, -0.5 / 4],                      # pixel coordinate exactly -1
        [(8 + 0.5) / 8, 0.5], [0.5, (4 + 0.5) / 4],            # pixel coordinate exactly W, H
        [0.5 / 8, 1.5 / 4], [1.0 - 0.5 / 8, 0.5],              # exactly on pixel centres
        [-0.01, 0.5], [1.01, 0.5],                             # just outside: still partial
        [-3.0, 0.5], [0.5, 7.0], [-1.0, -1.0], [2.0, 2.0],     # far outside: zero
    ], dtype=torch.float64)
    for level in range(len(shapes)):
        locations[0, :, 0, level] = border.view(4, 4, 2)
    expected = naive_deformable_attention(inputs['value'], shapes, locations,
                                          inputs['attention_weights'])
    got = deformable_attention_reference(*_args(inputs))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    # A point at pixel coordinate exactly W (or further) reads nothing at all.
    outside = make_inputs([(4, 8)], batch=1, queries=1, heads=1, points=1)
    outside['sampling_locations'][...] = torch.tensor([(8 + 0.5) / 8, 0.5],
                                                      dtype=torch.float64)
    assert deformable_attention_reference(*_args(outside)).abs().max() == 0


def test_reference_accepts_python_sequences():
    """Shapes and starts as Python lists (static, export-friendly) give the same result."""
    shapes = [(4, 5), (2, 3)]
    inputs = make_inputs(shapes)
    expected = deformable_attention_reference(*_args(inputs))
    inputs['spatial_shapes'] = [list(s) for s in shapes]
    inputs['level_start_index'] = [0, 20]
    torch.testing.assert_close(deformable_attention(*_args(inputs)), expected, rtol=0, atol=0)


def test_reference_gradcheck():
    """Analytic gradients w.r.t. value, locations and weights match finite differences."""
    inputs = make_inputs([(3, 4), (2, 2)], batch=1, queries=2, heads=2, channels=3, points=2,
                         seed=5)
    value = inputs['value'].requires_grad_(True)
    locations = inputs['sampling_locations'].requires_grad_(True)
    weights = inputs['attention_weights'].requires_grad_(True)

    def function(v, loc, w):
        return deformable_attention_reference(v, inputs['spatial_shapes'],
                                              inputs['level_start_index'], loc, w)

    assert torch.autograd.gradcheck(function, (value, locations, weights), eps=1e-6, atol=1e-5)


def test_public_function_is_differentiable_on_cpu():
    """deformable_attention backpropagates into all three float inputs."""
    inputs = make_inputs([(4, 4)], dtype=torch.float32)
    for name in ('value', 'sampling_locations', 'attention_weights'):
        inputs[name].requires_grad_(True)
    deformable_attention(*_args(inputs)).square().sum().backward()
    for name in ('value', 'sampling_locations', 'attention_weights'):
        assert inputs[name].grad is not None and inputs[name].grad.abs().sum() > 0, name


@pytest.mark.parametrize('dtype, atol', [(torch.float16, 2e-2), (torch.bfloat16, 1e-1)])
@pytest.mark.parametrize('upcast', [False, True])
def test_half_inputs_on_cpu(monkeypatch, dtype, atol, upcast):
    """Half and bfloat16 stay in their dtype and are close to float32, with or without upcast."""
    if upcast:
        # As on a PyTorch build whose CPU grid_sample lacks the dtype.
        monkeypatch.setattr(reference_module, '_cpu_grid_sample_supports', lambda _dtype: False)
    inputs = make_inputs([(8, 8), (4, 4)], queries=16, heads=4, channels=8, points=4,
                         dtype=torch.float32)
    expected = deformable_attention(*_args(inputs))
    for name in ('value', 'sampling_locations', 'attention_weights'):
        inputs[name] = inputs[name].to(dtype)
    got = deformable_attention(*_args(inputs))
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), expected, rtol=atol, atol=atol)


def test_mixed_dtypes_are_promoted():
    """A half value with float32 locations (autocast) is computed in float32."""
    inputs = make_inputs([(4, 4)], dtype=torch.float32)
    inputs['value'] = inputs['value'].half()
    assert deformable_attention(*_args(inputs)).dtype == torch.float32


def _set(name, make):
    def mutate(inputs):
        inputs[name] = make(inputs)
    return mutate


BAD_INPUTS = [
    ('S differs from sum(H*W)',
     _set('value', lambda i: torch.zeros(2, 27, 2, 4, dtype=torch.float64)), 'sum(H*W)=26'),
    ('value not 4-D', _set('value', lambda i: torch.zeros(2, 26, 8, dtype=torch.float64)),
     'value must be 4-D'),
    ('batch mismatch',
     _set('sampling_locations', lambda i: i['sampling_locations'][:1]), 'B=2 and M=2'),
    ('heads mismatch',
     _set('attention_weights', lambda i: i['attention_weights'][:, :, :1]),
     'attention_weights must have shape (B, Q, M, L, P) = (2, 3, 2, 2, 3)'),
    ('points mismatch',
     _set('attention_weights', lambda i: i['attention_weights'][..., :2]),
     'attention_weights must have shape'),
    ('levels mismatch',
     _set('spatial_shapes', lambda i: torch.tensor([[4, 5]])), 'spatial_shapes must be (L, 2)'),
    ('last dim not 2',
     _set('sampling_locations', lambda i: torch.cat((i['sampling_locations'],
                                                     i['sampling_locations'][..., :1]), -1)),
     'must end in 2'),
    ('wrong level starts', _set('level_start_index', lambda i: torch.tensor([0, 21])),
     'running sum of H*W, [0, 20], got [0, 21]'),
    ('float shapes', _set('spatial_shapes', lambda i: i['spatial_shapes'].float()),
     'integer tensor'),
    ('empty level', _set('spatial_shapes', lambda i: torch.tensor([[4, 5], [0, 3]])),
     'H >= 1 and W >= 1'),
    ('integer value', _set('value', lambda i: torch.zeros(2, 26, 2, 4, dtype=torch.int64)),
     'floating dtype'),
    ('device mismatch',
     _set('attention_weights', lambda i: torch.empty(2, 3, 2, 2, 3, device='meta')),
     'must be on the device of value'),
]


@pytest.mark.parametrize('case, mutate, message', BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_malformed_inputs_raise_value_error(case, mutate, message):
    """Each malformed input raises ValueError naming what was expected and what came."""
    inputs = make_inputs([(4, 5), (2, 3)])
    mutate(inputs)
    with pytest.raises(ValueError, match='deformable_attention: ') as raised:
        deformable_attention(*_args(inputs))
    assert message in str(raised.value), case


def test_check_inputs_returns_levels():
    """The validated levels come back as Python ints."""
    inputs = make_inputs([(4, 5), (2, 3)])
    assert check_inputs(*_args(inputs)) == ([(4, 5), (2, 3)], [0, 20])


@pytest.fixture
def fresh_log_state(monkeypatch):
    """Forget which one-off messages were logged, so a test sees its own."""
    monkeypatch.setattr(dispatch, '_logged', set())
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)


def test_cpu_uses_reference_and_says_so_once(fresh_log_state, caplog, monkeypatch):
    """On CPU the reference runs (never the builder), announced once at INFO."""
    def no_build():
        raise AssertionError('CPU tensors must not build the CUDA extension')

    monkeypatch.setattr(dispatch.build, 'load_extension', no_build)
    inputs = make_inputs([(4, 4)], dtype=torch.float32)
    expected = deformable_attention_reference(*_args(inputs))
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        for _ in range(3):
            torch.testing.assert_close(deformable_attention(*_args(inputs)), expected)
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert messages == ['deformable attention: PyTorch reference (grid_sample) for cpu tensors']
    assert caplog.records[0].levelno == logging.INFO
    assert select_implementation('cpu') == 'reference'


def test_forcing_the_implementation(fresh_log_state, monkeypatch):
    """The keyword beats the environment variable; bad names and impossible forces raise."""
    assert select_implementation('cpu', 'reference') == 'reference'
    with pytest.raises(RuntimeError, match='needs CUDA tensors'):
        select_implementation('cpu', 'kernel')
    monkeypatch.setenv(dispatch.ENV_VAR, 'kernel')
    with pytest.raises(RuntimeError, match='needs CUDA tensors'):
        select_implementation('cpu')
    assert select_implementation('cpu', 'reference') == 'reference'
    inputs = make_inputs([(4, 4)], dtype=torch.float32)
    with pytest.raises(RuntimeError, match='needs CUDA tensors'):
        deformable_attention(*_args(inputs))
    monkeypatch.setenv(dispatch.ENV_VAR, 'Reference ')
    assert select_implementation('cpu') == 'reference'
    monkeypatch.setenv(dispatch.ENV_VAR, 'triton')
    with pytest.raises(ValueError, match="DETRACK_DEFORM_ATTN must be one of .* got 'triton'"):
        select_implementation('cpu')
    with pytest.raises(ValueError, match="implementation must be one of .* got 'fast'"):
        deformable_attention(*_args(inputs), implementation='fast')


@pytest.mark.parametrize('dynamo', [False, pytest.param(True, marks=pytest.mark.slow)])
def test_onnx_export_matches_pytorch(fresh_log_state, tmp_path, dynamo):
    """A model calling the op exports to ONNX (GridSample) and onnxruntime agrees."""
    pytest.importorskip('onnx')
    onnxruntime = pytest.importorskip('onnxruntime')
    if dynamo:
        pytest.importorskip('onnxscript')

    class Model(torch.nn.Module):

        def forward(self, value, locations, weights):
            # Static shapes as Python ints: what both exporters can trace without data access.
            return deformable_attention(value, [[4, 4], [2, 2]], [0, 16], locations, weights)

    inputs = make_inputs([(4, 4), (2, 2)], dtype=torch.float32)
    args = (inputs['value'], inputs['sampling_locations'], inputs['attention_weights'])
    path = tmp_path / 'deform_attn.onnx'
    torch.onnx.export(Model().eval(), args, str(path), opset_version=18 if dynamo else 17,
                      dynamo=dynamo, input_names=['value', 'locations', 'weights'])
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = session.run(None, {name: tensor.numpy() for name, tensor in
                             zip(('value', 'locations', 'weights'), args)})[0]
    torch.testing.assert_close(torch.from_numpy(got), Model()(*args), rtol=1e-5, atol=1e-5)
