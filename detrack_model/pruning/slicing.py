"""
Slice a masked network into a physically smaller one: dense, narrower weights, no masks.

Granularity of attention. A global budget keeps a different number of (head, dim) entries in
each head. Scaled-dot-product attention needs one width for all heads of a layer, so every
head that keeps anything gets the layer's widest kept count; heads that keep fewer are padded
with dimensions whose q, k and v weights are zero (they add nothing to q.k or to the output),
and heads that keep nothing are removed. The child computes exactly what the masked network
computes (tested to 1e-5) with one dense attention per layer; the price is the padding, which
the slicing report counts (``padded``). Per-head widths would waste nothing but need one
attention call per head (slow on CPUs and in ONNX); whole-head pruning would waste nothing
but cannot follow the learned per-dimension masks.

Mask values are folded into the weights: an attention mask scales the q, k and v rows of
``qkv`` (q also takes sqrt(new_dim / old_dim), so the 1/sqrt(head_dim) scale of the narrower
head reproduces the original one); an MLP or FFN mask scales the input columns of the second
linear layer. Removing a whole head changes only a constant term of candidate elimination's
head-averaged attention, so the same search tokens are kept.
"""

from dataclasses import dataclass, field, replace
import math
from typing import Dict, List, Mapping, Tuple

from detrack_model.modeling import DETRack
from detrack_model.modeling.prune_masks import named_masks
import torch


@dataclass
class SliceReport:
    """What slicing kept, per layer (names as in ``prune_masks``)."""

    heads: Dict[str, int] = field(default_factory=dict)
    head_dims: Dict[str, int] = field(default_factory=dict)
    kept: Dict[str, int] = field(default_factory=dict)
    total: Dict[str, int] = field(default_factory=dict)
    # (head, dim) entries added as zero padding to give a layer's heads one width.
    padded: Dict[str, int] = field(default_factory=dict)


def _attention_plan(mask: torch.Tensor, kept: torch.Tensor):
    """Return (flat indices (h, d), scales (h, d)) of the kept heads, padded to one width."""
    heads, head_dim = mask.shape
    counts = kept.sum(1)
    live = [h for h in range(heads) if counts[h] > 0]
    width = int(counts.max())
    index, scale = [], []
    for h in live:
        chosen = torch.nonzero(kept[h]).flatten().tolist()
        padding = [d for d in range(head_dim) if not kept[h, d]][:width - len(chosen)]
        index.append([h * head_dim + d for d in chosen + padding])
        scale.append([float(mask[h, d]) for d in chosen] + [0.0] * len(padding))
    return torch.tensor(index), torch.tensor(scale), width


def slice_model(model: DETRack,
                keep: Mapping[str, torch.Tensor]) -> Tuple[DETRack, SliceReport]:
    """
    Build the child network of ``model`` (built with masks) that keeps the entries of ``keep``.

    ``keep`` maps mask names (``prune_masks``) to boolean tensors of the masks' shapes; masks
    not named are kept whole. Returns an unmasked float32 network in eval mode, whose config
    names its per-layer widths, and the report of what was kept.
    """
    masks = named_masks(model)
    if not masks:
        raise ValueError('the model has no pruning masks to slice by')
    unknown = sorted(set(keep) - set(masks))
    if unknown:
        raise ValueError(f'no masks named {unknown}')
    for name, kept in keep.items():
        if tuple(kept.shape) != tuple(masks[name].shape):
            raise ValueError(f'keep[{name!r}] has shape {tuple(kept.shape)}, the mask '
                             f'{tuple(masks[name].shape)}')
        if not bool(kept.any()):
            raise ValueError(f'keep[{name!r}] keeps nothing: every layer needs one unit')
    config = model.config
    state = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
    report = SliceReport()
    heads: List[int] = []
    head_dims: List[int] = []
    mlp_dims: List[int] = []
    for i, block in enumerate(model.encoder.blocks):
        prefix = f'encoder.blocks.{i}'
        attn_name, mlp_name = f'{prefix}.attn', f'{prefix}.mlp'
        mask = masks[attn_name].detach().float().cpu()
        kept = keep.get(attn_name, torch.ones_like(mask, dtype=torch.bool)).cpu()
        index, scale, width = _attention_plan(mask, kept)
        rows = block.attn.heads * block.attn.head_dim
        q_fold = math.sqrt(width / block.attn.head_dim)
        flat, flat_scale = index.flatten(), scale.flatten()
        weight, bias = state[f'{attn_name}.qkv.weight'], state[f'{attn_name}.qkv.bias']
        parts_w, parts_b = [], []
        for part in range(3):
            factor = flat_scale * (q_fold if part == 0 else 1.0)
            parts_w.append(weight[part * rows + flat] * factor[:, None])
            parts_b.append(bias[part * rows + flat] * factor)
        state[f'{attn_name}.qkv.weight'] = torch.cat(parts_w)
        state[f'{attn_name}.qkv.bias'] = torch.cat(parts_b)
        state[f'{attn_name}.proj.weight'] = state[f'{attn_name}.proj.weight'][:, flat]
        del state[f'{attn_name}.prune_mask']
        heads.append(index.shape[0])
        head_dims.append(width)
        report.heads[attn_name], report.head_dims[attn_name] = index.shape[0], width
        report.kept[attn_name], report.total[attn_name] = int(kept.sum()), kept.numel()
        report.padded[attn_name] = index.numel() - int(kept.sum())
        mlp_dims.append(_slice_hidden(state, mlp_name, 'fc1', 'fc2', masks[mlp_name],
                                      keep.get(mlp_name), report))
    ffn_dims = None
    if config.head == 'decoder':
        ffn_dims = [_slice_hidden(state, f'decoder.layers.{i}', 'ffn.0', 'ffn.3',
                                  masks[f'decoder.layers.{i}'],
                                  keep.get(f'decoder.layers.{i}'), report)
                    for i in range(config.decoder.layers)]
    child_config = replace(
        config, masked=False,
        encoder=replace(config.encoder, head_counts=heads, head_dims=head_dims,
                        mlp_dims=mlp_dims),
        decoder=replace(config.decoder, ffn_dims=ffn_dims))
    child = DETRack(child_config)
    child.load_state_dict(state)
    return child.eval(), report


def _slice_hidden(state: Dict[str, torch.Tensor], name: str, first: str, second: str,
                  mask: torch.Tensor, kept, report: SliceReport) -> int:
    """Keep the hidden units of a two-layer MLP, folding the mask into the second layer."""
    mask = mask.detach().float().cpu()
    kept = torch.ones_like(mask, dtype=torch.bool) if kept is None else kept.cpu()
    index = torch.nonzero(kept).flatten()
    state[f'{name}.{first}.weight'] = state[f'{name}.{first}.weight'][index]
    state[f'{name}.{first}.bias'] = state[f'{name}.{first}.bias'][index]
    state[f'{name}.{second}.weight'] = state[f'{name}.{second}.weight'][:, index] * mask[index]
    del state[f'{name}.prune_mask']
    report.kept[name], report.total[name] = index.numel(), kept.numel()
    return index.numel()
