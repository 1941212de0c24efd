"""Writing scenes as GOT-10k-layout sequences, one split at a time, in parallel."""

import json
import multiprocessing
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union
import zlib

import cv2
from detrack_model.data.got10k import DISTRACTOR_FILE
from detrack_model.data.synthetic.render import render_frame
from detrack_model.data.synthetic.scene import ATTRIBUTE_PROBABILITIES, build_scene, Scene
from detrack_model.data.synthetic.sources import source_set, SourceSet
import numpy as np

JPEG_QUALITY = 90
# Draws of one sequence tried before giving up on showing its whole target in frame 1.
MAX_DRAWS = 8
_FRAME_FILE = re.compile(r'^\d{8}\.jpg$')


def sequence_seed(seed: int, split: str, index: int, draw: int = 0) -> np.random.SeedSequence:
    """
    Return the seed of sequence ``index`` of ``split``: independent of the worker count.

    ``draw`` > 0 gives the redraws used when a draw cannot show its target in the first frame.
    """
    if seed < 0 or index < 0 or draw < 0:
        raise ValueError(f'seed, index and draw must be >= 0, got {seed}, {index}, {draw}')
    entropy = [int(seed), zlib.crc32(split.encode('utf-8')), int(index)]
    return np.random.SeedSequence(entropy + [int(draw)] if draw else entropy)


def build_sequence_scene(seed: int, split: str, index: int, frames: int,
                         size: Tuple[int, int], sources: SourceSet) -> Scene:
    """
    Return the scene of sequence ``index``: the first draw whose first frame shows all of it.

    A few draws (a cut-out whose strokes vanish at the smallest sizes) render no whole target
    in frame 1, which a tracker needs for its template; those are redrawn from the next seed.
    """
    for draw in range(MAX_DRAWS):
        scene = build_scene(sequence_seed(seed, split, index, draw), frames, size, sources)
        if render_frame(scene, 0).cover == 8:
            scene.info['seed'] = {'seed': seed, 'split': split, 'index': index, 'draw': draw}
            return scene
    raise RuntimeError(f'sequence {index} of {split} (seed {seed}): no draw of {MAX_DRAWS} '
                       'shows the whole target in the first frame')


def sequence_name(split: str, index: int) -> str:
    """Return the directory name of sequence ``index`` (0-based), GOT-10k style."""
    return f'Synthetic_{split.capitalize()}_{index + 1:06d}'


def _meta_info(name: str, scene: Scene) -> str:
    # GOT-10k readers (pytracking) take the classes from lines 5..9 by position.
    attributes = [k for k, v in scene.info['attributes'].items() if v]
    lines = ['[METAINFO]', f'url: synthetic://{name}', 'begin: 00:00:00', 'end: 00:00:00',
             'anno_fps: 10Hz', f'object_class: synthetic {scene.info["shape"]}',
             'motion_class: synthetic motion', 'major_class: synthetic',
             'root_class: object', 'motion_adverb: ' + (', '.join(attributes) or 'plainly'),
             f'resolution: ({scene.size[0]}, {scene.size[1]})']
    return '\n'.join(lines) + '\n'


def _write_lines(directory: str, name: str, values: Sequence[Any]) -> None:
    with open(os.path.join(directory, name), 'w', encoding='utf-8', newline='\n') as f:
        f.write(''.join(f'{v}\n' for v in values))


