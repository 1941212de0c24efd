"""
Deformable transformer decoder: the DETRack target head.

Queries are content (encoder tokens) plus a sine embedding of their current box. Each layer
runs self-attention over the queries (maskable, for the denoising groups), deformable
cross-attention into the search-token map around each query's box, and an FFN; a shared MLP
then refines every box in inverse-sigmoid space and a shared linear layer scores it.
"""

import math
from typing import List, Optional, Tuple

from detrack_model.config import DecoderConfig, validate_decoder_layers
from detrack_model.modeling.box_ops import inverse_sigmoid
from detrack_model.modeling.position_encoding import sine_box_embedding
from detrack_model.ops import deformable_attention
import torch
from torch import nn


class MLP(nn.Module):
    """A stack of linear layers with ReLU between them."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def scatter_to_grid(tokens: torch.Tensor, index: torch.Tensor, cells: int) -> torch.Tensor:
    """Place (B, n, C) tokens at their grid ``index`` in a (B, cells, C) map of zeros."""
    grid = tokens.new_zeros(tokens.shape[0], cells, tokens.shape[-1])
    return grid.scatter(1, index.unsqueeze(-1).expand_as(tokens), tokens)


class DeformableCrossAttention(nn.Module):
    """Each query samples a few points per head around its reference box in the search map."""

    def __init__(self, hidden: int, heads: int, points: int) -> None:
        super().__init__()
        self.heads, self.points = heads, points
        self.sampling_offsets = nn.Linear(hidden, heads * points * 2)
        self.attention_weights = nn.Linear(hidden, heads * points)
        self.value_proj = nn.Linear(hidden, hidden)
        self.output_proj = nn.Linear(hidden, hidden)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Start with points spread on rays in 8 directions at growing distances, as Deformable
        # DETR does, so every head looks somewhere different from the first step.
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        directions = torch.stack((angles.cos(), angles.sin()), -1)
        directions = directions / directions.abs().max(-1, keepdim=True).values
        rays = directions[:, None, :] * torch.arange(1, self.points + 1)[None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(rays.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, boxes: torch.Tensor, memory: torch.Tensor,
                memory_index: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """
        Attend from (B, Q, C) queries with (B, Q, 4) cxcywh boxes into the search map.

        ``memory`` holds the (B, n, C) search tokens that survived elimination and
        ``memory_index`` their grid positions; the value projection runs on those n tokens
        only and dropped cells stay zero.
        """
        batch, queries, hidden = query.shape
        height, width = grid
        value = scatter_to_grid(self.value_proj(memory), memory_index, height * width)
        value = value.view(batch, height * width, self.heads, hidden // self.heads)
        offsets = self.sampling_offsets(query).view(batch, queries, self.heads, 1,
                                                    self.points, 2)
        weights = self.attention_weights(query).view(batch, queries, self.heads,
                                                     self.points).softmax(-1)
        # Offsets are in units of the half box size, spread over the points (Deformable DETR's
        # box-reference convention), so sampling scales with the target.
        centre = boxes[:, :, None, None, None, :2]
        half_size = boxes[:, :, None, None, None, 2:] * 0.5
        locations = centre + offsets / self.points * half_size
        # Plain lists: no host-device copy per call, and both ONNX exporters accept them.
        sampled = deformable_attention(value, [[height, width]], [0], locations,
                                       weights.unsqueeze(3))
        return self.output_proj(sampled)


class DecoderLayer(nn.Module):
    """Self-attention, deformable cross-attention, FFN; post-norm with residuals."""

    def __init__(self, config: DecoderConfig, ffn_dim: Optional[int] = None) -> None:
        super().__init__()
        hidden = config.hidden
        ffn_dim = ffn_dim or config.ffn_dim
        self.self_attn = nn.MultiheadAttention(hidden, config.heads, dropout=config.dropout,
                                               batch_first=True)
        self.norm1 = nn.LayerNorm(hidden)
        self.cross_attn = DeformableCrossAttention(hidden, config.heads, config.points)
        self.norm2 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn_dim), nn.ReLU(),
                                 nn.Dropout(config.dropout), nn.Linear(ffn_dim, hidden))
        self.norm3 = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(config.dropout)
        # Pruning mask over the FFN hidden units, after the ReLU so it folds into ffn[3].
        self.prune_mask: Optional[nn.Parameter] = None

    def _ffn(self, content: torch.Tensor) -> torch.Tensor:
        hidden = self.ffn[2](self.ffn[1](self.ffn[0](content)))
        if self.prune_mask is not None:
            hidden = hidden * self.prune_mask
        return self.ffn[3](hidden)

    def forward(self, content: torch.Tensor, position: torch.Tensor, boxes: torch.Tensor,
                memory: torch.Tensor, memory_index: torch.Tensor, grid: Tuple[int, int],
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Update the (B, Q, C) content of the queries; ``attn_mask`` True = may not attend."""
        q = k = content + position
        attended = self.self_attn(q, k, content, attn_mask=attn_mask, need_weights=False)[0]
        content = self.norm1(content + self.dropout(attended))
        attended = self.cross_attn(content + position, boxes, memory, memory_index, grid)
        content = self.norm2(content + self.dropout(attended))
        return self.norm3(content + self.dropout(self._ffn(content)))


class DeformableDecoder(nn.Module):
    """L decoder layers with per-layer box refinement by one shared MLP."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        ffn_dims = config.ffn_dims or [config.ffn_dim] * config.layers
        self.layers = nn.ModuleList(DecoderLayer(config, ffn_dims[i])
                                    for i in range(config.layers))
        self.query_pos_head = MLP(4 * (config.hidden // 2), config.hidden, config.hidden, 2)
        self.bbox_embed = MLP(config.hidden, config.hidden, 4, 3)
        self.class_embed = nn.Linear(config.hidden, 1)
        nn.init.zeros_(self.bbox_embed.layers[-1].weight)
        nn.init.zeros_(self.bbox_embed.layers[-1].bias)

    def forward(self, content: torch.Tensor, boxes: torch.Tensor, memory: torch.Tensor,
                memory_index: torch.Tensor, grid: Tuple[int, int],
                attn_mask: Optional[torch.Tensor] = None,
                num_layers: Optional[int] = None) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """
        Refine (B, Q, 4) boxes of (B, Q, C) queries; return (boxes, logits) of every layer run.

        ``num_layers`` stops after the first n layers (1..L), trading accuracy for speed.
        """
        validate_decoder_layers(num_layers, self.config.layers)
        layers = self.config.layers if num_layers is None else num_layers
        outputs = []
        reference = boxes.detach()
        for layer in self.layers[:layers]:
            position = self.query_pos_head(sine_box_embedding(reference,
                                                              self.config.hidden // 2))
            content = layer(content, position, reference, memory, memory_index, grid, attn_mask)
            refined = (self.bbox_embed(content) + inverse_sigmoid(reference)).sigmoid()
            outputs.append((refined, self.class_embed(content).squeeze(-1)))
            reference = refined.detach()
        return outputs
