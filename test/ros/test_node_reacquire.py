"""
On a real graph: the target leaves the frame, comes back far away, and the node finds it again.

With ``redetect`` the node searches tiles of the whole frame while the target is lost, takes
it back on a confident find, publishes it under the same track id and counts the
re-acquisition in ``/diagnostics``; without, it stays lost.
"""

import cv2
from detrack_model.evaluation.metrics import rect_iou
from detrack_model.tracking import TrackerConfig
from node_harness import (encode_image, fresh_diagnostics, NodeHarness, set_parameters,
                          wait_until)
import numpy as np
import pytest

SIZE = (640, 480)
SIDE = 64
# Frames with the target near its start, then frames without it, then far away.
PATH = [(100 + 3 * i, 100 + 2 * i) for i in range(8)] + [None] * 12 + [(480, 330)] * 30


def scene():
    """Return the frames of PATH: a checkered target over a smooth random background."""
    width, height = SIZE
    rng = np.random.default_rng(3)
    coarse = rng.integers(60, 200, (height // 8, width // 8, 3)).astype(np.uint8)
    background = cv2.resize(cv2.GaussianBlur(coarse, (3, 3), 0), SIZE,
                            interpolation=cv2.INTER_CUBIC)
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    target = np.zeros((SIDE, SIDE, 3), np.uint8)
    target[..., 0] = 255 * (((cols // 8) + (rows // 8)) % 2)
    target[..., 1] = 40
    target[..., 2] = 255 - target[..., 0]
    frames = []
    for place in PATH:
        frame = background.copy()
        if place is not None:
            x, y = place
            frame[y:y + SIDE, x:x + SIDE] = target
        frames.append(frame)
    return frames


@pytest.fixture(scope='module')
def node(module_ros_context):
    """Yield an active tracker node; each test sets its parameters."""
    with NodeHarness(module_ros_context) as harness:
        yield harness


def run(harness: NodeHarness, frames):
    """Start on frame 0, then feed each frame after the previous answer; return the answers."""
    target = harness.init_on(frames[0], (*PATH[0], SIDE, SIDE))
    answers = []
    for frame in frames[1:]:
        header = harness.publish(encode_image(frame, 'rgb8'))
        assert wait_until(lambda: harness.client.array_size(header) is not None), 'no answer'
        answers.append(harness.client.message(header) if harness.client.array_size(header)
                       else None)
    return target, answers


@pytest.mark.slow
@pytest.mark.parametrize('redetect', [True, False])
def test_the_node_reacquires_a_target_that_comes_back(node, redetect):
    frames = scene()
    # The shipped lost state, not the harness's lenient one: on this background a low
    # threshold keeps following texture that scores about 0.2 to 0.3.
    defaults = TrackerConfig()
    results = set_parameters(node, redetect=redetect, score_threshold=defaults.score_threshold,
                             lost_patience=defaults.lost_patience,
                             recover_threshold=defaults.recover_threshold,
                             recover_growth=defaults.recover_growth)
    assert all(r.successful for r in results), [r.reason for r in results]
    before = int(fresh_diagnostics(node)['reacquisitions'])
    target, answers = run(node, frames)
    back = PATH.index((480, 330))
    # Lost by the time it comes back (after some frames of patience).
    assert answers[back - 2] is None and node.node.counters['processed'] > 0
    found = [i for i, answer in enumerate(answers[back - 1:], back) if answer is not None]
    values = fresh_diagnostics(node)
    if not redetect:
        assert found == [] and node.node.state_label() == 'lost'
        assert int(values['reacquisitions']) == before
        return
    # Found within a few frames of coming back, and then tracked on every frame.
    assert found and found[0] - back <= 15, found
    assert found == list(range(found[0], len(frames)))
    for index in found:
        answer = answers[index - 1]
        assert answer.id == target.id
        box = np.array([answer.bbox.center.position.x - answer.bbox.size_x / 2,
                        answer.bbox.center.position.y - answer.bbox.size_y / 2,
                        answer.bbox.size_x, answer.bbox.size_y])
        assert rect_iou(box, np.array([*PATH[index], SIDE, SIDE], float)) > 0.5
    assert int(values['reacquisitions']) == before + 1
    assert values['state'] == 'tracking'
