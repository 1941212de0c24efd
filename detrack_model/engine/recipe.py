"""
Training recipes: one YAML file names the model, the data, the optimisation and the losses.

Unknown keys are errors, so a typo in a recipe fails at once instead of silently training with
a default. ``load_recipe`` reads a recipe file with ``--set``-style overrides; pretraining
recipes (``pretrain_recipe``) are read and checked by the same helpers.
"""

from dataclasses import asdict, dataclass, field, fields
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Type, TypeVar

from detrack_model.config import build_dataclass, config_from_spec, ModelConfig
from detrack_model.data.pair_dataset import check_absent_fraction, check_share
from detrack_model.losses import LossConfig
import yaml


@dataclass
class DataRecipe:
    """Where training pairs come from and how many an epoch has."""

    train: List[Dict[str, Any]] = field(default_factory=list)
    val: List[Dict[str, Any]] = field(default_factory=list)
    pairs_per_epoch: int = 60000
    val_pairs: int = 500
    max_gap: int = 200
    workers: int = 4
    centre_jitter: float = 3.0
    scale_jitter: float = 0.25
    # Fraction of training pairs whose search crop is moved off the target: every query's
    # score is then trained towards 0, so a low score means "not there" (the lost state and
    # re-detection read it).
    absent_fraction: float = 0.0
    # Of those, the fraction centred on a look-alike of the target where the search frame has
    # one recorded (generated data): the confident mistakes false tracking is made of.
    decoy_fraction: float = 0.0
    # Of those, the fraction taken from a frame where the target is fully occluded or out of
    # view (crop around its hidden box) where the sequence has one: what covers it then.
    hidden_fraction: float = 0.0


@dataclass
class OptimRecipe:
    """AdamW, the step-down schedule, clipping, precision and seeds."""

    epochs: int = 20
    batch_size: int = 128          # global: split evenly over the processes
    lr: float = 4e-4               # everything but the encoder
    lr_encoder: float = 4e-5
    weight_decay: float = 1e-4
    lr_drop: float = 0.8           # fraction of training after which lr is multiplied by 0.1
    grad_clip: float = 0.1
    amp: str = 'auto'              # auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16, off
    seed: int = 42
    ce_start_epoch: int = 0        # candidate elimination is off before this epoch
    threads: Optional[int] = None  # CPU threads per process


@dataclass
class CheckpointRecipe:
    """When to save and how many to keep."""

    every_steps: int = 500
    keep_last: int = 3
    log_every: int = 10


@dataclass
class SparsityRecipe:
    """Sparsity training: L1 weights on the pruning masks (the model needs masked: true)."""

    attention: float = 1.5e-4
    mlp: float = 7.5e-5
    decoder_ffn: float = 0.0
    # Learning rate of the masks (None: the recipe's lr); they take no weight decay.
    mask_lr: Optional[float] = None


@dataclass
class Recipe:
    """A whole training run."""

    model: ModelConfig
    data: DataRecipe = field(default_factory=DataRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    # Weights, assignment, top-k, denoising groups and noise; the grid is the model's.
    loss: LossConfig = field(default_factory=LossConfig)
    checkpoint: CheckpointRecipe = field(default_factory=CheckpointRecipe)
    pretrained: Optional[str] = None
    # A bundle whose weights initialise the whole network (sparsity training, fine-tuning).
    init: Optional[str] = None
    sparsity: Optional[SparsityRecipe] = None
    output: str = 'runs/detrack'

    def to_dict(self) -> Dict[str, Any]:
        """Plain dictionary (the model as its full configuration)."""
        data = asdict(self)
        data['model'] = self.model.to_dict()
        return data


Section = TypeVar('Section')


def build_section(kind: Type[Section], data: Optional[Dict[str, Any]], where: str) -> Section:
    """Build the dataclass ``kind`` of a recipe section; every error names ``where``."""
    try:
        return build_dataclass(kind, data, where)
    except ValueError as error:
        # Range checks in the dataclasses themselves do not know where they are.
        message = str(error)
        raise ValueError(message if message.startswith(where) else
                         f'{where}: {message}') from None


def check_top_level(data: Dict[str, Any], kind: type, where: str) -> None:
    """Raise ValueError for a key the recipe dataclass ``kind`` lacks or a missing model."""
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f'{where}: unknown keys {unknown}; expected some of {sorted(known)}')
    if 'model' not in data:
        raise ValueError(f'{where}: a model section is required')


