"""
Slice a masked network into a physically smaller one: dense, narrower weights, no masks.

Granularity of attention: per-head widths. A global budget keeps a different number of
(head, dim) entries in each head, and the child keeps exactly those: its ``qkv`` and ``proj``
hold only the kept rows and columns (config ``encoder.head_widths``), and heads that keep
nothing are removed. One fused attention call per layer still needs one width for all heads,
so inside it the narrower heads are laid out at the layer's widest width by a gather that
fills the gaps with zeros (``Attention``); the zeros cost only in the two attention products,
whose per-entry cost is tokens x tokens instead of the linear layers' tokens x dim. The
report's ``padded`` counts those zero entries. The alternatives: padding in the weights (one
width per layer) wastes linear-layer work too; one attention call per head wastes nothing but
multiplies small-kernel overhead on CPUs and in ONNX; whole-head pruning wastes nothing but
cannot follow the learned per-dimension masks. The child computes exactly what the masked
network computes (tested to 1e-5).

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

    # The width of every head an attention layer keeps.
    head_widths: Dict[str, List[int]] = field(default_factory=dict)
    kept: Dict[str, int] = field(default_factory=dict)
    total: Dict[str, int] = field(default_factory=dict)

    @property
    def heads(self) -> Dict[str, int]:
        """Return the number of heads every attention layer keeps."""
        return {name: len(widths) for name, widths in self.head_widths.items()}

    @property
    def head_dims(self) -> Dict[str, int]:
        """Return the width of the widest kept head of every attention layer."""
        return {name: max(widths) for name, widths in self.head_widths.items()}

    @property
    def padded(self) -> Dict[str, int]:
        """
        Return the zero (head, dim) entries of every attention layer's one-width layout.

        They lay the heads out at the widest width inside the attention products; no weight of
        the child holds them.
        """
        return {name: len(widths) * max(widths) - self.kept[name]
                for name, widths in self.head_widths.items()}


def _attention_plan(mask: torch.Tensor, kept: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor, List[int]]:
    """Return (flat (head, dim) indices, their mask values, width of every live head)."""
    heads, head_dim = mask.shape
    index = torch.nonzero(kept.flatten()).flatten()
    counts = kept.sum(1)
    widths = [int(counts[h]) for h in range(heads) if counts[h] > 0]
    return index, mask.flatten()[index], widths


def slice_model(model: DETRack,
                keep: Mapping[str, torch.Tensor]) -> Tuple[DETRack, SliceReport]:
    """
    Build the child network of ``model`` (built with masks) that keeps the entries of ``keep``.

    ``keep`` maps mask names (``prune_masks``) to boolean tensors of the masks' shapes; masks
    not named are kept whole. Returns an unmasked float32 network in eval mode, whose config
    names its per-layer widths (``head_widths``, ``mlp_dims``, ``ffn_dims``), and the report
    of what was kept.
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
    mlp_dims: List[int] = []
    for i, block in enumerate(model.encoder.blocks):
        prefix = f'encoder.blocks.{i}'
        attn_name, mlp_name = f'{prefix}.attn', f'{prefix}.mlp'
        mask = masks[attn_name].detach().float().cpu()
        kept = keep.get(attn_name, torch.ones_like(mask, dtype=torch.bool)).cpu()
        flat, flat_scale, widths = _attention_plan(mask, kept)
        rows = block.attn.heads * block.attn.head_dim
        # The fused attention scales by 1/sqrt(widest kept width): fold the rest into q.
        q_fold = math.sqrt(max(widths) / block.attn.head_dim)
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
        report.head_widths[attn_name] = widths
        report.kept[attn_name], report.total[attn_name] = int(kept.sum()), kept.numel()
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
        encoder=replace(config.encoder, head_widths=list(report.head_widths.values()),
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
