"""
Test doubles of a tracking session: a scripted backend and a recording reporter.

Shared by the session tests (tracking/) and the node's ROS-free parts (ros/).
"""

from detrack_model.tracking.backends import infer_each
import numpy as np


class ScriptedBackend:
    """A backend that always answers one candidate box in the middle of the crop."""

    template_size, search_size, grid, name = 32, 64, 4, 'scripted'

    def __init__(self, score=0.9):
        self.answer = (np.array([[0.5, 0.5, 0.25, 0.25]], np.float32),
                       np.array([score], np.float32), np.array([5]))
        self.templates = 0

    def set_template(self, crop):
        self.templates += 1

    def infer(self, crop):
        return self.answer

    def infer_batch(self, crops):
        return infer_each(self, crops)

    def release(self):
        pass


class Recorder:
    """A Reporter that keeps every event."""

    def __init__(self):
        self.events = []

    def rejected(self, source, error):
        self.events.append(('rejected', source, error.kind))

    def stale_init(self, init, used_stamp_ns, kept):
        self.events.append(('stale', init.stamp_ns, used_stamp_ns, kept))

    def started(self, init, box, track_id, stamp_ns):
        self.events.append(('started', init.source, tuple(box), stamp_ns))

    def skipped(self, error):
        self.events.append(('skipped', type(error).__name__))

    def size_changed(self, width, height, lost):
        self.events.append(('size', width, height, lost))
