"""
One-to-many label assignment of DETRack (sec. 3.4).

Every token (or decoder query) whose grid cell centre lies inside the GT box is a positive;
its quality focal target is the IoU of its own predicted box with the GT, everything else
targets 0. Box regression only supervises the top-k positives by predicted score.
"""

from typing import Optional

from detrack_model.modeling.box_ops import box_iou, cxcywh_to_xyxy
import torch


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
