"""How the tracker node words what its tracking session reports, and errors in general."""

from typing import Optional

from detrack_model.tracking.boxes import Box, InitBoxError
from detrack_model.tracking.model_host import ModelHost
from detrack_model.tracking.session import PendingInit
from detrack_ros.log_throttle import KeyedThrottle

# One message per this many seconds for a repeating warning.
LOG_THROTTLE_SEC = 5.0


def describe(error: BaseException) -> str:
    """Return an error as one line: our own errors by message, others with their type."""
    text = ' '.join(str(error).split()) or type(error).__name__
    ours = isinstance(error, (OSError, ValueError, RuntimeError))
    return text if ours else f'{type(error).__name__}: {text}'


class SessionLog:
    """A session reporter writing to an rclpy logger; init rejections throttled per rule."""

    def __init__(self, logger) -> None:
        self._logger = logger
        self._rejections = KeyedThrottle(LOG_THROTTLE_SEC)

    def rejected(self, source: str, error: InitBoxError) -> None:
        """Log a refused init, unless the same rule refused this source just now."""
        held = self._rejections.admit((source, error.kind))
        if held is not None:
            more = f' ({held} more like it since the last message)' if held else ''
            self._logger.warning(f'{source} rejected: {error}{more}')

    def stale_init(self, init: PendingInit, used_stamp_ns: int, kept: int) -> None:
        """Warn that an init's image had left the history."""
        self._logger.warning(
            f'{init.source}: the image stamped {init.stamp_ns * 1e-9:.3f} is not among the '
            f'{kept} images kept (init_history); starting on the newest, stamped '
            f'{used_stamp_ns * 1e-9:.3f}: the target may have moved',
            throttle_duration_sec=LOG_THROTTLE_SEC)

    def loaded(self, model: ModelHost) -> None:
        """Log a model ready to track."""
        layers = model.runtime.decoder_layers or model.total_layers
        self._logger.info(
            f'model {model.path} loaded on {model.tracker.backend.name} ({model.total_layers} '
            f'decoder layers, running {layers}) in {model.load_seconds:.1f} s')

    def started(self, init: PendingInit, box: Box, track_id: str, stamp: int) -> None:
        """Log a new target."""
        clipped = '' if tuple(box) == tuple(init.box) else \
            ' (clipped to the image from ({:.0f}, {:.0f}, {:g}, {:g}))'.format(*init.box)
        self._logger.info(
            f'tracking target {track_id} from {init.source}: box ({box[0]:.0f}, '
            f'{box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f}){clipped} on the image stamped '
            f'{stamp * 1e-9:.3f}')

    def size_changed(self, width: int, height: int, lost: bool) -> None:
        """Warn that the images changed size under a tracked target."""
        self._logger.warning(f'images are {width}x{height} now: ' + (
            'another aspect ratio: target declared lost, searched around its rescaled box'
            if lost else 'target box rescaled'))

    def skipped(self, error: Exception) -> None:
        """Warn about a frame that was not tracked."""
        self._logger.warning(f'image skipped: {error}', throttle_duration_sec=LOG_THROTTLE_SEC)

    def depth_switched(self, total: int, layers: Optional[int], seconds: float,
                       error: Optional[BaseException]) -> None:
        """Log the outcome of a decoder depth change of a model with ``total`` layers."""
        if error is None:
            self._logger.info(f'decoder_layers: {layers or total} of {total} layers running '
                              f'(ready after {seconds:.1f} s)')
        else:
            self._logger.error(f'decoder_layers {layers or total} could not be applied: '
                               f'{describe(error)}; the previous depth keeps running')
