"""
Run a pruned encoder with one head width per block: the same function, fewer operators.

A pruned block whose heads keep different widths (``encoder.head_widths``) lays them out at
its widest width inside attention with gathers (``vit.Attention``). The equivalent network
made here stores that layout in its weights instead: narrower heads get zero q, k and v rows
and zero ``proj`` columns, so attention needs no gathers. It costs the padded entries' share of
the two linear layers (about tokens x dim multiply-adds per entry and q/k/v/output); it saves
four operators per block. For small networks on CPUs and in onnxruntime the saved operators
are worth more (docs/pruning.md measures both), which is why the tracker runs this layout
unless told otherwise; MACs are reported for the exact layout, which is the trained network.
"""

from dataclasses import replace
from typing import Dict

from detrack_model.modeling.detrack import DETRack
from detrack_model.modeling.vit import Attention
import torch


def uniform_head_widths(model: DETRack) -> DETRack:
    """
    Return ``model`` with every block's heads padded to the block's widest head.

    The outputs are equal (to float rounding); a model whose blocks already have one width
    each is returned as it is. The copy lives on the model's device, in its mode.
    """
    enc = model.config.encoder
    widths = [layer.heads for layer in enc.layer_widths()]
    if all(len(set(heads)) == 1 for heads in widths):
        return model
    # The same one spec, every head of a block listed at the block's widest width.
    config = replace(model.config, encoder=replace(
        enc, head_widths=[[max(heads)] * len(heads) for heads in widths]))
    state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    for i, block in enumerate(model.encoder.blocks):
        if block.attn.pad_index is not None:
            _pad_attention(state, f'encoder.blocks.{i}.attn', block.attn)
    parameter = next(model.parameters())
    padded = DETRack(config).to(device=parameter.device, dtype=parameter.dtype)
    padded.load_state_dict(state)
    return padded.train(model.training)


def _pad_attention(state: Dict[str, torch.Tensor], name: str, attn: Attention) -> None:
    """Write ``attn``'s own gathers into its weights: zero rows and columns for the padding."""
    weight, bias = state[f'{name}.qkv.weight'], state[f'{name}.qkv.bias']
    # The gather picks rows of [qkv^T; 0], i.e. output rows of qkv with a zero row appended.
    state[f'{name}.qkv.weight'] = torch.cat((weight, weight.new_zeros(1, weight.shape[1])))[
        attn.pad_index]
    state[f'{name}.qkv.bias'] = torch.cat((bias, bias.new_zeros(1)))[attn.pad_index]
    proj = state[f'{name}.proj.weight']
    padded = proj.new_zeros((proj.shape[0], attn.heads * attn.head_dim))
    padded[:, attn.unpad_index] = proj
    state[f'{name}.proj.weight'] = padded
