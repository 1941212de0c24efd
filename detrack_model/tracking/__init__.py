"""Tracking runtime: crops around the last state, the network, a Hanning window, a lost state."""

from detrack_model.tracking.backends import Backend, TorchBackend
from detrack_model.tracking.network import TrackingNetwork

__all__ = ['Backend', 'TorchBackend', 'TrackingNetwork']
