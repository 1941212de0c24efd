"""
Training objectives: DETRack's (eq. 4 of the paper) and the OSTrack conv-head baseline's.

Both criteria take the model's output dict and (B, 4) normalised cxcywh GT boxes in the
search crop and return ``(total_loss, components)``: a scalar tensor to back-propagate and a
dict of plain floats for logging. Images marked invalid (no visible target) contribute
nothing. Images marked absent (a search crop that holds no target) train every score towards
0 and regress no box. Masking selects with ``torch.where`` rather than indexing, so shapes
stay static and the graph stays connected even when a batch has no valid image (DDP expects
every parameter to receive a gradient).
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from detrack_model.losses.assignment import (assign_positives, ASSIGNMENTS, centre_positive,
                                             hungarian_positive, iou_targets, topk_mask)
from detrack_model.losses.box_loss import box_losses
from detrack_model.losses.denoising import DenoisingMeta, DN_CONTENT, make_denoising_queries
from detrack_model.losses.focal import centernet_focal_loss, quality_focal_loss
from detrack_model.losses.heatmap import gaussian_heatmap
from detrack_model.modeling.box_ops import best_box, box_iou, cxcywh_to_xyxy
from detrack_model.modeling.box_ops import generalized_box_iou
from detrack_model.modeling.detrack import DenoisingQueries
import torch
from torch import nn

# Averages a count over the processes that share a batch (all_reduce_mean under DDP).
CountReduction = Callable[[torch.Tensor], torch.Tensor]
# Stands in for the GT of invalid images so no NaN/degenerate box enters the (masked) maths.
_DUMMY_BOX = (0.5, 0.5, 0.5, 0.5)


@dataclass
class LossConfig:
    """Loss weights and the label assignment / denoising settings."""

    qfl_weight: float = 1.0
    l1_weight: float = 5.0
    giou_weight: float = 2.0
    # Quality focal loss modulating exponent (GFL and the paper use 2).
    beta: float = 2.0
    # Classification assignment of the matching part (assignment.ASSIGNMENTS): quality
    # (one-to-many, IoU targets: the paper's), hard (one-to-many, target 1), centre or
    # hungarian (one-to-one).
    assignment: str = 'quality'
    # Boxes regressed per image and layer; 0: every positive. The paper gives no k; with a
    # target spanning about 4 x 4 cells of the 16 x 16 search grid (crop factor 4), 8 keeps
    # the better half of the positives and drops the edge and corner cells the paper wants
    # unsupervised.
    topk: int = 8
    # Top-k among the positives (the paper's motivation: low-quality tokens *inside* the GT
    # box) or among all tokens/queries of the layer.
    topk_from_positives: bool = True
    # Denoising queries (sec. 3.5), made by ``DETRackCriterion.denoising_queries``.
    denoising: bool = True
    dn_groups: int = 5
    dn_negatives: int = 1
    dn_lambda1: float = 0.4
    dn_lambda2: float = 0.4
    dn_sees_matching: bool = True
    # Content of the denoising queries (denoising.DN_CONTENT): centre/corner tokens (the
    # paper's), centre/outside-box tokens, or learned label embeddings (the model then needs
    # decoder.dn_labels).
    dn_content: str = 'centre_corner'
    # OSTrack baseline: CenterNet focal loss weight and the Gaussian radius overlap.
    focal_weight: float = 1.0
    heatmap_min_overlap: float = 0.7

    def __post_init__(self) -> None:
        """Name a setting that has no meaning."""
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f'assignment must be one of {ASSIGNMENTS}, got {self.assignment!r}')
        if self.dn_content not in DN_CONTENT:
            raise ValueError(f'dn_content must be one of {DN_CONTENT}, got {self.dn_content!r}')
        if self.topk < 0:
            raise ValueError(f'topk must be >= 0 (0: every positive), got {self.topk}')


def _mask(mask: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Return ``mask`` as a (B,) bool tensor on ``like``'s device; None means all True."""
    if mask is None:
        return torch.ones(like.shape[0], dtype=torch.bool, device=like.device)
    return mask.to(device=like.device, dtype=torch.bool)


