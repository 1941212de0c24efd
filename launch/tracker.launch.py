# Usage:
#   ros2 launch detrack_ros tracker.launch.py image:=/camera/image_raw
#   ros2 launch detrack_ros tracker.launch.py image:=/camera/image_raw namespace:=drone1 \
#       device:=cuda:0 params_file:=/path/to/my_tracker.yaml
#
# Launch arguments:
#   namespace    namespace of the node and of its relative topics (default: none)
#   image        the image topic the tracker reads: 'image' is remapped to it and
#                'image/compressed' to <image>/compressed (for image_transport: compressed)
#   params_file  the parameters file (default: the installed config/tracker.yaml)
#   device       the 'device' parameter: auto, cpu, cuda or cuda:N (overrides params_file)
#   model_path   the 'model_path' parameter; empty: the shipped model (overrides params_file)
#
# The node configures and activates itself (auto_activate: true). Give it a target by
# publishing a vision_msgs/Detection2D on 'init_box', e.g. by dragging a box with
#   ros2 run detrack_ros select_target --ros-args -r image:=/camera/image_raw
"""Launch the DETRack tracker as a lifecycle node that drives itself to active."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'detrack_ros'


def generate_launch_description() -> LaunchDescription:
    """Return the launch description: the arguments and the tracker lifecycle node."""
    default_params_file = os.path.join(get_package_share_directory(PACKAGE), 'config',
                                       'tracker.yaml')
    image = LaunchConfiguration('image')
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the tracker node and its topics.'),
        DeclareLaunchArgument('image', default_value='image',
                              description='Image topic the tracker reads (image is remapped '
                                          'to it, image/compressed to <image>/compressed).'),
        DeclareLaunchArgument('params_file', default_value=default_params_file,
                              description='YAML file with the tracker parameters.'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='Inference device: auto, cpu, cuda or cuda:N.'),
        DeclareLaunchArgument('model_path', default_value='',
                              description='Model bundle or .onnx file; empty: the shipped '
                                          'default model.'),
        LifecycleNode(
            package=PACKAGE,
            executable='tracker_node',
            name='tracker',
            namespace=LaunchConfiguration('namespace'),
            parameters=[
                LaunchConfiguration('params_file'),
                # ParameterValue keeps the strings strings ('' would otherwise be YAML null).
                {'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
                 'model_path': ParameterValue(LaunchConfiguration('model_path'),
                                              value_type=str)},
            ],
            remappings=[
                ('image', image),
                ('image/compressed', [image, '/compressed']),
            ],
            output='screen',
            emulate_tty=True,
        ),
    ])
