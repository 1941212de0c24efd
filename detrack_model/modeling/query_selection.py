"""Query selection: every kept search token proposes a box; the top-K become decoder queries."""

from dataclasses import dataclass

from detrack_model.modeling.box_ops import inverse_sigmoid
import torch
from torch import nn


@dataclass
class Proposals:
    """Per-token predictions and the K queries selected from them."""

    token_boxes: torch.Tensor     # (B, n, 4) cxcywh in [0, 1], one per kept search token
    token_logits: torch.Tensor    # (B, n) foreground logits
    content: torch.Tensor         # (B, K, C) the selected tokens, decoder content queries
    boxes: torch.Tensor           # (B, K, 4) their boxes: the decoder's region proposals
    selected: torch.Tensor        # (B, K) which kept tokens were selected (index into n)


def token_anchors(index: torch.Tensor, grid: int, size: float) -> torch.Tensor:
    """(B, n, 4) boxes centred on the cells ``index`` of a grid x grid map, ``size`` wide."""
    row, col = torch.div(index, grid, rounding_mode='floor'), index % grid
    centre = torch.stack((col, row), -1).to(torch.float32).add_(0.5).div_(grid)
    return torch.cat((centre, torch.full_like(centre, size)), -1)


class QuerySelection(nn.Module):
    """Linear box and score heads on every token, then top-K by score."""

    def __init__(self, hidden: int, num_queries: int, anchor_size: float) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.anchor_size = anchor_size
        self.box_head = nn.Linear(hidden, 4)
        self.score_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.box_head.weight)
        nn.init.zeros_(self.box_head.bias)

    def forward(self, memory: torch.Tensor, index: torch.Tensor, grid: int) -> Proposals:
        """Propose from (B, n, C) tokens at grid positions (B, n)."""
        kept = memory.shape[1]
        if self.num_queries > kept:
            raise ValueError(f'cannot select {self.num_queries} queries from {kept} kept search '
                             'tokens: lower num_queries or keep more tokens')
        anchors = token_anchors(index, grid, self.anchor_size).to(memory.dtype)
        token_boxes = (self.box_head(memory) + inverse_sigmoid(anchors)).sigmoid()
        token_logits = self.score_head(memory).squeeze(-1)
        selected = token_logits.topk(self.num_queries, dim=1).indices
        content = memory.gather(1, selected.unsqueeze(-1).expand(-1, -1, memory.shape[-1]))
        boxes = token_boxes.gather(1, selected.unsqueeze(-1).expand(-1, -1, 4))
        return Proposals(token_boxes, token_logits, content, boxes, selected)
