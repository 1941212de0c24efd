"""
Just-in-time build of the deformable-attention CUDA extension.

The extension is compiled with ``torch.utils.cpp_extension.load`` the first time a CUDA
tensor asks for it, once per process. Building never raises: on any failure (no CUDA, no
compiler, no ninja, an architecture the toolkit does not know, ...) :func:`load_extension`
returns ``None`` and :func:`build_failure` says why, so callers fall back to the PyTorch
reference. The compiler output goes to the ``detrack_model.ops`` logger at DEBUG level.

``TORCH_CUDA_ARCH_LIST`` is respected when set; otherwise the build targets the compute
capability of the current device only (PyTorch's own default compiles for every visible GPU
and warns about it).
"""

import logging
import os
import pathlib
import threading
import traceback
from types import ModuleType
from typing import List, Optional

import torch

LOGGER = logging.getLogger('detrack_model.ops')

EXTENSION_NAME = 'detrack_deform_attn'
CSRC = pathlib.Path(__file__).resolve().parent / 'csrc'
SOURCES = (CSRC / 'deform_attn_binding.cpp', CSRC / 'deform_attn_cuda.cu')
# No --use_fast_math: it flushes denormals and approximates division, and the kernel is
# memory-bound anyway, so accuracy would be lost for no measurable speed.
# No -std either: PyTorch picks the standard its own headers need (C++17 or C++20 by release),
# and the kernels compile under both.
EXTRA_CUDA_CFLAGS = ['-O3']
EXTRA_CFLAGS = ['-O3']

_lock = threading.Lock()
_attempted = False
_module: Optional[ModuleType] = None
_failure: Optional[str] = None


def _arch_list() -> Optional[str]:
    if os.environ.get('TORCH_CUDA_ARCH_LIST'):
        return None
    major, minor = torch.cuda.get_device_capability()
    return f'{major}.{minor}'


def _build() -> ModuleType:
    from torch.utils import cpp_extension

    missing: List[str] = [str(path) for path in SOURCES if not path.is_file()]
    if missing:
        raise FileNotFoundError('extension sources not installed: ' + ', '.join(missing))
    arch = _arch_list()
    previous = os.environ.get('TORCH_CUDA_ARCH_LIST')
    if arch is not None:
        os.environ['TORCH_CUDA_ARCH_LIST'] = arch
    try:
        return cpp_extension.load(
            name=EXTENSION_NAME,
            sources=[str(path) for path in SOURCES],
            extra_include_paths=[str(CSRC)],
            extra_cflags=EXTRA_CFLAGS,
            extra_cuda_cflags=EXTRA_CUDA_CFLAGS,
            with_cuda=True,
            verbose=LOGGER.isEnabledFor(logging.DEBUG),
        )
    finally:
        if arch is not None:
            if previous is None:
                os.environ.pop('TORCH_CUDA_ARCH_LIST', None)
            else:
                os.environ['TORCH_CUDA_ARCH_LIST'] = previous


def _summarise(error: Exception, max_lines: int = 20) -> str:
    # A failed compile carries the whole ninja log; its first line and the last few (the
    # compiler's error) are what a reader needs, the rest goes to DEBUG.
    lines = f'{type(error).__name__}: {error}'.strip().splitlines()
    if len(lines) > max_lines + 1:
        lines = lines[:1] + ['...'] + lines[-max_lines:]
    return '\n'.join(lines)


def load_extension() -> Optional[ModuleType]:
    """Return the compiled extension, building it on the first call; ``None`` if unavailable."""
    global _attempted, _module, _failure
    with _lock:
        if _attempted:
            return _module
        _attempted = True
        if not torch.cuda.is_available():
            _failure = 'CUDA is not available to PyTorch'
            return None
        try:
            _module = _build()
        except Exception as error:
            # Whatever broke (compiler, ninja, toolkit vs driver), the reference still works.
            _failure = _summarise(error)
            LOGGER.debug('building %s failed:\n%s', EXTENSION_NAME, traceback.format_exc())
        return _module


def build_failure() -> Optional[str]:
    """Say why the last :func:`load_extension` returned ``None`` (``None`` if it did not)."""
    return _failure


def reset() -> None:
    """Forget the cached build result, so the next :func:`load_extension` tries again."""
    global _attempted, _module, _failure
    with _lock:
        _attempted, _module, _failure = False, None, None
