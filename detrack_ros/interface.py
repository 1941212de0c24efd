"""
The tracker node's topics and services, as data: one table the README and a graph test read.

The publishers and subscriptions themselves are created where they are used
(:mod:`detrack_ros.image_input`, :mod:`detrack_ros.init_inputs`,
:mod:`detrack_ros.track_outputs`, :mod:`detrack_ros.target_3d_messages`, the services in
:mod:`detrack_ros.tracker_node`); ``test/ros/test_interface_docs.py`` runs the node and checks that
the graph holds exactly these. The parameters are :data:`detrack_ros.parameters.PARAMETERS`.
``python -m tools.make_interface_docs`` writes both tables into the README. No ROS imports:
the table serves tools that run without ROS.
"""

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Tuple

IN, OUT = 'in', 'out'


@dataclass(frozen=True)
class Topic:
    """One topic of the active node: name, direction, message type, what it carries."""

    # Relative to the node's namespace unless it starts with '/'.
    name: str
    direction: str
    # The full ROS type name, as the graph reports it: 'sensor_msgs/msg/Image'.
    type_name: str
    description: str
    # (parameter, value) pairs the topic needs; it exists only while all of them hold.
    when: Tuple[Tuple[str, Any], ...] = ()

    def exists(self, values: Mapping[str, Any]) -> bool:
        """Tell whether the active node has this topic with the parameter ``values``."""
        return all(values[name] == value for name, value in self.when)


@dataclass(frozen=True)
class Service:
    """One service of the configured node (besides the lifecycle and parameter services)."""

    name: str
    type_name: str
    description: str


TOPICS: Sequence[Topic] = (
    # -- inputs (subscribed on activate) ----------------------------------------------------
    Topic('image', IN, 'sensor_msgs/msg/Image', 'sensor-data QoS (`qos_reliability`); rgb8, '
          'bgr8, rgba8, bgra8, mono8, mono16, yuv422_yuy2, uyvy/yuv422, bayer_*',
          when=(('image_transport', 'raw'),)),
    Topic('image/compressed', IN, 'sensor_msgs/msg/CompressedImage', 'JPEG, PNG or TIFF; '
          'sensor-data QoS like `image`', when=(('image_transport', 'compressed'),)),
    Topic('init_box', IN, 'vision_msgs/msg/Detection2D', 'start (or restart) on this box; '
          "stamped like an image still in the node's short history, it starts on exactly "
          'that image'),
    Topic('init_roi', IN, 'sensor_msgs/msg/RegionOfInterest', 'the same, as an ROI'),
    Topic('init_click', IN, 'geometry_msgs/msg/Point', 'two clicks = two opposite corners; '
          "remap to rqt_image_view's `<image>_mouse_left`"),
    Topic('clicked_point', IN, 'geometry_msgs/msg/PointStamped', 'RViz2 "Publish Point", two '
          "clicks, projected through `camera_info`; RViz's Fixed Frame must be the camera's "
          'optical frame'),
    Topic('camera_info', IN, 'sensor_msgs/msg/CameraInfo', 'for `clicked_point`, '
          '`target_bearing` and the 3-D outputs (K)'),
    Topic('depth/image', IN, 'sensor_msgs/msg/Image', 'depth aligned to the colour image, '
          '16UC1 millimetres or 32FC1 metres (`depth_scale` for other units); sensor-data QoS '
          'like `image`', when=(('depth', True),)),
    Topic('detector/detections', IN, 'vision_msgs/msg/Detection2DArray', 'with `auto_init`: a '
          'detector hands over (class `auto_init_class_id`, score >= `auto_init_min_score`) '
          'while idle or lost'),
    # -- outputs (created on configure) -----------------------------------------------------
    Topic('detection', OUT, 'vision_msgs/msg/Detection2D', 'while tracked: bbox centre/size in '
          'pixels, one result (`class_id`, score), `id` = track id, new on every '
          'initialisation'),
    Topic('detections', OUT, 'vision_msgs/msg/Detection2DArray', 'every processed frame; empty '
          'while the target is lost'),
    Topic('target_bearing', OUT, 'geometry_msgs/msg/Vector3Stamped', 'while tracked and '
          "`camera_info` is usable: the unit ray through the box centre in the camera's "
          'optical frame (x right, y down, z forward), for gimbal or yaw control without '
          'depth'),
    Topic('target_point', OUT, 'geometry_msgs/msg/PointStamped', 'the target in the optical '
          "frame (metres), on the ray at the target's depth", when=(('depth', True),)),
    Topic('detection_3d', OUT, 'vision_msgs/msg/Detection3D', 'the same centre, size = box '
          'sides at that depth and the depth spread, same `id` and result (`class_id`, score) '
          'as `detection`', when=(('depth', True),)),
    Topic('debug_image', OUT, 'sensor_msgs/msg/Image', 'bgr8: box, score and search area; only '
          'built while someone subscribes'),
    Topic('/diagnostics', OUT, 'diagnostic_msgs/msg/DiagnosticArray', 'state (idle/tracking/'
          'lost/disabled/inactive), input and processing rate, model time, latency median/p95, '
          'received/processed/dropped frames, bad images, frames of another size, rejected and '
          'stale inits, re-acquisitions (re-detection finds), decoder layers running, 3-D '
          'outputs and their drops (below); see [when something goes wrong]'
          '(#memory-use-and-failures)'),
)

SERVICES: Sequence[Service] = (
    Service('reset', 'std_srvs/srv/Trigger', 'forget the target'),
    Service('enable', 'std_srvs/srv/SetBool', 'pause (false) or resume (true) processing'),
)
