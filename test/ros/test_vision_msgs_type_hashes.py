"""
The vision_msgs in use is wire-compatible with the official vision_msgs 4.1.1.

ROS 2 endpoints only match when their type hashes (RIHS01, over field names, types and order of
the type and everything it nests) are equal: a stand-in that differs in one field would leave
real vision_msgs subscribers silently unconnected. On a robot this checks the distribution's
package; here it checks the one built from interfaces/vision_msgs.
"""

import json
import pathlib

from ament_index_python.packages import get_package_share_directory
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from ros_graph import spin_until, unique_topic

# Type hashes of the official vision_msgs 4.1.1 built against ROS 2 Kilted.
OFFICIAL_HASHES = {
    'BoundingBox2D': 'RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f',
    'BoundingBox2DArray':
        'RIHS01_2464e82838009386d371b523211c21c91d74d313fcdd6788223c531d621cf691',
    'BoundingBox3D': 'RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698',
    'Classification': 'RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'Detection2D': 'RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea',
    'Detection2DArray':
        'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'Detection3D': 'RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b',
    'LabelInfo': 'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
    'ObjectHypothesis':
        'RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90',
    'ObjectHypothesisWithPose':
        'RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc',
    'Point2D': 'RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247',
    'Pose2D': 'RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648',
    'VisionClass': 'RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a',
}
ALL_MESSAGES = sorted(set(OFFICIAL_HASHES) | {
    'BoundingBox3DArray', 'Detection3DArray', 'VisionInfo'})

# The types the tracker publishes, with their fields in wire order.
FIELDS = {
    'Detection2D': {'header': 'std_msgs/Header',
                    'results': 'sequence<vision_msgs/ObjectHypothesisWithPose>',
                    'bbox': 'vision_msgs/BoundingBox2D', 'id': 'string'},
    'Detection2DArray': {'header': 'std_msgs/Header',
                         'detections': 'sequence<vision_msgs/Detection2D>'},
    'BoundingBox2D': {'center': 'vision_msgs/Pose2D', 'size_x': 'double', 'size_y': 'double'},
    'Pose2D': {'position': 'vision_msgs/Point2D', 'theta': 'double'},
    'Point2D': {'x': 'double', 'y': 'double'},
    'ObjectHypothesis': {'class_id': 'string', 'score': 'double'},
    'ObjectHypothesisWithPose': {'hypothesis': 'vision_msgs/ObjectHypothesis',
                                 'pose': 'geometry_msgs/PoseWithCovariance'},
    'Detection3D': {'header': 'std_msgs/Header',
                    'results': 'sequence<vision_msgs/ObjectHypothesisWithPose>',
                    'bbox': 'vision_msgs/BoundingBox3D', 'id': 'string'},
    'BoundingBox3D': {'center': 'geometry_msgs/Pose', 'size': 'geometry_msgs/Vector3'},
}


def type_description(name: str) -> dict:
    """Load the generated type description (with hashes) of vision_msgs/msg/<name>."""
    share = pathlib.Path(get_package_share_directory('vision_msgs'))
    return json.loads((share / 'msg' / f'{name}.json').read_text())


def message_class(name: str):
    """Return the Python class of vision_msgs/msg/<name>."""
    import vision_msgs.msg
    return getattr(vision_msgs.msg, name)


@pytest.mark.parametrize('name', sorted(OFFICIAL_HASHES))
def test_generated_type_hash_equals_official(name):
    """The build's type description hashes to the official value."""
    hashes = {entry['type_name']: entry['hash_string']
              for entry in type_description(name)['type_hashes']}
    assert hashes[f'vision_msgs/msg/{name}'] == OFFICIAL_HASHES[name]


@pytest.mark.parametrize('outer, names', [
    ('Detection2D', ('BoundingBox2D', 'ObjectHypothesisWithPose', 'ObjectHypothesis', 'Pose2D',
                     'Point2D')),
    ('Detection3D', ('BoundingBox3D', 'ObjectHypothesisWithPose', 'ObjectHypothesis'))])
def test_nested_types_hash_like_their_own_descriptions(outer, names):
    """Types nested in a detection carry the same hash as their standalone description."""
    nested = {entry['type_name']: entry['hash_string']
              for entry in type_description(outer)['type_hashes']}
    for name in names:
        assert nested[f'vision_msgs/msg/{name}'] == OFFICIAL_HASHES[name]


@pytest.mark.parametrize('name', ALL_MESSAGES)
def test_every_message_is_generated_and_importable(name):
    """All 16 vision_msgs 4.1.1 messages exist and construct."""
    assert type_description(name)['type_hashes'][0]['type_name'] == f'vision_msgs/msg/{name}'
    message_class(name)()


@pytest.mark.parametrize('name', sorted(FIELDS))
def test_field_layout(name):
    """The published messages have the 4.x fields in wire order (bbox.center.position.x)."""
    fields = message_class(name).get_fields_and_field_types()
    assert list(fields.items()) == list(FIELDS[name].items())


@pytest.mark.parametrize('name', ['Detection2D', 'Detection2DArray', 'BoundingBox2D',
                                  'ObjectHypothesisWithPose', 'Detection3D', 'BoundingBox3D'])
def test_hash_advertised_on_the_graph_equals_official(ros_context, name):
    """The hash a live publisher advertises over DDS is the official one."""
    node = rclpy.create_node('type_hash_probe', context=ros_context)
    try:
        topic = unique_topic('type_hash')
        node.create_publisher(message_class(name), topic, QoSProfile(depth=1))
        executor = SingleThreadedExecutor(context=ros_context)
        executor.add_node(node)
        assert spin_until(executor, lambda: node.get_publishers_info_by_topic(topic))
        info = node.get_publishers_info_by_topic(topic)[0]
        assert info.topic_type == f'vision_msgs/msg/{name}'
        assert str(info.topic_type_hash) == OFFICIAL_HASHES[name]
        executor.shutdown()
    finally:
        node.destroy_node()
