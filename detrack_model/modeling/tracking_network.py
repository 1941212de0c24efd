"""
The network as the tracker runs it: raw crops in, candidate boxes on the search grid out.

:class:`TrackingNetwork` is the one module both the PyTorch backend and the ONNX export run,
so the two cannot drift apart. It takes the crops as the cropper writes them (uint8, HWC,
RGB), normalises them inside the graph, runs the chosen number of decoder layers, and
returns every candidate with the search-grid cell it belongs to:

- ``boxes`` (B, K, 4): normalised cx, cy, w, h in the search crop,
- ``scores`` (B, K): foreground scores in [0, 1],
- ``cells`` (B, K): int64 index of the candidate's search-token cell (row * grid + column).

For the decoder head K is the number of queries; for the conv (OSTrack) head every cell is a
candidate (K = grid * grid), so the tracker's Hanning window treats both heads alike.

A pruned encoder whose heads have different widths runs with them padded to one width per
block (``pad_heads``, see :mod:`detrack_model.modeling.head_layout`): the same outputs with
fewer operators, which is faster at the sizes the tracker runs on CPUs.
"""

from typing import Optional, Tuple

from detrack_model.config import validate_decoder_layers
from detrack_model.data.processing import IMAGENET_MEAN, IMAGENET_STD
from detrack_model.modeling import DETRack
from detrack_model.modeling.head_layout import uniform_head_widths
import torch
from torch import nn


class TrackingNetwork(nn.Module):
    """A DETRack network fixed to one inference set-up (decoder layers, elimination)."""

    def __init__(self, model: DETRack, num_layers: Optional[int] = None,
                 candidate_elimination: bool = True, pad_heads: bool = True) -> None:
        super().__init__()
        config = model.config
        if config.head == 'decoder':
            validate_decoder_layers(num_layers, config.decoder.layers)
        self.model = uniform_head_widths(model) if pad_heads else model
        self.num_layers = num_layers
        self.candidate_elimination = candidate_elimination
        self.grid = config.search_grid
        # Mean/std scaled to 0..255 pixel values: one multiply-add per pixel in the graph.
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
        self.register_buffer('pixel_mean', mean, persistent=False)
        self.register_buffer('pixel_scale', 1.0 / std, persistent=False)

    def normalise(self, crop: torch.Tensor) -> torch.Tensor:
        """Turn (B, H, W, 3) uint8 RGB crops into the network's (B, 3, H, W) input."""
        dtype = self.pixel_mean.dtype
        return (crop.permute(0, 3, 1, 2).to(dtype) - self.pixel_mean) * self.pixel_scale

    def forward(self, template: torch.Tensor, search: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (boxes, scores, cells) for uint8 (B, Hz, Wz, 3) / (B, Hx, Wx, 3) crops."""
        outputs = self.model(self.normalise(template), self.normalise(search),
                             num_layers=self.num_layers,
                             candidate_elimination=self.candidate_elimination)
        if self.model.config.head == 'conv':
            return self._all_cells(outputs)
        return outputs['boxes'], outputs['scores'], outputs['query_index']

    def _all_cells(self, outputs) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode the conv head's box at every cell (its own output keeps the argmax only)."""
        grid = self.grid
        batch = outputs['score_map'].shape[0]
        cells = torch.arange(grid * grid, device=outputs['score_map'].device)
        cols = (cells % grid).to(outputs['offset_map'].dtype)
        rows = torch.div(cells, grid, rounding_mode='floor').to(cols.dtype)
        offset = outputs['offset_map'].flatten(2).transpose(1, 2)
        size = outputs['size_map'].flatten(2).transpose(1, 2)
        centre = (torch.stack((cols, rows), -1) + offset) / grid
        boxes = torch.cat((centre, size), -1)
        return boxes, outputs['score_map'].flatten(1), cells.expand(batch, -1)
