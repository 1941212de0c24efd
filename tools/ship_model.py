"""
Copy a trained bundle into models/ as the shipped default, in half precision.

Half-precision weights halve the file (the node loads them into a float32 network on the CPU);
the bundle keeps its recipe and training metadata.

    python -m tools.ship_model runs/synthetic_cpu_tiny/model --output models/detrack_tiny_synth
"""

import argparse
import sys

from detrack_model.export.bundle import load_bundle, read_bundle_config
from detrack_model.export.bundle import save_bundle
import torch

LIMIT_BYTES = 10 * 1000 * 1000


def main() -> int:
    """Convert, write and check the size limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('bundle', help='trained bundle (its .safetensors, .yaml or stem)')
    parser.add_argument('--output', required=True, help='stem of the shipped bundle')
    args = parser.parse_args()
    metadata = read_bundle_config(args.bundle).get('metadata', {})
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
