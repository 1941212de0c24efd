"""
Focal-style classification losses: quality focal loss (DETRack) and CenterNet's (OSTrack).

Both return element-wise losses; the criterion owns masking and normalisation, so the same
function serves every token set (all kept tokens, matching queries, denoising queries).
"""

import torch
import torch.nn.functional as F


def quality_focal_loss(logits: torch.Tensor, targets: torch.Tensor,
                       beta: float = 2.0) -> torch.Tensor:
    """
    Compute the element-wise quality focal loss of Li et al. (GFL), eq. 2 of DETRack.

    ``-|y - sigma|^beta * ((1 - y) log(1 - sigma) + y log(sigma))`` with ``sigma`` the sigmoid
    of ``logits`` and ``y`` the soft ``targets`` in [0, 1] (IoU for positives, 0 otherwise).
    The cross-entropy part is ``binary_cross_entropy_with_logits`` (log-sum-exp, finite for
    any logit) rather than ``log(sigmoid)``, which underflows to -inf for large negative
    logits. As in GFL the modulating factor is not detached: it is part of the loss whose
    global minimum is ``sigma == y``.
    """
    logits = logits.float()
    targets = targets.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    return (targets - logits.sigmoid()).abs().pow(beta) * bce


def centernet_focal_loss(scores: torch.Tensor, heatmap: torch.Tensor, alpha: float = 2.0,
                         beta: float = 4.0, eps: float = 1e-12) -> torch.Tensor:
    """
    Compute CenterNet's penalty-reduced focal loss summed per image, shape (B,).

    ``scores`` are probabilities (the conv head applies the sigmoid and clamps them) and
    ``heatmap`` the Gaussian target of the same shape, exactly 1 at the centre cell. Cells
    below 1 are negatives down-weighted by ``(1 - heatmap)^beta`` (near misses cost little).
    The per-image sum is not normalised here: OSTrack divides by the number of peaks, which
    the criterion does over the batch.
    """
    scores = scores.float().flatten(1)
    heatmap = heatmap.to(scores.dtype).flatten(1)
    positive = heatmap.eq(1).to(scores.dtype)
    positive_loss = scores.clamp(min=eps).log() * (1 - scores).pow(alpha) * positive
    negative_loss = ((1 - scores).clamp(min=eps).log() * scores.pow(alpha)
                     * (1 - heatmap).pow(beta) * (1 - positive))
    return -(positive_loss + negative_loss).sum(1)
