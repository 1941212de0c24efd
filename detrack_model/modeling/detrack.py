"""
DETRack assembly: the encoder, then the decoder head or the conv head.

The head is chosen by configuration, the decoder head (query selection + deformable decoder)
or OSTrack's conv head, so both train and compare in one codebase.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

from detrack_model.config import ModelConfig, preset
from detrack_model.modeling.conv_head import CentreHead
from detrack_model.modeling.deformable_decoder import DeformableDecoder, scatter_to_grid
from detrack_model.modeling.prune_masks import add_prune_masks
from detrack_model.modeling.query_selection import QuerySelection
from detrack_model.modeling.vit import ViTEncoder
import torch
from torch import nn


@dataclass
class DenoisingQueries:
    """Training-only queries appended after the K matching queries."""

    grid_index: torch.Tensor           # (B, D) search-grid cell whose token is the content
    boxes: torch.Tensor                # (B, D, 4) noised cxcywh boxes
    attn_mask: torch.Tensor            # (K + D, K + D) bool, True = may not attend
    # (B, D) long, 1 = positive: content from the model's label embeddings instead of tokens.
    labels: Optional[torch.Tensor] = None


class DETRack(nn.Module):
    """The tracking network: (template, search) crops in, boxes and scores out."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ViTEncoder(config)
        grid = config.search_grid
        if config.head == 'decoder':
            dec = config.decoder
            self.input_proj = nn.Sequential(nn.Linear(config.encoder.dim, dec.hidden),
                                            nn.LayerNorm(dec.hidden))
            self.query_selection = QuerySelection(dec.hidden, dec.num_queries, dec.anchor_size)
            self.decoder = DeformableDecoder(dec)
            if dec.dn_labels:
                self.dn_label_embed = nn.Embedding(2, dec.hidden)
        else:
            self.box_head = CentreHead(config.encoder.dim, config.conv_head.channels, grid)
        if config.masked:
            add_prune_masks(self)

    def forward(self, template: torch.Tensor, search: torch.Tensor,
                num_layers: Optional[int] = None, candidate_elimination: bool = True,
                denoising: Optional[DenoisingQueries] = None) -> Dict[str, Any]:
        """
        Run the network on (B, 3, Hz, Wz) template and (B, 3, Hx, Wx) search crops.

        Returns a dict with ``boxes`` (B, K, 4) normalised cxcywh in the search crop,
        ``scores`` (B, K) in [0, 1] and ``query_index`` (B, K), the search-grid cell each box
        comes from (K = 1 for the conv head). The decoder head adds ``logits``, per-layer
        ``layers``, the per-token ``token_boxes``/``token_logits`` of query selection with
        their ``search_index``, and ``dn_layers`` when denoising queries are given.
        """
        encoded = self.encoder(template, search, candidate_elimination)
        if self.config.head == 'conv':
            return self._conv_head(encoded.search, encoded.search_index)
        grid = self.config.search_grid
        memory = self.input_proj(encoded.search)
        proposals = self.query_selection(memory, encoded.search_index, grid)
        content, boxes, attn_mask = proposals.content, proposals.boxes, None
        if denoising is not None:
            dn_content = self._denoising_content(denoising, memory, encoded.search_index)
            content = torch.cat((content, dn_content), 1)
            boxes = torch.cat((boxes, denoising.boxes), 1)
            attn_mask = denoising.attn_mask
        layers = self.decoder(content, boxes, memory, encoded.search_index, (grid, grid),
                              attn_mask, num_layers)
        k = proposals.content.shape[1]
        matching = [(b[:, :k], s[:, :k]) for b, s in layers]
        final_boxes, final_logits = matching[-1]
        outputs = {
            'boxes': final_boxes,
            'logits': final_logits,
            'scores': final_logits.sigmoid(),
            'query_index': encoded.search_index.gather(1, proposals.selected),
            'layers': matching,
            'token_boxes': proposals.token_boxes,
            'token_logits': proposals.token_logits,
            'search_index': encoded.search_index,
        }
        if denoising is not None:
            outputs['dn_layers'] = [(b[:, k:], s[:, k:]) for b, s in layers]
        return outputs

    def _denoising_content(self, denoising: DenoisingQueries, memory: torch.Tensor,
                           index: torch.Tensor) -> torch.Tensor:
        """Return the (B, D, hidden) content of denoising queries: tokens, or label embeddings."""
        if denoising.labels is not None:
            if not hasattr(self, 'dn_label_embed'):
                raise ValueError('denoising queries with labels need a model built with '
                                 'decoder.dn_labels: true')
            return self.dn_label_embed(denoising.labels)
        dense = scatter_to_grid(memory, index, self.config.search_grid ** 2)
        return dense.gather(1, denoising.grid_index.unsqueeze(-1).expand(
            -1, -1, memory.shape[-1]))

    def _conv_head(self, tokens: torch.Tensor, index: torch.Tensor) -> Dict[str, Any]:
        """Run the conv head on the full grid, dropped tokens zero-padded."""
        grid = self.config.search_grid
        dense = scatter_to_grid(tokens, index, grid * grid)
        feature_map = dense.transpose(1, 2).reshape(tokens.shape[0], -1, grid, grid)
        outputs = self.box_head(feature_map)
        best = outputs['score_map'].flatten(1).argmax(dim=1, keepdim=True)
        outputs['query_index'] = best
        outputs['search_index'] = index
        return outputs


def create_model(config: Union[ModelConfig, str, Dict[str, Any]], **overrides: Any) -> DETRack:
    """
    Build a network from a ModelConfig, a preset name or a config dict.

    ``create_model('vit_tiny', head='conv', encoder={'depth': 6})`` builds a preset with
    overrides.
    """
    if isinstance(config, str):
        config = preset(config, **overrides)
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    elif overrides:
        raise ValueError('overrides are only accepted with a preset name')
    return DETRack(config)
