"""Tracking runtime: crops around the last state, the network, a Hanning window, a lost state."""

from detrack_model.modeling.tracking_network import TrackingNetwork
from detrack_model.tracking.backends import Backend
from detrack_model.tracking.backends.torch_backend import TorchBackend
from detrack_model.tracking.factory import build_backend, build_tracker, RuntimeConfig
from detrack_model.tracking.tracker import clip_box, Tracker, TrackerConfig
from detrack_model.tracking.window import hann_window

__all__ = ['Backend', 'TorchBackend', 'build_backend', 'build_tracker', 'RuntimeConfig',
           'TrackingNetwork', 'clip_box', 'Tracker', 'TrackerConfig', 'hann_window']
