"""
The interface every dataset reader implements, pytracking style.

A dataset is a list of sequences; a sequence is a list of frames with one box each. Readers
load annotations lazily (once per sequence, then cached) so building a dataset over a large
benchmark costs a directory listing, not a pass over every annotation file.
"""

from dataclasses import dataclass
import os
from typing import Dict, List, Optional

import cv2
from detrack_model.data.encoded import decode_image, EncodedImageError, sniff_format
import numpy as np

MAX_FRAME_PIXELS = 100_000_000
"""Largest dataset frame decoded (benchmarks stay far below; a bigger one is corrupt)."""


class FrameError(RuntimeError):
    """A frame image is missing or cannot be decoded."""


class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file and, where known, the line."""


# Frame files of the benchmarks' layouts (GOT-10k, LaSOT, OTB): JPEG, named in frame order.
FRAME_SUFFIX = '.jpg'


def list_frames(directory: str, any_case: bool = False) -> List[str]:
    """
    Return the sorted ``*.jpg`` files of a sequence directory; raise if there are none.

    ``any_case`` also takes ``.JPG`` (some OTB and LaSOT copies); the GOT-10k toolkit's glob
    takes the lower-case suffix only.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f'frame directory not found: {directory}')
    with os.scandir(directory) as entries:
        names = sorted(entry.name for entry in entries if entry.is_file() and (
            entry.name.lower() if any_case else entry.name).endswith(FRAME_SUFFIX))
    if not names:
        raise FileNotFoundError(f'no *{FRAME_SUFFIX} frames in {directory}')
    return [os.path.join(directory, name) for name in names]


@dataclass
class SequenceInfo:
    """
    Boxes and visibility of one sequence.

    ``boxes`` is (N, 4) float64 x, y, w, h in pixels (NaN = unknown); ``visible`` is (N,) bool:
    the target is present, its box is valid and it is not fully occluded or out of view.
    ``invalid_boxes`` counts the frames whose box is NaN/infinite or has no area: they are
    never visible, so no sample uses them. ``distractors``, where the dataset records them,
    is (M, 5) float64: a 0-based frame index and the x, y, w, h box of an object in that frame
    that looks like the target (None: not recorded).
    """

    name: str
    boxes: np.ndarray
    visible: np.ndarray
    invalid_boxes: int = 0
    distractors: Optional[np.ndarray] = None

    def distractors_in(self, frame: int) -> np.ndarray:
        """Return the (k, 4) look-alike boxes recorded in ``frame`` (none when unrecorded)."""
        if self.distractors is None:
            return np.empty((0, 4))
        return self.distractors[self.distractors[:, 0] == frame, 1:]

    def __len__(self) -> int:
        """Return the number of frames."""
        return len(self.boxes)


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """Return, per box, whether it is finite with positive width and height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid='ignore'):
        return np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


def make_sequence_info(name: str, boxes: np.ndarray,
                       present: Optional[np.ndarray] = None) -> SequenceInfo:
    """Combine boxes with a dataset's own presence flags into a :class:`SequenceInfo`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ok = valid_boxes(boxes)
    visible = ok if present is None else ok & np.asarray(present, dtype=bool)
    return SequenceInfo(name=name, boxes=boxes, visible=visible,
                        invalid_boxes=int(len(ok) - np.count_nonzero(ok)))


def read_rgb(path: str, max_pixels: int = MAX_FRAME_PIXELS) -> np.ndarray:
    """
    Read an image as HxWx3 uint8 RGB; raise :class:`FrameError` naming the file otherwise.

    JPEG, PNG and TIFF files are checked before decoding (:mod:`detrack_model.data.encoded`):
    one cut short, or claiming more than ``max_pixels``, is refused instead of decoding to
    grey fill or exhausting memory. Other formats are decoded as they are.
    """
    try:
        data = np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise FrameError(f'frame not found: {path}') from None
    except OSError as error:
        raise FrameError(f'cannot read frame {path}: {error.strerror or error}') from None
    if sniff_format(data) is None:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    else:
        try:
            image = decode_image(data, cv2.IMREAD_COLOR, max_pixels)
        except EncodedImageError as error:
            raise FrameError(f'cannot decode frame {path}: {error}') from None
    if image is None or image.size == 0:
        raise FrameError(f'cannot decode frame (corrupt or not an image): {path}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class TrackingDataset:
    """
    Base class of the dataset readers.

    Subclasses set ``name`` and ``is_video`` and implement ``__len__``, ``sequence_name``,
    ``_load_sequence_info`` and ``frame_path`` (or ``frame`` itself).
    """

    name: str = 'dataset'
    # False for image datasets (COCO): a training pair is made from one image.
    is_video: bool = True

    def __init__(self) -> None:
        self._info_cache: Dict[int, SequenceInfo] = {}

    def __len__(self) -> int:
        """Return the number of sequences."""
        raise NotImplementedError

    def sequence_name(self, index: int) -> str:
        """Return the name of sequence ``index``."""
        raise NotImplementedError

    def sequence_info(self, index: int) -> SequenceInfo:
        """Return boxes and visibility of sequence ``index``, read on first use."""
        info = self._info_cache.get(index)
        if info is None:
            if not 0 <= index < len(self):
                raise IndexError(f'{self.name}: sequence {index} out of range 0..{len(self) - 1}')
            info = self._load_sequence_info(index)
            self._info_cache[index] = info
        return info

    def frame(self, index: int, frame_index: int) -> np.ndarray:
        """Return frame ``frame_index`` of sequence ``index`` as HxWx3 uint8 RGB."""
        return read_rgb(self.frame_path(index, frame_index))

    def frame_path(self, index: int, frame_index: int) -> str:
        """Return the image file of frame ``frame_index`` of sequence ``index``."""
        raise NotImplementedError

    def _load_sequence_info(self, index: int) -> SequenceInfo:
        raise NotImplementedError

    def __repr__(self) -> str:
        """Name the reader and its size."""
        return f'{type(self).__name__}({self.name!r}, {len(self)} sequences)'
