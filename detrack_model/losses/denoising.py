"""
Denoising queries of DETRack (sec. 3.5): noised GT boxes with encoder tokens as content.

Each group holds one positive query, whose content is the token at the cell containing the GT
centre and whose box is the GT with small noise, and ``negatives`` negative queries, whose
content comes from corner cells of the GT box and whose boxes carry larger noise. The groups
are appended after the K matching queries, group by group, positive first.

The content can be chosen otherwise for the paper's Table 5: ``centre_outside`` takes the
negatives' tokens from random cells outside the GT box, ``embedding`` replaces every token by
a learned positive or negative label embedding of the model (as detection's DN-DETR does).
"""

from dataclasses import dataclass
from typing import Optional, Tuple

from detrack_model.losses.assignment import centre_cell
from detrack_model.modeling.box_ops import cxcywh_to_xyxy, xyxy_to_cxcywh
from detrack_model.modeling.detrack import DenoisingQueries
import torch


@dataclass
class DenoisingMeta:
    """What the criterion needs to know about the denoising queries of a batch."""

    positive: torch.Tensor     # (D,) bool, True at each group's positive query
    group: torch.Tensor        # (D,) long, the group of each denoising query
    num_matching: int          # K, matching queries in front of the denoising ones
    groups: int
    negatives: int


