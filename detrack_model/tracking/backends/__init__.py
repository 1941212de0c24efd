"""
Inference backends: what the Tracker calls to run the network on one pair of crops.

A backend takes crops exactly as the cropper writes them — (H, W, 3) uint8 RGB, C-contiguous
— and returns NumPy arrays for one image:

- ``set_template(crop)`` stores the template (the network is one-stream: the template goes
  through the encoder with every search crop, so there is nothing to precompute);
- ``infer(crop) -> (boxes (K, 4) float32 normalised cx, cy, w, h; scores (K,) float32;
  cells (K,) int64 search-grid cells)``;
- ``infer_batch(crops) -> (boxes (N, K, 4), scores (N, K), cells (N, K))`` for N search crops
  of the same template (the re-detection tiles of a lost frame): one network run where the
  backend can batch (PyTorch), the crops in turn where it cannot (:func:`infer_each`);
- ``release()`` frees what the backend holds on its device.

Two backends run :class:`~detrack_model.modeling.tracking_network.TrackingNetwork`:
:class:`~detrack_model.tracking.backends.torch_backend.TorchBackend` (PyTorch, CPU or GPU)
and :class:`~detrack_model.tracking.backends.onnxruntime_backend.OnnxBackend` (an exported
graph, batch 1). The onnxruntime one is imported on first use, so the package loads without
onnxruntime.
"""

import importlib
from typing import Any, Protocol, Tuple

import numpy as np

Candidates = Tuple[np.ndarray, np.ndarray, np.ndarray]


class Backend(Protocol):
    """What the Tracker needs from an inference backend."""

    template_size: int
    search_size: int
    grid: int
    name: str

    def set_template(self, crop: np.ndarray) -> None:
        """Store the (Hz, Wz, 3) uint8 template crop."""

    def infer(self, crop: np.ndarray) -> Candidates:
        """Run the network on a (Hx, Wx, 3) uint8 search crop."""

    def infer_batch(self, crops: np.ndarray) -> Candidates:
        """Run the network on (N, Hx, Wx, 3) uint8 search crops; N is at least 1."""

    def release(self) -> None:
        """Free device memory; the backend is unusable afterwards."""


def infer_each(backend: Backend, crops: np.ndarray) -> Candidates:
    """Run ``backend.infer`` on each crop in turn and stack the results (a batch-1 backend)."""
    results = [backend.infer(crop) for crop in crops]
    return tuple(np.stack(parts) for parts in zip(*results))


_LAZY = {'TorchBackend': 'detrack_model.tracking.backends.torch_backend',
         'OnnxBackend': 'detrack_model.tracking.backends.onnxruntime_backend'}

__all__ = ['Backend', 'Candidates', 'infer_each', 'OnnxBackend', 'TorchBackend']


def __getattr__(name: str) -> Any:
    """Import a backend class from its module when it is first asked for."""
    if name not in _LAZY:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(_LAZY[name]), name)
