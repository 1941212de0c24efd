"""
ViT encoder over concatenated template and search tokens, with candidate elimination.

Parameter names follow timm's VisionTransformer (``patch_embed.proj``, ``blocks.N.attn.qkv``,
``blocks.N.mlp.fc1``, ``norm``) so pre-trained checkpoints map onto it directly. Template and
search tokens carry separate learned position embeddings (``pos_embed_z``, ``pos_embed_x``).
"""

from dataclasses import dataclass
import math
from typing import List, Optional, Sequence, Tuple

from detrack_model.config import ModelConfig
import torch
from torch import nn
import torch.nn.functional as F


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample while training."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens by a strided convolution."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """
    Multi-head self-attention whose heads may be narrower than dim / heads (pruning).

    ``head_widths`` gives every head its own q/k/v width. ``qkv`` and ``proj`` then hold
    exactly those rows and columns; before the one fused attention call the heads are laid
    out at the widest width, the missing dimensions filled from a zero column (zeros add
    nothing to q.k or to the output), and after it the padding is dropped again. Equal widths
    need no layout step.
    """

    def __init__(self, dim: int, heads: int, head_dim: Optional[int] = None,
                 head_widths: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        widths = list(head_widths) if head_widths else [head_dim or dim // heads] * heads
        self.heads = len(widths)
        self.head_dim = max(widths)
        self.head_widths = widths
        inner = sum(widths)
        self.qkv = nn.Linear(dim, 3 * inner)
        self.proj = nn.Linear(inner, dim)
        # Index buffers (None when every head has the full width) follow the module's device.
        pad, unpad = _head_layout(widths) if len(set(widths)) > 1 else (None, None)
        self.register_buffer('pad_index', pad, persistent=False)
        self.register_buffer('unpad_index', unpad, persistent=False)
        # Pruning mask over (heads, head_dim), multiplying q, k and v alike (sparsity training).
        self.prune_mask: Optional[nn.Parameter] = None

    def forward(self, x: torch.Tensor,
                probe: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """
        Attend over all tokens; optionally also return the attention rows of ``probe`` tokens.

        ``probe`` holds token indices (the template centre); their attention probabilities over
        all tokens, averaged over heads, are what candidate elimination ranks search tokens by.
        Only those few rows are materialised: the full map never is.
        """
        batch, tokens, _ = x.shape
        qkv = self.qkv(x)
        if self.prune_mask is not None:
            qkv = qkv * self.prune_mask.flatten().repeat(3)
        if self.pad_index is None:
            q, k, v = qkv.view(batch, tokens, 3, self.heads, self.head_dim) \
                .permute(2, 0, 3, 1, 4).unbind(0)
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2) \
                .reshape(batch, tokens, -1)
        else:
            # Gather whole token rows (channels first): a gather along the last axis moves one
            # number per index and is several times slower in onnxruntime.
            rows = F.pad(qkv.transpose(1, 2), (0, 0, 0, 1)).index_select(1, self.pad_index)
            q, k, v = rows.view(batch, 3, self.heads, self.head_dim, tokens) \
                .permute(1, 0, 2, 4, 3).unbind(0)
            out = F.scaled_dot_product_attention(q, k, v).permute(0, 1, 3, 2) \
                .reshape(batch, -1, tokens).index_select(1, self.unpad_index).transpose(1, 2)
        out = self.proj(out)
        probe_attention = None
        if probe is not None:
            logits = q[:, :, probe] @ k.transpose(-2, -1) * self.head_dim ** -0.5
            probe_attention = logits.softmax(dim=-1).mean(dim=(1, 2))
        return out, probe_attention


def _head_layout(widths: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Return the gathers between exact-width and padded head layouts.

    ``pad`` (3 * heads * max width) picks, for every padded q, k and v position, its row of
    ``[qkv^T; 0]``, the last row (zero) for padding; ``unpad`` (sum of widths) picks the real
    rows of the padded attention output, channels first.
    """
    width, inner = max(widths), sum(widths)
    starts = [sum(widths[:h]) for h in range(len(widths))]
    pad, unpad = [], []
    for part in range(3):
        for start, count in zip(starts, widths):
            pad += [part * inner + start + d for d in range(count)] + [3 * inner] * (width - count)
    for h, count in enumerate(widths):
        unpad += [h * width + d for d in range(count)]
    return torch.tensor(pad), torch.tensor(unpad)


class Mlp(nn.Module):
    """Two-layer GELU MLP."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        # Pruning mask over the hidden units, after the activation so it folds into fc2.
        self.prune_mask: Optional[nn.Parameter] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.fc1(x))
        if self.prune_mask is not None:
            hidden = hidden * self.prune_mask
        return self.fc2(hidden)


class Block(nn.Module):
    """Pre-norm transformer block; may eliminate search tokens between attention and MLP."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int,
                 head_widths: Optional[Sequence[int]] = None, drop_path: float = 0.0,
                 keep_ratio: float = 1.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        # A pruned block's head_widths may name fewer and narrower heads than dim / heads.
        self.attn = Attention(dim, heads, head_widths=head_widths)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden)
        self.drop_path = DropPath(drop_path)
        self.keep_ratio = keep_ratio

    def forward(self, x: torch.Tensor, template_tokens: int, search_index: torch.Tensor,
                probe: Optional[torch.Tensor] = None,
                eliminate: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the block; return the tokens and the grid index of each search token kept."""
        eliminating = eliminate and self.keep_ratio < 1.0
        attended, probe_attention = self.attn(self.norm1(x), probe if eliminating else None)
        x = x + self.drop_path(attended)
        if eliminating:
            x, search_index = eliminate_candidates(x, probe_attention, template_tokens,
                                                   search_index, self.keep_ratio)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, search_index


def eliminate_candidates(x: torch.Tensor, probe_attention: torch.Tensor, template_tokens: int,
                         search_index: torch.Tensor,
                         keep_ratio: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Keep the ceil(keep_ratio * n) search tokens the template centre attends to most.

    ``probe_attention`` is (B, N): the template centre's attention over all N tokens averaged
    over heads. Kept tokens are returned in decreasing attention order together with their
    positions on the search grid, so later stages can put them back where they belong.
    """
    search_tokens = x.shape[1] - template_tokens
    keep = math.ceil(keep_ratio * search_tokens)
    if keep >= search_tokens:
        return x, search_index
    order = probe_attention[:, template_tokens:].topk(keep, dim=1).indices
    kept = x[:, template_tokens:].gather(1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return torch.cat((x[:, :template_tokens], kept), dim=1), search_index.gather(1, order)


def centre_token_indices(grid: int) -> List[int]:
    """Template tokens whose cell contains the template centre (1 if odd, 4 if even)."""
    rows = [grid // 2] if grid % 2 else [grid // 2 - 1, grid // 2]
    return [r * grid + c for r in rows for c in rows]


@dataclass
class EncoderOutput:
    """Encoder tokens after the final norm."""

    template: torch.Tensor
    search: torch.Tensor
    # (B, n) position of every remaining search token on the row-major search grid.
    search_index: torch.Tensor


class ViTEncoder(nn.Module):
    """Plain ViT over [template; search] tokens with OSTrack's candidate elimination."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        enc = config.encoder
        self.config = config
        self.patch_embed = PatchEmbed(enc.patch_size, enc.dim)
        self.pos_embed_z = nn.Parameter(torch.zeros(1, config.template_grid ** 2, enc.dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, config.search_grid ** 2, enc.dim))
        # Built on the CPU whatever the default device: a meta-device build has no data here.
        rates = torch.linspace(0, enc.drop_path, enc.depth, device='cpu').tolist()
        self.blocks = nn.ModuleList(
            Block(enc.dim, enc.heads, widths.mlp, widths.heads, rates[i],
                  enc.ce_keep_ratio if i in enc.ce_layers else 1.0)
            for i, widths in enumerate(enc.layer_widths()))
        self.norm = nn.LayerNorm(enc.dim, eps=1e-6)
        self.register_buffer('probe', torch.tensor(centre_token_indices(config.template_grid)),
                             persistent=False)
        nn.init.trunc_normal_(self.pos_embed_z, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_x, std=0.02)
        self.apply(init_vit_weights)

    def forward(self, template: torch.Tensor, search: torch.Tensor,
                candidate_elimination: bool = True) -> EncoderOutput:
        """Encode a batch of template and search crops (B, 3, H, W) each."""
        check_images(template, search, self.config)
        z = self.patch_embed(template) + self.pos_embed_z
        x = self.patch_embed(search) + self.pos_embed_x
        template_tokens = z.shape[1]
        search_index = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
        tokens = torch.cat((z, x), dim=1)
        for block in self.blocks:
            tokens, search_index = block(tokens, template_tokens, search_index, self.probe,
                                         candidate_elimination)
        tokens = self.norm(tokens)
        return EncoderOutput(tokens[:, :template_tokens], tokens[:, template_tokens:],
                             search_index)


def check_images(template: torch.Tensor, search: torch.Tensor, config: ModelConfig) -> None:
    """Raise ValueError unless both crops have the configured shape and one batch size."""
    for name, image, size in (('template', template, config.template_size),
                              ('search', search, config.search_size)):
        expected = (3, size, size)
        if image.ndim != 4 or tuple(image.shape[1:]) != expected:
            raise ValueError(f'{name} must be a (B, 3, {size}, {size}) batch, got '
                             f'{tuple(image.shape)}')
    if template.shape[0] != search.shape[0]:
        raise ValueError(f'template batch {template.shape[0]} does not match search batch '
                         f'{search.shape[0]}')


def init_vit_weights(module: nn.Module) -> None:
    """Initialise like timm's ViT (truncated normal linears, unit LayerNorm)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
