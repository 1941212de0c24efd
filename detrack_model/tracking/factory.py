"""
Build a ready Tracker from a model file and runtime settings.

``model`` is a bundle (``<stem>.safetensors`` + ``<stem>.yaml``, any of the three spellings)
or an exported ``.onnx`` file. With ``backend='onnxruntime'`` and a bundle, the bundle is
exported to a temporary ONNX file first.
"""

from dataclasses import dataclass
import logging
import pathlib
import tempfile
from typing import Optional, Union

from detrack_model.cli.common import resolve_device
from detrack_model.export.bundle import load_bundle
from detrack_model.tracking.backends import Backend, TorchBackend
from detrack_model.tracking.tracker import Tracker, TrackerConfig
import torch

LOG = logging.getLogger(__name__)
BACKENDS = ('torch', 'onnxruntime')


@dataclass
class RuntimeConfig:
    """Where and how the network runs."""

    device: str = 'auto'
    backend: str = 'torch'
    fp16: bool = False
    # None runs every decoder layer; fewer trade accuracy for speed (paper Table 4).
    decoder_layers: Optional[int] = None
    candidate_elimination: bool = True
    torch_compile: bool = False
    # CPU threads for PyTorch / onnxruntime (None: the library default).
    threads: Optional[int] = None

    def __post_init__(self) -> None:
        """Reject unknown backends early, with the choices."""
        if self.backend not in BACKENDS:
            raise ValueError(f'unknown backend {self.backend!r}; choose one of {BACKENDS}')


def build_backend(model: Union[str, pathlib.Path], runtime: RuntimeConfig) -> Backend:
    """Load ``model`` into the backend ``runtime`` asks for."""
    path = pathlib.Path(model)
    onnx_file = path.suffix == '.onnx'
    if runtime.backend == 'torch':
        if onnx_file:
            raise ValueError(f'{path} is an ONNX file: use backend onnxruntime, or give the '
                             'safetensors bundle for the torch backend')
        device = resolve_device(runtime.device)
        if runtime.fp16 and device.type != 'cuda':
            LOG.warning('fp16 ignored: it needs a CUDA device, running float32 on %s', device)
        if runtime.threads and device.type == 'cpu':
            torch.set_num_threads(runtime.threads)
        return TorchBackend(load_bundle(path, 'cpu'), device, runtime.decoder_layers,
                            runtime.candidate_elimination,
                            fp16=runtime.fp16 and device.type == 'cuda',
                            torch_compile=runtime.torch_compile)
    from detrack_model.export.onnx import export_onnx
    from detrack_model.export.onnx_backend import OnnxBackend
    providers = None
    if runtime.device != 'cpu' and resolve_device(runtime.device).type == 'cuda':
        providers = ['CUDAExecutionProvider', 'CPUExecutionProvider']
    if onnx_file:
        return OnnxBackend(path, providers=providers, threads=runtime.threads)
    with tempfile.TemporaryDirectory(prefix='detrack-onnx-') as workdir:
        exported = export_onnx(load_bundle(path, 'cpu'), pathlib.Path(workdir) / 'model.onnx',
                               num_layers=runtime.decoder_layers,
                               candidate_elimination=runtime.candidate_elimination)
        # The session reads the whole file when it is created; the file can go afterwards.
        return OnnxBackend(exported, providers=providers, threads=runtime.threads)


def build_tracker(model: Union[str, pathlib.Path], runtime: Optional[RuntimeConfig] = None,
                  config: Optional[TrackerConfig] = None) -> Tracker:
    """Return a Tracker running ``model`` as ``runtime`` says, with test-time ``config``."""
    return Tracker(build_backend(model, runtime or RuntimeConfig()), config)
