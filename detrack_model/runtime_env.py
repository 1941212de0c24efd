"""
Process-wide runtime settings, applied by the programs that run the model, never on import.

A library that changed the environment of every process importing it would surprise its
users; each command and the ROS node call these at start-up instead.
"""

import os
from typing import MutableMapping, Optional

WAIT_POLICY = 'OMP_WAIT_POLICY'


def prefer_passive_openmp(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """
    Let idle OpenMP threads sleep instead of spinning, unless the environment says otherwise.

    Between PyTorch ops, spinning OpenMP threads take the cores from OpenCV's own threads
    (image decoding, crops): on small machines a 6 ms forward pass then takes up to a second.
    The OpenMP runtime reads ``OMP_WAIT_POLICY`` once, when PyTorch loads it, so call this
    before the first ``import torch``; later it changes nothing. An explicit value wins.
    Return the policy now in ``environ`` (default: ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    return environ.setdefault(WAIT_POLICY, 'PASSIVE')
