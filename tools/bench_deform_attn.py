"""
Time deformable attention forward and forward + backward: CUDA kernel vs PyTorch reference.

Runs the decoder's shapes (64 queries, 8 heads of 32 channels, one 16x16 level, 4 points) at
each batch size asked for (default 1 and 64) and prints the median over the timed iterations,
after warm-up, in milliseconds. On a machine without CUDA only the reference is timed (CPU).
The kernel is built on first use; if it cannot be built the table says why.

    python tools/bench_deform_attn.py [--batch 1 64] [--dtype float32 float16] [--iters 100]
"""

import argparse
import pathlib
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUERIES, HEADS, CHANNELS, LEVELS, POINTS = 64, 8, 32, [(16, 16)], 4
DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16,
          'float64': torch.float64}


def make_inputs(batch: int, dtype: torch.dtype, device: torch.device,
                seed: int = 0) -> Dict[str, torch.Tensor]:
    """Build decoder-shaped inputs that require gradients, plus a matching output gradient."""
    generator = torch.Generator().manual_seed(seed)
    total = sum(h * w for h, w in LEVELS)
    levels = len(LEVELS)
    logits = torch.randn(batch, QUERIES, HEADS, levels * POINTS, generator=generator)
    inputs = {
        'value': torch.randn(batch, total, HEADS, CHANNELS, generator=generator),
        'sampling_locations': torch.rand(batch, QUERIES, HEADS, levels, POINTS, 2,
                                         generator=generator),
        'attention_weights': logits.softmax(-1).view(batch, QUERIES, HEADS, levels, POINTS),
        'grad_output': torch.randn(batch, QUERIES, HEADS * CHANNELS, generator=generator),
    }
    return {name: t.to(device=device, dtype=dtype).requires_grad_(name != 'grad_output')
            for name, t in inputs.items()}


def _timer(device: torch.device) -> Tuple[Callable[[], object], Callable[[object], float]]:
    # CUDA work is asynchronous: events on the stream time the GPU, not the Python launch.
    if device.type == 'cuda':
        def start() -> object:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            begin.record()
            return begin, end

        def stop(token: object) -> float:
            begin, end = token
            end.record()
            end.synchronize()
            return begin.elapsed_time(end)

        return start, stop

    def cpu_start() -> object:
        return time.perf_counter()

    def cpu_stop(token: object) -> float:
        return (time.perf_counter() - token) * 1e3

    return cpu_start, cpu_stop


def bench(implementation: str, batch: int, dtype: torch.dtype, device: torch.device,
          iters: int, warmup: int) -> Tuple[float, float, torch.Tensor]:
    """Return median forward ms, median forward + backward ms and one output."""
    from detrack_model.ops import deformable_attention

    inputs = make_inputs(batch, dtype, device)
    shapes = torch.tensor(LEVELS, dtype=torch.int64, device=device)
    starts = torch.tensor([0], dtype=torch.int64, device=device)
    start, stop = _timer(device)

    def forward() -> torch.Tensor:
        return deformable_attention(inputs['value'], shapes, starts, inputs['sampling_locations'],
                                    inputs['attention_weights'], implementation=implementation)

    forward_ms: List[float] = []
    total_ms: List[float] = []
    for step in range(warmup + iters):
        for tensor in inputs.values():
            tensor.grad = None
        token = start()
        output = forward()
        elapsed = stop(token)
        token = start()
        output = forward()
        output.backward(inputs['grad_output'])
        both = stop(token)
        if step >= warmup:
            forward_ms.append(elapsed)
            total_ms.append(both)
    return statistics.median(forward_ms), statistics.median(total_ms), output.detach()


def kernel_status(device: torch.device) -> Optional[str]:
    """Return None when the kernel can run on ``device``, else why not."""
    from detrack_model.ops import select_implementation

    try:
        select_implementation(device, 'kernel')
    except RuntimeError as error:
        return str(error)
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the timing table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 64])
    parser.add_argument('--dtype', choices=sorted(DTYPES), nargs='+', default=None,
                        help='default: float32 float16 bfloat16 on CUDA, float32 on CPU')
    parser.add_argument('--iters', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    args = parser.parse_args(argv)

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # run as a script from anywhere in the checkout
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    dtypes = args.dtype or (['float32', 'float16', 'bfloat16'] if device.type == 'cuda'
                            else ['float32'])
    implementations = ['reference']
    if device.type == 'cuda':
        reason = kernel_status(device)
        if reason is None:
            implementations.append('kernel')
        else:
            print(f'kernel not timed: {reason}')

    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print(f'deformable attention on {name}, torch {torch.__version__}: Q={QUERIES} M={HEADS} '
          f'D={CHANNELS} levels={LEVELS} P={POINTS}; median of {args.iters} iterations, ms')
    header = (f'{"B":>4} {"dtype":>9} {"implementation":>15} {"forward":>9} '
              f'{"fwd+bwd":>9} {"speed-up":>9} {"max |diff|":>11}')
    print(header)
    print('-' * len(header))
    for batch in args.batch:
        for dtype_name in dtypes:
            dtype = DTYPES[dtype_name]
            results = {impl: bench(impl, batch, dtype, device, args.iters, args.warmup)
                       for impl in implementations}
            reference_total = results['reference'][1]
            for impl, (forward_ms, total_ms, output) in results.items():
                speedup = f'{reference_total / total_ms:8.2f}x'
                diff = (output.float() - results['reference'][2].float()).abs().max().item()
                print(f'{batch:>4} {dtype_name:>9} {impl:>15} {forward_ms:>9.3f} '
                      f'{total_ms:>9.3f} {speedup:>9} {diff:>11.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
