"""
Pretraining recipes: the encoder to pretrain, the masking, the images, the optimisation.

The model section is the tracking recipe's (a preset with overrides, or a bundle), so the
encoder pretrained here has exactly the shapes the tracker will load it into. Unknown keys
are errors, as in training recipes.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Sequence

from detrack_model.config import ModelConfig
from detrack_model.engine.recipe import (build_section, check_top_level, CheckpointRecipe,
                                         model_from_spec, read_recipe_file)
from detrack_model.modeling.mae import MaeConfig


@dataclass
class PretrainData:
    """Which images the crops come from and how they are cut."""

    # An image-pool cache (make data); None uses only the split's scikit-image photographs.
    pool: Optional[str] = 'build/data/image_pool'
    split: str = 'train'
    photos: bool = True            # add the split's scikit-image photographs
    samples_per_epoch: int = 65536
    val_samples: int = 512         # crops of the val split scored each epoch (0: none)
    per_image: int = 8             # consecutive samples that share a background
    max_objects: int = 3           # cut-outs pasted on each background
    workers: int = 1
    centre_jitter: float = 3.0     # as tracking pairs: the search crop is off-centre
    scale_jitter: float = 0.25


@dataclass
class PretrainOptim:
    """AdamW with linear warm-up and cosine decay (MAE's schedule)."""

    epochs: int = 10
    batch_size: int = 128          # global: split evenly over the processes
    lr: float = 5e-4
    min_lr: float = 1e-5
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    amp: str = 'auto'              # auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16, off
    seed: int = 0
    threads: Optional[int] = None  # CPU threads per process


@dataclass
class PretrainRecipe:
    """A whole pretraining run."""

    model: ModelConfig
    mae: MaeConfig = field(default_factory=MaeConfig)
    data: PretrainData = field(default_factory=PretrainData)
    optim: PretrainOptim = field(default_factory=PretrainOptim)
    checkpoint: CheckpointRecipe = field(default_factory=CheckpointRecipe)
    output: str = 'runs/pretrain'

    def to_dict(self) -> Dict[str, Any]:
        """Plain dictionary (the model as its full configuration)."""
        data = asdict(self)
        data['model'] = self.model.to_dict()
        return data


def pretrain_recipe_from_dict(data: Dict[str, Any], where: str = 'recipe') -> PretrainRecipe:
    """Build a PretrainRecipe from its dictionary form; name any key that is wrong."""
    check_top_level(data, PretrainRecipe, where)
    mae = build_section(MaeConfig, data.get('mae'), f'{where}: mae')
    recipe = PretrainRecipe(
        model=model_from_spec(data['model'], f'{where}: model'), mae=mae,
        data=build_section(PretrainData, data.get('data'), f'{where}: data'),
        optim=build_section(PretrainOptim, data.get('optim'), f'{where}: optim'),
        checkpoint=build_section(CheckpointRecipe, data.get('checkpoint'),
                                 f'{where}: checkpoint'),
        output=data.get('output', 'runs/pretrain'))
    if recipe.data.split != 'train':
        raise ValueError(f'{where}: data: split must be train (val and test images are held '
                         f'out for scoring), got {recipe.data.split!r}')
    return recipe


def load_pretrain_recipe(path: str, overrides: Sequence[str] = ()) -> PretrainRecipe:
    """Read a YAML pretraining recipe with dotted overrides applied."""
    return pretrain_recipe_from_dict(read_recipe_file(path, overrides), str(path))
