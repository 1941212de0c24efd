"""
detrack-bag's 3-D outputs: the node's ``target_bearing``, ``target_point`` and ``detection_3d``.

With a camera_info topic, every tracked image gets ``<namespace>/target_bearing``
(geometry_msgs/Vector3Stamped); with an aligned depth topic too (sensor_msgs/Image, 16UC1
millimetres or 32FC1 metres), ``<namespace>/target_point`` (geometry_msgs/PointStamped) and
``<namespace>/detection_3d`` (vision_msgs/Detection3D). Each carries the colour image's header
and is recorded at its time. The rules (pairing by stamp within ``depth_sync_tolerance``,
calibration, depth statistic, counters, fields) are the node's own, with its default
parameters: :mod:`detrack_ros.target_3d_fields`.

Where the node waits up to ``depth_wait`` for a depth image that has not arrived, a bag is
read in recording order: a tracked image's 3-D output waits until a depth image stamped past
its pairing window has been read (or the bag ends), so depth recorded just after its colour
image still pairs.
"""

import collections
from typing import Any, Callable, Deque, Dict, NamedTuple, Optional, Tuple, TYPE_CHECKING

from detrack_ros.bag_io import BagMessage, BagWriter
from detrack_ros.detection_fields import stamp_ns
from detrack_ros.parameters import SPECS
from detrack_ros.target_3d_fields import (bearing_fields, COUNTERS, detection_3d_fields,
                                          LIVE_PARAMETERS, point_fields, Target3DEstimator)
import numpy as np

if TYPE_CHECKING:  # bag_tool builds this hook: the import only serves the annotations
    from detrack_ros.bag_tool import BagRun, TrackedFrame

BEARING_TYPE = 'geometry_msgs/msg/Vector3Stamped'
POINT_TYPE = 'geometry_msgs/msg/PointStamped'
DETECTION_3D_TYPE = 'vision_msgs/msg/Detection3D'
# Frames without an answer are told one by one up to this many per cause, then only counted.
SHOWN_PER_CAUSE = 3


class _Waiting(NamedTuple):
    """A tracked image whose 3-D output waits for its depth image."""

    header: Any
    log_time: int
    box: np.ndarray
    detection: Dict[str, Any]
    image_size: Tuple[int, int]


class BagTarget3D:
    """A :class:`~detrack_ros.bag_tool.FrameHook` writing the node's 3-D outputs."""

    def __init__(self, camera_info_topic: str, depth_topic: str = '',
                 namespace: str = '/tracker', log: Callable[[str], None] = print) -> None:
        self.topics = tuple(topic for topic in (camera_info_topic, depth_topic) if topic)
        self.counts: collections.Counter = collections.Counter()
        self._camera_info_topic = camera_info_topic
        self._depth_topic = depth_topic
        self._namespace = namespace.rstrip('/')
        self._log = log
        self._live = {name: SPECS[name].default for name in LIVE_PARAMETERS}
        self._tolerance_ns = int(round(self._live['depth_sync_tolerance'] * 1e9))
        self._estimator = Target3DEstimator(self.counts, self._live, self._tell,
                                            camera_info_topic)
        self._camera_info: Any = None
        self._newest_depth: Optional[int] = None
        self._waiting: Deque[_Waiting] = collections.deque()
        self.depth_images = 0

    def on_message(self, message: BagMessage) -> None:
        """Keep the newest camera_info; keep a depth image and answer the images it settles."""
        if message.topic == self._camera_info_topic:
            self._camera_info = message.message
            return
        self.depth_images += 1
        stamp = stamp_ns(message.message.header)
        # A bad depth image still shows how far the depth stream has got.
        self._newest_depth = stamp if self._newest_depth is None \
            else max(self._newest_depth, stamp)
        self._estimator.add_depth(message.message)

    def on_tracked(self, tracked: 'TrackedFrame', writer: BagWriter) -> None:
        """Write the 3-D outputs of a tracked image, or hold them until its depth is read."""
        if tracked.lost:
            return
        array = tracked.frame.array
        waiting = _Waiting(tracked.header, tracked.log_time, tracked.box, tracked.detection,
                           (array.shape[1], array.shape[0]))
        if not self._depth_topic:
            self._write(waiting, writer)
            return
        self._waiting.append(waiting)
        self._flush(writer, at_end=False)

    def finish(self, writer: BagWriter, result: 'BagRun') -> None:
        """Write the images still waiting; put the counts and a summary into ``result``."""
        self._flush(writer, at_end=True)
        result.counts.update({name: self.counts[name] for name in COUNTERS})
        bearings = writer.counts.get(f'{self._namespace}/target_bearing', 0)
        answered = f'{bearings} bearings'
        if self._depth_topic:
            answered += (f', {self.counts["target_points"]} target points (depth images: '
                         f'{self.depth_images} read, {self.counts["depth_bad_images"]} could '
                         'not be used)')
        result.notes.append(f'3-D outputs            {answered}')
        missed = [f'{self.counts["camera_info_unusable"]} without usable camera_info']
        if self._depth_topic:
            tolerance = self._live['depth_sync_tolerance']
            missed[:0] = [f'{self.counts["depth_unmatched"]} without a depth image within '
                          f'{tolerance:g} s',
                          f'{self.counts["depth_too_few_valid"]} with too few valid depth '
                          'pixels',
                          f'{self.counts["depth_size_mismatch"]} with depth of another size']
        result.notes.append(f'3-D not answered       {", ".join(missed)}')

    def _flush(self, writer: BagWriter, at_end: bool) -> None:
        waiting = self._waiting
        while waiting:
            stamp = stamp_ns(waiting[0].header)
            # Depth stamped past the window means no later image can pair better (the node's
            # StampedHistory stops waiting on the same condition).
            settled = self._newest_depth is not None and \
                self._newest_depth >= stamp + self._tolerance_ns
            if not (settled or at_end):
                return
            self._write(waiting.popleft(), writer)

    def _write(self, frame: _Waiting, writer: BagWriter) -> None:
        estimator = self._estimator
        depth = bool(self._depth_topic)
        intrinsics = estimator.intrinsics(self._camera_info, frame.image_size, tell=depth)
        if intrinsics is None:
            return
        header, log_time, box = frame.header, frame.log_time, frame.box
        writer.write(f'{self._namespace}/target_bearing', BEARING_TYPE,
                     {'header': header, **bearing_fields(box, intrinsics)}, log_time)
        if not depth:
            return
        target = estimator.locate(stamp_ns(header), box, intrinsics, frame.image_size)
        if target is None:
            return
        writer.write(f'{self._namespace}/target_point', POINT_TYPE,
                     {'header': header, **point_fields(target)}, log_time)
        detection = frame.detection
        hypotheses = [(r['hypothesis']['class_id'], r['hypothesis']['score'])
                      for r in detection['results']]
        writer.write(f'{self._namespace}/detection_3d', DETECTION_3D_TYPE,
                     {'header': header, **detection_3d_fields(target, detection['id'],
                                                              hypotheses)}, log_time)
        estimator.counts['target_points'] += 1

    def _tell(self, counter: str, message: str) -> None:
        shown = self.counts[counter]
        if shown <= SHOWN_PER_CAUSE:
            more = ' (further ones only counted)' if shown == SHOWN_PER_CAUSE else ''
            self._log(f'{message}{more}')
