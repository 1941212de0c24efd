"""
The topics that give the tracker node its target, turned into requests to its session.

``init_box`` (Detection2D), ``init_roi`` (RegionOfInterest), ``init_click`` (two Point
clicks, rqt_image_view), ``clicked_point`` (two PointStamped clicks, RViz "Publish Point",
projected through ``camera_info``) and ``detector/detections`` (Detection2DArray, taken only
while the session wants a detection). What a message says is read by
:mod:`detrack_ros.init_boxes`; whether it is a usable box is the session's rule.
"""

import collections
from typing import Any, Callable, Dict, List, Optional

from detrack_model.tracking.boxes import Box, ClickPair, InitBoxError
from detrack_model.tracking.session import TrackingSession
from detrack_ros.detection_messages import stamp_ns
from detrack_ros.init_boxes import (box_from_detection, box_from_roi, project_point,
                                    select_detection)
from detrack_ros.session_log import SessionLog
from geometry_msgs.msg import Point, PointStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, RegionOfInterest
from vision_msgs.msg import Detection2D, Detection2DArray


class InitInputs:
    """Subscriptions for new targets; each accepted one is handed to the session."""

    def __init__(self, node: Node, live: Dict[str, Any],
                 session: Callable[[], Optional[TrackingSession]], accepted: Callable[[], None],
                 counts: collections.Counter, log: SessionLog) -> None:
        # ``live`` holds the node's current parameter values; ``accepted`` wakes inference.
        self._node, self._live, self._session = node, live, session
        self._accepted, self._counts, self._log = accepted, counts, log
        self.camera_info: Optional[CameraInfo] = None
        self._clicks = ClickPair(live['click_timeout'])
        self._rviz_clicks = ClickPair(live['click_timeout'])

    def subscribe(self) -> List[Any]:
        """Create the subscriptions (the caller destroys them)."""
        node = self._node
        return [
            node.create_subscription(Detection2D, 'init_box', self._on_init_box, 10),
            node.create_subscription(RegionOfInterest, 'init_roi', self._on_init_roi, 10),
            node.create_subscription(Point, 'init_click', self._on_init_click, 10),
            node.create_subscription(PointStamped, 'clicked_point', self._on_clicked_point, 10),
            node.create_subscription(CameraInfo, 'camera_info', self._on_camera_info,
                                     qos_profile_sensor_data),
            node.create_subscription(Detection2DArray, 'detector/detections',
                                     self._on_detector, 10),
        ]

    def forget_clicks(self) -> None:
        """Drop a first corner still waiting for its second."""
        self._clicks.reset()
        self._rviz_clicks.reset()

    def _request(self, box: Box, source: str, stamp: Optional[int] = None) -> None:
        session = self._session()
        if session is not None and session.request_init(box, source, stamp):
            self._accepted()

    def _reject(self, source: str, error: InitBoxError) -> None:
        session = self._session()
        (session.counters if session is not None else self._counts)['init_rejected'] += 1
        self._log.rejected(source, error)

    def _on_init_box(self, msg: Detection2D) -> None:
        self._request(box_from_detection(msg), 'init_box', stamp_ns(msg.header))

    def _on_init_roi(self, msg: RegionOfInterest) -> None:
        self._request(box_from_roi(msg), 'init_roi')

    def _on_init_click(self, msg: Point) -> None:
        now = self._node.get_clock().now().nanoseconds * 1e-9
        self._add_click(self._clicks, 'init_click', msg.x, msg.y, now)

    def _on_clicked_point(self, msg: PointStamped) -> None:
        try:
            u, v = project_point(msg, self.camera_info)
        except InitBoxError as error:
            self._rviz_clicks.reset()
            self._reject('clicked_point', error)
            return
        stamp = stamp_ns(msg.header) * 1e-9 or self._node.get_clock().now().nanoseconds * 1e-9
        self._add_click(self._rviz_clicks, 'clicked_point', u, v, stamp)

    def _add_click(self, pair: ClickPair, source: str, x: float, y: float,
                   stamp_sec: float) -> None:
        pair.timeout_sec = self._live['click_timeout']
        try:
            box = pair.add(x, y, stamp_sec)
        except InitBoxError as error:
            self._reject(source, error)
            return
        if box is None:
            self._node.get_logger().info(f'{source}: first corner ({x:.0f}, {y:.0f}); click '
                                         'the opposite corner')
            return
        self._request(box, source)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _on_detector(self, msg: Detection2DArray) -> None:
        session = self._session()
        if session is None or not session.wants_detections:
            return
        settings = session.settings
        try:
            best = select_detection(msg, settings.auto_init_class_id,
                                    settings.auto_init_min_score)
        except InitBoxError as error:
            self._reject('detector', error)
            return
        if best is not None and session.offer_detection(best[0], best[1], 'detector',
                                                        stamp_ns(msg.header)):
            self._accepted()
