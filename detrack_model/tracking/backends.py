"""
Inference backends: what the Tracker calls to run the network on one pair of crops.

A backend takes crops exactly as the cropper writes them — (H, W, 3) uint8 RGB, C-contiguous
— and returns NumPy arrays for one image:

- ``set_template(crop)`` stores the template (the network is one-stream: the template goes
  through the encoder with every search crop, so there is nothing to precompute);
- ``infer(crop) -> (boxes (K, 4) float32 normalised cx, cy, w, h; scores (K,) float32;
  cells (K,) int64 search-grid cells)``;
- ``release()`` frees what the backend holds on its device.

:class:`TorchBackend` lives here; the onnxruntime one in
:mod:`detrack_model.export.onnx_backend`. Both run :class:`TrackingNetwork`.
"""

import contextlib
import logging
from typing import Optional, Protocol, Tuple

from detrack_model.modeling import DETRack
from detrack_model.tracking.network import TrackingNetwork
import numpy as np
import torch

LOG = logging.getLogger(__name__)
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

    def release(self) -> None:
        """Free device memory; the backend is unusable afterwards."""


class TorchBackend:
    """
    Run the network with PyTorch on a CPU or a GPU.

    Input tensors are allocated once; each frame's crop is copied into them (through pinned
    host memory on a GPU, so the copy is asynchronous). ``fp16`` runs the network in half
    precision (GPU only); ``torch_compile`` wraps it in ``torch.compile`` (first frames are slow
    while it compiles).
    """

    def __init__(self, model: DETRack, device: torch.device, num_layers: Optional[int] = None,
                 candidate_elimination: bool = True, fp16: bool = False,
                 torch_compile: bool = False) -> None:
        if fp16 and device.type != 'cuda':
            raise ValueError('fp16 needs a CUDA device; use fp16=False on the CPU')
        config = model.config
        self.template_size, self.search_size = config.template_size, config.search_size
        self.grid = config.search_grid
        self.device = device
        self.name = f'torch-{device}' + ('-fp16' if fp16 else '')
        self.network = TrackingNetwork(model.to(device).eval(), num_layers,
                                       candidate_elimination)
        if fp16:
            self.network.half()
        self._run = torch.compile(self.network) if torch_compile else self.network
        pin = device.type == 'cuda'
        self._host_template = torch.zeros((1, self.template_size, self.template_size, 3),
                                          dtype=torch.uint8, pin_memory=pin)
        self._host_search = torch.zeros((1, self.search_size, self.search_size, 3),
                                        dtype=torch.uint8, pin_memory=pin)
        self._template = torch.zeros_like(self._host_template, device=device)
        self._search = torch.zeros_like(self._host_search, device=device)

    @property
    def decoder_layers(self) -> Optional[int]:
        """Return the number of decoder layers run (None = all)."""
        return self.network.num_layers

    def set_decoder_layers(self, num_layers: Optional[int]) -> None:
        """Run the first ``num_layers`` decoder layers from the next frame on (None = all)."""
        total = self.network.model.config.decoder.layers
        if num_layers is not None and not 1 <= num_layers <= total:
            raise ValueError(f'decoder layers must be in 1..{total}, got {num_layers}')
        self.network.num_layers = num_layers

    def set_template(self, crop: np.ndarray) -> None:
        """Copy the template crop to the device (kept until the next call)."""
        self._host_template[0].numpy()[...] = crop
        self._template.copy_(self._host_template, non_blocking=True)

    @torch.inference_mode()
    def infer(self, crop: np.ndarray) -> Candidates:
        """Run the network on one search crop."""
        self._host_search[0].numpy()[...] = crop
        self._search.copy_(self._host_search, non_blocking=True)
        boxes, scores, cells = self._run(self._template, self._search)
        return (boxes[0].float().cpu().numpy(), scores[0].float().cpu().numpy(),
                cells[0].cpu().numpy())

    def release(self) -> None:
        """Drop the network and buffers; on a GPU, return the cached memory to the driver."""
        self.network = self._run = None
        self._template = self._search = None
        if self.device.type == 'cuda':
            with contextlib.suppress(RuntimeError):
                torch.cuda.empty_cache()
