"""
COCO reader: every object instance is a one-frame "sequence".

Layout: ``root/annotations/instances_<split>.json`` and ``root/<split>/<file_name>``. Crowd
regions and boxes below ``min_area`` square pixels are left out: they are not single objects,
or too small to make a useful template.
"""

import json
import os

from detrack_model.data.sequences import (AnnotationError, make_sequence_info, SequenceInfo,
                                          TrackingDataset)
import numpy as np


class Coco(TrackingDataset):
    """Object instances of one COCO split, each a sequence of one frame."""

    is_video = False

    def __init__(self, root: str, split: str = 'train2017', min_area: float = 100.0,
                 name: str = 'coco') -> None:
        super().__init__()
        self.root = os.fspath(root)
        self.split = split
        self.name = name
        self.image_dir = os.path.join(self.root, split)
        path = os.path.join(self.root, 'annotations', f'instances_{split}.json')
        if not os.path.isfile(path):
            raise FileNotFoundError(f'COCO annotation file not found: {path}')
        self._load(path, min_area)

    def _load(self, path: str, min_area: float) -> None:
        try:
            with open(path, 'r', encoding='utf-8') as handle:
                data = json.load(handle)
        except json.JSONDecodeError as error:
            raise AnnotationError(f'{path}:{error.lineno}: invalid JSON ({error.msg}, '
                                  f'column {error.colno})') from None
        try:
            files = {int(image['id']): image['file_name'] for image in data['images']}
        except (KeyError, TypeError, ValueError) as error:
            raise AnnotationError(f'{path}: malformed "images" list ({error!r})') from None
        # The parsed JSON is hundreds of MB for train2017; keep only compact arrays so that
        # DataLoader workers forked from this process share little and copy less.
        names = sorted(set(files.values()))
        name_index = {file_name: i for i, file_name in enumerate(names)}
        boxes, images, ids = [], [], []
        for position, annotation in enumerate(data.get('annotations', [])):
            try:
                if annotation.get('iscrowd', 0):
                    continue
                box = [float(v) for v in annotation['bbox']]
                if len(box) != 4:
                    raise ValueError('bbox needs 4 numbers')
                image = name_index[files[int(annotation['image_id'])]]
                ann_id = int(annotation['id'])
            except (KeyError, TypeError, ValueError) as error:
                raise AnnotationError(
                    f'{path}: annotation #{position} is malformed ({error!r})') from None
            if box[2] * box[3] < min_area:
                continue
            boxes.append(box)
            images.append(image)
            ids.append(ann_id)
        self.file_names = names
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.image_index = np.asarray(images, dtype=np.int64)
        self.annotation_ids = np.asarray(ids, dtype=np.int64)

    def __len__(self) -> int:
        """Return the number of object instances kept."""
        return len(self.boxes)

    def sequence_name(self, index: int) -> str:
        """Return the annotation id as text."""
        return str(int(self.annotation_ids[index]))

    def frame_path(self, index: int, frame_index: int) -> str:
        """Return the image of instance ``index`` (``frame_index`` must be 0)."""
        if frame_index != 0:
            raise IndexError(f'{self.name}: instance {index} has a single frame, '
                             f'asked for {frame_index}')
        return os.path.join(self.image_dir, self.file_names[self.image_index[index]])

    def _load_sequence_info(self, index: int) -> SequenceInfo:
        return make_sequence_info(self.sequence_name(index), self.boxes[index:index + 1].copy())
