"""
detrack-pretrain: masked-autoencoder pretraining of the tracker's encoder on unlabelled images.

``detrack-pretrain --config training/pretrain/cpu.yaml`` writes ``<output>/encoder.safetensors``;
a tracking recipe then starts from it with ``pretrained: <output>/encoder.safetensors``.
Several GPUs: ``torchrun --nproc_per_node N -m detrack_model.cli.pretrain --config ...``.
``--resume`` continues exactly from the newest checkpoint (or the one named); Ctrl-C or
SIGTERM saves a checkpoint before exiting.
"""

import sys
from typing import List, Optional

from detrack_model.cli.train import training_command
from detrack_model.engine.pretrain_recipe import load_pretrain_recipe
from detrack_model.engine.pretrainer import Pretrainer


def main(argv: Optional[List[str]] = None) -> int:
    """Pretrain; return 0 when the recipe completes, 130 when interrupted (after saving)."""
    return training_command(argv, 'detrack-pretrain', __doc__, load_pretrain_recipe,
                            Pretrainer)


if __name__ == '__main__':
    sys.exit(main())
