"""
Write tiny datasets in the real on-disk layouts of GOT-10k, LaSOT, TrackingNet and COCO.

For the reader and training tests: the readers see exactly the files the real benchmarks ship,
only few and small. Frames are smooth random textures with a bright textured box moving
over them, saved as JPEG; every writer returns the boxes it wrote.
"""

import json
import os
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np


def toy_frames(rng: np.random.Generator, num_frames: int, width: int = 160,
               height: int = 120) -> Tuple[List[np.ndarray], np.ndarray]:
    """Return ``num_frames`` RGB frames and their (N, 4) x, y, w, h boxes of a moving target."""
    grid = rng.integers(0, 256, size=(max(height // 16, 2), max(width // 16, 2), 3),
                        dtype=np.uint8)
    background = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    size = np.array([width, height], dtype=np.float64)
    wh = np.round(size * rng.uniform(0.15, 0.3, size=2))
    start = rng.uniform(0, 1, size=2) * (size - wh)
    end = rng.uniform(0, 1, size=2) * (size - wh)
    target = rng.integers(128, 256, size=(int(wh[1]), int(wh[0]), 3), dtype=np.uint8)
    frames, boxes = [], []
    for t in np.linspace(0.0, 1.0, num_frames):
        x, y = np.round(start + t * (end - start))
        frame = background.copy()
        frame[int(y):int(y) + target.shape[0], int(x):int(x) + target.shape[1]] = target
        frames.append(frame)
        boxes.append([x, y, wh[0], wh[1]])
    return frames, np.asarray(boxes, dtype=np.float64)


def _write_jpeg(path: str, frame_rgb: np.ndarray) -> None:
    if not cv2.imwrite(path, cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f'cannot write {path}')


def _write_boxes(path: str, boxes: np.ndarray) -> None:
    with open(path, 'w', encoding='utf-8') as handle:
        for box in boxes:
            handle.write(','.join(f'{v:.4f}' for v in box) + '\n')


def write_got10k(root: str, split: str = 'train', num_sequences: int = 3, num_frames: int = 10,
                 width: int = 160, height: int = 120, seed: int = 0) -> Dict[str, np.ndarray]:
    """Write ``root/<split>/GOT-10k_Train_%06d`` sequences and ``list.txt``; return the boxes."""
    rng = np.random.default_rng(seed)
    split_dir = os.path.join(root, split)
    written = {}
    for k in range(num_sequences):
        name = f'GOT-10k_{split.capitalize()}_{k + 1:06d}'
        directory = os.path.join(split_dir, name)
        os.makedirs(directory, exist_ok=True)
        frames, boxes = toy_frames(rng, num_frames, width, height)
        for i, frame in enumerate(frames):
            _write_jpeg(os.path.join(directory, f'{i + 1:08d}.jpg'), frame)
        _write_boxes(os.path.join(directory, 'groundtruth.txt'), boxes)
        with open(os.path.join(directory, 'absence.label'), 'w', encoding='utf-8') as handle:
            handle.write('0\n' * num_frames)
        with open(os.path.join(directory, 'cover.label'), 'w', encoding='utf-8') as handle:
            handle.write('8\n' * num_frames)
        written[name] = boxes
    with open(os.path.join(split_dir, 'list.txt'), 'w', encoding='utf-8') as handle:
        handle.write(''.join(name + '\n' for name in written))
    return written


def write_lasot(root: str, categories: Sequence[str] = ('airplane', 'bird'),
                per_category: int = 2, num_frames: int = 10, width: int = 160,
                height: int = 120, seed: int = 0) -> Dict[str, np.ndarray]:
    """Write ``root/<category>/<category>-<k>/`` sequences; return the boxes by name."""
    rng = np.random.default_rng(seed)
    written = {}
    for category in categories:
        for k in range(1, per_category + 1):
            name = f'{category}-{k}'
            directory = os.path.join(root, category, name)
            os.makedirs(os.path.join(directory, 'img'), exist_ok=True)
            frames, boxes = toy_frames(rng, num_frames, width, height)
            for i, frame in enumerate(frames):
                _write_jpeg(os.path.join(directory, 'img', f'{i + 1:08d}.jpg'), frame)
            _write_boxes(os.path.join(directory, 'groundtruth.txt'), boxes)
            for flag_file in ('full_occlusion.txt', 'out_of_view.txt'):
                with open(os.path.join(directory, flag_file), 'w', encoding='utf-8') as handle:
                    handle.write(','.join('0' * num_frames) + '\n')
            written[name] = boxes
    return written


def write_trackingnet(root: str, chunks: Sequence[int] = (0,), per_chunk: int = 2,
                      num_frames: int = 10, width: int = 160, height: int = 120,
                      seed: int = 0) -> Dict[str, np.ndarray]:
    """Write ``root/TRAIN_<k>/{anno,frames}``; return the boxes by ``TRAIN_<k>/<name>``."""
    rng = np.random.default_rng(seed)
    written = {}
    for chunk in chunks:
        for k in range(per_chunk):
            name = f'seq{chunk}_{k}'
            frame_dir = os.path.join(root, f'TRAIN_{chunk}', 'frames', name)
            os.makedirs(frame_dir, exist_ok=True)
            os.makedirs(os.path.join(root, f'TRAIN_{chunk}', 'anno'), exist_ok=True)
            frames, boxes = toy_frames(rng, num_frames, width, height)
            for i, frame in enumerate(frames):
                _write_jpeg(os.path.join(frame_dir, f'{i}.jpg'), frame)
            _write_boxes(os.path.join(root, f'TRAIN_{chunk}', 'anno', f'{name}.txt'), boxes)
            written[f'TRAIN_{chunk}/{name}'] = boxes
    return written


def write_coco(root: str, split: str = 'train2017', num_images: int = 3,
               objects_per_image: int = 2, width: int = 160, height: int = 120,
               seed: int = 0) -> Dict[int, np.ndarray]:
    """Write ``root/<split>/*.jpg`` and ``root/annotations/instances_<split>.json``."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, split), exist_ok=True)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    images, annotations, written = [], [], {}
    for image_id in range(1, num_images + 1):
        frames, _ = toy_frames(rng, 1, width, height)
        file_name = f'{image_id:012d}.jpg'
        _write_jpeg(os.path.join(root, split, file_name), frames[0])
        images.append({'id': image_id, 'file_name': file_name, 'width': width,
                       'height': height})
        for _ in range(objects_per_image):
            wh = np.round(rng.uniform(0.15, 0.4, size=2) * [width, height])
            xy = np.round(rng.uniform(0, 1, size=2) * ([width, height] - wh))
            box = [float(v) for v in (*xy, *wh)]
            ann_id = len(annotations) + 1
            annotations.append({'id': ann_id, 'image_id': image_id, 'bbox': box,
                                'area': box[2] * box[3], 'iscrowd': 0, 'category_id': 1})
            written[ann_id] = np.asarray(box)
    path = os.path.join(root, 'annotations', f'instances_{split}.json')
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump({'images': images, 'annotations': annotations,
                   'categories': [{'id': 1, 'name': 'thing'}]}, handle)
    return written
