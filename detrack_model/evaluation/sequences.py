"""
Benchmark sequences for one-pass evaluation, loaded the way the official toolkits load them.

Three layouts are understood:

- ``got10k``: ``root/<split>/list.txt`` names the sequence directories; each holds
  ``00000001.jpg ...``, ``groundtruth.txt``, ``absence.label`` and ``cover.label``, read by
  the training reader :class:`~detrack_model.data.got10k.Got10k`. The val (and train) split
  annotates every frame; the test split gives the first box only, so its other frames get NaN
  boxes and are not visible.
- ``lasot``: ``root/<category>/<category>-<k>/img/00000001.jpg ...`` with ``groundtruth.txt``,
  ``full_occlusion.txt`` and ``out_of_view.txt``; ``sequences`` restricts it to a list such as
  the official 280-sequence test split.
- ``otb``: ``root/<Seq>/img/0001.jpg ...`` with ``groundtruth_rect.txt`` (comma, tab or space
  separated). A directory with several ground-truth files (``groundtruth_rect.1.txt``,
  ``groundtruth_rect.2.txt``: two targets in one video) gives one sequence per non-empty file,
  named ``<Seq>.1``, ``<Seq>.2`` in file order, and empty files are skipped (Human4 ships an
  empty ``groundtruth_rect.1.txt``): the names the GOT-10k toolkit's OTB reader gives them, so
  result files are interchangeable. The five OTB videos whose annotation covers only part of
  the image folder (David, Football1, Freeman3, Freeman4, Diving) are cut to that part as the
  toolkits do.

Frames are the sorted ``*.jpg`` files of the frame directory, as the toolkits enumerate them,
and a ground truth with a different number of lines is an :class:`AnnotationError` naming the
file, the directory and both counts.
"""

from dataclasses import dataclass, field
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from detrack_model.data.annotations import NameList, read_boxes, read_name_list
from detrack_model.data.got10k import Got10k
from detrack_model.data.lasot import LaSOT
from detrack_model.data.sequences import (AnnotationError, FRAME_SUFFIX, list_frames,
                                          make_sequence_info, read_rgb)
import numpy as np

BENCHMARKS: Tuple[str, ...] = ('got10k', 'otb', 'lasot')

# (first, end) slices of the sorted image list, from the OTB benchmark's own sequence table
# (the GOT-10k toolkit and pytracking apply the same cuts).
OTB_FRAME_RANGES: Dict[str, Tuple[int, int]] = {
    'david': (299, 770),
    'football1': (0, 74),
    'freeman3': (0, 460),
    'freeman4': (0, 283),
    'diving': (0, 215),
}

_OTB_GROUNDTRUTH = re.compile(r'^groundtruth.*\.txt$')