def model_from_spec(spec: Any, where: str) -> ModelConfig:
    """
    Build the model configuration of a recipe.

    Besides ``config_from_spec``'s forms, ``{'bundle': path, **overrides}`` takes the
    architecture of a bundle (a pruned child included) and overrides top-level fields
    (``masked: true`` for sparsity training).
    """
    if not isinstance(spec, dict):
        raise ValueError(f'{where}: model must be a mapping, got {spec!r}')
    if 'bundle' not in spec:
        return config_from_spec(spec)
    from detrack_model.export.bundle import BundleError, read_bundle_config
    overrides = dict(spec)
    path = overrides.pop('bundle')
    try:
        data = dict(read_bundle_config(path)['model'])
    except (BundleError, KeyError) as error:
        raise ValueError(f'{where}: model bundle {path}: {error}') from error
    data.update(overrides)
    return ModelConfig.from_dict(data)


def recipe_from_dict(data: Dict[str, Any], where: str = 'recipe') -> Recipe:
    """Build a Recipe from its dictionary form."""
    check_top_level(data, Recipe, where)
    sparsity = data.get('sparsity')
    recipe = Recipe(model=model_from_spec(data['model'], f'{where}: model'),
                    data=build_section(DataRecipe, data.get('data'), f'{where}: data'),
                    optim=build_section(OptimRecipe, data.get('optim'), f'{where}: optim'),
                    loss=build_section(LossConfig, data.get('loss'), f'{where}: loss'),
                    checkpoint=build_section(CheckpointRecipe, data.get('checkpoint'),
                                             f'{where}: checkpoint'),
                    pretrained=data.get('pretrained'),
                    init=data.get('init'),
                    sparsity=None if sparsity is None else build_section(
                        SparsityRecipe, sparsity, f'{where}: sparsity'),
                    output=data.get('output', 'runs/detrack'))
    if recipe.sparsity is not None and not recipe.model.masked:
        raise ValueError(f'{where}: a sparsity section needs a model with masked: true')
    if recipe.loss.dn_content == 'embedding' and not recipe.model.decoder.dn_labels:
        raise ValueError(f'{where}: loss dn_content: embedding needs a model with '
                         'decoder: {dn_labels: true}')
    try:
        check_absent_fraction(recipe.data.absent_fraction)
        check_share('decoy_fraction', recipe.data.decoy_fraction)
        check_share('hidden_fraction', recipe.data.hidden_fraction)
    except ValueError as error:
        raise ValueError(f'{where}: data {error}') from None
    for share in ('decoy_fraction', 'hidden_fraction'):
        if getattr(recipe.data, share) > 0 and recipe.data.absent_fraction == 0:
            raise ValueError(f'{where}: data {share} needs absent_fraction > 0 (it is a share '
                             'of the target-absent pairs)')
    if recipe.data.absent_fraction > 0 and recipe.model.head != 'decoder':
        raise ValueError(f'{where}: data absent_fraction needs the decoder head (the conv '
                         'baseline has no loss for target-absent pairs)')
    return recipe


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Set dotted keys (``optim.epochs=2``) in a recipe dictionary; values are YAML."""
    for override in overrides:
        key, sep, value = override.partition('=')
        if not sep:
            raise ValueError(f'override {override!r} is not key=value')
        node = data
        parts = key.split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f'override {override!r}: {part} is not a section')
        node[parts[-1]] = yaml.safe_load(value)
    return data


def read_recipe_file(path: str, overrides: Sequence[str] = (),
                     extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """
    Return a YAML recipe file as a dictionary, ``extra`` top-level values and overrides set.

    Raise ValueError when the file is missing or not a mapping, or an override is malformed.
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise ValueError(f'recipe not found: {path}')
    data = yaml.safe_load(file.read_text())
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a mapping at the top level')
    data.update(extra or {})
    return apply_overrides(data, overrides)


def load_recipe(path: str, overrides: Sequence[str] = (),
                extra: Optional[Dict[str, Any]] = None) -> Recipe:
    """Read a YAML recipe with ``extra`` top-level values and dotted overrides applied."""
    return recipe_from_dict(read_recipe_file(path, overrides, extra), str(path))
