"""Box conversions and overlaps; boxes are (..., 4) tensors."""

import torch


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Convert centre/size boxes to corner boxes."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """Convert corner boxes to centre/size boxes."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack(((x0 + x1) * 0.5, (y0 + y1) * 0.5, x1 - x0, y1 - y0), dim=-1)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Logit of ``x`` clamped away from 0 and 1 so refinements stay finite."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


def best_box(boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Pick each image's highest-scoring box: (B, K, 4) boxes, (B, K) scores -> (B, 4)."""
    best = scores.argmax(dim=1)
    return boxes.gather(1, best[:, None, None].expand(-1, 1, boxes.shape[-1]))[:, 0]


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7):
    """Element-wise IoU and union of two sets of xyxy boxes of the same shape."""
    area1 = (boxes1[..., 2] - boxes1[..., 0]).clamp(min=0) * \
        (boxes1[..., 3] - boxes1[..., 1]).clamp(min=0)
    area2 = (boxes2[..., 2] - boxes2[..., 0]).clamp(min=0) * \
        (boxes2[..., 3] - boxes2[..., 1]).clamp(min=0)
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = area1 + area2 - inter
    return inter / (union + eps), union


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor,
                        eps: float = 1e-7) -> torch.Tensor:
    """Element-wise generalised IoU of two sets of xyxy boxes of the same shape."""
    iou, union = box_iou(boxes1, boxes2, eps)
    top_left = torch.minimum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.maximum(boxes1[..., 2:], boxes2[..., 2:])
    enclosing = (bottom_right - top_left).clamp(min=0).prod(-1)
    return iou - (enclosing - union) / (enclosing + eps)
