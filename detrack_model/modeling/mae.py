"""
Masked-autoencoder pretraining of the tracker's ViT encoder (MAE, He et al. 2022).

The encoder is the tracker's own :class:`~detrack_model.modeling.vit.ViTEncoder` (same
modules, same state-dict keys), fed a template crop and a search crop of one image as the
tracker feeds them, with most patches of each removed: it sees only the kept tokens, so a
step costs a fraction of a tracking step. A light decoder (discarded afterwards) puts mask
tokens back in place and predicts the pixels of every patch; the loss covers the masked
patches only, each patch's pixels normalised by their own mean and variance (MAE's
``norm_pix_loss``). Template and search tokens attend to each other throughout, so
reconstructing a masked search patch can use the template, which is what the tracker later
asks the encoder to do.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from detrack_model.config import ModelConfig
from detrack_model.modeling.vit import Block, check_images, init_vit_weights, ViTEncoder
import torch
from torch import nn


@dataclass
class MaeConfig:
    """The masking and the throw-away decoder."""

    mask_ratio: float = 0.75
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    norm_pix_loss: bool = True

    def __post_init__(self) -> None:
        """Refuse settings that leave nothing to see or nothing to predict."""
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f'mask_ratio must be in (0, 1), got {self.mask_ratio}')
        if self.decoder_dim % self.decoder_heads:
            raise ValueError(f'decoder_dim {self.decoder_dim} is not divisible by '
                             f'decoder_heads {self.decoder_heads}')
        if self.decoder_depth < 1:
            raise ValueError(f'decoder_depth must be >= 1, got {self.decoder_depth}')


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Return (B, N, patch * patch * 3) pixel rows of (B, 3, H, W) images, row-major patches."""
    batch, channels, height, width = images.shape
    rows, cols = height // patch, width // patch
    x = images.reshape(batch, channels, rows, patch, cols, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(batch, rows * cols, patch * patch * channels)


def unpatchify(patches: torch.Tensor, patch: int, channels: int = 3) -> torch.Tensor:
    """Invert :func:`patchify` for square images."""
    batch, tokens, _ = patches.shape
    side = int(round(tokens ** 0.5))
    x = patches.reshape(batch, side, side, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, side * patch, side * patch)


def keep_count(tokens: int, mask_ratio: float) -> int:
    """Return how many of ``tokens`` stay visible: at least one, at most all but one."""
    return min(tokens - 1, max(1, int(round(tokens * (1.0 - mask_ratio)))))


def random_masking(batch: int, tokens: int, mask_ratio: float, device: torch.device,
                   generator: Optional[torch.Generator] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Draw a per-sample random subset of ``tokens`` to keep.

    Return ``keep`` (B, k) sorted token indices and ``mask`` (B, tokens), 1.0 where a token is
    removed. The noise is drawn on the CPU from ``generator``, so a seed gives the same masks
    on every device.
    """
    count = keep_count(tokens, mask_ratio)
    noise = torch.rand(batch, tokens, generator=generator)
    keep = noise.argsort(dim=1)[:, :count].sort(dim=1).values.to(device)
    mask = torch.ones(batch, tokens, device=device)
    mask.scatter_(1, keep, 0.0)
    return keep, mask


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Return fixed (1, grid * grid, dim) 2-D sine-cosine position embeddings (MAE)."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                            torch.arange(grid, dtype=torch.float64), indexing='ij')
    parts = []
    for coordinate in (xs.flatten(), ys.flatten()):
        angles = coordinate[:, None] * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    embedding = torch.cat(parts, dim=1)
    if embedding.shape[1] < dim:
        embedding = nn.functional.pad(embedding, (0, dim - embedding.shape[1]))
    return embedding.float().unsqueeze(0)


class MaskedAutoencoder(nn.Module):
    """The tracker's encoder plus MAE's light decoder over template and search crops."""

    def __init__(self, config: ModelConfig, mae: MaeConfig) -> None:
        super().__init__()
        self.config, self.mae = config, mae
        self.encoder = ViTEncoder(config)
        dim, width = config.encoder.dim, mae.decoder_dim
        patch = config.encoder.patch_size
        self.decoder_embed = nn.Linear(dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        # Fixed positions: the decoder must know where a mask token sits; template and search
        # grids differ, and a learned offset tells the two crops apart.
        self.register_buffer('decoder_pos_z', sincos_2d(config.template_grid, width),
                             persistent=False)
        self.register_buffer('decoder_pos_x', sincos_2d(config.search_grid, width),
                             persistent=False)
        self.decoder_crop = nn.Parameter(torch.zeros(1, 2, width))
        self.decoder_blocks = nn.ModuleList(
            Block(width, mae.decoder_heads, 4 * width) for _ in range(mae.decoder_depth))
        self.decoder_norm = nn.LayerNorm(width, eps=1e-6)
        self.decoder_pred = nn.Linear(width, patch * patch * 3)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm,
                       self.decoder_pred):
            module.apply(init_vit_weights)
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.normal_(self.decoder_crop, std=0.02)

    def encode_visible(self, template: torch.Tensor, search: torch.Tensor,
                       keep_z: torch.Tensor, keep_x: torch.Tensor) -> torch.Tensor:
        """Encode only the kept tokens of each crop; return them ([template; search] order)."""
        encoder = self.encoder
        z = encoder.patch_embed(template) + encoder.pos_embed_z
        x = encoder.patch_embed(search) + encoder.pos_embed_x
        dim = z.shape[-1]
        z = z.gather(1, keep_z.unsqueeze(-1).expand(-1, -1, dim))
        x = x.gather(1, keep_x.unsqueeze(-1).expand(-1, -1, dim))
        tokens = torch.cat((z, x), dim=1)
        # Candidate elimination is a tracking-time rule: every kept token goes through.
        unused = keep_x
        for block in encoder.blocks:
            tokens, _ = block(tokens, z.shape[1], unused, eliminate=False)
        return encoder.norm(tokens)

    def decode(self, latent: torch.Tensor, keep_z: torch.Tensor,
               keep_x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Predict the pixels of every template and search patch from the kept tokens."""
        batch = latent.shape[0]
        tokens_z, tokens_x = self.decoder_pos_z.shape[1], self.decoder_pos_x.shape[1]
        embedded = self.decoder_embed(latent)
        width = embedded.shape[-1]
        parts = []
        for kept, keep, tokens, position, crop in (
                (embedded[:, :keep_z.shape[1]], keep_z, tokens_z, self.decoder_pos_z, 0),
                (embedded[:, keep_z.shape[1]:], keep_x, tokens_x, self.decoder_pos_x, 1)):
            full = self.mask_token.expand(batch, tokens, width).clone()
            full.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, width), kept)
            parts.append(full + position + self.decoder_crop[:, crop:crop + 1])
        tokens = torch.cat(parts, dim=1)
        unused = keep_x
        for block in self.decoder_blocks:
            tokens, _ = block(tokens, tokens_z, unused, eliminate=False)
        pixels = self.decoder_pred(self.decoder_norm(tokens))
        return pixels[:, :tokens_z], pixels[:, tokens_z:]

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """Return the pixels each patch must be predicted as (normalised per patch if set)."""
        target = patchify(images, self.config.encoder.patch_size)
        if self.mae.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def forward(self, template: torch.Tensor, search: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """
        Mask, encode, decode and score one batch.

        Return ``loss`` (mean squared error over masked patches of both crops), ``pred_z``
        and ``pred_x`` (B, N, p*p*3) and the masks ``mask_z``, ``mask_x`` (1.0 = masked).
        """
        check_images(template, search, self.config)
        batch, device = template.shape[0], template.device
        keep_z, mask_z = random_masking(batch, self.decoder_pos_z.shape[1],
                                        self.mae.mask_ratio, device, generator)
        keep_x, mask_x = random_masking(batch, self.decoder_pos_x.shape[1],
                                        self.mae.mask_ratio, device, generator)
        latent = self.encode_visible(template, search, keep_z, keep_x)
        pred_z, pred_x = self.decode(latent, keep_z, keep_x)
        errors = torch.cat(((pred_z - self.target(template)).pow(2).mean(-1),
                            (pred_x - self.target(search)).pow(2).mean(-1)), dim=1)
        mask = torch.cat((mask_z, mask_x), dim=1)
        loss = (errors * mask).sum() / mask.sum()
        return {'loss': loss, 'pred_z': pred_z, 'pred_x': pred_x, 'mask_z': mask_z,
                'mask_x': mask_x}

    def reconstruct(self, images: torch.Tensor, pred: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """Return images with masked patches replaced by the prediction (for figures)."""
        patch = self.config.encoder.patch_size
        target = patchify(images, patch)
        if self.mae.norm_pix_loss:
            # Undo the per-patch normalisation with the true patch statistics.
            mean = target.mean(dim=-1, keepdim=True)
            std = (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5
            pred = pred * std + mean
        mixed = torch.where(mask.unsqueeze(-1) > 0, pred, target)
        return unpatchify(mixed, patch)
