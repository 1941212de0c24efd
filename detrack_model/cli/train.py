"""
detrack-train: train a DETRack network from a YAML recipe.

Single process: ``detrack-train --config training/synthetic_cpu_pool.yaml``. Several GPUs or
machines: ``torchrun --nproc_per_node 2 -m detrack_model.cli.train --config ...`` (DDP; gloo
on CPUs, NCCL on GPUs). ``--resume`` continues exactly from the newest checkpoint in the
output directory (or the one named). Ctrl-C or SIGTERM saves a checkpoint before exiting.
"""

import argparse
import logging
import signal
import sys
from typing import Any, Callable, List, Optional

from detrack_model.engine.checkpoints import CheckpointError
from detrack_model.engine.recipe import load_recipe, Recipe
from detrack_model.engine.trainer import Trainer


def _terminate(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every training command shares (recipe, output, resume, overrides)."""
    parser.add_argument('--config', required=True, help='YAML recipe (see training/)')
    parser.add_argument('--output', help="run directory (default: the recipe's output)")
    parser.add_argument('--resume', nargs='?', const='latest',
                        help='continue from the newest checkpoint, or from the one named')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a recipe value (repeatable)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run_training(recipe: Recipe, args: argparse.Namespace,
                 trainer_class: Callable[..., Any] = Trainer) -> int:
    """
    Train ``recipe``; return 0 when it completes, 130 when interrupted (after saving).

    ``trainer_class`` builds the loop from (recipe, output, device, progress): the tracker's
    :class:`Trainer`, or anything with its ``resume``/``fit``/``save``/``close``.
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        trainer = trainer_class(recipe, args.output, args.device, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        logging.error('%s', error)
        return 2
    try:
        if args.resume:
            resumed = trainer.resume(None if args.resume == 'latest' else args.resume)
            if not resumed:
                logging.info('no checkpoint in %s: starting from scratch', trainer.output)
        bundle = trainer.fit()
    except CheckpointError as error:
        logging.error('cannot resume: %s', error)
        return 1
    except KeyboardInterrupt:
        trainer.save()
        logging.warning('interrupted at step %d; checkpoint saved, continue with --resume',
                        trainer.step)
        return 130
    finally:
        trainer.close()
    if trainer.dist.is_main:
        print(f'final result: {bundle}')
    return 0


def training_command(argv: Optional[List[str]], prog: str, doc: str,
                     load: Callable[[str, List[str]], Any],
                     trainer_class: Callable[..., Any] = Trainer) -> int:
    """
    Parse a training command's options, ``load`` its recipe and run ``trainer_class``.

    ``doc`` is the command's module docstring (its second line describes it). Return 0 when
    the recipe completes, 130 when interrupted (after saving).
    """
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[1])
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    try:
        recipe = load(args.config, args.overrides)
    except ValueError as error:
        parser.error(str(error))
    return run_training(recipe, args, trainer_class)


def main(argv: Optional[List[str]] = None) -> int:
    """Train; return 0 when the recipe completes, 130 when interrupted (after saving)."""
    return training_command(argv, 'detrack-train', __doc__, load_recipe)


if __name__ == '__main__':
    sys.exit(main())
