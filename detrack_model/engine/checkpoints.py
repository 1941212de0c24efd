"""
Training checkpoints: weights as safetensors, the rest of the state as a weights-only file.

A checkpoint is a directory ``checkpoints/step_00001234/`` holding ``model.safetensors`` and
``state.pt`` (optimizer, scheduler, scaler, RNG, counters: tensors and plain containers only,
so ``torch.load(weights_only=True)`` reads it). It is written to a temporary directory and
renamed into place, so a run killed while saving never leaves a half-written checkpoint that
``--resume`` would pick up. A checkpoint damaged afterwards (a full disk, a copy cut short) is
refused with :class:`CheckpointError`; the trainer then falls back to the previous one.
"""

import logging
import pathlib
import re
import shutil
from typing import Any, Callable, Dict, List, Optional, Tuple

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch
from torch import nn

LOG = logging.getLogger(__name__)
PATTERN = re.compile(r'^step_(\d{8})$')
# What every state.pt holds (loop.TrainingLoop.state); older keys may be absent, never these.
STATE_KEYS = ('step', 'optimizer', 'scheduler', 'scaler', 'torch_rng')


class CheckpointError(RuntimeError):
    """A checkpoint that is incomplete, damaged or does not fit the model; says which."""


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


def read_checkpoint(path: pathlib.Path,
                    model: nn.Module) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """
    Read and check a checkpoint without changing anything; return (weights, state).

    Raise :class:`CheckpointError` for missing files, files that cannot be read (truncated,
    corrupt, not ours) and weights that do not fit ``model``. ``state.pt`` is read
    weights-only: a file that needs anything else is refused, never unpickled.
    """
    weights_file, state_file = path / 'model.safetensors', path / 'state.pt'
    if not weights_file.is_file() or not state_file.is_file():
        raise CheckpointError(f'{path} is not a complete checkpoint (model.safetensors and '
                              'state.pt expected)')
    try:
        weights = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f'{weights_file} cannot be read (truncated or corrupt): '
                              f'{error}') from None
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise CheckpointError(f'{path} does not fit this model: missing {missing[:5]}, '
                              f'unexpected {unexpected[:5]}')
    try:
        state = torch.load(state_file, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: B902 - torch.load raises anything a bad file causes
        # PyTorch's own message suggests loading the file unsafely; it is not repeated.
        raise CheckpointError(f'{state_file} is not a training state written by detrack-train '
                              f'(truncated or corrupt: {type(error).__name__})') from None
    absent = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if absent:
        raise CheckpointError(f'{state_file} lacks {absent}: not a training state')
    return weights, state


def load_checkpoint(path: pathlib.Path, model: nn.Module) -> Dict[str, Any]:
    """Load weights into ``model`` and return the rest of the state (see read_checkpoint)."""
    weights, state = read_checkpoint(path, model)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f'{path} does not fit this model: {error}') from None
    return state


def resume_newest(root: pathlib.Path, path: Optional[str],
                  restore: Callable[[pathlib.Path], None], log: bool = True) -> bool:
    """
    Restore from ``path``, or else from the newest intact checkpoint under ``root``.

    ``restore`` loads one checkpoint and raises CheckpointError when it is damaged. A named
    checkpoint that is damaged is an error. Without a name, a damaged newest checkpoint is
    reported (when ``log``) and the one before it is tried, and so on; only when every one is
    damaged does CheckpointError end the run (starting over would overwrite them). Return
    whether anything was restored.
    """
    if path:
        restore(pathlib.Path(path))
        return True
    candidates = checkpoint_dirs(root)[::-1]
    for checkpoint in candidates:
        try:
            restore(checkpoint)
        except CheckpointError as error:
            if log:
                LOG.warning('skipping damaged checkpoint: %s', error)
            continue
        return True
    if candidates:
        raise CheckpointError(f'none of the {len(candidates)} checkpoints in '
                              f'{root / "checkpoints"} is intact; see the warnings above')
    return False


def loop_state(step: int, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
               device: torch.device, **extra: Any) -> Dict[str, Any]:
    """Collect a training loop's state besides the weights: what ``state.pt`` holds."""
    state = {'step': step, 'optimizer': optimizer.state_dict(),
             'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict(),
             'torch_rng': torch.get_rng_state(), **extra}
    if device.type == 'cuda':
        state['cuda_rng'] = torch.cuda.get_rng_state(device)
    return state


def restore_loop(checkpoint: pathlib.Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, scaler: Any, device: torch.device) -> Dict[str, Any]:
    """
    Load a checkpoint into a training loop (weights, optimizer, scheduler, scaler, RNGs).

    Return the whole state for the loop's own counters; a state that does not fit raises
    :class:`CheckpointError`.
    """
    state = load_checkpoint(checkpoint, model)
    try:
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        scaler.load_state_dict(state['scaler'])
        torch.set_rng_state(state['torch_rng'])
        if 'cuda_rng' in state and device.type == 'cuda':
            torch.cuda.set_rng_state(state['cuda_rng'], device)
        state['step'] = int(state['step'])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f'{checkpoint}/state.pt does not fit this run: '
                              f'{type(error).__name__}: {error}') from None
    return state
