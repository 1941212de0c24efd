"""
DETRack single-object tracking, free of ROS.

The network, its training, pruning, tracking runtime, evaluation and export live here and
import nothing from ROS, so they run and are tested on any machine with PyTorch.
"""

__version__ = '0.1.0'
