"""
GOT-10k reader: the one set of layout rules for training and evaluation.

Layout: ``root/{train,val,test}/list.txt`` names the sequence directories of each split; a
sequence directory holds ``00000001.jpg ...``, ``groundtruth.txt`` (x,y,w,h per line),
``absence.label`` (1 = target absent) and ``cover.label`` (0..8, 0 = fully occluded); sequences
written by the generator also list the look-alikes of the target in each frame
(``distractors.txt``, ``frame,x,y,w,h`` lines).

As in the GOT-10k toolkit, the frames of a sequence are its sorted ``*.jpg`` files, and only
the ``test`` split may annotate the first frame alone: its other frames get NaN boxes and are
not visible. Every other split annotates every frame.
"""

import os
from typing import List, Optional

from detrack_model.data.annotations import (check_length, NameList, read_boxes, read_flags,
                                            read_frame_boxes, read_name_list)
from detrack_model.data.sequences import (FRAME_SUFFIX, list_frames, make_sequence_info,
                                          SequenceInfo, TrackingDataset)
import numpy as np

# The split whose ground truth is withheld except for the first box.
FIRST_BOX_ONLY_SPLIT = 'test'
# Boxes of objects that look like the target, not in GOT-10k itself: the generator writes them.
DISTRACTOR_FILE = 'distractors.txt'


class Got10k(TrackingDataset):
    """
    One split of GOT-10k.

    ``sequences`` selects a subset of the split (a list of names or a file with one per line),
    e.g. pytracking's ``vottrain`` list.
    """

    is_video = True

    def __init__(self, root: str, split: str = 'train',
                 sequences: Optional[NameList] = None) -> None:
        super().__init__()
        self.root = os.fspath(root)
        self.split = split
        self.name = f'got10k-{split}'
        self.split_dir = os.path.join(self.root, split)
        list_file = os.path.join(self.split_dir, 'list.txt')
        if sequences is None:
            if not os.path.isfile(list_file):
                raise FileNotFoundError(f'GOT-10k split list not found: {list_file}')
            sequences = list_file
        self.sequences = read_name_list(sequences)

    def __len__(self) -> int:
        """Return the number of sequences."""
        return len(self.sequences)

    def sequence_name(self, index: int) -> str:
        """Return the name of sequence ``index``."""
        return self.sequences[index]

    def sequence_dir(self, index: int) -> str:
        """Return the directory of sequence ``index``."""
        return os.path.join(self.split_dir, self.sequences[index])

    def annotation_file(self, index: int) -> str:
        """Return the ground-truth file of sequence ``index``."""
        return os.path.join(self.sequence_dir(index), 'groundtruth.txt')

    def frame_files(self, index: int) -> List[str]:
        """Return every frame file of sequence ``index``, in order (see :func:`list_frames`)."""
        return list_frames(self.sequence_dir(index))

    def frame_path(self, index: int, frame_index: int) -> str:
        """Return the image file of frame ``frame_index`` (0-based) of sequence ``index``."""
        # Named by rule rather than listed: sampling a pair must not scan the directory.
        return os.path.join(self.sequence_dir(index), f'{frame_index + 1:08d}{FRAME_SUFFIX}')

    def _load_sequence_info(self, index: int) -> SequenceInfo:
        directory = self.sequence_dir(index)
        boxes = read_boxes(self.annotation_file(index))
        present = _presence(directory, len(boxes))
        if self.split == FIRST_BOX_ONLY_SPLIT and len(boxes) == 1:
            unknown = len(self.frame_files(index)) - 1
            if unknown > 0:
                boxes = np.concatenate([boxes, np.full((unknown, 4), np.nan)])
                if present is not None:
                    present = np.concatenate([present, np.zeros(unknown, dtype=bool)])
        info = make_sequence_info(self.sequences[index], boxes, present)
        listed = os.path.join(directory, DISTRACTOR_FILE)
        if os.path.isfile(listed):
            info.distractors = read_frame_boxes(listed, len(boxes))
        return info


def _presence(directory: str, count: int) -> Optional[np.ndarray]:
    """Return per-frame presence from ``absence.label`` and ``cover.label``, if either exists."""
    present = None
    for label, keep in (('absence.label', lambda v: v == 0), ('cover.label', lambda v: v > 0)):
        path = os.path.join(directory, label)
        if os.path.isfile(path):
            flags = keep(check_length(path, read_flags(path), count))
            present = flags if present is None else present & flags
    return present
