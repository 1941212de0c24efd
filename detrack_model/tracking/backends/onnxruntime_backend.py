"""
Run an exported network with onnxruntime, behind the tracker's Backend interface.

The file written by :func:`detrack_model.export.onnx.export_onnx` describes itself (crop
sizes, grid, candidates), so the backend needs no bundle. Loading problems raise
:class:`~detrack_model.export.onnx.OnnxModelError` (a ``BundleError``) naming the file: a
missing file, one onnxruntime cannot parse, and an ONNX model without our metadata or with
other inputs and outputs.

This is the only module of the package that imports onnxruntime.
"""

import logging
import pathlib
from typing import Dict, Optional, Sequence, Tuple, Union

from detrack_model.export.onnx import (INPUT_NAMES, OnnxMetadata, OnnxModelError,
                                       OUTPUT_NAMES, parse_metadata)
from detrack_model.tracking.backends import Candidates, infer_each
import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

LOG = logging.getLogger(__name__)
PathLike = Union[str, pathlib.Path]

# What onnxruntime raises for a file it cannot load as a model (its exceptions do not share a
# base class below Exception). Provider failures are left out on purpose: they are not the
# file's fault and keep their own message.
_LOAD_ERRORS = (ort_state.Fail, ort_state.InvalidArgument, ort_state.InvalidGraph,
                ort_state.InvalidProtobuf, ort_state.NoSuchFile, ort_state.NoModel,
                ort_state.NotImplemented, ort_state.RuntimeException)
_ORT_TYPES = {np.uint8: 'tensor(uint8)', np.float32: 'tensor(float)', np.int64: 'tensor(int64)'}


def _signature(meta: OnnxMetadata) -> Dict[str, Tuple[Tuple[int, ...], type]]:
    """Return the (shape, dtype) of every input and output an exported file has."""
    k = meta.num_candidates
    return {
        'template': ((1, meta.template_size, meta.template_size, 3), np.uint8),
        'search': ((1, meta.search_size, meta.search_size, 3), np.uint8),
        'boxes': ((1, k, 4), np.float32),
        'scores': ((1, k), np.float32),
        'cells': ((1, k), np.int64),
    }


def _providers(requested: Optional[Sequence[str]]) -> list:
    """Return the requested providers onnxruntime has, in order (default: the CPU)."""
    if not requested:
        return ['CPUExecutionProvider']
    available = ort.get_available_providers()
    chosen = [name for name in requested if name in available]
    dropped = [name for name in requested if name not in available]
    if not chosen:
        raise ValueError(f'none of the execution providers {list(requested)} is available in '
                         f'this onnxruntime build (it has {available})')
    if dropped:
        LOG.warning('onnxruntime: providers %s are unavailable here, using %s', dropped, chosen)
    return chosen


class OnnxBackend:
    """
    Run an exported DETRack network with onnxruntime (batch 1).

    ``providers`` lists onnxruntime execution providers in order of preference (default the
    CPU; ``['CUDAExecutionProvider', 'CPUExecutionProvider']`` for a GPU); unavailable ones
    are skipped with a warning. ``threads`` sets onnxruntime's intra-op threads (None: its
    default, one per core). Input and output buffers are allocated once and bound to the
    session, so a frame costs one crop copy into the input buffer and one small copy of each
    output. Raises :class:`OnnxModelError` for a file that is missing, unreadable or not ours.
    """

    def __init__(self, path: PathLike, providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None) -> None:
        self.path = pathlib.Path(path)
        if not self.path.exists():
            raise OnnxModelError(f'ONNX model not found: {self.path}')
        if not self.path.is_file():
            raise OnnxModelError(f'ONNX model {self.path} is not a file')
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # One image at a time through a chain of operators: nothing for inter-op threads to
        # overlap, so they would only add wake-ups.
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        # Busy-waiting worker threads win a little on an idle machine but lose several times
        # over when camera drivers, image decoding or other nodes want the same cores.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            session = ort.InferenceSession(str(self.path), options,
                                           providers=_providers(providers))
        except _LOAD_ERRORS as error:
            raise OnnxModelError(f'{self.path} is not a loadable ONNX model: {error}') \
                from error
        self.metadata: OnnxMetadata = parse_metadata(
            session.get_modelmeta().custom_metadata_map, self.path)
        meta = self.metadata
        signature = _signature(meta)
        found = {arg.name: (tuple(arg.shape), arg.type)
                 for arg in list(session.get_inputs()) + list(session.get_outputs())}
        wanted = {name: (shape, _ORT_TYPES[dtype]) for name, (shape, dtype) in signature.items()}
        if found != wanted:
            raise OnnxModelError(f'{self.path}: inputs/outputs {found} do not match its '
                                 f'metadata, expected {wanted}')
        self.template_size, self.search_size = meta.template_size, meta.search_size
        self.grid = meta.grid
        self.num_layers = meta.num_layers
        self.candidate_elimination = meta.candidate_elimination
        provider = session.get_providers()[0]
        self.name = 'onnxruntime-' + provider.replace('ExecutionProvider', '').lower()
        self._session = session

        self._template, self._search = (np.zeros(*signature[name]) for name in INPUT_NAMES)
        self._outputs = [np.zeros(*signature[name]) for name in OUTPUT_NAMES]
        # OrtValues over CPU arrays share their memory: writing a crop into the array is all
        # a frame needs, and the outputs land in the preallocated arrays.
        self._binding = session.io_binding()
        self._values = {name: ort.OrtValue.ortvalue_from_numpy(array) for name, array in zip(
            INPUT_NAMES + OUTPUT_NAMES, [self._template, self._search, *self._outputs])}
        for name in INPUT_NAMES:
            self._binding.bind_ortvalue_input(name, self._values[name])
        for name in OUTPUT_NAMES:
            self._binding.bind_ortvalue_output(name, self._values[name])

    def set_template(self, crop: np.ndarray) -> None:
        """Copy the (Hz, Wz, 3) uint8 template crop into the bound input (kept until replaced)."""
        self._template[0] = crop

    def infer(self, crop: np.ndarray) -> Candidates:
        """Run the network on one (Hx, Wx, 3) uint8 search crop."""
        if self._session is None:
            raise RuntimeError(f'{self.name} backend used after release()')
        self._search[0] = crop
        self._session.run_with_iobinding(self._binding)
        boxes, scores, cells = self._outputs
        # Copies: the arrays are overwritten by the next frame while the caller may keep these.
        return boxes[0].copy(), scores[0].copy(), cells[0].copy()

    def infer_batch(self, crops: np.ndarray) -> Candidates:
        """Run the network on each of (N, Hx, Wx, 3) crops in turn (the graph is batch 1)."""
        return infer_each(self, crops)

    def release(self) -> None:
        """Drop the session and its buffers."""
        self._session = self._binding = self._values = None
