"""
detrack-prune: shrink a trained network to a budget (sparsity training, slicing, fine-tuning).

1. ``detrack-prune sparsity --config training/prune_tiny_sparsity.yaml``: train a network with
   masks from a trained bundle, the normal loss plus an L1 penalty on the masks.
2. ``detrack-prune slice runs/prune_tiny/sparsity/model --budget 0.25 --output child``: keep
   the fraction ``budget`` of the masked channels (``--mode global`` or ``layerwise``, with a
   minimum per layer) and write a physically smaller bundle.
3. ``detrack-prune finetune --config training/prune_tiny_finetune.yaml --child child``:
   train the child with the normal loss, starting from its sliced weights.

The child bundle loads wherever a bundle does (Tracker, node, detrack-profile, detrack-export).
"""

import argparse
import logging
import sys
from typing import List, Optional

from detrack_model.cli.common import refuse_overwrite
from detrack_model.cli.train import add_training_arguments, run_training
from detrack_model.engine.recipe import load_recipe
from detrack_model.export.bundle import (bundle_paths, BundleError, load_bundle,
                                         save_bundle)
from detrack_model.profiling import count_macs, count_parameters
from detrack_model.pruning import check_budget, prune_to_budget
from detrack_model.pruning.budget import MIN_KEEP_FRACTION, MODES
import torch


def _budget(text: str) -> float:
    try:
        return check_budget(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1), got {text}')
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with its three subcommands."""
    parser = argparse.ArgumentParser(prog='detrack-prune', description=__doc__.splitlines()[1])
    commands = parser.add_subparsers(dest='command', required=True)
    sparsity = commands.add_parser('sparsity', help='train with masks and the L1 penalty')
    add_training_arguments(sparsity)
    cut = commands.add_parser('slice', help='keep a budget of channels; write the child')
    cut.add_argument('masked', help='sparsity-trained bundle (built with masked: true)')
    cut.add_argument('--budget', type=_budget, required=True,
                     help='fraction of the masked channels kept, in (0, 1]')
    cut.add_argument('--mode', choices=MODES, default='global',
                     help='one threshold over all masks, or the budget in every layer')
    cut.add_argument('--min-keep', type=_fraction, default=MIN_KEEP_FRACTION,
                     help='minimum barrier: every layer keeps max(1, this fraction)')
    cut.add_argument('--prune-decoder', action='store_true',
                     help='also prune the decoder FFNs (always layerwise)')
    cut.add_argument('--output', required=True, help='child bundle to write (stem or path)')
    cut.add_argument('--dtype', choices=['float32', 'float16'], default='float32',
                     help='weights precision in the file (float16 halves it)')
    finetune = commands.add_parser('finetune', help='train a child with the normal loss')
    add_training_arguments(finetune)
    finetune.add_argument('--child', required=True, help='child bundle written by slice')
    return parser


def slice_command(args: argparse.Namespace) -> int:
    """Prune the masked bundle to the budget and write the child with a report."""
    for output in bundle_paths(args.output):
        refuse_overwrite(output, bundle_paths(args.masked))
    parent = load_bundle(args.masked)
    child, report = prune_to_budget(parent, args.budget, args.mode, args.min_keep,
                                    args.prune_decoder)
    before, after = count_macs(parent), count_macs(child)
    params_before, params_after = count_parameters(parent), count_parameters(child)
    heads, head_dims, padded = report.heads, report.head_dims, report.padded
    layers = {name: {'kept': report.kept[name], 'of': report.total[name],
                     **({'heads': heads[name], 'head_dim': head_dims[name],
                         'head_widths': report.head_widths[name],
                         'padded': padded[name]} if name in heads else {})}
              for name in report.kept}
    metadata = {'pruning': {'source': str(args.masked), 'budget': args.budget,
                            'mode': args.mode, 'min_keep': args.min_keep,
                            'prune_decoder': args.prune_decoder, 'layers': layers},
                'macs': after['total'].total, 'encoder_macs': after['encoder'].total,
                'params': params_after['total']}
    dtype = torch.float16 if args.dtype == 'float16' else torch.float32
    weights, _ = save_bundle(child, args.output, dtype=dtype, metadata=metadata)
    # padded: zero entries inside the attention products only (heads laid out at one width).
    print(f'{"layer":<26}{"kept":>7}{"of":>7}{"heads":>7}{"widths":>14}{"padded":>8}')
    for name, row in layers.items():
        widths = '/'.join(str(w) for w in row.get('head_widths', []))
        print(f'{name:<26}{row["kept"]:>7}{row["of"]:>7}{row.get("heads", ""):>7}'
              f'{widths:>14}{row.get("padded", ""):>8}')
    print(f'encoder MACs {before["encoder"].total / 1e6:.1f} M -> '
          f'{after["encoder"].total / 1e6:.1f} M '
          f'({before["encoder"].total / after["encoder"].total:.2f}x fewer); all MACs '
          f'{before["total"].total / 1e6:.1f} M -> {after["total"].total / 1e6:.1f} M; '
          f'parameters {params_before["total"] / 1e6:.2f} M -> '
          f'{params_after["total"] / 1e6:.2f} M')
    print(f'child bundle: {weights}')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run one pruning stage."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    if args.command == 'slice':
        try:
            return slice_command(args)
        except (BundleError, ValueError) as error:
            parser.error(str(error))
    try:
        if args.command == 'sparsity':
            recipe = load_recipe(args.config, args.overrides)
            if recipe.sparsity is None:
                raise ValueError(f'{args.config} has no sparsity section: sparsity training '
                                 'needs one (and a model with masked: true)')
        else:
            # The YAML path: a stem like child_0.25 would lose '.25' as a suffix.
            child = str(bundle_paths(args.child)[1])
            recipe = load_recipe(args.config, args.overrides,
                                 {'model': {'bundle': child}, 'init': child})
            if recipe.sparsity is not None or recipe.model.masked:
                raise ValueError(f'{args.config}: fine-tuning uses the normal loss; remove '
                                 'the sparsity section')
    except (BundleError, ValueError) as error:
        parser.error(str(error))
    return run_training(recipe, args)


if __name__ == '__main__':
    sys.exit(main())
