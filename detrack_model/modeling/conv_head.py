"""OSTrack's convolutional centre head: the baseline the decoder head is compared with."""

from typing import Dict

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def branch(in_channels: int, channels: int, outputs: int) -> nn.Sequential:
    """Four conv-bn-relu stages halving the width, then a 1x1 projection."""
    widths = [in_channels, channels, channels // 2, channels // 4, channels // 8]
    stages = [conv_bn_relu(a, b) for a, b in zip(widths[:-1], widths[1:])]
    return nn.Sequential(*stages, nn.Conv2d(widths[-1], outputs, 1))


class CentreHead(nn.Module):
    """Centre score, sub-cell offset and size maps on the full search grid."""

    def __init__(self, in_channels: int, channels: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.center = branch(in_channels, channels, 1)
        self.offset = branch(in_channels, channels, 2)
        self.size = branch(in_channels, channels, 2)

    def forward(self, feature_map: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Predict from a (B, C, g, g) map; the box is read at the best-scoring cell."""
        score_map = self.center(feature_map).sigmoid().clamp(1e-4, 1 - 1e-4)
        size_map = self.size(feature_map).sigmoid()
        offset_map = self.offset(feature_map)
        batch = feature_map.shape[0]
        best = score_map.flatten(1).argmax(dim=1)
        row = torch.div(best, self.grid, rounding_mode='floor')
        col = best % self.grid
        pick = best.view(batch, 1, 1).expand(-1, 2, 1)
        offset = offset_map.flatten(2).gather(2, pick).squeeze(-1)
        size = size_map.flatten(2).gather(2, pick).squeeze(-1)
        centre = (torch.stack((col, row), -1).to(offset.dtype) + offset) / self.grid
        boxes = torch.cat((centre, size), -1).unsqueeze(1)
        return {'score_map': score_map, 'size_map': size_map, 'offset_map': offset_map,
                'boxes': boxes, 'scores': score_map.flatten(1).max(dim=1).values.unsqueeze(1)}