def placeholder_gt(gt_boxes: torch.Tensor, has_box: Optional[torch.Tensor]) -> torch.Tensor:
    """Return float GT with the boxes of images without one (``has_box`` False) replaced."""
    gt = gt_boxes.detach().float()
    return torch.where(_mask(has_box, gt)[:, None], gt, gt.new_tensor(_DUMMY_BOX))


def _prepare(gt_boxes: torch.Tensor, valid: Optional[torch.Tensor],
             present: Optional[torch.Tensor] = None
             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return float GT with placeholders, the (B,) valid mask and the (B,) has-a-target mask."""
    valid = _mask(valid, gt_boxes)
    target = valid & _mask(present, gt_boxes)
    return placeholder_gt(gt_boxes, target), valid, target


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` where ``mask`` and divide by the count (at least 1)."""
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp(min=1)


def _top1_iou(boxes: torch.Tensor, logits: torch.Tensor, gt: torch.Tensor,
              valid: torch.Tensor) -> torch.Tensor:
    """Mean IoU with the GT of each valid image's highest-scoring box (what tracking uses)."""
    with torch.no_grad():
        pick = best_box(boxes, logits).float()
        iou = box_iou(cxcywh_to_xyxy(pick), cxcywh_to_xyxy(gt))[0]
        return _masked_mean(iou, valid)


class _Criterion(nn.Module):
    """
    Normalisers shared by both criteria, optionally global over DDP processes.

    ``grid`` is the side of the model's search token grid (search_size // patch_size). With
    several processes sharing a batch, ``reduce_count`` averages a count over the
    ``processes`` of them (DETR's ``num_boxes`` all-reduce): each process then divides its sum
    by the global mean count, and DDP's gradient averaging makes the update equal to a single
    process's on the whole batch.
    """

    def __init__(self, config: Optional[LossConfig] = None, grid: int = 16,
                 reduce_count: Optional[CountReduction] = None, processes: int = 1) -> None:
        super().__init__()
        self.config = config or LossConfig()
        self.grid = grid
        self.reduce_count = reduce_count
        # A global count clamped at 1 is a mean over the processes clamped at 1 / processes.
        self.min_count = 1.0 / processes

    def _normaliser(self, mask: torch.Tensor) -> torch.Tensor:
        """Count of ``mask``, averaged over processes when set up so, at least min_count."""
        count = mask.sum().float()
        if self.reduce_count is not None:
            count = self.reduce_count(count)
        return count.clamp(min=self.min_count)

    def _masked_mean(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sum ``values`` where ``mask`` and divide by the (global) count."""
        return torch.where(mask, values, 0.0).sum() / self._normaliser(mask)


class DETRackCriterion(_Criterion):
    """
    Sum of QFL, L1 and GIoU over query selection and every decoder layer, plus denoising.

    Eq. 4 with lambda_cls = lambda_loc = 1: for l = 0 (every kept search token of query
    selection) and each decoder layer's matching queries, QFL on all of them with IoU targets
    for the positives and L1 + GIoU on the top-k; for each decoder layer's denoising queries,
    QFL (IoU target for positives, 0 for negatives) and L1 + GIoU on the positives.

    Normalisers: QFL by the number of positives in the batch (GFL's ``avg_factor``); box terms
    by the number of supervised boxes; each term per layer, clamped to at least 1, and global
    over DDP processes when built with ``reduce_count``.
    """

    def denoising_queries(self, gt_boxes: torch.Tensor, num_queries: int,
                          generator: Optional[torch.Generator] = None
                          ) -> Tuple[Optional[DenoisingQueries], Optional[DenoisingMeta]]:
        """Make this configuration's denoising queries, or (None, None) when disabled."""
        cfg = self.config
        if not cfg.denoising:
            return None, None
        return make_denoising_queries(gt_boxes, self.grid, num_queries, cfg.dn_groups,
                                      cfg.dn_negatives, cfg.dn_lambda1, cfg.dn_lambda2,
                                      generator, dn_sees_matching=cfg.dn_sees_matching,
                                      content=cfg.dn_content)

    def matching_losses(self, boxes: torch.Tensor, logits: torch.Tensor, cells: torch.Tensor,
                        gt: torch.Tensor, valid: torch.Tensor,
                        target: torch.Tensor) -> List[torch.Tensor]:
        """
        Return [qfl, l1, giou] of one set of (B, n) predictions at grid ``cells``.

        ``valid`` selects the images that count at all, ``target`` those whose search crop
        holds the target.
        """
        cfg = self.config
        positive, chosen = self.assign(boxes, logits, cells, gt, target)
        if cfg.assignment == 'quality':
            targets = iou_targets(boxes, gt, positive)
        else:
            targets = positive.to(logits.dtype)
        cls = torch.where(valid[:, None], quality_focal_loss(logits, targets, cfg.beta), 0.0)
        qfl = cls.sum() / self._normaliser(positive)
        l1, giou = box_losses(boxes, gt)
        return [qfl, self._masked_mean(l1, chosen), self._masked_mean(giou, chosen)]

    def assign(self, boxes: torch.Tensor, logits: torch.Tensor, cells: torch.Tensor,
               gt: torch.Tensor, valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return the (B, n) positives of classification and the predictions regressed."""
        cfg = self.config
        if cfg.assignment == 'centre':
            positive = centre_positive(cells, gt, self.grid) & valid[:, None]
            return positive, positive
        if cfg.assignment == 'hungarian':
            positive = hungarian_positive(boxes, logits, gt) & valid[:, None]
            return positive, positive
        positive = assign_positives(cells, gt, self.grid) & valid[:, None]
        candidates = positive if cfg.topk_from_positives else valid[:, None].expand_as(positive)
        if cfg.topk == 0:
            return positive, candidates
        return positive, topk_mask(logits, cfg.topk, candidates)

    def denoising_losses(self, boxes: torch.Tensor, logits: torch.Tensor,
                         meta: DenoisingMeta, gt: torch.Tensor, valid: torch.Tensor,
                         target: torch.Tensor) -> List[torch.Tensor]:
        """Return [qfl, l1, giou] of one layer's (B, D) denoising predictions."""
        positive = meta.positive.to(gt.device)[None, :] & target[:, None]
        targets = iou_targets(boxes, gt, positive)
        cls = torch.where(valid[:, None],
                          quality_focal_loss(logits, targets, self.config.beta), 0.0)
        qfl = cls.sum() / self._normaliser(positive)
        l1, giou = box_losses(boxes, gt)
        return [qfl, self._masked_mean(l1, positive), self._masked_mean(giou, positive)]

    def forward(self, outputs: Dict[str, Any], gt_boxes: torch.Tensor,
                dn_meta: Optional[DenoisingMeta] = None,
                valid: Optional[torch.Tensor] = None,
                present: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
        """
        Return the total loss and its components for decoder-head ``outputs``.

        ``gt_boxes`` (B, 4) normalised cxcywh, ``valid`` (B,) bool (default all valid),
        ``present`` (B,) bool (default all present; an absent image's box is ignored),
        ``dn_meta`` from ``make_denoising_queries`` when the model ran with denoising.
        Components are unweighted sums over layers: ``qfl``, ``l1``, ``giou``, ``dn_qfl``,
        ``dn_l1``, ``dn_giou``, plus ``total`` and ``mean_iou`` (the final layer's top-1 box).
        """
        cfg = self.config
        has_dn = 'dn_layers' in outputs
        if has_dn != (dn_meta is not None):
            raise ValueError('outputs with dn_layers need the dn_meta of their denoising '
                             'queries, and dn_meta needs outputs made with denoising')
        index = outputs['search_index']
        if int(index.max()) >= self.grid * self.grid:
            raise ValueError(f'search_index reaches {int(index.max())}, outside the '
                             f'{self.grid}x{self.grid} search grid of the criterion')
        gt, valid, target = _prepare(gt_boxes, valid, present)
        sets = [(outputs['token_boxes'], outputs['token_logits'], index)]
        sets += [(b, s, outputs['query_index']) for b, s in outputs['layers']]
        # Rows: qfl, l1, giou, dn_qfl, dn_l1, dn_giou; columns: l = 0..L.
        terms = [self.matching_losses(b, s, c, gt, valid, target) for b, s, c in sets]
        zero = gt.new_zeros(())
        dn_terms = [[zero, zero, zero]]
        if has_dn:
            dn_terms += [self.denoising_losses(b, s, dn_meta, gt, valid, target)
                         for b, s in outputs['dn_layers']]
        sums = [torch.stack([t[i] for t in terms]).sum() for i in range(3)]
        sums += [torch.stack([t[i] for t in dn_terms]).sum() for i in range(3)]
        weights = (cfg.qfl_weight, cfg.l1_weight, cfg.giou_weight) * 2
        total = sum(w * s for w, s in zip(weights, sums))
        final_boxes, final_logits = outputs['layers'][-1]
        mean_iou = _top1_iou(final_boxes, final_logits, gt, target)
        names = ('qfl', 'l1', 'giou', 'dn_qfl', 'dn_l1', 'dn_giou', 'total', 'mean_iou')
        # One device-to-host copy for all the logged numbers.
        values = torch.stack([s.detach() for s in sums] + [total.detach(), mean_iou]).tolist()
        return total, dict(zip(names, values))


class OSTrackCriterion(_Criterion):
    """
    OSTrack's objective for the conv centre head: CenterNet focal + L1 + GIoU.

    ``focal_weight * focal + l1_weight * l1 + giou_weight * giou`` (1, 5, 2 in OSTrack). The
    focal loss is on the Gaussian heatmap of ``gaussian_heatmap``, summed and divided by the
    number of peaks (one per valid image). L1 and GIoU are on the box read at the best cell,
    both on xyxy corners with the GT clipped to the crop as OSTrack does; the L1 is the mean
    over the four coordinates (``F.l1_loss``), unlike DETRack's DETR-style sum.
    """

    def forward(self, outputs: Dict[str, Any], gt_boxes: torch.Tensor,
                dn_meta: Optional[DenoisingMeta] = None,
                valid: Optional[torch.Tensor] = None,
                present: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
        """
        Return the total loss and its components for conv-head ``outputs``.

        Components: ``focal``, ``l1``, ``giou``, ``total`` and ``mean_iou``. The baseline's
        recipe has no target-absent pairs: an absent image is refused.
        """
        if dn_meta is not None:
            raise ValueError('the conv head has no denoising queries; pass dn_meta=None')
        if present is not None and not bool(present.all()):
            raise ValueError('the conv-head criterion has no loss for target-absent pairs; '
                             'train it with data.absent_fraction: 0')
        cfg = self.config
        gt, valid, _ = _prepare(gt_boxes, valid)
        score_map = outputs['score_map']
        heatmap = gaussian_heatmap(gt, score_map.shape[-1], cfg.heatmap_min_overlap)
        focal = self._masked_mean(centernet_focal_loss(score_map, heatmap), valid)
        pred = cxcywh_to_xyxy(outputs['boxes'][:, 0].float())
        target = cxcywh_to_xyxy(gt).clamp(0.0, 1.0)
        giou = self._masked_mean(1.0 - generalized_box_iou(pred, target), valid)
        l1 = self._masked_mean((pred - target).abs().mean(-1), valid)
        total = cfg.focal_weight * focal + cfg.l1_weight * l1 + cfg.giou_weight * giou
        with torch.no_grad():
            mean_iou = _masked_mean(box_iou(pred, target)[0], valid)
        names = ('focal', 'l1', 'giou', 'total', 'mean_iou')
        values = torch.stack([focal.detach(), l1.detach(), giou.detach(), total.detach(),
                              mean_iou]).tolist()
        return total, dict(zip(names, values))


def build_criterion(head: str, config: Optional[LossConfig] = None, grid: int = 16,
                    reduce_count: Optional[CountReduction] = None,
                    processes: int = 1) -> nn.Module:
    """
    Return the criterion of a model head: ``'decoder'`` (DETRack) or ``'conv'`` (OSTrack).

    ``grid`` is the model's search grid; ``reduce_count`` and ``processes`` make the
    normalisers global over DDP processes (see ``_Criterion``).
    """
    kinds = {'decoder': DETRackCriterion, 'conv': OSTrackCriterion}
    if head in kinds:
        return kinds[head](config, grid, reduce_count, processes)
    raise ValueError(f"head must be 'decoder' or 'conv', got {head!r}")
