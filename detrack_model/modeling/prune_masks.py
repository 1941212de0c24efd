"""
Learnable pruning masks: where they sit in the network and how they are named.

Masks start at 1, so inserting them leaves every output unchanged. Each mask is one *group*
for budget accounting (detrack_model.pruning): an encoder block's attention mask over
(heads, head_dim) multiplies its q, k and v; an encoder MLP's or a decoder FFN's mask
multiplies its hidden units after the activation.
"""

from typing import Dict

import torch
from torch import nn

KINDS = ('attention', 'mlp', 'decoder_ffn')


def add_prune_masks(model: nn.Module) -> None:
    """Give every encoder attention and MLP, and every decoder FFN, a mask of ones."""
    for block in model.encoder.blocks:
        attn = block.attn
        attn.prune_mask = nn.Parameter(torch.ones(attn.heads, attn.head_dim,
                                                  device=attn.qkv.weight.device))
        block.mlp.prune_mask = nn.Parameter(torch.ones(block.mlp.fc1.out_features,
                                                       device=block.mlp.fc1.weight.device))
    for layer in getattr(getattr(model, 'decoder', None), 'layers', []):
        layer.prune_mask = nn.Parameter(torch.ones(layer.ffn[0].out_features,
                                                   device=layer.ffn[0].weight.device))


def prune_masks(model: nn.Module) -> Dict[str, Dict[str, torch.Tensor]]:
    """
    Return the model's masks by kind: {'attention': {'encoder.blocks.0.attn': mask}, ...}.

    Keys are the module names that own the masks, so they read as layer names in reports.
    """
    groups: Dict[str, Dict[str, torch.Tensor]] = {kind: {} for kind in KINDS}
    for name, module in model.named_modules():
        mask = getattr(module, 'prune_mask', None)
        if mask is None:
            continue
        if name.endswith('.attn'):
            groups['attention'][name] = mask
        elif name.endswith('.mlp'):
            groups['mlp'][name] = mask
        else:
            groups['decoder_ffn'][name] = mask
    return groups


def named_masks(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Return every mask of the model by its owner's name, whatever its kind."""
    return {name: mask for group in prune_masks(model).values()
            for name, mask in group.items()}
