"""
CenterNet Gaussian heatmaps, the classification target of OSTrack's conv centre head.

OSTrack's ``generate_heatmap`` draws one Gaussian per image with a loop over the batch; here
all images are drawn at once on the grid of cell indices, with the same radius and sigma.
"""

from detrack_model.losses.assignment import centre_cell
import torch


def gaussian_radius(size: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """
    Return the CornerNet Gaussian radius for (..., 2) box sizes (w, h) in grid cells.

    This is the variant OSTrack and CenterNet ship (each quadratic's root as
    ``(b + sqrt(b^2 - 4ac)) / 2``, CornerNet's known slip, kept so the baseline matches the
    reference), the smallest of the three overlap cases.
    """
    width, height = size[..., 0], size[..., 1]
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + (b1 ** 2 - 4 * c1).clamp(min=0).sqrt()) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + (b2 ** 2 - 16 * c2).clamp(min=0).sqrt()) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + (b3 ** 2 - 4 * a3 * c3).clamp(min=0).sqrt()) / 2
    return torch.minimum(r1, torch.minimum(r2, r3))


def gaussian_heatmap(gt_boxes: torch.Tensor, grid: int,
                     min_overlap: float = 0.7) -> torch.Tensor:
    """
    Draw the (B, grid, grid) target heatmap of (B, 4) normalised cxcywh GT boxes.

    The peak (exactly 1) sits on the cell containing the GT centre; OSTrack rounds the centre
    to the nearest cell corner instead, a half-cell shift this project does not copy, so the
    peak agrees with the DETRack assignment and the head's ``(col + offset) / g`` centre
    learns an offset in [0, 1). The radius is CornerNet's for the box size in cells,
    truncated to an integer, sigma = (2r + 1) / 6, and the Gaussian is cut to the
    (2r + 1)^2 window as ``draw_gaussian`` does.
    """
    gt = gt_boxes.float()
    radius = gaussian_radius(gt[:, 2:] * grid, min_overlap).clamp(min=0).floor()
    sigma = (2 * radius + 1) / 6
    centre = centre_cell(gt, grid)
    row0 = torch.div(centre, grid, rounding_mode='floor').to(gt.dtype)
    col0 = (centre % grid).to(gt.dtype)
    cells = torch.arange(grid, device=gt.device, dtype=gt.dtype)
    dy = cells[None, :] - row0[:, None]
    dx = cells[None, :] - col0[:, None]
    inside = ((dy.abs() <= radius[:, None])[:, :, None]
              & (dx.abs() <= radius[:, None])[:, None, :])
    distance = dy[:, :, None] ** 2 + dx[:, None, :] ** 2
    heat = torch.exp(-distance / (2 * sigma[:, None, None] ** 2))
    return heat * inside.to(heat.dtype)
