"""
Change the decoder depth of a running tracker without stopping it.

PyTorch runs any depth of its network, so that switch takes effect at once. An onnxruntime
graph has its depth built in: a graph of the new depth is exported in a child process (see
:mod:`detrack_model.export.worker`; the export would otherwise hold this interpreter's lock
for a second or more) and loaded and warmed up on the switcher's own thread, while the old
backend keeps serving every frame. The new backend is then swapped in between two frames,
under the lock the caller uses around ``track``. Requests made meanwhile replace each other:
only the newest depth is built. Exported graphs are kept per depth in a temporary directory,
so going back to a depth used before costs a session load, not an export.
"""

import logging
import pathlib
import tempfile
import threading
import time
from typing import Callable, Optional, Union

from detrack_model.export.worker import export_in_subprocess, ExportCancelled
from detrack_model.tracking.backends.torch_backend import TorchBackend
from detrack_model.tracking.factory import check_decoder_layers, onnx_backend, RuntimeConfig
from detrack_model.tracking.tracker import Tracker
import numpy as np

LOG = logging.getLogger(__name__)
WARM_UP_RUNS = 3
_NOTHING = object()
# Called with the depth asked for (None: all), the seconds it took and the error, if any.
Report = Callable[[Optional[int], float, Optional[BaseException]], None]


class DepthSwitcher:
    """Switch ``tracker`` (running ``model`` as ``runtime`` says) to other decoder depths."""

    def __init__(self, tracker: Tracker, model: Union[str, pathlib.Path],
                 runtime: RuntimeConfig, lock: threading.Lock,
                 report: Optional[Report] = None) -> None:
        self._tracker, self._model, self._runtime = tracker, pathlib.Path(model), runtime
        self._lock = lock
        self._report = report or (lambda layers, seconds, error: None)
        self._condition = threading.Condition()
        self._wanted = _NOTHING
        self._generation = 0
        self._cancel = threading.Event()
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._cache: Optional[tempfile.TemporaryDirectory] = None

    @property
    def running_layers(self) -> Optional[int]:
        """Return the decoder layers the current backend runs (None: all of them)."""
        backend = self._tracker.backend
        if isinstance(backend, TorchBackend):
            return backend.decoder_layers
        return getattr(backend, 'num_layers', None)

    @property
    def pending(self) -> bool:
        """Tell whether a depth was asked for and is not running yet."""
        with self._condition:
            return self._wanted is not _NOTHING

    def request(self, num_layers: Optional[int]) -> None:
        """
        Run ``num_layers`` decoder layers (None: all) from a coming frame on.

        Raise ValueError, changing nothing, when the model cannot run that depth. PyTorch
        switches before this returns; onnxruntime once the new graph is ready.
        """
        backend = self._tracker.backend
        total = check_decoder_layers(backend, self._model, num_layers)
        if isinstance(backend, TorchBackend):
            with self._lock:
                backend.set_decoder_layers(num_layers)
            return
        with self._condition:
            if self._closed:
                raise ValueError('the tracker is shutting down')
            running = getattr(backend, 'num_layers', None) == (num_layers or total)
            self._wanted = _NOTHING if running else num_layers
            self._generation += 1
            self._cancel.set()  # an export for an older request is of no use now
            if self._thread is None and not running:
                self._thread = threading.Thread(target=self._work, name='detrack-depth',
                                                daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def cancel(self) -> None:
        """Forget a waiting request; a backend being built is dropped, never swapped in."""
        with self._condition:
            self._wanted = _NOTHING
            self._generation += 1
            self._cancel.set()
            self._condition.notify_all()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until no request is waiting; return whether that happened within ``timeout``."""
        with self._condition:
            return self._condition.wait_for(lambda: self._wanted is _NOTHING, timeout)

    def close(self) -> None:
        """Cancel, stop the thread (killing an export in progress) and delete the cache."""
        with self._condition:
            self._closed = True
            self._wanted = _NOTHING
            self._generation += 1
            self._cancel.set()
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        if self._cache is not None:
            self._cache.cleanup()
            self._cache = None

    # -- the switcher's thread -------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._wanted is not _NOTHING or self._closed)
                if self._closed:
                    return
                wanted, generation = self._wanted, self._generation
                self._cancel.clear()
            started = time.monotonic()
            try:
                backend = self._build(wanted)
            except ExportCancelled:
                continue
            except Exception as error:  # noqa: B902 - reported; the old backend keeps serving
                self._finish(generation)
                self._report(wanted, time.monotonic() - started, error)
                continue
            if self._swap(backend, generation):
                self._report(wanted, time.monotonic() - started, None)

    def _build(self, num_layers: Optional[int]):
        """Export (unless cached), load and warm up the graph of ``num_layers`` layers."""
        if self._cache is None:
            self._cache = tempfile.TemporaryDirectory(prefix='detrack-depths-')
        path = pathlib.Path(self._cache.name) / f'layers_{num_layers or "all"}.onnx'
        if not path.is_file():
            export_in_subprocess(self._model, path, num_layers,
                                 self._runtime.candidate_elimination, self._cancel)
        backend = onnx_backend(path, self._runtime)
        # First runs pay for lazy allocations: on this thread, not on a tracked frame.
        template = np.zeros((backend.template_size, backend.template_size, 3), np.uint8)
        search = np.zeros((backend.search_size, backend.search_size, 3), np.uint8)
        backend.set_template(template)
        for _ in range(WARM_UP_RUNS):
            backend.infer(search)
        return backend

    def _swap(self, backend, generation: int) -> bool:
        """Put ``backend`` in unless a newer request or a cancel came; return whether it did."""
        with self._lock:
            with self._condition:
                current = generation == self._generation and not self._closed
            if current:
                old = self._tracker.replace_backend(backend)
        if not current:
            backend.release()
            return False
        old.release()
        self._finish(generation)
        return True

    def _finish(self, generation: int) -> None:
        with self._condition:
            if generation == self._generation:
                self._wanted = _NOTHING
            self._condition.notify_all()