@dataclass
class EvalSequence:
    """
    One benchmark sequence: its frame files and ground truth.

    ``frames`` are the image files in order; ``anno`` (N, 4) float64 x, y, w, h (NaN where
    unknown); ``visible`` (N,) bool from the dataset's own flags combined with a valid box.
    ``image_size`` (width, height) is read from the first frame on first use.
    """

    name: str
    frames: List[str]
    anno: np.ndarray
    visible: np.ndarray
    dataset: str = ''
    _image_size: Optional[Tuple[int, int]] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check that frames, boxes and flags agree in length."""
        self.frames = [os.fspath(path) for path in self.frames]
        self.anno = np.asarray(self.anno, dtype=np.float64).reshape(-1, 4)
        self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)
        if not self.frames:
            raise ValueError(f'sequence {self.name!r} has no frames')
        if not len(self.frames) == len(self.anno) == len(self.visible):
            raise ValueError(
                f'sequence {self.name!r}: {len(self.frames)} frames, {len(self.anno)} boxes and '
                f'{len(self.visible)} visibility flags; they must agree')

    def __len__(self) -> int:
        """Return the number of frames."""
        return len(self.frames)

    @property
    def image_size(self) -> Tuple[int, int]:
        """Return (width, height) of the frames, read from the first frame once."""
        if self._image_size is None:
            height, width = read_rgb(self.frames[0]).shape[:2]
            self._image_size = (int(width), int(height))
        return self._image_size


def load_benchmark(kind: str, root: str, split: Optional[str] = None,
                   sequences: Optional[NameList] = None) -> List[EvalSequence]:
    """
    Return the sequences of a benchmark in one of the :data:`BENCHMARKS` layouts.

    ``split`` is GOT-10k's split directory (default ``val``, the annotated one); the other
    layouts have none. ``sequences`` (names or a file with one per line) restricts the
    benchmark to those sequences, in that order; for OTB a plain video name such as
    ``Jogging`` selects all its targets (``Jogging.1``, ``Jogging.2``).
    """
    key = str(kind).lower().replace('-', '').replace('_', '')
    root = os.fspath(root)
    if key == 'got10k':
        return _load_got10k(root, 'val' if split is None else split, sequences)
    if key not in BENCHMARKS:
        raise ValueError(f'unknown benchmark {kind!r}; choose from {", ".join(BENCHMARKS)}')
    if split is not None:
        raise ValueError(f'{key} has no split directories (got split={split!r}); pass the '
                         'sequence list of the split as sequences=')
    if key == 'lasot':
        return _load_lasot(root, sequences)
    return _load_otb(root, sequences)


def _require(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    return path


def _check_count(anno_file: str, boxes: np.ndarray, frame_dir: str, frames: Sequence[str],
                 note: str = '') -> None:
    if len(boxes) != len(frames):
        raise AnnotationError(
            f'{anno_file}: {len(boxes)} ground-truth lines but {len(frames)} frame files '
            f'(*{FRAME_SUFFIX}) in {frame_dir}{note}; they must match one to one')


def _load_got10k(root: str, split: str, sequences: Optional[NameList]) -> List[EvalSequence]:
    # The training reader's rules (frames, labels, the test split's first-box-only ground
    # truth) are the evaluation's too. Only the toolkits' one-frame-per-line check is added
    # here: training leaves it out so as not to list every sequence directory.
    dataset = Got10k(root, split, sequences)
    out = []
    for index in range(len(dataset)):
        frames = dataset.frame_files(index)
        anno_file = _require(dataset.annotation_file(index), 'ground truth')
        info = dataset.sequence_info(index)
        _check_count(anno_file, info.boxes, dataset.sequence_dir(index), frames)
        out.append(EvalSequence(dataset.sequence_name(index), frames, info.boxes, info.visible,
                                dataset.name))
    return out


def _load_lasot(root: str, sequences: Optional[NameList]) -> List[EvalSequence]:
    dataset = LaSOT(root, sequences)
    out = []
    for index in range(len(dataset)):
        name = dataset.sequence_name(index)
        frame_dir = os.path.dirname(dataset.frame_path(index, 0))
        frames = list_frames(frame_dir, any_case=True)
        anno_file = _require(os.path.join(os.path.dirname(frame_dir), 'groundtruth.txt'),
                             'ground truth')
        info = dataset.sequence_info(index)
        _check_count(anno_file, info.boxes, frame_dir, frames)
        out.append(EvalSequence(name, frames, info.boxes, info.visible, dataset.name))
    return out


def _otb_targets(directory: str) -> List[str]:
    """Return the non-empty ground-truth files of one OTB video directory, sorted."""
    files = sorted(name for name in os.listdir(directory) if _OTB_GROUNDTRUTH.match(name))
    paths = [os.path.join(directory, name) for name in files]
    if len(paths) > 1:
        paths = [path for path in paths if _has_text(path)]
    return paths


def _has_text(path: str) -> bool:
    with open(path, 'r', encoding='utf-8', errors='replace') as handle:
        return bool(handle.read().strip())


def _load_otb(root: str, sequences: Optional[NameList]) -> List[EvalSequence]:
    if not os.path.isdir(root):
        raise FileNotFoundError(f'OTB-style root not found: {root}')
    # (name, video directory, ground-truth file) for every target found.
    found: List[Tuple[str, str, str]] = []
    for video in sorted(os.listdir(root)):
        directory = os.path.join(root, video)
        if not os.path.isdir(directory):
            continue
        targets = _otb_targets(directory)
        if not targets:
            if os.path.isdir(os.path.join(directory, 'img')):
                raise FileNotFoundError(
                    f'ground truth not found: {os.path.join(directory, "groundtruth_rect.txt")}')
            continue  # not a sequence directory (results, archives, ...)
        if len(targets) == 1:
            found.append((video, directory, targets[0]))
        else:
            found.extend((f'{video}.{k + 1}', directory, path) for k, path in enumerate(targets))
    if sequences is not None:
        by_name: Dict[str, List[Tuple[str, str, str]]] = {}
        for item in found:
            by_name.setdefault(item[0], []).append(item)
            if item[0] != os.path.basename(item[1]):
                by_name.setdefault(os.path.basename(item[1]), []).append(item)
        wanted = read_name_list(sequences)
        missing = [name for name in wanted if name not in by_name]
        if missing:
            raise FileNotFoundError(f'OTB-style sequences not found under {root}: '
                                    f'{", ".join(missing)}')
        found = [item for name in wanted for item in by_name[name]]
    if not found:
        raise FileNotFoundError(f'no OTB-style sequences (<Seq>/groundtruth_rect.txt) in {root}')
    out = []
    for name, directory, anno_file in found:
        frame_dir = os.path.join(directory, 'img')
        frames = list_frames(frame_dir, any_case=True)
        cut = OTB_FRAME_RANGES.get(os.path.basename(directory).lower())
        note = ''
        if cut is not None:
            frames = frames[cut[0]:cut[1]]
            note = f' (files {cut[0] + 1}..{cut[1]}, the annotated part of this video)'
        boxes = read_boxes(anno_file)
        _check_count(anno_file, boxes, frame_dir, frames, note)
        info = make_sequence_info(name, boxes)
        out.append(EvalSequence(name, frames, info.boxes, info.visible, 'otb'))
    return out
