"""Sine embeddings of normalised boxes (DAB-DETR convention)."""

import math

import torch


def sine_box_embedding(boxes: torch.Tensor, features_per_coord: int = 128,
                       temperature: float = 10000.0) -> torch.Tensor:
    """
    Embed (..., 4) cxcywh boxes in [0, 1] as (..., 4 * features_per_coord) sines and cosines.

    Each coordinate gets ``features_per_coord`` channels, half sine and half cosine of the
    coordinate scaled by 2 pi at geometrically spaced frequencies.
    """
    half = features_per_coord // 2
    exponent = torch.arange(half, dtype=torch.float32, device=boxes.device) / half
    frequencies = temperature ** exponent
    angles = boxes.float().unsqueeze(-1) * (2 * math.pi) / frequencies
    embedding = torch.cat((angles.sin(), angles.cos()), dim=-1)
    return embedding.flatten(-2).to(boxes.dtype)
