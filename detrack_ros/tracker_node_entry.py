"""
Where the ``tracker_node`` executable starts: the process-wide settings, then the node.

:mod:`detrack_ros.tracker_node` loads PyTorch as it is imported, after which the OpenMP wait
policy can no longer change; so this module sets it first and imports the node only then.
"""

import sys
from typing import List, Optional

from detrack_model.runtime_env import prefer_passive_openmp


def main(args: Optional[List[str]] = None) -> int:
    """Prefer passive OpenMP waits, then run the node (:func:`detrack_ros.tracker_node.main`)."""
    prefer_passive_openmp()
    from detrack_ros import tracker_node
    return tracker_node.main(args)


if __name__ == '__main__':
    sys.exit(main())
