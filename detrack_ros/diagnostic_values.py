"""The key/value pairs of the tracker node's ``/diagnostics`` status (the README lists them)."""

import collections
from typing import Any, Dict, Optional

from detrack_model.tracking.model_host import ModelHost
from detrack_model.tracking.session import TrackingSession
from detrack_ros.frame_mailbox import FrameMailbox
from detrack_ros.target_3d_messages import diagnostics_values

# Counters of the node and its session published under their own names.
COUNTED = ('bad_images', 'frame_size_changes', 'init_rejected', 'init_stale', 'errors')


def diagnostic_values(state: str, session: Optional[TrackingSession],
                      model: Optional[ModelHost], counters: collections.Counter,
                      mailbox: FrameMailbox, rates: Dict[str, str]) -> Dict[str, Any]:
    """Return the status values of a node in ``state`` (``rates``: its NodeStatistics)."""
    tracker = session.tracker if session is not None else None
    return {
        'state': state,
        'track_id': session.track_id if session is not None else '',
        'score': f'{tracker.score:.3f}' if tracker is not None else '',
        'frames_received': mailbox.received,
        'frames_processed': counters['processed'],
        'frames_dropped': mailbox.dropped,
        **{key: counters[key] for key in COUNTED},
        'reacquisitions': tracker.reacquisitions if tracker is not None else 0,
        'backend': tracker.backend.name if tracker is not None else '',
        'decoder_layers': model.depth_label() if model is not None else '',
        'model': model.path if model is not None else '',
        **diagnostics_values(counters),
        **rates,
    }
