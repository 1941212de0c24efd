"""
The masked-autoencoder pretraining loop: one CPU to many GPUs, resumable at any step.

As in tracking training, every random choice is a function of the seed and the position in
the run — the crops of (epoch, sample index), the masks of (step, rank) — and the global
torch RNG is saved with each checkpoint, so a resumed run reproduces an uninterrupted one.
The result is ``<output>/encoder.safetensors``: the encoder's weights under the tracker's own
key names, which a tracking recipe loads with ``pretrained: <output>/encoder.safetensors``.
"""

import logging
import math
import pathlib
from typing import Any, Dict, Optional, Tuple

from detrack_model.data import PairProcessing
from detrack_model.data.pretrain_crops import PretrainCrops
from detrack_model.data.synthetic.sources import source_set
from detrack_model.engine.loop import autocast, TrainingLoop
from detrack_model.engine.pretrain_recipe import PretrainRecipe
from detrack_model.modeling.mae import MaskedAutoencoder
from safetensors.torch import save_file
import torch
import yaml

LOG = logging.getLogger(__name__)
ENCODER_FILE = 'encoder.safetensors'


def collate_crops(samples) -> Dict[str, Any]:
    """Stack template and search crops; keep the sample indices."""
    return {'template': torch.stack([s['template'] for s in samples]),
            'search': torch.stack([s['search'] for s in samples]),
            'index': [s['index'] for s in samples]}


def build_crops(recipe: PretrainRecipe, split: str, samples: int, seed: int) -> PretrainCrops:
    """Return the crop dataset of ``split`` as the recipe describes it."""
    data, model = recipe.data, recipe.model
    sources = source_set(split, data.pool, None if data.photos else [])
    processing = PairProcessing(model.template_size, model.search_size,
                                centre_jitter=data.centre_jitter,
                                scale_jitter=data.scale_jitter)
    return PretrainCrops(sources, processing, samples, seed, data.per_image, data.max_objects)


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Return the learning-rate multiplier: linear warm-up, then cosine down to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Pretrainer(TrainingLoop):
    """Pretrain the tracker's encoder as a masked autoencoder."""

    collate = staticmethod(collate_crops)

    def __init__(self, recipe: PretrainRecipe, output: Optional[str] = None,
                 device: str = 'auto', progress: bool = True) -> None:
        super().__init__(recipe, output, device, progress, 'samples_per_epoch')
        optim = recipe.optim
        self.model = MaskedAutoencoder(recipe.model, recipe.mae).to(self.device)
        self.train_model = self._distribute(self.model)
        self.optimizer = self._optimizer()
        warmup = int(optim.warmup_epochs * self.steps_per_epoch)
        floor = optim.min_lr / optim.lr
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, warmup, self.total_steps, floor))
        self.train_data = build_crops(recipe, recipe.data.split, recipe.data.samples_per_epoch,
                                      optim.seed)
        self.val_data = build_crops(recipe, 'val', recipe.data.val_samples, optim.seed + 1) \
            if recipe.data.val_samples else None
        self._start_clock()

    def _optimizer(self) -> torch.optim.Optimizer:
        """Build AdamW with MAE's betas; no decay on norms, biases, embeddings, tokens."""
        decay, plain = [], []
        for name, parameter in self.model.named_parameters():
            if not parameter.requires_grad:
                continue
            skip = parameter.ndim < 2 or 'pos_embed' in name or name in (
                'mask_token', 'decoder_crop')
            (plain if skip else decay).append(parameter)
        optim = self.recipe.optim
        return torch.optim.AdamW([{'params': decay, 'weight_decay': optim.weight_decay},
                                  {'params': plain, 'weight_decay': 0.0}],
                                 lr=optim.lr, betas=(0.9, 0.95))

    def _masks(self, step: int) -> torch.Generator:
        """Return the generator of one step's masks (each process draws its own)."""
        seed = (self.recipe.optim.seed * 1_000_003 + step) * 4099 + self.dist.rank
        return torch.Generator().manual_seed(seed)

    # -- the loop's parts ------------------------------------------------------------------

    def _objective(self, batch: Dict[str, Any],
                   epoch: int) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """Return the masked-patch loss of this process's crops (masks drawn per step)."""
        template = batch['template'].to(self.device, non_blocking=True)
        search = batch['search'].to(self.device, non_blocking=True)
        with autocast(self.autocast_dtype):
            outputs = self.train_model(template, search, self._masks(self.step))
        return outputs['loss'].float(), {}

    def _validate(self, epoch: int) -> Optional[Dict[str, float]]:
        if self.val_data is None:
            return None
        loss = self.evaluate()
        LOG.info('epoch %d: validation masked-patch loss %.4f', epoch, loss)
        return {'val_loss': loss}

    @torch.no_grad()
    def evaluate(self) -> float:
        """Return the masked-patch loss on the val split's crops, with fixed masks."""
        self.model.eval()
        generator = torch.Generator().manual_seed(12345)
        total, count = 0.0, 0
        size = self.recipe.optim.batch_size
        for start in range(0, len(self.val_data), size):
            batch = collate_crops([self.val_data[i] for i in
                                   range(start, min(start + size, len(self.val_data)))])
            outputs = self.model(batch['template'].to(self.device),
                                 batch['search'].to(self.device), generator)
            total += float(outputs['loss']) * len(batch['index'])
            count += len(batch['index'])
        return total / max(count, 1)

    def _result_path(self) -> pathlib.Path:
        return self.output / ENCODER_FILE

    def _write_result(self) -> None:
        """Write the encoder's weights with the steps, samples, training time and recipe."""
        save_encoder(self.model, self._result_path(),
                     {'steps': self.step, 'samples': self.step * self.recipe.optim.batch_size,
                      'wall_time_s': round(self.wall_time_s(), 1),
                      'recipe': self.recipe.to_dict()})


def save_encoder(model: MaskedAutoencoder, path: pathlib.Path,
                 metadata: Dict[str, Any]) -> None:
    """Write the encoder's weights (float32) and, beside them, a YAML of how they were made."""
    weights = {k: v.detach().float().cpu().contiguous()
               for k, v in model.encoder.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path))
    path.with_suffix('.yaml').write_text(yaml.safe_dump(
        {'model': model.config.to_dict(), 'metadata': metadata}, sort_keys=False))
