"""
Build a ready Tracker from a model file and runtime settings.

``model`` is a bundle (``<stem>.safetensors`` + ``<stem>.yaml``, any of the three spellings)
or an exported ``.onnx`` file. With ``backend='onnxruntime'`` and a bundle, the bundle is
exported to a temporary ONNX file first. ``backend='auto'`` picks onnxruntime on the CPU
(several times faster there than PyTorch eager on the shipped model, docs/tracking.md) and PyTorch
on a GPU (fp16, the CUDA deformable-attention kernel).
"""

from dataclasses import dataclass, replace
import logging
import pathlib
import tempfile
from typing import Optional, Union

from detrack_model.config import validate_decoder_layers
from detrack_model.devices import resolve_device
from detrack_model.export.bundle import load_bundle, read_model_config
from detrack_model.tracking.backends import Backend
from detrack_model.tracking.backends.torch_backend import TorchBackend
from detrack_model.tracking.tracker import Tracker, TrackerConfig
import torch

LOG = logging.getLogger(__name__)
BACKENDS = ('auto', 'torch', 'onnxruntime')


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


def resolve_backend(model: Union[str, pathlib.Path], runtime: RuntimeConfig) -> str:
    """Return the backend ``runtime`` runs ``model`` with: 'auto' resolved, never 'auto'."""
    if runtime.backend != 'auto':
        return runtime.backend
    if pathlib.Path(model).suffix == '.onnx':
        return 'onnxruntime'
    return 'torch' if resolve_device(runtime.device).type == 'cuda' else 'onnxruntime'


def model_decoder_layers(model: Union[str, pathlib.Path]) -> int:
    """Return how many decoder layers ``model`` has (0 for the conv head)."""
    path = pathlib.Path(model)
    if path.suffix == '.onnx':
        from detrack_model.export.onnx import read_metadata
        return read_metadata(path).num_layers
    config = read_model_config(path)
    return 0 if config.head == 'conv' else config.decoder.layers


def build_backend(model: Union[str, pathlib.Path], runtime: RuntimeConfig) -> Backend:
    """Load ``model`` into the backend ``runtime`` asks for."""
    path = pathlib.Path(model)
    onnx_file = path.suffix == '.onnx'
    if resolve_backend(path, runtime) == 'torch':
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
    if onnx_file:
        return onnx_backend(path, runtime)
    with tempfile.TemporaryDirectory(prefix='detrack-onnx-') as workdir:
        exported = export_onnx(load_bundle(path, 'cpu'), pathlib.Path(workdir) / 'model.onnx',
                               num_layers=runtime.decoder_layers,
                               candidate_elimination=runtime.candidate_elimination)
        # The session reads the whole file when it is created; the file can go afterwards.
        return onnx_backend(exported, runtime)


def onnx_backend(path: Union[str, pathlib.Path], runtime: RuntimeConfig) -> Backend:
    """Load an exported file into onnxruntime on the device and threads ``runtime`` names."""
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend
    providers = None
    if runtime.device != 'cpu' and resolve_device(runtime.device).type == 'cuda':
        providers = ['CUDAExecutionProvider', 'CPUExecutionProvider']
    return OnnxBackend(path, providers=providers, threads=runtime.threads)


def check_decoder_layers(backend: Backend, model: Union[str, pathlib.Path],
                         num_layers: Optional[int]) -> int:
    """
    Raise ValueError unless ``backend`` running ``model`` can switch to ``num_layers``.

    Return the model's decoder depth. Refused: a conv head, a depth outside 1..L, and any
    change of an onnxruntime backend loaded from an ``.onnx`` file (its depth is built in).
    """
    total = model_decoder_layers(model)
    if total == 0:
        raise ValueError(f'{model} has the conv head: it has no decoder layers to choose')
    validate_decoder_layers(num_layers, total)
    if not isinstance(backend, TorchBackend) and pathlib.Path(model).suffix == '.onnx':
        raise ValueError(f'{model} is an exported ONNX graph with {total} decoder layers built '
                         'in; export another depth, or load the bundle instead')
    return total


def set_decoder_layers(tracker: Tracker, model: Union[str, pathlib.Path],
                       runtime: RuntimeConfig, num_layers: Optional[int]) -> None:
    """
    Make ``tracker`` run ``num_layers`` decoder layers (None: all) from its next frame on.

    PyTorch switches in place. An onnxruntime graph has its depth built in, so a bundle is
    exported again at the new depth and the tracker's backend replaced (well under a second
    for the shipped model); an ``.onnx`` file cannot change and raises ValueError.
    """
    total = check_decoder_layers(tracker.backend, model, num_layers)
    backend = tracker.backend
    if isinstance(backend, TorchBackend):
        backend.set_decoder_layers(num_layers)
        return
    if getattr(backend, 'num_layers', None) == (num_layers or total):
        return
    runtime = replace(runtime, backend='onnxruntime', decoder_layers=num_layers)
    tracker.replace_backend(build_backend(model, runtime)).release()


def build_tracker(model: Union[str, pathlib.Path], runtime: Optional[RuntimeConfig] = None,
                  config: Optional[TrackerConfig] = None) -> Tracker:
    """Return a Tracker running ``model`` as ``runtime`` says, with test-time ``config``."""
    return Tracker(build_backend(model, runtime or RuntimeConfig()), config)
