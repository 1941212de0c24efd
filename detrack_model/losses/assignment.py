"""
One-to-many label assignment of DETRack (sec. 3.4), and the alternatives of its Table 6.

Every token (or decoder query) whose grid cell centre lies inside the GT box is a positive;
its quality focal target is the IoU of its own predicted box with the GT, everything else
targets 0. Box regression only supervises the top-k positives by predicted score.

For the ablations: ``hard`` labels give every such positive the target 1; ``centre`` keeps the
one prediction at the cell holding the GT centre (centreness-style, one-to-one); ``hungarian``
keeps the prediction of least DETR matching cost (with one GT per image, bipartite matching is
that minimum). The one-to-one assignments regress their single positive.
"""

from typing import Optional

from detrack_model.modeling.box_ops import box_iou, cxcywh_to_xyxy, generalized_box_iou
import torch

ASSIGNMENTS = ('quality', 'hard', 'centre', 'hungarian')


def cell_centres(cells: torch.Tensor, grid: int) -> torch.Tensor:
    """
    Return the normalised (x, y) centres of row-major cells of a grid x grid map.

    ``cells`` (...) long gives (..., 2): ``((col + 0.5) / g, (row + 0.5) / g)``, the same
    positions ``token_anchors`` of query selection starts the proposals from.
    """
    row = torch.div(cells, grid, rounding_mode='floor')
    col = cells % grid
    return (torch.stack((col, row), -1).to(torch.float32) + 0.5) / grid


def centre_cell(boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """Return the row-major cell (...) containing the centre of (..., 4) cxcywh boxes."""
    col = (boxes[..., 0] * grid).floor().long().clamp(0, grid - 1)
    row = (boxes[..., 1] * grid).floor().long().clamp(0, grid - 1)
    return row * grid + col


def assign_positives(cells: torch.Tensor, gt_boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """
    Mark the (B, n) tokens at grid ``cells`` whose cell centre lies inside their image's GT.

    ``gt_boxes`` are (B, 4) normalised cxcywh. The box is half-open, ``x0 <= x < x1`` and
    ``y0 <= y < y1``, so a cell centre on a shared edge belongs to exactly one of two
    abutting boxes. The cell containing the GT centre is always positive too: a box thinner
    than a cell may contain no cell centre, and every image must still have a positive
    (FCOS/ATSS likewise guarantee one).
    """
    centres = cell_centres(cells, grid)
    corners = cxcywh_to_xyxy(gt_boxes.float())[:, None, :]
    inside = ((centres >= corners[..., :2]) & (centres < corners[..., 2:])).all(-1)
    return inside | (cells == centre_cell(gt_boxes, grid)[:, None])


def iou_targets(pred_boxes: torch.Tensor, gt_boxes: torch.Tensor,
                positive: torch.Tensor) -> torch.Tensor:
    """
    Return the (B, n) soft classification targets: IoU with the GT on positives, else 0.

    The IoU is detached: it is a label, and a gradient through it would push boxes toward
    whatever makes the score's target easy to hit instead of toward the GT.
    """
    with torch.no_grad():
        pred = cxcywh_to_xyxy(pred_boxes.float())
        gt = cxcywh_to_xyxy(gt_boxes.float())[:, None, :].expand_as(pred)
        iou = box_iou(pred, gt)[0]
    return iou * positive.to(iou.dtype)


def topk_mask(scores: torch.Tensor, k: int,
              candidates: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    Mark, per row of (B, n) ``scores``, the k highest-scoring entries among ``candidates``.

    Rows with fewer than k candidates keep all of them. ``candidates`` (B, n) bool defaults
    to every entry.
    """
    if candidates is None:
        candidates = torch.ones_like(scores, dtype=torch.bool)
    k = min(k, scores.shape[1])
    masked = scores.detach().float().masked_fill(~candidates, float('-inf'))
    chosen = masked.topk(k, dim=1).indices
    mask = torch.zeros_like(candidates).scatter(1, chosen, True)
    # topk returns k entries even when fewer are candidates; drop the -inf fillers.
    return mask & candidates


def centre_positive(cells: torch.Tensor, gt_boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """Mark the (B, n) predictions at the cell holding the GT centre (none if it was dropped)."""
    return cells == centre_cell(gt_boxes, grid)[:, None]


def matching_cost(boxes: torch.Tensor, logits: torch.Tensor, gt_boxes: torch.Tensor,
                  class_weight: float = 2.0, l1_weight: float = 5.0, giou_weight: float = 2.0,
                  alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """
    Return the (B, n) DETR matching cost of every prediction against its image's GT.

    Deformable DETR's: the focal classification cost, the L1 distance of cxcywh boxes and
    minus the generalized IoU, weighted 2, 5 and 2.
    """
    with torch.no_grad():
        prob = logits.detach().float().sigmoid()
        positive = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
        negative = (1 - alpha) * prob ** gamma * -(1 - prob + 1e-8).log()
        pred, gt = boxes.detach().float(), gt_boxes.float()[:, None, :]
        l1 = (pred - gt).abs().sum(-1)
        giou = generalized_box_iou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(gt.expand_as(pred)))
        return class_weight * (positive - negative) + l1_weight * l1 - giou_weight * giou


def hungarian_positive(boxes: torch.Tensor, logits: torch.Tensor,
                       gt_boxes: torch.Tensor) -> torch.Tensor:
    """Mark, per image, the one prediction of least matching cost (one GT: the Hungarian match)."""
    cost = matching_cost(boxes, logits, gt_boxes)
    return torch.zeros_like(cost, dtype=torch.bool).scatter(1, cost.argmin(1, keepdim=True),
                                                            True)
