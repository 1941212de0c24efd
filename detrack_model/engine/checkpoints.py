"""
Training checkpoints: weights as safetensors, the rest of the state as a weights-only file.

A checkpoint is a directory ``checkpoints/step_00001234/`` holding ``model.safetensors`` and
``state.pt`` (optimizer, scheduler, scaler, RNG, counters: tensors and plain containers only,
so ``torch.load(weights_only=True)`` reads it). It is written to a temporary directory and
renamed into place, so a run killed while saving never leaves a half-written checkpoint that
``--resume`` would pick up.
"""

import pathlib
import re
import shutil
from typing import Any, Dict, List, Optional

from safetensors.torch import load_file, save_file
import torch
from torch import nn

PATTERN = re.compile(r'^step_(\d{8})$')


def checkpoint_dirs(root: pathlib.Path) -> List[pathlib.Path]:
    """List the complete checkpoints under ``root/checkpoints``, oldest first."""
    folder = root / 'checkpoints'
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and PATTERN.match(p.name)
             and (p / 'model.safetensors').is_file() and (p / 'state.pt').is_file()]
    return sorted(found, key=lambda p: int(PATTERN.match(p.name).group(1)))


def latest_checkpoint(root: pathlib.Path) -> Optional[pathlib.Path]:
    """Return the newest complete checkpoint, or None."""
    found = checkpoint_dirs(root)
    return found[-1] if found else None


def save_checkpoint(root: pathlib.Path, step: int, model: nn.Module, state: Dict[str, Any],
                    keep_last: int) -> pathlib.Path:
    """Write a checkpoint for ``step`` atomically and prune all but the last ``keep_last``."""
    folder = root / 'checkpoints'
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f'step_{step:08d}'
    temporary = folder / f'.step_{step:08d}.tmp'
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    weights = {k: v.detach().to('cpu').contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(temporary / 'model.safetensors'))
    torch.save(state, temporary / 'state.pt')
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    for old in checkpoint_dirs(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: pathlib.Path, model: nn.Module) -> Dict[str, Any]:
    """Load weights into ``model`` and return the rest of the state (read weights-only)."""
    if not (path / 'model.safetensors').is_file() or not (path / 'state.pt').is_file():
        raise FileNotFoundError(f'{path} is not a complete checkpoint (model.safetensors and '
                                'state.pt expected)')
    weights = load_file(str(path / 'model.safetensors'))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise RuntimeError(f'{path} does not fit this model: missing {missing[:5]}, '
                           f'unexpected {unexpected[:5]}')
    return torch.load(path / 'state.pt', map_location='cpu', weights_only=True)
