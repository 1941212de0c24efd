"""
Echo every message of one topic back on another, from a process of its own.

Usage: ``python echo_node.py <package/msg/Type> <input topic> <output topic>``. The round-trip
tests start it so that messages really cross a process boundary over DDS.
"""

import importlib
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy


def main() -> None:
    """Run the echo until the process is terminated."""
    type_name, topic_in, topic_out = sys.argv[1:4]
    package, _, name = type_name.split('/')
    message_type = getattr(importlib.import_module(f'{package}.msg'), name)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    rclpy.init()
    node = rclpy.create_node('detrack_test_echo')
    publisher = node.create_publisher(message_type, topic_out, qos)
    node.create_subscription(message_type, topic_in, publisher.publish, qos)
    print('ready', flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
