"""The ``synthetic`` dataset type: a generated split, read like any GOT-10k split."""

import logging
import os
from typing import Optional, Sequence, Union

from detrack_model.data.got10k import Got10k
from detrack_model.data.synthetic.writer import generate_dataset

LOG = logging.getLogger(__name__)


def synthetic_split(root: Union[str, os.PathLike], split: str = 'train',
                    sequences: Optional[int] = None, frames: Optional[int] = None,
                    seed: int = 0, size: Sequence[int] = (480, 360),
                    pool: Optional[Union[str, os.PathLike]] = None,
                    workers: int = 1) -> Got10k:
    """
    Return the reader of a generated split, generating it first if it is missing.

    ``sequences`` and ``frames`` (the split's size) are needed only to generate it; with
    ``pool`` it also draws from that image pool (``detrack-synth fetch-sources``). A split is
    generated once, deterministically from its seed; an existing one is read as it is.
    """
    root = os.fspath(root)
    try:
        return Got10k(root, split)
    except FileNotFoundError:
        pass  # not generated yet, or cut short before its list was written
    if sequences is None or frames is None:
        raise ValueError(f'synthetic split {os.path.join(root, split)} is missing and the entry '
                         'gives no "sequences" and "frames" to generate it with')
    LOG.info('generating synthetic split %s/%s (%d sequences)', root, split, int(sequences))
    generate_dataset(root, split, int(sequences), int(frames), size=tuple(size), seed=int(seed),
                     overwrite=True, pool=pool, workers=int(workers))
    return Got10k(root, split)
