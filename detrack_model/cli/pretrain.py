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
import sys
from typing import List, Optional

from detrack_model.cli.train import add_training_arguments, recipe_data, run_training
from detrack_model.engine.pretrain_recipe import pretrain_recipe_from_dict
from detrack_model.engine.pretrainer import Pretrainer


def main(argv: Optional[List[str]] = None) -> int:
    """Pretrain; return 0 when the recipe completes, 130 when interrupted (after saving)."""
    parser = argparse.ArgumentParser(prog='detrack-pretrain',
                                     description=__doc__.splitlines()[1])
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    try:
        recipe = pretrain_recipe_from_dict(recipe_data(args), str(args.config))
    except ValueError as error:
        parser.error(str(error))
    return run_training(recipe, args, Pretrainer)


if __name__ == '__main__':
    sys.exit(main())
