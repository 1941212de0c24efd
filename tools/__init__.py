"""Developer tools: environment bootstrap for machines without a ROS 2 install."""
