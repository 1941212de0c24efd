"""
Parameters, multiply-accumulates and latency of a DETRack network, in total and per stage.

MACs are multiply-accumulates, which is what the tracking papers report as "GFLOPs" (thop
counts). They are counted by PyTorch's FlopCounterMode (FLOPs / 2) with formulas added for the
ops it does not know on CPU: fused attention and bilinear sampling. Elementwise work (norms,
activations, softmax) is not counted, as in thop. Three groups are reported: ``linear``
(linear and convolution layers: the thop convention), ``attention`` (the q k^T and attention-
times-value products) and ``sampling`` (4 MACs per bilinear sample of deformable attention).
"""

from collections import defaultdict
import copy
from dataclasses import dataclass, field
import statistics
import time
from typing import Callable, Dict, List, Optional

from detrack_model.modeling.detrack import DETRack
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


STAGES = {
    'encoder': ('encoder',),
    'query selection': ('input_proj', 'query_selection'),
    'decoder': ('decoder',),
    'head': ('box_head',),
}
LINEAR_OPS = {'aten.addmm', 'aten.mm', 'aten.convolution', 'aten.linear'}
ATTENTION_OPS = {'aten.bmm', 'aten.baddbmm', 'aten._scaled_dot_product_flash_attention_for_cpu',
                 'aten._scaled_dot_product_flash_attention',
                 'aten._scaled_dot_product_efficient_attention',
                 'aten._scaled_dot_product_cudnn_attention'}
SAMPLING_OPS = {'aten.grid_sampler_2d'}


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    """Count CPU fused attention as the same two products as any attention."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _grid_sample_flops(input_shape, grid_shape, *args, out_shape=None, **kwargs):
    """Count bilinear sampling as 4 multiply-adds per output element."""
    batch, channels = input_shape[:2]
    return 2 * 4 * batch * channels * grid_shape[1] * grid_shape[2]


EXTRA_FORMULAS: Dict[object, Callable] = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten.grid_sampler_2d: _grid_sample_flops,
}


@dataclass
class MacCount:
    """Multiply-accumulates of one stage, by kind."""

    linear: int = 0
    attention: int = 0
    sampling: int = 0
    other: Dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """All counted MACs."""
        return self.linear + self.attention + self.sampling + sum(self.other.values())

    def add(self, op: str, macs: int) -> None:
        """Book ``macs`` of aten ``op`` under its kind."""
        if op in LINEAR_OPS:
            self.linear += macs
        elif op in ATTENTION_OPS:
            self.attention += macs
        elif op in SAMPLING_OPS:
            self.sampling += macs
        else:
            self.other[op] = self.other.get(op, 0) + macs


def _op_name(op) -> str:
    """'aten.addmm' for an OpOverloadPacket or OpOverload."""
    return str(op).split('.default')[0]


def count_macs(model: DETRack, batch: int = 1, **forward_kwargs) -> Dict[str, MacCount]:
    """
    Count MACs of one forward pass on random crops, per stage and in ``'total'``.

    Counting runs on a CPU copy with the reference deformable attention, so the count is the
    same whatever device the model lives on.
    """
    cpu_model = copy.deepcopy(model).to('cpu', torch.float32).eval()
    template, search = random_crops(cpu_model, batch, torch.device('cpu'), torch.float32)
    counter = FlopCounterMode(display=False, depth=None, custom_mapping=EXTRA_FORMULAS)
    with counter, torch.no_grad():
        cpu_model(template, search, **forward_kwargs)
    counts = counter.get_flop_counts()
    result = {'total': MacCount()}
    for op, flops in counts.get('Global', {}).items():
        result['total'].add(_op_name(op), flops // 2)
    root = type(cpu_model).__name__
    for stage, children in STAGES.items():
        modules = [f'{root}.{child}' for child in children if hasattr(cpu_model, child)]
        if not modules:
            continue
        result[stage] = MacCount()
        for module in modules:
            for op, flops in counts.get(module, {}).items():
                result[stage].add(_op_name(op), flops // 2)
    return result


def count_parameters(model: nn.Module) -> Dict[str, int]:
    """Parameters in total and per stage."""
    result = {'total': sum(p.numel() for p in model.parameters())}
    for stage, children in STAGES.items():
        modules = [getattr(model, child) for child in children if hasattr(model, child)]
        if modules:
            result[stage] = sum(p.numel() for m in modules for p in m.parameters())
    return result


def random_crops(model: DETRack, batch: int, device: torch.device, dtype: torch.dtype):
    """Random template and search crops of the model's sizes."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    template = torch.randn(batch, 3, config.template_size, config.template_size,
                           generator=generator)
    search = torch.randn(batch, 3, config.search_size, config.search_size, generator=generator)
    return template.to(device, dtype), search.to(device, dtype)


def measure_latency(model: DETRack, device: torch.device, dtype: torch.dtype = torch.float32,
                    runs: int = 50, warmup: int = 10,
                    **forward_kwargs) -> Dict[str, float]:
    """
    Median latency in milliseconds of batch-1 forwards, in total and per stage.

    Stage times come from hooks around the stage modules (synchronising the GPU at each),
    so they add up to slightly less than the total, which includes the glue between them.
    """
    template, search = random_crops(model, 1, device, dtype)
    synchronize = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    starts: Dict[str, float] = {}
    samples: Dict[str, List[float]] = defaultdict(list)
    handles = []
    for stage, children in STAGES.items():
        for child in children:
            module = getattr(model, child, None)
            if module is None:
                continue

            def before(_module, _inputs, stage=stage):
                synchronize()
                starts[stage] = time.perf_counter()

            def after(_module, _inputs, _outputs, stage=stage):
                synchronize()
                samples[stage].append(time.perf_counter() - starts[stage])

            handles += [module.register_forward_pre_hook(before),
                        module.register_forward_hook(after)]
    try:
        with torch.inference_mode():
            for i in range(warmup + runs):
                if i == warmup:
                    samples.clear()
                synchronize()
                start = time.perf_counter()
                model(template, search, **forward_kwargs)
                synchronize()
                samples['total'].append(time.perf_counter() - start)
    finally:
        for handle in handles:
            handle.remove()
    # A stage made of two modules (query selection) yields two samples per run.
    return {stage: 1000.0 * statistics.median(_per_run(values, runs))
            for stage, values in samples.items()}


def _per_run(values: List[float], runs: int) -> List[float]:
    """Sum consecutive samples so there is one value per run."""
    per = max(1, len(values) // runs)
    return [sum(values[i:i + per]) for i in range(0, per * runs, per)]


def profile(model: DETRack, device: Optional[torch.device] = None, runs: int = 50,
            **forward_kwargs) -> Dict[str, Dict[str, float]]:
    """Parameters, MACs and median latency per stage, as one table keyed by stage."""
    device = device or next(model.parameters()).device
    params = count_parameters(model)
    macs = count_macs(model, **forward_kwargs)
    latency = measure_latency(model, device, runs=runs, **forward_kwargs)
    table = {}
    for stage in ['total'] + [s for s in STAGES if s in macs]:
        table[stage] = {'params': params.get(stage, 0), 'macs': macs[stage].total,
                        'macs_linear': macs[stage].linear,
                        'macs_attention': macs[stage].attention,
                        'macs_sampling': macs[stage].sampling,
                        'latency_ms': latency.get(stage, float('nan'))}
    return table
