"""
DETRack single-object tracking, free of ROS.

The network, its training, pruning, tracking runtime, evaluation and export live here and
import nothing from ROS, so they run and are tested on any machine with PyTorch.
"""

__version__ = '0.1.0'

import os

# OpenMP threads that spin between PyTorch ops fight OpenCV's own threads (image decoding,
# crops) for the cores: on small machines a 6 ms forward pass then takes up to a second.
# Sleeping waits avoid that; it only takes effect when PyTorch has not been imported yet, and
# an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
