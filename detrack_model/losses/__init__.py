"""Training losses: quality focal loss, one-to-many assignment, L1/GIoU, denoising queries."""

from detrack_model.losses.assignment import (assign_positives, cell_centres, centre_cell,
                                             iou_targets, topk_mask)
from detrack_model.losses.box_loss import box_losses
from detrack_model.losses.criterion import (build_criterion, DETRackCriterion, LossConfig,
                                            OSTrackCriterion)
from detrack_model.losses.denoising import (corner_cells, denoising_attn_mask, DenoisingMeta,
                                            make_denoising_queries)
from detrack_model.losses.focal import centernet_focal_loss, quality_focal_loss
from detrack_model.losses.heatmap import gaussian_heatmap, gaussian_radius

__all__ = [
    'assign_positives', 'box_losses', 'build_criterion', 'cell_centres', 'centernet_focal_loss',
    'centre_cell', 'corner_cells', 'denoising_attn_mask', 'DenoisingMeta', 'DETRackCriterion',
    'gaussian_heatmap', 'gaussian_radius', 'iou_targets', 'LossConfig', 'make_denoising_queries',
    'OSTrackCriterion', 'quality_focal_loss', 'topk_mask',
]
