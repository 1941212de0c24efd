"""
LaSOT reader.

Layout: ``root/<category>/<category>-<k>/`` with ``img/00000001.jpg ...``, ``groundtruth.txt``
(x,y,w,h per line), ``full_occlusion.txt`` and ``out_of_view.txt`` (one line of comma-separated
0/1 flags).
"""

import os
from typing import Optional

from detrack_model.data.annotations import (check_length, NameList, read_boxes, read_flags,
                                            read_name_list)
from detrack_model.data.sequences import make_sequence_info, SequenceInfo, TrackingDataset


class LaSOT(TrackingDataset):
    """
    LaSOT, all sequences found under ``root`` or those named by ``sequences``.

    ``sequences`` (a list of names such as ``airplane-1`` or a file with one per line) selects a
    split, e.g. the standard 1120-sequence training list.
    """

    is_video = True

    def __init__(self, root: str, sequences: Optional[NameList] = None,
                 name: str = 'lasot') -> None:
        super().__init__()
        self.root = os.fspath(root)
        self.name = name
        if sequences is None:
            self.sequences = self._scan()
        else:
            self.sequences = read_name_list(sequences)
        if not self.sequences:
            raise FileNotFoundError(f'no LaSOT sequences found under {self.root}')

    def _scan(self):
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f'LaSOT root not found: {self.root}')
        names = []
        for category in sorted(os.listdir(self.root)):
            category_dir = os.path.join(self.root, category)
            if not os.path.isdir(category_dir):
                continue
            names.extend(entry for entry in os.listdir(category_dir)
                         if entry.startswith(category + '-')
                         and os.path.isdir(os.path.join(category_dir, entry)))
        # Natural order (airplane-2 before airplane-10) keeps indices stable across machines.
        return sorted(names, key=lambda n: (n.rsplit('-', 1)[0], _number(n.rsplit('-', 1)[-1])))

    def __len__(self) -> int:
        """Return the number of sequences."""
        return len(self.sequences)

    def sequence_name(self, index: int) -> str:
        """Return the name of sequence ``index``."""
        return self.sequences[index]

    def _directory(self, index: int) -> str:
        name = self.sequences[index]
        return os.path.join(self.root, name.rsplit('-', 1)[0], name)

    def frame_path(self, index: int, frame_index: int) -> str:
        """Return the image file of frame ``frame_index`` (0-based) of sequence ``index``."""
        return os.path.join(self._directory(index), 'img', f'{frame_index + 1:08d}.jpg')

    def _load_sequence_info(self, index: int) -> SequenceInfo:
        directory = self._directory(index)
        boxes = read_boxes(os.path.join(directory, 'groundtruth.txt'))
        present = None
        for flag_name in ('full_occlusion.txt', 'out_of_view.txt'):
            path = os.path.join(directory, flag_name)
            if os.path.isfile(path):
                flags = check_length(path, read_flags(path, single_line=True), len(boxes))
                present = (flags == 0) if present is None else present & (flags == 0)
        return make_sequence_info(self.sequences[index], boxes, present)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else -1
