"""PyTorch inference backend: the tracking network on a CPU or a GPU."""

import contextlib
from typing import Optional

from detrack_model.config import validate_decoder_layers
from detrack_model.modeling import DETRack
from detrack_model.modeling.tracking_network import TrackingNetwork
from detrack_model.tracking.backends import Candidates
import numpy as np
import torch


class TorchBackend:
    """
    Run the network with PyTorch on a CPU or a GPU.

    Input tensors are allocated once; each frame's crop is copied into them (through pinned
    host memory on a GPU, so the copy is asynchronous). ``infer_batch`` runs N search crops
    against the template in one network call; its buffers grow to the largest N asked for.
    ``fp16`` runs the network in half precision (GPU only); ``torch_compile`` wraps it in
    ``torch.compile`` (first frames are slow while it compiles).
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
        # The network's own buffers (pixel mean and scale) move with it, not with the model.
        self.network = TrackingNetwork(model.eval(), num_layers,
                                       candidate_elimination).to(device)
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
        self._host_batch = self._host_search[:0]
        self._batch = self._search[:0]

    @property
    def decoder_layers(self) -> Optional[int]:
        """Return the number of decoder layers run (None = all)."""
        return self.network.num_layers

    def set_decoder_layers(self, num_layers: Optional[int]) -> None:
        """Run the first ``num_layers`` decoder layers from the next frame on (None = all)."""
        validate_decoder_layers(num_layers, self.network.model.config.decoder.layers)
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

    @torch.inference_mode()
    def infer_batch(self, crops: np.ndarray) -> Candidates:
        """Run the network once on (N, Hx, Wx, 3) search crops, all against the template."""
        count = len(crops)
        if count > len(self._host_batch):
            shape = (count, self.search_size, self.search_size, 3)
            self._host_batch = torch.zeros(shape, dtype=torch.uint8,
                                           pin_memory=self.device.type == 'cuda')
            self._batch = torch.zeros_like(self._host_batch, device=self.device)
        host, batch = self._host_batch[:count], self._batch[:count]
        host.numpy()[...] = crops
        batch.copy_(host, non_blocking=True)
        boxes, scores, cells = self._run(self._template.expand(count, -1, -1, -1), batch)
        return boxes.float().cpu().numpy(), scores.float().cpu().numpy(), cells.cpu().numpy()

    def release(self) -> None:
        """Drop the network and buffers; on a GPU, return the cached memory to the driver."""
        self.network = self._run = None
        self._template = self._search = self._batch = self._host_batch = None
        if self.device.type == 'cuda':
            with contextlib.suppress(RuntimeError):
                torch.cuda.empty_cache()