def corner_cells(gt_boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """
    Return (B, 4) corner cells of GT boxes: top-left, top-right, bottom-left, bottom-right.

    A corner cell is the outermost cell whose centre lies inside the (half-open) box, i.e. a
    corner of the block of positives of ``assign_positives``: the raw corner point may sit in
    a cell that is almost all background. Along an axis where the box covers no cell centre
    the corner falls back to the centre cell; cells are clamped to the grid.
    """
    gt = gt_boxes.float()
    corners = cxcywh_to_xyxy(gt) * grid
    first = torch.ceil(corners[:, :2] - 0.5).long()
    last = torch.ceil(corners[:, 2:] - 0.5).long() - 1
    centre = centre_cell(gt, grid)
    centre_colrow = torch.stack((centre % grid, torch.div(centre, grid, rounding_mode='floor')),
                                -1)
    empty = first > last
    first = torch.where(empty, centre_colrow, first).clamp(0, grid - 1)
    last = torch.where(empty, centre_colrow, last).clamp(0, grid - 1)
    x0, y0 = first.unbind(-1)
    x1, y1 = last.unbind(-1)
    return torch.stack((y0 * grid + x0, y0 * grid + x1, y1 * grid + x0, y1 * grid + x1), -1)


# Where denoising queries take their content (positive / negatives).
DN_CONTENT = ('centre_corner', 'centre_outside', 'embedding')


def outside_cells(gt_boxes: torch.Tensor, grid: int, count: int,
                  keys: torch.Tensor) -> torch.Tensor:
    """
    Return (B, G, count) random cells whose centres lie outside each (half-open) GT box.

    ``keys`` (B, G, grid * grid) uniform numbers order the cells; a box that covers every
    cell centre leaves only inside cells to pick from, and then those are taken.
    """
    cells = torch.arange(grid * grid, device=gt_boxes.device)
    centres = (torch.stack((cells % grid, torch.div(cells, grid, rounding_mode='floor')), -1)
               .float() + 0.5) / grid
    corners = cxcywh_to_xyxy(gt_boxes.float())[:, None, :]
    inside = ((centres[None] >= corners[..., :2]) & (centres[None] < corners[..., 2:])).all(-1)
    ranked = keys + inside[:, None, :].to(keys.dtype)  # outside cells first
    return ranked.argsort(-1)[..., :count]


def denoising_attn_mask(num_matching: int, groups: int, group_size: int,
                        dn_sees_matching: bool = True,
                        device: Optional[torch.device] = None) -> torch.Tensor:
    """
    Build the (K + D, K + D) self-attention mask, True = may not attend.

    The matching queries never see a denoising query (the GT would leak into the part used
    at inference) and denoising groups never see each other (each reconstructs the GT on its
    own). Following DN-DETR and DINO, denoising queries may see the matching queries, which
    leaks nothing; ``dn_sees_matching=False`` isolates them completely. No query is ever
    blocked from itself, so no softmax row is empty.
    """
    group_id = torch.cat((torch.full((num_matching,), -1, dtype=torch.long, device=device),
                          torch.arange(groups, device=device).repeat_interleave(group_size)))
    is_dn = group_id >= 0
    mask = is_dn[None, :] & (group_id[:, None] != group_id[None, :])
    if not dn_sees_matching:
        mask |= is_dn[:, None] & ~is_dn[None, :]
    return mask


def make_denoising_queries(gt_boxes: torch.Tensor, grid: int, num_queries: int,
                           groups: int = 5, negatives: int = 1, lambda1: float = 0.4,
                           lambda2: float = 0.4,
                           generator: Optional[torch.Generator] = None,
                           min_size: float = 1e-3,
                           dn_sees_matching: bool = True,
                           content: str = 'centre_corner'
                           ) -> Tuple[DenoisingQueries, DenoisingMeta]:
    """
    Make ``groups`` denoising groups per image from (B, 4) normalised cxcywh GT boxes.

    ``grid`` is the search grid side, ``num_queries`` K the matching queries they follow.
    Box noise is DN-DETR's centre shift and scaling with DINO's positive/negative split: a
    magnitude u in [0, 1) for positives and [1, 2) for negatives, a random sign per
    coordinate, then ``cx += u * lambda1 * w / 2`` (so |dx| < lambda1 * w / 2 for positives,
    the centre stays inside the GT) and ``w *= 1 + u * lambda2`` (w within (1 - lambda2,
    1 + lambda2) times the GT for positives); likewise cy and h. Each group's negatives take
    distinct corner cells, a random subset of the four per group. Boxes are clipped to the
    crop, at least ``min_size`` wide and high; a non-finite GT (an image without a target)
    is replaced by a centred box. ``generator`` makes it reproducible; random numbers are
    drawn on its device and moved to the boxes' device. ``content`` is one of ``DN_CONTENT``
    (see the module docstring); the boxes do not depend on it.
    """
    if content not in DN_CONTENT:
        raise ValueError(f'content must be one of {DN_CONTENT}, got {content!r}')
    if not 0 <= negatives <= 4:
        raise ValueError(f'negatives must be in 0..4 (one per GT corner), got {negatives}')
    if groups < 1:
        raise ValueError(f'groups must be at least 1, got {groups}')
    gt = gt_boxes.float()
    # An image without a target may carry a NaN box; the network must still get finite
    # queries (a NaN would reach every gradient), and the criterion ignores that image.
    finite = torch.isfinite(gt).all(-1, keepdim=True)
    gt = torch.where(finite, gt, gt.new_tensor((0.5, 0.5, 0.5, 0.5)))
    batch, device = gt.shape[0], gt.device
    size = 1 + negatives
    queries = groups * size
    draw_on = generator.device if generator is not None else device

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=draw_on).to(device)

    positive = (torch.arange(queries, device=device) % size) == 0
    # Content: centre cell for the positive, a per-group random choice of corners after it.
    corners = corner_cells(gt, grid)[:, None, :].expand(batch, groups, 4)
    chosen = corners.gather(2, draw(batch, groups, 4).argsort(-1)[..., :negatives])
    centre = centre_cell(gt, grid)[:, None, None].expand(batch, groups, 1)
    grid_index = torch.cat((centre, chosen), 2).reshape(batch, queries)
    # Boxes: noise magnitude [0, 1) for positives, [1, 2) for negatives, random sign.
    magnitude = draw(batch, queries, 4) + (~positive).to(gt.dtype)[None, :, None]
    sign = torch.where(draw(batch, queries, 4) < 0.5, -1.0, 1.0)
    noise = magnitude * sign
    centre_xy, wh = gt[:, None, :2], gt[:, None, 2:]
    noised = torch.cat((centre_xy + noise[..., :2] * lambda1 * wh / 2,
                        wh * (1 + noise[..., 2:] * lambda2)), -1)
    boxes = xyxy_to_cxcywh(cxcywh_to_xyxy(noised).clamp(0.0, 1.0))
    wh = boxes[..., 2:].clamp(min=min_size)
    xy = torch.minimum(torch.maximum(boxes[..., :2], wh / 2), 1 - wh / 2)
    boxes = torch.cat((xy, wh), -1)
    if content == 'centre_outside':
        # Drawn last, so the boxes are the same as with corner content for one generator.
        chosen = outside_cells(gt, grid, negatives, draw(batch, groups, grid * grid))
        grid_index = torch.cat((centre, chosen), 2).reshape(batch, queries)
    mask = denoising_attn_mask(num_queries, groups, size, dn_sees_matching, device)
    meta = DenoisingMeta(positive=positive,
                         group=torch.arange(groups, device=device).repeat_interleave(size),
                         num_matching=num_queries, groups=groups, negatives=negatives)
    labels = positive.long()[None, :].expand(batch, -1) if content == 'embedding' else None
    return DenoisingQueries(grid_index=grid_index, boxes=boxes, attn_mask=mask,
                            labels=labels), meta