def write_sequence(scene: Scene, directory: str, quality: int = JPEG_QUALITY
                   ) -> Dict[str, Any]:
    """Render every frame of ``scene`` into ``directory``; return its statistics."""
    os.makedirs(directory, exist_ok=True)
    for stale in os.listdir(directory):
        if _FRAME_FILE.match(stale):
            os.remove(os.path.join(directory, stale))
    boxes, absence, cover, cut, distractors = [], [], [], [], []
    occluded_frames = out_of_view_frames = blurred_frames = 0
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    for t in range(scene.num_frames):
        rendered = render_frame(scene, t)
        path = os.path.join(directory, f'{t + 1:08d}.jpg')
        if not cv2.imwrite(path, rendered.image, params):
            raise OSError(f'cannot write {path}')
        boxes.append(','.join(f'{v:.4f}' for v in rendered.box))
        absence.append(int(rendered.absent))
        cover.append(rendered.cover)
        cut.append(int(rendered.cut_by_image))
        distractors += [f'{t + 1},' + ','.join(f'{v:.0f}' for v in box)
                        for box in rendered.distractors]
        occluded_frames += int(rendered.visible_pixels < rendered.in_frame_pixels)
        out_of_view_frames += int(rendered.in_frame_pixels == 0)
        blurred_frames += int(np.hypot(*scene.target.blur[t]) >= 1.5)
    if cover[0] != 8:
        raise RuntimeError(f'{directory}: the target is not fully visible in the first frame')
    _write_lines(directory, 'groundtruth.txt', boxes)
    _write_lines(directory, 'absence.label', absence)
    _write_lines(directory, 'cover.label', cover)
    _write_lines(directory, 'cut_by_image.label', cut)
    _write_lines(directory, DISTRACTOR_FILE, distractors)
    name = os.path.basename(os.path.normpath(directory))
    with open(os.path.join(directory, 'meta_info.ini'), 'w', encoding='utf-8') as f:
        f.write(_meta_info(name, scene))
    box_sides = np.sqrt(np.prod(np.array([[float(v) for v in b.split(',')[2:]] for b in boxes]),
                                axis=1))
    stats = {
        'frames': scene.num_frames,
        'absent_frames': int(sum(absence)),
        'occluded_frames': occluded_frames,
        'out_of_view_frames': out_of_view_frames,
        'cut_by_image_frames': int(sum(cut)),
        'fast_motion_frames': int(sum(e['length'] for e in scene.info['events']
                                      if e['kind'] == 'fast_motion')),
        'blurred_frames': blurred_frames,
        'min_cover': int(min(cover)),
        'min_side': round(float(box_sides[np.asarray(absence) == 0].min()), 2),
        'max_side': round(float(box_sides.max()), 2),
    }
    record = {**scene.info, 'name': name, 'size': list(scene.size), 'stats': stats}
    with open(os.path.join(directory, 'synthetic.json'), 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write('\n')
    return record


def _generate_one(job: Tuple[str, str, int, int, int, Tuple[int, int], SourceSet, int]
                  ) -> Dict[str, Any]:
    root, split, index, seed, frames, size, sources, quality = job
    scene = build_sequence_scene(seed, split, index, frames, size, sources)
    directory = os.path.join(root, split, sequence_name(split, index))
    return write_sequence(scene, directory, quality)


def _worker_init() -> None:
    # One OpenCV thread per process: the pool already uses the cores.
    cv2.setNumThreads(1)


def generate_dataset(root: Union[str, os.PathLike], split: str, num_sequences: int,
                     frames: int, size: Tuple[int, int] = (480, 360), seed: int = 0,
                     sources: Optional[Sequence[str]] = None, workers: int = 1,
                     quality: int = JPEG_QUALITY, overwrite: bool = False,
                     progress: Optional[Callable[[Dict[str, Any]], None]] = None,
                     pool: Optional[Union[str, os.PathLike]] = None) -> Dict[str, Any]:
    """
    Write ``num_sequences`` sequences of ``frames`` frames into ``root/split`` (GOT-10k layout).

    The images are the split's own: ``sources`` (scikit-image photo names) defaults to
    ``SPLIT_SOURCES[split]``; ``pool`` (an image-pool cache directory) adds that split's
    backgrounds and cut-out objects. Sequence ``i`` is a pure function of ``(seed, split, i,
    frames, size, sources, pool contents)``, whatever ``workers`` is. An existing non-empty
    split directory is an error unless ``overwrite`` (then the sequences written now replace
    theirs). ``progress`` is called with each sequence's record as it finishes. Return a
    summary: counts of sequences, frames, absent frames, per-attribute sequence counts, the
    sequence names and the wall time.
    """
    source = source_set(split, pool, sources)
    if num_sequences < 1 or frames < 1:
        raise ValueError('num_sequences and frames must be >= 1')
    size = (int(size[0]), int(size[1]))
    split_dir = os.path.join(os.fspath(root), split)
    if os.path.isdir(split_dir) and os.listdir(split_dir) and not overwrite:
        raise FileExistsError(f'{split_dir} exists and is not empty (use overwrite)')
    os.makedirs(split_dir, exist_ok=True)
    started = time.perf_counter()
    jobs = [(os.fspath(root), split, i, int(seed), int(frames), size, source, int(quality))
            for i in range(num_sequences)]
    records: List[Dict[str, Any]] = []
    if workers > 1 and num_sequences > 1:
        # spawn, not fork: the caller may hold threads (PyTorch, OpenCV) a fork would break.
        context = multiprocessing.get_context('spawn')
        with context.Pool(min(workers, num_sequences), initializer=_worker_init) as workers_:
            for record in workers_.imap(_generate_one, jobs):
                records.append(record)
                if progress is not None:
                    progress(record)
    else:
        for job in jobs:
            records.append(_generate_one(job))
            if progress is not None:
                progress(records[-1])
    names = [record['name'] for record in records]
    _write_lines(split_dir, 'list.txt', names)
    with open(os.path.join(split_dir, 'synthetic.json'), 'w', encoding='utf-8') as f:
        json.dump({'split': split, 'sequences': num_sequences, 'frames': frames,
                   'size': list(size), 'seed': int(seed), 'sources': list(source.photos),
                   'pool': os.fspath(pool) if pool is not None else None,
                   'pool_images': source.describe(), 'quality': int(quality)},
                  f, indent=1, sort_keys=True)
        f.write('\n')
    attribute_counts = {name: sum(int(r['attributes'][name]) for r in records)
                        for name in ATTRIBUTE_PROBABILITIES}
    return {
        'root': os.fspath(root),
        'split': split,
        'sequences': len(records),
        'frames': sum(r['stats']['frames'] for r in records),
        'absent_frames': sum(r['stats']['absent_frames'] for r in records),
        'occluded_frames': sum(r['stats']['occluded_frames'] for r in records),
        'out_of_view_frames': sum(r['stats']['out_of_view_frames'] for r in records),
        'attributes': attribute_counts,
        'names': names,
        'sources': source.describe(),
        'wall_time_s': time.perf_counter() - started,
    }
