"""
Upper bounds of the tracker's decisions, from annotated sequences (analysis only).

:class:`TruthTracker` is the tracker with its lost decision told by the ground truth: a frame
is a hit exactly when the target is visible and the box the tracker would publish overlaps it
(IoU over :data:`HIT_IOU`, the line docs/robust-tracking.md calibrates the score against).
Everything else is the tracker's own: crops, the candidate it picks, re-detection, template
update. Its AO bounds what any rule on the network's score can reach with this network
(thresholds, patience, a better calibrated confidence). With ``ranking='truth'`` the candidate
taken from each frame's search crop is, as well, the network's candidate that overlaps the
ground truth most: what a perfect ranking of the network's own candidates would give
(re-detection's tiles and its refining crop keep the network's ranking). With
``ranking='near'`` that choice is made only among the candidates that overlap the network's
own pick by at least :data:`NEAR_IOU` in the crop: the part of the ranking bound that is a
more precise box on the same region, not another region.
"""

from typing import Optional

from detrack_model.evaluation.metrics import rect_iou
from detrack_model.evaluation.sequences import EvalSequence
from detrack_model.tracking import Tracker, TrackerConfig
from detrack_model.tracking.backends import Backend, Candidates
import numpy as np

HIT_IOU = 0.3
# Overlap with the network's pick, in the crop, of the candidates ``ranking='near'`` chooses from.
NEAR_IOU = 0.5
# The tracker's own ranking, the truth's among the candidates near its pick, the truth's.
RANKINGS = ('network', 'near', 'truth')


class TruthTracker(Tracker):
    """A :class:`Tracker` whose hit-or-miss per frame comes from the sequence it is given."""

    def __init__(self, backend: Backend, config: Optional[TrackerConfig] = None,
                 ranking: str = 'network') -> None:
        if ranking not in RANKINGS:
            raise ValueError(f'ranking must be one of {RANKINGS}, got {ranking!r}')
        if ranking != 'network':
            backend = _TruthRankedBackend(backend, self, near_only=ranking == 'near')
        super().__init__(backend, config)
        self.sequence: Optional[EvalSequence] = None

    def following(self, sequence: EvalSequence) -> 'TruthTracker':
        """Take ``sequence``'s annotation as the truth of the next run; return the tracker."""
        self.sequence = sequence
        return self

    def truth(self) -> Optional[np.ndarray]:
        """Return the target's box in the frame being tracked, or None where it is hidden."""
        index = self.frame_index + 1
        if self.sequence is None or not self.sequence.visible[index]:
            return None
        return np.nan_to_num(self.sequence.anno[index])

    def _update_state(self, box: np.ndarray, score: float) -> None:
        truth = self.truth()
        hit = truth is not None and rect_iou(box[None], truth[None])[0] > HIT_IOU
        super()._update_state(box, 1.0 if hit else 0.0)


class _TruthRankedBackend:
    """A backend whose tracking crop keeps only the candidate that overlaps the truth most."""

    def __init__(self, backend: Backend, tracker: TruthTracker, near_only: bool) -> None:
        self.backend, self.tracker, self.near_only = backend, tracker, near_only
        self.template_size, self.search_size = backend.template_size, backend.search_size
        self.grid = backend.grid
        self.name = backend.name + ('+truth-near-ranked' if near_only else '+truth-ranked')
        self._ranked_at = None

    def set_template(self, crop: np.ndarray) -> None:
        self.backend.set_template(crop)

    def infer(self, crop: np.ndarray) -> Candidates:
        boxes, scores, cells = self.backend.infer(crop)
        # The frame's first crop is the search crop (search_region maps it back); a second
        # one is re-detection's refining crop.
        frame = (id(self.tracker.sequence), self.tracker.frame_index)
        first, self._ranked_at = frame != self._ranked_at, frame
        truth = self.tracker.truth()
        if truth is None or not first:
            return boxes, scores, cells
        size = self.search_size
        corner = boxes.astype(np.float64) * size
        corner[:, :2] -= 0.5 * corner[:, 2:]
        image_boxes = self.tracker.search_region.box_to_image(corner)
        overlap = rect_iou(image_boxes, np.broadcast_to(truth, image_boxes.shape))
        if self.near_only:
            pick = corner[self.tracker.pick_candidate(scores, cells)]
            near = rect_iou(corner, np.broadcast_to(pick, corner.shape)) >= NEAR_IOU
            overlap = np.where(near, overlap, -1.0)
        best = int(np.argmax(overlap))
        # The others go below any window weight, so the tracker takes this one, with its own
        # score (the template update's gate reads it).
        ranked = np.full_like(scores, -1.0)
        ranked[best] = scores[best]
        return boxes, ranked, cells

    def infer_batch(self, crops: np.ndarray) -> Candidates:
        return self.backend.infer_batch(crops)

    def release(self) -> None:
        self.backend.release()
