"""
A tracker's model in a long-running process: loaded once, warmed up, freed while idle.

A node keeps its model between activations: deactivation frees the inference backend (GPU
memory on a GPU) and activation builds it again, keeping the tracker and its target. Decoder
depth changes go through a :class:`DepthSwitcher`, so an onnxruntime graph of the new depth
is built while the old one keeps tracking.
"""

import pathlib
import threading
import time
from typing import Optional

from detrack_model.config import validate_decoder_layers
from detrack_model.shipped import default_model_path
from detrack_model.tracking.factory import (build_tracker, check_decoder_layers,
                                            model_decoder_layers, resolve_backend,
                                            RuntimeConfig)
from detrack_model.tracking.session import SessionSettings, TrackingSession
from detrack_model.tracking.switcher import DepthSwitcher, Report
from detrack_model.tracking.tracker import Tracker, TrackerConfig
import numpy as np

WARM_UP_FRAME = (240, 320)


def warm_up(tracker: Tracker) -> None:
    """Run ``tracker`` on a blank frame and reset it: lazy allocations happen now."""
    frame = np.full((*WARM_UP_FRAME, 3), 127, np.uint8)
    tracker.initialize(frame, (140.0, 100.0, 40.0, 40.0))
    for _ in range(3):
        tracker.track(frame)
    tracker.reset()


class ModelHost:
    """The model file, how it runs, its warmed-up tracker and the depth switcher."""

    def __init__(self, model: str, runtime: RuntimeConfig, decoder_layers: Optional[int],
                 config: Optional[TrackerConfig] = None) -> None:
        """
        Load ``model`` (empty: the shipped default) and warm it up.

        Raise ValueError for a decoder depth the model does not have, OSError for a file
        that cannot be read.
        """
        self.path = pathlib.Path(model).expanduser() if model else default_model_path()
        self.runtime = runtime
        runtime.backend = resolve_backend(self.path, runtime)
        self.total_layers = model_decoder_layers(self.path)
        try:
            validate_decoder_layers(decoder_layers, self.total_layers)
        except ValueError as error:
            raise ValueError(f'decoder_layers {decoder_layers}: {self.path}: {error} (0 runs '
                             'them all)') from None
        runtime.decoder_layers = decoder_layers
        started = time.monotonic()
        self.tracker = build_tracker(self.path, runtime, config or TrackerConfig())
        warm_up(self.tracker)
        self.load_seconds = time.monotonic() - started
        self.released = False
        self._switcher: Optional[DepthSwitcher] = None

    def attach(self, lock: threading.Lock, report: Report) -> None:
        """Let depth switches swap backends under ``lock`` and ``report`` their outcome."""
        self._switcher = DepthSwitcher(self.tracker, self.path, self.runtime, lock, report)

    def release(self, lock: threading.Lock) -> None:
        """Free the inference backend (the tracker and its target stay); idempotent."""
        if self._switcher is not None:
            self._switcher.cancel()  # reload() builds the asked depth anew
        with lock:
            if not self.released:
                self.tracker.backend.release()
                self.released = True

    def reload(self, lock: threading.Lock) -> None:
        """Build the backend again after :meth:`release` (nothing to do otherwise)."""
        if not self.released:
            return
        fresh = build_tracker(self.path, self.runtime)
        warm_up(fresh)
        with lock:
            self.tracker.replace_backend(fresh.backend)
            self.released = False

    def set_decoder_layers(self, layers: Optional[int]) -> None:
        """
        Ask for another decoder depth (None: all); never waits for it.

        Raise ValueError, changing nothing, when the model cannot run it. A released backend
        is only checked: :meth:`reload` builds the asked depth.
        """
        if self.released or self._switcher is None:
            check_decoder_layers(self.tracker.backend, self.path, layers)
        else:
            self._switcher.request(layers)
        self.runtime.decoder_layers = layers

    def apply(self, session: TrackingSession, settings: SessionSettings) -> None:
        """
        Give ``session`` new settings, switching the decoder depth first if they change it.

        Raise ValueError (or the backend's OSError/RuntimeError), changing nothing, when the
        settings do not fit the model.
        """
        session.check(settings)
        if settings.decoder_layers != session.settings.decoder_layers:
            self.set_decoder_layers(settings.decoder_layers or None)
        session.update(settings)

    def depth_label(self) -> str:
        """Return the decoder layers running, and the ones asked for while they are built."""
        if self._switcher is None or self.total_layers == 0:
            return ''
        running = str(self._switcher.running_layers or self.total_layers)
        if self._switcher.pending:
            return f'{running} (switching to {self.runtime.decoder_layers or self.total_layers})'
        return running

    def close(self, lock: threading.Lock) -> None:
        """Stop depth switching and free the backend."""
        if self._switcher is not None:
            self._switcher.close()
            self._switcher = None
        self.release(lock)
