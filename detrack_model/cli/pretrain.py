"""
detrack-pretrain: masked-autoencoder pretraining of the tracker's encoder on unlabelled images.

``detrack-pretrain --config training/pretrain/cpu.yaml`` writes ``<output>/encoder.safetensors``;
a tracking recipe then starts from it with ``pretrained: <output>/encoder.safetensors``.
Several GPUs: ``torchrun --nproc_per_node N -m detrack_model.cli.pretrain --config ...``.
``--resume`` continues exactly from the newest checkpoint (or the one named); Ctrl-C or
SIGTERM saves a checkpoint before exiting.
"""

import argparse
import logging
import pathlib
import signal
import sys
from typing import List, Optional

from detrack_model.cli.train import add_training_arguments, apply_overrides
from detrack_model.engine.checkpoints import CheckpointError
from detrack_model.engine.pretrain_recipe import pretrain_recipe_from_dict
from detrack_model.engine.pretrainer import Pretrainer
import yaml


def _terminate(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def main(argv: Optional[List[str]] = None) -> int:
    """Pretrain; return 0 when the recipe completes, 130 when interrupted (after saving)."""
    parser = argparse.ArgumentParser(prog='detrack-pretrain',
                                     description=__doc__.splitlines()[1])
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    path = pathlib.Path(args.config)
    try:
        if not path.is_file():
            raise ValueError(f'recipe not found: {path}')
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f'{path}: expected a mapping at the top level')
        recipe = pretrain_recipe_from_dict(apply_overrides(data, args.overrides), str(path))
    except ValueError as error:
        parser.error(str(error))
    signal.signal(signal.SIGTERM, _terminate)
    try:
        trainer = Pretrainer(recipe, args.output, args.device, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        logging.error('%s', error)
        return 2
    try:
        if args.resume:
            if not trainer.resume(None if args.resume == 'latest' else args.resume):
                logging.info('no checkpoint in %s: starting from scratch', trainer.output)
        encoder = trainer.fit()
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
        print(f'pretrained encoder: {encoder}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
