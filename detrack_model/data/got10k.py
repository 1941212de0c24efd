"""
GOT-10k reader.

Layout: ``root/{train,val,test}/list.txt`` names the sequence directories of each split; a
sequence directory holds ``00000001.jpg ...``, ``groundtruth.txt`` (x,y,w,h per line; the test
split gives only the first line), ``absence.label`` (1 = target absent) and ``cover.label``
(0..8, 0 = fully occluded).
"""

import glob
import os
from typing import Optional

from detrack_model.data.annotations import (check_length, NameList, read_boxes, read_flags,
                                            read_name_list)
from detrack_model.data.sequences import make_sequence_info, SequenceInfo, TrackingDataset
import numpy as np


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

    def frame_path(self, index: int, frame_index: int) -> str:
        """Return the image file of frame ``frame_index`` (0-based) of sequence ``index``."""
        return os.path.join(self.split_dir, self.sequences[index], f'{frame_index + 1:08d}.jpg')

    def _load_sequence_info(self, index: int) -> SequenceInfo:
        directory = os.path.join(self.split_dir, self.sequences[index])
        boxes = read_boxes(os.path.join(directory, 'groundtruth.txt'))
        present = None
        absence_file = os.path.join(directory, 'absence.label')
        cover_file = os.path.join(directory, 'cover.label')
        if os.path.isfile(absence_file):
            absent = check_length(absence_file, read_flags(absence_file), len(boxes))
            present = absent == 0
        if os.path.isfile(cover_file):
            cover = check_length(cover_file, read_flags(cover_file), len(boxes))
            present = cover > 0 if present is None else present & (cover > 0)
        if len(boxes) <= 1:
            # The test split annotates only the first frame: the other frames exist, boxes
            # unknown.
            frames = len(glob.glob(os.path.join(directory, '*.jpg')))
            if frames > len(boxes):
                unknown = np.full((frames - len(boxes), 4), np.nan)
                boxes = np.concatenate([boxes, unknown])
                if present is not None:
                    present = np.concatenate([present, np.zeros(len(unknown), dtype=bool)])
        return make_sequence_info(self.sequences[index], boxes, present)
