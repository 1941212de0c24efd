"""Per-box regression losses: L1 and generalised IoU (DETR, DETRack eq. 3)."""

from typing import Tuple

from detrack_model.modeling.box_ops import cxcywh_to_xyxy, generalized_box_iou
import torch


def box_losses(pred_boxes: torch.Tensor,
               gt_boxes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Return the per-box (B, n) L1 and GIoU losses of (B, n, 4) predictions against (B, 4) GT.

    Both take normalised cxcywh boxes. The L1 is summed over the four cxcywh coordinates, as
    DETR, Deformable DETR and DINO do; the GIoU loss is ``1 - GIoU`` on the xyxy corners.
    """
    pred = pred_boxes.float()
    gt = gt_boxes.float()[:, None, :].expand_as(pred)
    l1 = (pred - gt).abs().sum(-1)
    giou = 1.0 - generalized_box_iou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(gt))
    return l1, giou
