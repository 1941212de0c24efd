"""
Model bundles (safetensors weights + config) and export to other runtimes.

The ONNX names (``export_onnx``, ``OnnxModelError``) are imported on first use, so this
package imports on a machine without onnx as long as they are not asked for. Running an
exported graph is the tracker's business: :mod:`detrack_model.tracking.backends`.
"""

import importlib
from typing import Any

from detrack_model.export.bundle import BundleError, load_bundle, save_bundle

_LAZY = {
    'export_onnx': 'detrack_model.export.onnx',
    'OnnxModelError': 'detrack_model.export.onnx',
}

__all__ = ['BundleError', 'export_onnx', 'load_bundle', 'OnnxModelError', 'save_bundle']


def __getattr__(name: str) -> Any:
    """Import an ONNX name from its module when it is first asked for."""
    if name not in _LAZY:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(_LAZY[name]), name)
