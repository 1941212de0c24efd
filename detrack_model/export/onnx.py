"""
Export the tracking network to ONNX, with the metadata a runtime needs to drive it.

The graph is :class:`~detrack_model.modeling.tracking_network.TrackingNetwork` fixed to one set-up
(decoder layers, candidate elimination) and to batch 1:

- inputs ``template`` (1, Hz, Wz, 3) and ``search`` (1, Hx, Wx, 3), uint8 RGB crops exactly
  as the cropper writes them (normalisation is inside the graph);
- outputs ``boxes`` (1, K, 4) float32 normalised cx, cy, w, h; ``scores`` (1, K) float32;
  ``cells`` (1, K) int64 search-grid cells.

Only standard ONNX operators are used (the deformable attention becomes ``GridSample``, which
needs opset 16 or newer), so any runtime that implements the opset runs the file. The file's
``metadata_props`` carry the format tag :data:`FORMAT`, the model configuration as JSON, and
the sizes a backend needs, so an exported file is used without its bundle;
:func:`parse_metadata` reads them back (the onnxruntime backend uses it).

The ``onnx`` package is imported by :func:`export_onnx` only: running an exported file needs
onnxruntime and this module's metadata reader, not the exporter's dependencies.
"""

from dataclasses import dataclass
import json
import os
import pathlib
import tempfile
from typing import Any, Dict, Mapping, Optional, Union
import warnings

import detrack_model
from detrack_model.config import ModelConfig
from detrack_model.export.bundle import BundleError, CONFIG_ERRORS
from detrack_model.modeling import DETRack
from detrack_model.modeling.tracking_network import TrackingNetwork
import torch

FORMAT = 'detrack-onnx/1'
INPUT_NAMES = ('template', 'search')
OUTPUT_NAMES = ('boxes', 'scores', 'cells')
# GridSample (the deformable attention) exists from opset 16; the TorchScript exporter stops
# at 20, and the dynamo exporter writes 18 or newer whatever it is asked for.
MIN_OPSET = 16
MAX_TORCHSCRIPT_OPSET = 20
MIN_DYNAMO_OPSET = 18
STANDARD_DOMAINS = ('', 'ai.onnx')
PathLike = Union[str, pathlib.Path]

_REQUIRED_KEYS = ('format', 'model_config', 'head', 'num_layers', 'candidate_elimination',
                  'template_size', 'search_size', 'grid', 'num_candidates')


class OnnxModelError(BundleError):
    """
    An ONNX file that is missing, unreadable, or not an exported DETRack network.

    A :class:`~detrack_model.export.BundleError`, so code that loads either kind of model file
    handles both failures with one ``except``.
    """


@dataclass(frozen=True)
class OnnxMetadata:
    """What an exported file says about itself (its ``metadata_props``)."""

    config: ModelConfig
    # Decoder layers the graph runs; 0 for the conv head, which has no decoder.
    num_layers: int
    candidate_elimination: bool
    template_size: int
    search_size: int
    grid: int
    # Candidates per image (K): decoder queries, or grid * grid cells for the conv head.
    num_candidates: int

    def to_props(self) -> Dict[str, str]:
        """Return the ``metadata_props`` entries (ONNX metadata values are strings)."""
        return {
            'format': FORMAT,
            'model_config': json.dumps(self.config.to_dict(), sort_keys=True),
            'head': self.config.head,
            'num_layers': str(self.num_layers),
            'candidate_elimination': 'true' if self.candidate_elimination else 'false',
            'template_size': str(self.template_size),
            'search_size': str(self.search_size),
            'grid': str(self.grid),
            'num_candidates': str(self.num_candidates),
            'detrack_version': detrack_model.__version__,
        }


def parse_metadata(props: Mapping[str, str], source: PathLike) -> OnnxMetadata:
    """
    Read the metadata of an exported file; ``source`` names the file in errors.

    Raises :class:`OnnxModelError` when the format tag or a key is missing or malformed, i.e.
    for ONNX files this module did not write.
    """
    tag = props.get('format')
    if tag is None:
        raise OnnxModelError(f'{source} is an ONNX model but not an exported DETRack network '
                             f'(no {FORMAT!r} format tag in its metadata); export one with '
                             'detrack-export')
    if tag != FORMAT:
        raise OnnxModelError(f'{source} has metadata format {tag!r}; this version reads '
                             f'{FORMAT!r}: export the model again')
    missing = [key for key in _REQUIRED_KEYS if key not in props]
    if missing:
        raise OnnxModelError(f'{source}: metadata lacks {missing}')
    try:
        config = ModelConfig.from_dict(json.loads(props['model_config']))
        elimination = {'true': True, 'false': False}[props['candidate_elimination']]
        metadata = OnnxMetadata(config, int(props['num_layers']), elimination,
                                int(props['template_size']), int(props['search_size']),
                                int(props['grid']), int(props['num_candidates']))
    except CONFIG_ERRORS as error:
        raise OnnxModelError(f'{source}: malformed metadata: {str(error)[:300]!r}') from None
    if (metadata.template_size, metadata.search_size, metadata.grid) != (
            config.template_size, config.search_size, config.search_grid):
        raise OnnxModelError(f'{source}: metadata sizes disagree with its model configuration')
    return metadata


