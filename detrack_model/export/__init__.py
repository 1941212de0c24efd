"""Model bundles (safetensors weights + config) and export to other runtimes."""

from detrack_model.export.bundle import BundleError, load_bundle, save_bundle

__all__ = ['BundleError', 'load_bundle', 'save_bundle']
