"""
Load pre-trained ViT weights (MAE, CAE/BEiT or timm layouts) into the DETRack encoder.

Files are read safely: safetensors, or ``torch.load(weights_only=True)`` which refuses anything
but tensors and plain containers. Keys are mapped onto the encoder, the single ViT position
embedding is split and resized to the template and search grids, BEiT-style q/v biases and
layer-scale factors are folded into plain weights, and a report lists what was loaded,
resized, ignored and left missing.
"""

from dataclasses import dataclass, field
import logging
import math
import os
import pickle
from typing import Dict, List

from detrack_model.modeling.vit import ViTEncoder
import torch
import torch.nn.functional as F


LOG = logging.getLogger(__name__)
# Wrappers training scripts put around a state dict, and prefixes they put on its keys.
CONTAINER_KEYS = ('model', 'state_dict', 'model_state', 'module', 'net')
KEY_PREFIXES = ('module.', 'model.', 'encoder.', 'backbone.')


@dataclass
class LoadReport:
    """What a checkpoint load did."""

    loaded: List[str] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)
    folded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        """Summarise in one paragraph."""
        parts = [f'loaded {len(self.loaded)} tensors']
        if self.resized:
            parts.append('resized ' + ', '.join(self.resized))
        if self.folded:
            parts.append(f'folded {len(self.folded)} BEiT-style biases/layer scales')
        parts.append(f'missing {len(self.missing)}' +
                     (f' ({", ".join(self.missing)})' if self.missing else ''))
        parts.append(f'ignored {len(self.unexpected)} unexpected' +
                     (f' ({", ".join(self.unexpected[:8])}'
                      f'{", ..." if len(self.unexpected) > 8 else ""})'
                      if self.unexpected else ''))
        return '; '.join(parts)


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read tensors from a .safetensors file or a weights-only PyTorch checkpoint."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except Exception as error:  # safetensors raises its own error types
            raise RuntimeError(f'{path} is not a readable safetensors file: {error}') from error
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise RuntimeError(f'{path} could not be read as a weights-only checkpoint (it is '
                           f'corrupt or holds arbitrary Python objects): {error}') from error
    for key in CONTAINER_KEYS:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise RuntimeError(f'{path} does not hold a state dict of tensors')
    return data


def strip_prefixes(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``module.``, ``encoder.``, ...) that most keys share."""
    for prefix in KEY_PREFIXES:
        prefixed = [k for k in state if k.startswith(prefix)]
        if prefixed and len(prefixed) >= len(state) / 2:
            state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    return state


def resize_position_embedding(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """Resize a (1, n[+1], D) position embedding to (1, grid^2, D), dropping a class slot."""
    tokens = pos_embed.shape[1]
    side = math.isqrt(tokens)
    if side * side != tokens:
        side = math.isqrt(tokens - 1)
        if side * side != tokens - 1:
            raise RuntimeError(f'position embedding with {tokens} tokens is not a square grid')
        pos_embed = pos_embed[:, 1:]
    if side == grid:
        return pos_embed.clone()
    image = pos_embed.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    resized = F.interpolate(image, size=(grid, grid), mode='bicubic', align_corners=False)
    return resized.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos_embed.dtype)


def fold_beit_block(state: Dict[str, torch.Tensor], report: LoadReport) -> None:
    """Turn q_bias/v_bias and layer-scale gammas of BEiT/CAE blocks into plain weights."""
    blocks = sorted({k.split('.')[1] for k in state if k.startswith('blocks.')}, key=int)
    for i in blocks:
        prefix = f'blocks.{i}.'
        q_bias = state.pop(prefix + 'attn.q_bias', None)
        v_bias = state.pop(prefix + 'attn.v_bias', None)
        if q_bias is not None and v_bias is not None:
            state[prefix + 'attn.qkv.bias'] = torch.cat((q_bias, torch.zeros_like(q_bias),
                                                         v_bias))
            report.folded += [prefix + 'attn.q_bias', prefix + 'attn.v_bias']
        # x + gamma * f(x) equals x + f'(x) with f's last linear layer scaled by gamma.
        for gamma_key, linear in (('gamma_1', 'attn.proj'), ('gamma_2', 'mlp.fc2')):
            gamma = state.pop(prefix + gamma_key, None)
            if gamma is None:
                continue
            state[prefix + linear + '.weight'] = state[prefix + linear + '.weight'] * \
                gamma[:, None]
            state[prefix + linear + '.bias'] = state[prefix + linear + '.bias'] * gamma
            report.folded.append(prefix + gamma_key)


def map_to_encoder(state: Dict[str, torch.Tensor], encoder: ViTEncoder,
                   report: LoadReport) -> Dict[str, torch.Tensor]:
    """Rename and resize checkpoint tensors into the encoder's state-dict layout."""
    state = strip_prefixes(dict(state))
    fold_beit_block(state, report)
    config = encoder.config
    mapped = {}
    if 'pos_embed' in state:
        pos_embed = state.pop('pos_embed')
        mapped['pos_embed_z'] = resize_position_embedding(pos_embed, config.template_grid)
        mapped['pos_embed_x'] = resize_position_embedding(pos_embed, config.search_grid)
        report.resized.append(f'pos_embed {tuple(pos_embed.shape)} -> template '
                              f'{config.template_grid}x{config.template_grid}, search '
                              f'{config.search_grid}x{config.search_grid}')
    mapped.update(state)
    return mapped


def check_shapes(mapped: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor],
                 path: str) -> None:
    """Raise naming every tensor whose shape differs: the checkpoint is another architecture."""
    wrong = [(k, tuple(v.shape), tuple(target[k].shape)) for k, v in mapped.items()
             if k in target and v.shape != target[k].shape]
    if wrong:
        listed = '; '.join(f'{k}: checkpoint {got}, model {want}' for k, got, want in wrong[:6])
        raise RuntimeError(f'{path} is a checkpoint of another architecture ({len(wrong)} '
                           f'tensors differ in shape): {listed}')


def load_pretrained_encoder(encoder: ViTEncoder, path: str) -> LoadReport:
    """Load a ViT checkpoint into ``encoder``; return (and log) what happened."""
    report = LoadReport()
    mapped = map_to_encoder(read_state_dict(path), encoder, report)
    target = encoder.state_dict()
    check_shapes(mapped, target, path)
    usable = {k: v for k, v in mapped.items() if k in target}
    if not usable:
        raise RuntimeError(f'{path} holds no ViT encoder weights (first keys: '
                           f'{sorted(mapped)[:5]})')
    encoder.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = sorted(set(target) - set(usable))
    report.unexpected = sorted(set(mapped) - set(target))
    LOG.info('encoder weights from %s: %s', path, report)
    return report
