"""docs/pruning.md's latency figures: the same work per frame for every model, in turns."""

import cv2
from detrack_model.evaluation.sequences import EvalSequence
from detrack_model.export.bundle import load_bundle
from detrack_model.shipped import default_model_path
from detrack_model.tracking import Tracker, TrackerConfig
import numpy as np
from session_doubles import ScriptedBackend
from tools import make_pruning_docs
import yaml

FRAMES = 8


class CountingBackend(ScriptedBackend):
    """A backend that never finds the target and counts the crops it runs."""

    def __init__(self):
        super().__init__(score=0.05)
        self.crops = 0

    def infer(self, crop):
        self.crops += 1
        return super().infer(crop)


def still_sequence(folder) -> EvalSequence:
    """Return a sequence of blank 320x240 frames written to ``folder``."""
    paths = []
    for index in range(FRAMES):
        paths.append(str(folder / f'{index:08d}.png'))
        cv2.imwrite(paths[-1], np.zeros((240, 320, 3), np.uint8))
    return EvalSequence('still', paths, np.tile([140.0, 100.0, 40.0, 40.0], (FRAMES, 1)),
                        np.ones(FRAMES, bool))


def test_a_model_that_loses_the_target_runs_one_network_per_timed_frame(tmp_path):
    """With re-detection, a lost tracker runs its tiles too; the latency rows run none."""
    sequence = still_sequence(tmp_path)
    timed, plain = CountingBackend(), CountingBackend()
    trackers = {'timed': Tracker(timed, make_pruning_docs.LATENCY_CONFIG),
                'defaults': Tracker(plain, TrackerConfig(redetect=True, redetect_after=0))}
    latency = make_pruning_docs.tracker_latency(trackers, sequence, frames=20, rounds=2)
    assert set(latency) == {'timed', 'defaults'} and all(ms > 0 for ms in latency.values())
    tracked = 5 + 2 * (20 // 2)  # the warm-up frames, then two blocks of ten
    assert trackers['timed'].lost and timed.crops == tracked
    # The same lost target with re-detection: tiles (one crop each here) on top.
    assert trackers['defaults'].lost and plain.crops > tracked


def test_stage_latency_gives_every_network_its_median_of_turns():
    """Both figures for each network; the encoder is a part of the whole forward."""
    networks = {'shipped': load_bundle(default_model_path()),
                'unpruned': load_bundle(make_pruning_docs.BASE)}
    figures = make_pruning_docs.stage_latency(networks, rounds=2, runs=2)
    assert set(figures) == set(networks)
    for row in figures.values():
        assert 0 < row['encoder_ms'] < row['network_ms']


def test_the_shipped_default_is_traced_to_the_last_training_stage(monkeypatch):
    """The page names the recipe, start and output of docs/training.md's last stage."""
    recipe, child, output = make_pruning_docs.further_stage()
    stages = make_pruning_docs.STAGES
    assert recipe == stages[-1][1] and child == str(
        stages[-2][2].relative_to(make_pruning_docs.ROOT))
    # The bundle the shipping command starts from is the one the recipe writes.
    written = yaml.safe_load((make_pruning_docs.ROOT / recipe).read_text())['output']
    assert output == f'{written}/model' and output != child
    # A default that is the pipeline's own fine-tuned child has no further stage.
    child = make_pruning_docs.ROOT / 'runs' / 'prune_tiny' / 'finetune_b0250' / 'model'
    monkeypatch.setattr(make_pruning_docs, 'STAGES', (
        ('sparsity', 'training/prune_tiny_sparsity.yaml', child),
        ('child', 'training/prune_tiny_finetune.yaml', child)))
    assert make_pruning_docs.further_stage() is None
