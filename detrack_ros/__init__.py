"""ROS 2 glue around :mod:`detrack_model`: the tracker node and its message adapters."""

__version__ = '0.1.0'
