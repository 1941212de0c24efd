"""
TrackingNet reader.

Layout: ``root/TRAIN_<k>/anno/<sequence>.txt`` (x,y,w,h per frame) and
``root/TRAIN_<k>/frames/<sequence>/<i>.jpg`` numbered from 0.
"""

import os
import re
from typing import Optional, Sequence

from detrack_model.data.annotations import read_boxes
from detrack_model.data.sequences import make_sequence_info, SequenceInfo, TrackingDataset

_CHUNK = re.compile(r'^TRAIN_(\d+)$')


class TrackingNet(TrackingDataset):
    """TrackingNet training chunks ``TRAIN_<k>`` for each k in ``chunks`` (None: all found)."""

    is_video = True

    def __init__(self, root: str, chunks: Optional[Sequence[int]] = None,
                 name: str = 'trackingnet') -> None:
        super().__init__()
        self.root = os.fspath(root)
        self.name = name
        if chunks is None:
            if not os.path.isdir(self.root):
                raise FileNotFoundError(f'TrackingNet root not found: {self.root}')
            found = (_CHUNK.match(entry) for entry in os.listdir(self.root))
            chunks = sorted(int(match.group(1)) for match in found if match)
        self.chunks = [int(k) for k in chunks]
        # (chunk, sequence) pairs; sequence names repeat across chunks in principle.
        self.sequences = []
        for chunk in self.chunks:
            anno_dir = os.path.join(self.root, f'TRAIN_{chunk}', 'anno')
            if not os.path.isdir(anno_dir):
                raise FileNotFoundError(f'TrackingNet annotation folder not found: {anno_dir}')
            names = sorted(entry[:-4] for entry in os.listdir(anno_dir) if entry.endswith('.txt'))
            self.sequences.extend((chunk, seq) for seq in names)
        if not self.sequences:
            raise FileNotFoundError(f'no TrackingNet sequences found under {self.root}')

    def __len__(self) -> int:
        """Return the number of sequences."""
        return len(self.sequences)

    def sequence_name(self, index: int) -> str:
        """Return ``TRAIN_<k>/<sequence>``."""
        chunk, seq = self.sequences[index]
        return f'TRAIN_{chunk}/{seq}'

    def frame_path(self, index: int, frame_index: int) -> str:
        """Return the image file of frame ``frame_index`` (0-based) of sequence ``index``."""
        chunk, seq = self.sequences[index]
        return os.path.join(self.root, f'TRAIN_{chunk}', 'frames', seq, f'{frame_index}.jpg')

    def _load_sequence_info(self, index: int) -> SequenceInfo:
        chunk, seq = self.sequences[index]
        boxes = read_boxes(os.path.join(self.root, f'TRAIN_{chunk}', 'anno', f'{seq}.txt'))
        return make_sequence_info(self.sequence_name(index), boxes)