def read_metadata(path: PathLike) -> OnnxMetadata:
    """
    Read an exported file's metadata without loading it into a runtime.

    Raises :class:`OnnxModelError` for a missing file, one that is not an ONNX protobuf
    (garbage, truncated) and one without our metadata.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = pathlib.Path(path)
    if not path.is_file():
        raise OnnxModelError(f'ONNX model not found: {path}')
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as error:
        raise OnnxModelError(f'{path} is not a readable ONNX model: '
                             f'{type(error).__name__}: {str(error)[:200]}') from None
    return parse_metadata({prop.key: prop.value for prop in proto.metadata_props}, path)


def export_onnx(model: DETRack, path: PathLike, num_layers: Optional[int] = None,
                candidate_elimination: bool = True, opset: int = 17, *,
                dynamo: bool = False, pad_heads: bool = True) -> pathlib.Path:
    """
    Write ``TrackingNetwork(model, num_layers, candidate_elimination, pad_heads)`` as ONNX.

    The batch size is fixed at 1 (the tracker runs one image at a time, and static shapes let
    runtimes plan the whole graph). ``num_layers`` is the number of decoder layers to run
    (None: all; ignored by the conv head). ``model`` must be float32; it is exported in eval
    mode and left in the mode it was in. ``pad_heads=False`` keeps a pruned encoder's heads at
    their own widths (gathers in the graph) instead of padding them to one width per block.

    ``dynamo=False`` uses the TorchScript exporter (opset 16..20, fast); ``dynamo=True`` the
    torch.export-based one, which writes opset 18 or newer. The file is checked with
    ``onnx.checker`` and must hold standard ONNX operators only. Raises ``ValueError`` for an
    unsupported opset, layer count or dtype. Returns the path written.
    """
    import onnx  # see the module docstring: the runtime side does without it

    high = None if dynamo else MAX_TORCHSCRIPT_OPSET
    low = MIN_DYNAMO_OPSET if dynamo else MIN_OPSET
    if opset < low or (high is not None and opset > high):
        exporter = 'dynamo' if dynamo else 'TorchScript'
        supported = f'{low}..{high}' if high else f'{low} or newer'
        raise ValueError(f'opset {opset} is not supported with the {exporter} exporter: use '
                         f'{supported}')
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(f'export a float32 model, got parameters of {sorted(map(str, dtypes))}'
                         ': reduced precision is for the runtime to choose')
    config = model.config
    network = TrackingNetwork(model, num_layers, candidate_elimination, pad_heads)
    metadata = OnnxMetadata(
        config=config,
        num_layers=0 if config.head == 'conv' else num_layers or config.decoder.layers,
        candidate_elimination=candidate_elimination,
        template_size=config.template_size, search_size=config.search_size,
        grid=config.search_grid,
        num_candidates=(config.search_grid ** 2 if config.head == 'conv'
                        else config.decoder.num_queries))

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    args = tuple(torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8,
                               generator=generator).to(device)
                 for size in (config.template_size, config.search_size))
    was_training = model.training
    network.eval()
    try:
        proto = _trace(network, args, opset, dynamo)
    finally:
        model.train(was_training)

    foreign = sorted({f'{node.domain}::{node.op_type}' for node in proto.graph.node
                      if node.domain not in STANDARD_DOMAINS})
    if foreign:
        raise RuntimeError(f'the exported graph uses non-standard operators {foreign}')
    onnx.helper.set_model_props(proto, metadata.to_props())
    proto.doc_string = (f'DETRack tracking network ({config.name}, {config.head} head), '
                        f'{FORMAT}: uint8 RGB crops in, boxes/scores/cells out')

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a failed check never leaves a half-written model
    # where a tracker would pick it up.
    partial = path.with_name(path.name + '.partial')
    try:
        onnx.save(proto, str(partial))
        onnx.checker.check_model(str(partial), full_check=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _trace(network: TrackingNetwork, args: tuple, opset: int, dynamo: bool) -> Any:
    """Run the chosen exporter; return the ModelProto, everything in one file."""
    import onnx

    common = {'input_names': list(INPUT_NAMES), 'output_names': list(OUTPUT_NAMES),
              'opset_version': opset, 'dynamo': dynamo}
    with torch.no_grad(), warnings.catch_warnings():
        # The shapes are fixed at export (batch 1, configured crop sizes), so the Python
        # branches on tensor shapes that the tracer warns about are constants by design; the
        # TorchScript exporter's deprecation notices are expected while it is the one that
        # writes opset 17, and torch.export's LeafSpec notice concerns torch's own code.
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export',
                                category=DeprecationWarning)
        warnings.filterwarnings('ignore', message='The feature will be removed',
                                category=DeprecationWarning, module=r'torch\.onnx')
        warnings.filterwarnings('ignore', message='.*LeafSpec', category=FutureWarning)
        if dynamo:
            program = torch.onnx.export(network, args, verbose=False, external_data=False,
                                        **common)
            return program.model_proto
        with tempfile.TemporaryDirectory(prefix='detrack-onnx-') as workdir:
            raw = pathlib.Path(workdir) / 'network.onnx'
            torch.onnx.export(network, args, str(raw), do_constant_folding=True, **common)
            return onnx.load(str(raw))
