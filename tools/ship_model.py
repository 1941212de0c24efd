"""
Copy a trained bundle into models/ as the shipped default, in half precision.

Half-precision weights halve the file (the node loads them into a float32 network on the CPU);
the bundle keeps its recipe and training metadata, the pruning record (budget, mode, per-layer
widths) included, which training carries from a pruned child to every bundle trained from it.

    python -m tools.ship_model runs/synthetic_cpu_pool/model --output models/detrack_tiny_pool
    python -m tools.ship_model runs/prune_tiny/finetune_b0250/model \
        --output models/detrack_tiny_pool_p25
"""

import argparse
import pathlib
import sys
from typing import Any

from detrack_model.export.bundle import load_bundle, read_bundle_config
from detrack_model.export.bundle import save_bundle
import torch

LIMIT_BYTES = 10 * 1000 * 1000
ROOT = pathlib.Path(__file__).resolve().parent.parent


def relative_paths(value: Any) -> Any:
    """Write paths inside the source tree relative to it (the record travels with the file)."""
    if isinstance(value, dict):
        return {k: relative_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v) for v in value]
    if isinstance(value, str) and value.startswith(str(ROOT) + '/'):
        return value[len(str(ROOT)) + 1:]
    return value


def main() -> int:
    """Convert, write and check the size limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('bundle', help='trained bundle (its .safetensors, .yaml or stem)')
    parser.add_argument('--output', required=True, help='stem of the shipped bundle')
    args = parser.parse_args()
    metadata = relative_paths(read_bundle_config(args.bundle).get('metadata', {}))
    model = load_bundle(args.bundle)
    weights, config = save_bundle(model, args.output, dtype=torch.float16, metadata=metadata)
    size = weights.stat().st_size
    print(f'wrote {weights} ({size / 1e6:.2f} MB) and {config}')
    if size > LIMIT_BYTES:
        print(f'error: {weights} is larger than {LIMIT_BYTES / 1e6:.0f} MB', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
