"""
detrack-profile: parameters, MACs and median batch-1 latency of a network, per stage.

MACs are multiply-accumulates, the quantity the tracking papers call "GFLOPs" (thop).
"""

import argparse
import json
import sys
from typing import Dict, List, Optional

from detrack_model.cli.common import load_model_config, positive_int, resolve_device
from detrack_model.modeling import create_model
from detrack_model.profiling import profile
import torch


def format_table(table: Dict[str, Dict[str, float]]) -> str:
    """Render a profile as an aligned text table."""
    lines = [f'{"stage":<16}{"params (M)":>12}{"MACs (G)":>11}{"linear":>9}{"attn":>8}'
             f'{"sampling":>10}{"latency (ms)":>14}']
    for stage, row in table.items():
        lines.append(f'{stage:<16}{row["params"] / 1e6:>12.2f}{row["macs"] / 1e9:>11.3f}'
                     f'{row["macs_linear"] / 1e9:>9.3f}{row["macs_attention"] / 1e9:>8.3f}'
                     f'{row["macs_sampling"] / 1e9:>10.4f}{row["latency_ms"]:>14.2f}')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Profile one configuration and print the table (or JSON)."""
    parser = argparse.ArgumentParser(prog='detrack-profile', description=__doc__.strip())
    parser.add_argument('--config', required=True,
                        help='preset name (vit_base, vit_small, vit_tiny) or YAML/JSON file')
    parser.add_argument('--head', choices=['decoder', 'conv'], help='override the head')
    parser.add_argument('--no-ce', action='store_true', help='disable candidate elimination')
    parser.add_argument('--layers', type=positive_int, help='decoder layers to run (1..L)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda:N or auto')
    parser.add_argument('--fp16', action='store_true', help='half precision (GPU only)')
    parser.add_argument('--runs', type=positive_int, default=50,
                        help='timed runs (median reported)')
    parser.add_argument('--threads', type=positive_int, help='CPU threads for PyTorch')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    args = parser.parse_args(argv)
    try:
        config = load_model_config(args.config)
        if args.head:
            config = type(config).from_dict({**config.to_dict(), 'head': args.head})
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    if args.threads:
        torch.set_num_threads(args.threads)
    model = create_model(config).eval().to(device)
    if args.fp16:
        if device.type != 'cuda':
            parser.error('--fp16 needs a CUDA device')
        model = model.half()
    kwargs = {'candidate_elimination': not args.no_ce}
    if args.layers is not None and config.head == 'decoder':
        kwargs['num_layers'] = args.layers
    table = profile(model, device, runs=args.runs, **kwargs)
    if args.json:
        print(json.dumps({'config': config.to_dict(), 'device': str(device), **kwargs,
                          'stages': table}, indent=2))
    else:
        print(f'{config.name} {config.template_size}/{config.search_size}, head '
              f'{config.head}, candidate elimination {"off" if args.no_ce else "on"}, '
              f'device {device}; MACs = multiply-accumulates (the papers\' "GFLOPs")')
        print(format_table(table))
    return 0


if __name__ == '__main__':
    sys.exit(main())
