"""The Hanning window the tracker multiplies candidate scores by."""

import numpy as np


def hann_window(grid: int) -> np.ndarray:
    """
    Return the (grid, grid) float32 2-D Hanning window over the search-token grid.

    The 1-D window has ``grid + 2`` points with the two zero ends dropped (OSTrack's
    ``hann2d(..., centered=True)``), so no cell is weighted zero and the peak sits on the
    crop centre, where the last state puts the target.
    """
    if grid < 1:
        raise ValueError(f'grid must be at least 1, got {grid}')
    line = np.hanning(grid + 2)[1:-1]
    return np.outer(line, line).astype(np.float32)
