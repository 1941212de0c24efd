"""
Time one training step (forward, loss, backward, AdamW) of the model family on this machine.

Random crops and boxes stand in for data, so only the network and the loss are timed; the data
pipeline has its own benchmark (tools/bench_data_pipeline.py). Prints the median step time and
pairs per second for each configuration.

    python -m tools.bench_training_step [--batch 8] [--steps 5] [--threads 2]
"""

import argparse
import statistics
import sys
import time
from typing import Dict, List

from detrack_model.config import ModelConfig, preset
from detrack_model.losses import build_criterion, LossConfig
from detrack_model.modeling import create_model
import torch

CONFIGS = {
    'default model (vit_tiny-6, 64/128)': lambda: preset(
        'vit_tiny', template_size=64, search_size=128,
        encoder={'depth': 6, 'ce_layers': [2, 4]},
        decoder={'layers': 2, 'hidden': 128, 'heads': 4, 'points': 4, 'ffn_dim': 512,
                 'num_queries': 16}),
    'vit_tiny 128/256': lambda: preset('vit_tiny'),
    'vit_base 128/256': lambda: preset('vit_base'),
}


def step_time(config: ModelConfig, batch: int, steps: int, denoising: bool) -> float:
    """Median seconds of a training step on random inputs (after one warm-up step)."""
    torch.manual_seed(0)
    model = create_model(config).train()
    criterion = build_criterion(config.head, LossConfig(denoising=denoising),
                                grid=config.search_grid)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    template = torch.randn(batch, 3, config.template_size, config.template_size)
    search = torch.randn(batch, 3, config.search_size, config.search_size)
    gt = torch.rand(batch, 4) * 0.3 + torch.tensor([0.35, 0.35, 0.1, 0.1])
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        dn, meta = (criterion.denoising_queries(gt, config.decoder.num_queries)
                    if denoising and config.head == 'decoder' else (None, None))
        outputs = model(template, search, denoising=dn) if dn is not None else \
            model(template, search)
        loss, _ = criterion(outputs, gt, meta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(batch: int, steps: int) -> List[Dict[str, object]]:
    """Time every configuration with the decoder head (denoising on) and the conv head."""
    rows = []
    for name, make in CONFIGS.items():
        for head in ('decoder', 'conv'):
            config = make()
            config = ModelConfig.from_dict({**config.to_dict(), 'head': head})
            seconds = step_time(config, batch, steps, denoising=head == 'decoder')
            rows.append({'model': name, 'head': head, 'batch': batch,
                         'step_s': seconds, 'pairs_per_s': batch / seconds})
            print(f'{name:<36} {head:<8} batch {batch}: {seconds * 1000:8.0f} ms/step '
                  f'{batch / seconds:7.1f} pairs/s', flush=True)
    return rows


def main() -> int:
    """Parse arguments and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run(args.batch, args.steps)
    return 0


if __name__ == '__main__':
    sys.exit(main())
