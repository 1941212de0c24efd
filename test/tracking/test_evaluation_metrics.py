"""
Tests of the benchmark scores, plots and tables in :mod:`detrack_model.evaluation`.

Besides hand-computed cases, the scores are checked against the got10k toolkit itself: its box
functions on random boxes, and its GOT-10k and OTB experiments' ``report`` run end to end on
tiny datasets laid out in a temporary directory the way the toolkit reads them.
"""

import json
import math
import pathlib
import subprocess
import sys
import textwrap
import warnings

from detrack_model.evaluation import (centre_error, comparison_table, evaluate, got10k_scores,
                                      lasot_scores, norm_precision_plot,
                                      normalised_centre_error, otb_scores, precision_curve,
                                      precision_plot, rank_trackers, rect_iou, Scores,
                                      SequenceResult, success_curve, success_plot, write_report)
import matplotlib.image
import numpy as np
import pytest

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
TOL = 1e-6
SIZES = ((640, 480), (1280, 720), (320, 240))


def _toolkit(module: str):
    return pytest.importorskip(module, reason='needs the got10k toolkit (requirements/test.txt)')


def _close(ours, theirs, atol: float = TOL) -> None:
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=0.0, atol=atol, equal_nan=True)


def _result(name, boxes, anno, visible=None, times=None, image_size=None) -> SequenceResult:
    boxes = np.asarray(boxes, dtype=float)
    anno = np.asarray(anno, dtype=float)
    n = len(boxes)
    visible = np.ones(n, dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    times = np.full(n, 0.01) if times is None else np.asarray(times, dtype=float)
    return SequenceResult(name, boxes, anno, visible, times, image_size)


def _random_result(rng: np.random.Generator, name: str, n: int, *, nan_gt: bool = False,
                   invisible: bool = False, nan_pred: bool = False) -> SequenceResult:
    """Return a noisy tracker output with lost frames, degenerate boxes and boxes off-image."""
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    size = rng.uniform(4.0, 160.0, size=(n, 2))
    corner = rng.uniform([-60.0, -60.0], [width - 20.0, height - 20.0], size=(n, 2))
    anno = np.hstack([corner, size])
    noise = rng.normal(size=(n, 4)) * np.hstack([size, size]) * rng.uniform(0.02, 0.4)
    boxes = anno + noise
    lost = rng.random(n) < 0.1
    boxes[lost, :2] = rng.uniform([0.0, 0.0], [width, height], size=(int(lost.sum()), 2))
    degenerate = rng.random(n) < 0.05
    boxes[degenerate, 2:] *= rng.choice([0.0, -1.0], size=(int(degenerate.sum()), 1))
    visible = rng.random(n) > 0.15 if invisible else np.ones(n, dtype=bool)
    if nan_gt:
        unknown = rng.random(n) < 0.1
        unknown[0] = False
        anno[unknown] = np.nan
        visible &= ~unknown
    if nan_pred:
        boxes[rng.random(n) < 0.05] = np.nan
    visible[0] = True
    times = rng.uniform(0.004, 0.06, size=n)
    times[rng.random(n) < 0.05] = np.nan
    return SequenceResult(name, boxes, anno, visible, times, (width, height))


# ---------------------------------------------------------------------------------------------
# Box functions by hand


def test_rect_iou_by_hand():
    """Check the IoU of overlapping, identical, disjoint, nested and degenerate boxes."""
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10],
                  [0, 0, 0, 10], [0, 0, -5, 10], [np.nan, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5, 5, 10, 10], [0, 0, 10, 10], [20, 20, 5, 5], [2, 2, 5, 5],
                  [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0]])
    _close(rect_iou(a, b), [25 / 175, 1.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0])


def test_rect_iou_bound_moves_boxes_inside_as_the_toolkit_does():
    """A box over the left edge is shifted to x = 0 with its width kept, then cut at the right."""
    a = np.array([[-10.0, 0.0, 30.0, 10.0], [90.0, 0.0, 30.0, 10.0]])
    b = np.array([[0.0, 0.0, 20.0, 10.0], [90.0, 0.0, 10.0, 10.0]])
    _close(rect_iou(a, b, bound=(100, 100)), [200 / 300, 1.0])
    assert a[0, 0] == -10.0, 'the input must not be clamped in place'


def test_centre_errors_by_hand():
    """Centre distance in pixels and normalised by the ground-truth width and height."""
    pred = np.array([[3, 4, 10, 10], [0, 0, 20, 20], [3, 9, 10, 10], [1, 0, 10, 1],
                     [np.nan, 0, 1, 1]])
    true = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 20], [0, 0, 10, 0.5],
                     [0, 0, 1, 1]])
    _close(centre_error(pred, true), [5.0, math.sqrt(50.0), 5.0, math.hypot(1.0, 0.25), np.inf])
    # Offsets (3, 4) over (10, 20); (1, 0.25) over (10, 1), the height 0.5 floored to 1.
    _close(normalised_centre_error(pred, true)[2:4], [math.hypot(0.3, 0.2),
                                                      math.hypot(0.1, 0.25)])
    assert normalised_centre_error(pred, true)[4] == np.inf


def test_curves_count_as_the_toolkits_do():
    """Success counts IoU > t, precision counts error <= d, and no frames gives NaN."""
    _close(success_curve([0.5, 0.5, 1.0], [0.0, 0.5, 0.9]), [1.0, 1 / 3, 1 / 3])
    _close(precision_curve([0.0, 20.0, np.inf], [0.0, 20.0, 50.0]), [1 / 3, 2 / 3, 2 / 3])
    assert np.isnan(success_curve([], [0.0, 0.5])).all()


# ---------------------------------------------------------------------------------------------
# Protocol scores by hand

# Frames 1-3 scored with IoUs 1/7, 1 and 0.8; frame 4 has the target out of view.
HAND_BOXES = [[50, 50, 10, 10], [5, 5, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]]
HAND_ANNO = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 12.5], [70, 70, 5, 5]]
HAND_VISIBLE = [True, True, True, True, False]
HAND_TIMES = [0.5, 0.1, 0.2, np.nan, 0.0]


def test_got10k_scores_of_a_three_frame_sequence_by_hand():
    """AO, SR and speed over the scored frames 1..3 of one sequence."""
    scores = got10k_scores([_result('hand', HAND_BOXES, HAND_ANNO, HAND_VISIBLE, HAND_TIMES)])
    ious = [1 / 7, 1.0, 0.8]
    assert scores.num_frames == 3
    assert scores.ao == pytest.approx(sum(ious) / 3)
    assert scores.sr50 == pytest.approx(2 / 3)
    assert scores.sr75 == pytest.approx(2 / 3)
    assert scores.fps == pytest.approx((2 + 10 + 5) / 3)
    assert scores.success_curve[0] == 1.0 and scores.success_curve[-1] == 0.0
    assert scores.success_auc == pytest.approx(np.mean(scores.success_curve))
    assert scores.per_sequence['hand'].ao == pytest.approx(scores.ao)


def test_otb_scores_of_the_same_sequence_by_hand():
    """Under OTB frame 0 becomes the ground truth and the out-of-view frame is scored too."""
    scores = otb_scores([_result('hand', HAND_BOXES, HAND_ANNO, HAND_VISIBLE, HAND_TIMES)])
    ious = [1.0, 1 / 7, 1.0, 0.8, 0.0]
    assert scores.num_frames == 5
    assert scores.ao == pytest.approx(sum(ious) / 5)
    assert scores.sr50 == pytest.approx(3 / 5)
    assert scores.success_curve[10] == pytest.approx(3 / 5)
    # Centre errors 0, 5*sqrt(2), 0, 1.25, ~71.1: within 20 px for four frames of five.
    assert scores.precision20 == pytest.approx(4 / 5)
    assert scores.success_auc == pytest.approx(np.mean(scores.success_curve))


def test_got10k_pools_frames_and_otb_averages_sequences():
    """Two sequences of different length weigh by frames under GOT-10k, equally under OTB."""
    good = [[0, 0, 10, 10]] * 4
    short = _result('short', [[0, 0, 10, 10], [50, 50, 10, 10]], [[0, 0, 10, 10]] * 2)
    long = _result('long', good, good)
    got = got10k_scores([short, long])
    otb = otb_scores([short, long])
    assert got.ao == pytest.approx(3 / 4)
    assert otb.ao == pytest.approx((1 / 2 + 1) / 2)
    assert otb.success_auc == pytest.approx(np.mean((otb.per_sequence['short'].success_auc,
                                                     otb.per_sequence['long'].success_auc)))


def test_lasot_drops_frames_with_unknown_ground_truth():
    """A NaN ground-truth frame is not scored, whatever the tracker predicted."""
    anno = [[0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]]
    boxes = [[0, 0, 10, 10], [90, 90, 10, 10], [0, 0, 10, 10]]
    scores = lasot_scores([_result('gap', boxes, anno)])
    assert scores.num_frames == 2
    assert scores.ao == pytest.approx(1.0)
    assert scores.norm_precision == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Edge cases


def test_empty_results_and_unknown_protocol_are_refused():
    """Nothing to score, or an unknown protocol, is a clear ValueError."""
    with pytest.raises(ValueError, match='no sequence results'):
        got10k_scores([])
    with pytest.raises(ValueError, match='no sequence results'):
        evaluate([], 'otb')
    with pytest.raises(ValueError, match='unknown protocol'):
        evaluate([_result('x', HAND_BOXES, HAND_ANNO)], 'vot')


@pytest.mark.parametrize('field, value', [
    ('anno', np.zeros((4, 4))), ('visible', np.ones(4, dtype=bool)), ('times', np.ones(6)),
    ('boxes', np.zeros((5, 3))), ('image_size', (0, 480)),
])
def test_inconsistent_inputs_name_the_sequence(field, value):
    """Lengths or shapes that do not match raise ValueError naming the sequence."""
    result = _result('car-7', HAND_BOXES, HAND_ANNO, image_size=(640, 480))
    setattr(result, field, value)
    for protocol in ('got10k', 'otb', 'lasot'):
        with pytest.raises(ValueError, match="sequence 'car-7'"):
            evaluate([result], protocol)


def test_duplicate_sequence_names_are_refused():
    """The same sequence twice would be counted twice and overwrite its per-sequence entry."""
    result = _result('twice', HAND_BOXES, HAND_ANNO)
    with pytest.raises(ValueError, match='twice'):
        otb_scores([result, result])


def test_a_sequence_without_scored_frames_divides_by_nothing():
    """An always-absent target gives NaN for that sequence only; all absent gives NaN overall."""
    absent = _result('absent', HAND_BOXES, HAND_ANNO, [True, False, False, False, False])
    unknown = _result('unknown', HAND_BOXES, [[np.nan] * 4] * 5, times=[np.nan] * 5)
    present = _result('present', HAND_BOXES, HAND_ANNO, HAND_VISIBLE)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        got = got10k_scores([absent, present])
        assert got.per_sequence['absent'].num_frames == 0
        assert math.isnan(got.per_sequence['absent'].ao)
        assert got.ao == pytest.approx(got10k_scores([present]).ao)
        otb = otb_scores([unknown, present])
        assert math.isnan(otb.per_sequence['unknown'].success_auc)
        assert otb.success_auc == pytest.approx(otb_scores([present]).success_auc)
        assert otb.fps == pytest.approx(otb_scores([present]).fps)
        nothing = got10k_scores([absent])
        assert nothing.num_frames == 0 and math.isnan(nothing.ao)
        assert np.isnan(nothing.success_curve).all()
        assert math.isnan(lasot_scores([unknown]).norm_precision)
        assert math.isnan(otb_scores([unknown]).fps)
    document = json.loads(json.dumps(nothing.to_dict(), allow_nan=False))
    assert document['ao'] is None and document['per_sequence']['absent']['ao'] is None


def test_nan_and_degenerate_predictions_count_as_failures():
    """A NaN box has IoU 0 and infinite error; zero or negative sizes have IoU 0."""
    boxes = [[0, 0, 10, 10], [np.nan] * 4, [0, 0, 0, 10], [0, 0, -10, -10], [0, 0, 10, 10]]
    anno = [[0, 0, 10, 10]] * 5
    got = got10k_scores([_result('bad', boxes, anno)])
    assert got.ao == pytest.approx(0.25)
    assert got.precision20 == pytest.approx(3 / 4)
    otb = otb_scores([_result('bad', boxes, anno)])
    assert otb.ao == pytest.approx(0.4)
    assert otb.precision_curve[-1] == pytest.approx(4 / 5)


def test_scores_to_dict_is_plain_json():
    """to_dict holds curves, thresholds and per-sequence numbers and survives strict JSON."""
    scores = lasot_scores([_random_result(np.random.default_rng(3), 's', 30, nan_gt=True)])
    document = json.loads(json.dumps(scores.to_dict(), allow_nan=False))
    assert document['protocol'] == 'lasot' and 'LaSOT' in document['frame_selection']
    assert len(document['success_curve']) == len(document['success_thresholds']) == 21
    assert len(document['precision_curve']) == 51 and len(document['norm_precision_curve']) == 51
    assert document['per_sequence']['s']['num_frames'] == scores.num_frames


# ---------------------------------------------------------------------------------------------
# Against the toolkit's own functions


def test_box_functions_match_the_toolkit():
    """rect_iou (with and without bound) and centre_error equal the toolkit's functions."""
    metrics = _toolkit('got10k.utils.metrics')
    rng = np.random.default_rng(0)
    for index in range(40):
        seq = _random_result(rng, f's{index}', int(rng.integers(5, 200)))
        boxes, anno = seq.boxes, seq.anno
        _close(rect_iou(boxes, anno), metrics.rect_iou(boxes.copy(), anno.copy()))
        _close(rect_iou(boxes, anno, bound=seq.image_size),
               metrics.rect_iou(boxes.copy(), anno.copy(), bound=seq.image_size))
        _close(centre_error(boxes, anno), metrics.center_error(boxes, anno))


def test_nan_predictions_where_the_toolkit_gives_nan():
    """Where the toolkit's IoU is NaN ours is 0; every other frame is equal."""
    metrics = _toolkit('got10k.utils.metrics')
    seq = _random_result(np.random.default_rng(1), 'n', 300, nan_pred=True)
    theirs = metrics.rect_iou(seq.boxes.copy(), seq.anno.copy(), bound=seq.image_size)
    ours = rect_iou(seq.boxes, seq.anno, bound=seq.image_size)
    assert np.isnan(theirs).any()
    _close(ours, np.where(np.isnan(theirs), 0.0, theirs))
    errors = centre_error(seq.boxes, seq.anno)
    assert np.all(np.isinf(errors) == np.isnan(metrics.center_error(seq.boxes, seq.anno)))


def _toolkit_normalized_center_error(rects1, rects2):
    """Return the toolkit's normalised centre error (in its source after release 0.1.3)."""
    metrics = _toolkit('got10k.utils.metrics')
    if hasattr(metrics, 'normalized_center_error'):
        return metrics.normalized_center_error(rects1, rects2)
    # Release 0.1.3 predates it; this is its formula verbatim.
    centers1 = rects1[..., :2] + (rects1[..., 2:] - 1) / 2
    centers2 = rects2[..., :2] + (rects2[..., 2:] - 1) / 2
    return np.sqrt(np.sum(np.power(
        (centers1 - centers2) / np.maximum(np.array([[1., 1.]]), rects2[:, 2:]), 2), axis=-1))


# ---------------------------------------------------------------------------------------------
# Against the toolkit's GOT-10k experiment, end to end


def _save(path: pathlib.Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, values, fmt='%.17g', delimiter=',')


def _got10k_layout(root: pathlib.Path, sequences) -> None:
    """Write the val split as ``got10k.datasets.GOT10k`` reads it (empty frame files)."""
    val = root / 'val'
    val.mkdir(parents=True)
    (val / 'list.txt').write_text('\n'.join(seq.name for seq in sequences) + '\n')
    for seq in sequences:
        folder = val / seq.name
        folder.mkdir()
        for frame in range(len(seq.anno)):
            (folder / f'{frame + 1:08d}.jpg').touch()
        _save(folder / 'groundtruth.txt', seq.anno)
        width, height = seq.image_size
        (folder / 'meta_info.ini').write_text(
            f'[METAINFO]\nresolution: ({width}, {height})\n')
        cover = np.where(seq.visible, 8, 0)
        np.savetxt(folder / 'cover.label', cover, fmt='%d')
        np.savetxt(folder / 'absence.label', (cover == 0).astype(int), fmt='%d')
        np.savetxt(folder / 'cut_by_image.label', np.zeros_like(cover), fmt='%d')


@pytest.fixture(scope='module')
def got10k_run(tmp_path_factory):
    """Two trackers on 25 sequences, scored by ``ExperimentGOT10k.report`` and by us."""
    experiments = _toolkit('got10k.experiments')
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp('got10k')
    truth = [_random_result(rng, f'GOT-10k_Val_{i:06d}', int(rng.integers(2, 90)),
                            invisible=True) for i in range(25)]
    truth[3].visible[1:] = False
    # Ground truth is only unknown where the target is invisible, as in GOT-10k.
    truth[5].anno[~truth[5].visible] = np.nan
    _got10k_layout(root / 'data', truth)
    runs = {}
    for tracker in ('alpha', 'beta'):
        runs[tracker] = []
        for seq in truth:
            pred = _random_result(rng, seq.name, len(seq.anno))
            boxes = seq.anno + (pred.boxes - pred.anno)
            boxes[np.isnan(boxes)] = 5.0
            boxes[0] = seq.anno[0]
            folder = root / 'results' / 'GOT-10k' / tracker / seq.name
            _save(folder / f'{seq.name}_001.txt', boxes)
            _save(folder / f'{seq.name}_time.txt', pred.times)
            runs[tracker].append(SequenceResult(seq.name, boxes, seq.anno, seq.visible,
                                                pred.times, seq.image_size))
    experiment = experiments.ExperimentGOT10k(
        str(root / 'data'), subset='val', result_dir=str(root / 'results'),
        report_dir=str(root / 'reports'))
    with warnings.catch_warnings():
        # The toolkit averages the empty IoU list of the always-absent sequence.
        warnings.simplefilter('ignore', RuntimeWarning)
        performance = experiment.report(['alpha', 'beta'])
    return experiment, performance, runs


def test_got10k_scores_match_the_toolkit_report(got10k_run):
    """AO, SR0.5, speed and the success curve, overall (pooled) and per sequence."""
    _, performance, runs = got10k_run
    for tracker, results in runs.items():
        ours = got10k_scores(results)
        theirs = performance[tracker]['overall']
        _close(ours.ao, theirs['ao'])
        _close(ours.sr50, theirs['sr'])
        _close(ours.fps, theirs['speed_fps'])
        _close(ours.success_curve, theirs['succ_curve'])
        _close(ours.sr75, theirs['succ_curve'][75])
        for name, seq in performance[tracker]['seq_wise'].items():
            mine = ours.per_sequence[name]
            assert mine.length - 1 == seq['length']
            _close([mine.ao, mine.sr50, mine.fps], [seq['ao'], seq['sr'], seq['speed_fps']])
        assert ours.per_sequence[results[3].name].num_frames == 0


def test_got10k_evaluate_with_nan_predictions(got10k_run):
    """On toolkit IoUs with NaN, ``_evaluate`` agrees on SR, curve and speed; our AO is finite."""
    metrics = _toolkit('got10k.utils.metrics')
    experiment = got10k_run[0]
    rng = np.random.default_rng(11)
    results = [_random_result(rng, f's{i}', int(rng.integers(2, 80)), invisible=True,
                              nan_pred=True) for i in range(30)]
    ious = np.concatenate([
        metrics.rect_iou(seq.boxes[1:].copy(), seq.anno[1:].copy(),
                         bound=seq.image_size)[seq.visible[1:]] for seq in results])
    times = np.concatenate([seq.times for seq in results])
    times = times[~np.isnan(times)]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        ao, sr, speed, curve = experiment._evaluate(ious, times[times > 0])
    assert np.isnan(ious).any() and np.isnan(ao)
    ours = got10k_scores(results)
    _close([ours.sr50, ours.fps], [sr, speed])
    _close(ours.success_curve, curve)
    _close(ours.ao, np.mean(np.nan_to_num(ious, nan=0.0)))


# ---------------------------------------------------------------------------------------------
# Against the toolkit's OTB experiment, end to end

# OTB's loader keeps only part of the frames of these; the layout must have that many.
OTB_FRAME_SLICES = {'David': (770, 471), 'Football1': (74, 74), 'Freeman3': (460, 460),
                    'Freeman4': (283, 283), 'Diving': (215, 215)}


@pytest.fixture(scope='module')
def otb_run(tmp_path_factory):
    """One tracker on the 50 sequences of OTB-2013 (random boxes), scored by ``report``."""
    experiments = _toolkit('got10k.experiments')
    datasets = _toolkit('got10k.datasets')
    names = datasets.OTB._OTB__version_dict[2013]
    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp('otb')
    results = []
    for name in names:
        images, n = OTB_FRAME_SLICES.get(name, (None, int(rng.integers(2, 60))))
        seq = _random_result(rng, name, n, nan_pred=True)
        folder = root / 'data' / name
        (folder / 'img').mkdir(parents=True)
        for frame in range(images or n):
            (folder / 'img' / f'{frame + 1:04d}.jpg').touch()
        _save(folder / 'groundtruth_rect.txt', seq.anno)
        _save(root / 'results' / 'OTB2013' / 'alpha' / f'{name}.txt', seq.boxes)
        _save(root / 'results' / 'OTB2013' / 'alpha' / 'times' / f'{name}_time.txt', seq.times)
        results.append(seq)
    experiment = experiments.ExperimentOTB(
        str(root / 'data'), version=2013, result_dir=str(root / 'results'),
        report_dir=str(root / 'reports'))
    performance = experiment.report(['alpha'])
    return experiment, performance['alpha'], results


def test_otb_scores_match_the_toolkit_report(otb_run):
    """Curves averaged over sequences, success AUC, precision at 20 px, SR0.5 and speed."""
    _, performance, results = otb_run
    ours = otb_scores(results)
    theirs = performance['overall']
    assert ours.num_sequences == len(performance['seq_wise']) == 50
    _close(ours.success_curve, theirs['success_curve'])
    _close(ours.precision_curve, theirs['precision_curve'])
    _close([ours.success_auc, ours.precision20, ours.sr50, ours.fps],
           [theirs['success_score'], theirs['precision_score'], theirs['success_rate'],
            theirs['speed_fps']])
    for name, seq in performance['seq_wise'].items():
        mine = ours.per_sequence[name]
        _close([mine.success_auc, mine.precision20, mine.sr50, mine.fps],
               [seq['success_score'], seq['precision_score'], seq['success_rate'],
                seq['speed_fps']])


def test_lasot_scores_match_the_toolkit_lasot_scoring(otb_run):
    """
    Check against the LaSOT experiment's scoring on sequences with unknown ground truth.

    ``ExperimentLaSOT`` (in the toolkit's source after release 0.1.3) sets frame 0 to the
    ground truth, keeps the frames whose ground truth has no NaN and scores them with the OTB
    experiment's ``_calc_curves`` plus a normalised precision curve on [0, 0.5] whose mean is
    the score; the steps are taken here with the toolkit's own functions.
    """
    experiment = otb_run[0]
    rng = np.random.default_rng(9)
    results = [_random_result(rng, f's{i}', int(rng.integers(2, 120)), nan_gt=True,
                              nan_pred=True) for i in range(40)]
    succ, prec, norm = [], [], []
    for seq in results:
        boxes = seq.boxes.copy()
        boxes[0] = seq.anno[0]
        valid = ~np.any(np.isnan(seq.anno), axis=1)
        ious, errors = experiment._calc_metrics(boxes[valid], seq.anno[valid])
        curves = experiment._calc_curves(ious, errors)
        succ.append(curves[0])
        prec.append(curves[1])
        norm_errors = _toolkit_normalized_center_error(boxes[valid], seq.anno[valid])
        thresholds = np.linspace(0, 0.5, 51)[np.newaxis, :]
        norm.append(np.mean(np.less_equal(norm_errors[:, np.newaxis], thresholds), axis=0))
    ours = lasot_scores(results)
    _close(ours.success_curve, np.mean(succ, axis=0))
    _close(ours.precision_curve, np.mean(prec, axis=0))
    _close(ours.norm_precision_curve, np.mean(norm, axis=0))
    _close([ours.success_auc, ours.precision20, ours.norm_precision, ours.norm_precision20],
           [np.mean(np.mean(succ, axis=0)), np.mean(prec, axis=0)[20],
            np.mean(np.mean(norm, axis=0)), np.mean(norm, axis=0)[20]])
    _close(normalised_centre_error(results[0].boxes, results[0].anno),
           np.nan_to_num(_toolkit_normalized_center_error(results[0].boxes, results[0].anno),
                         nan=np.inf))


# ---------------------------------------------------------------------------------------------
# Plots and tables


def _two_trackers(protocol: str):
    rng = np.random.default_rng(21)
    truth = [_random_result(rng, f's{i}', 40, invisible=True) for i in range(6)]
    scores = {}
    for tracker, noise in (('weak', 0.6), ('strong', 0.05)):
        results = []
        for seq in truth:
            jitter = rng.normal(size=seq.anno.shape) * noise * seq.anno[:, 2:].repeat(2, axis=1)
            results.append(SequenceResult(seq.name, seq.anno + jitter, seq.anno, seq.visible,
                                          seq.times, seq.image_size))
        scores[tracker] = evaluate(results, protocol)
    return scores


def _assert_png(path: pathlib.Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5000
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > 300 and height > 200


@pytest.mark.parametrize('protocol', ['got10k', 'lasot'])
def test_plots_are_written(tmp_path, protocol):
    """Success, precision and normalised precision plots are non-empty PNG files."""
    scores = _two_trackers(protocol)
    for plot, name in ((success_plot, 'success.png'), (precision_plot, 'prec/precision.png'),
                       (norm_precision_plot, 'norm.png')):
        path = plot(scores, tmp_path / name, title=f'{protocol} test')
        assert path == tmp_path / name
        _assert_png(path)


def test_legend_ranks_best_first_and_protocols_do_not_mix(tmp_path):
    """Trackers are ranked by their score, NaN last; different protocols cannot share a plot."""
    scores = _two_trackers('otb')
    assert [name for name, _ in rank_trackers(scores, Scores.primary)] == ['strong', 'weak']
    scores['none'] = otb_scores([_result('u', HAND_BOXES, [[np.nan] * 4] * 5)])
    assert [name for name, _ in rank_trackers(scores, Scores.primary)][-1] == 'none'
    mixed = {'a': scores['strong'], 'b': _two_trackers('got10k')['weak']}
    with pytest.raises(ValueError, match='different protocols'):
        success_plot(mixed, tmp_path / 'mixed.png')
    with pytest.raises(ValueError, match='no trackers'):
        precision_plot({}, tmp_path / 'empty.png')


@pytest.mark.slow
def test_plots_leave_pyplot_alone(tmp_path):
    """Plotting needs no global backend: pyplot is never imported by the library."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(PACKAGE_ROOT)!r})
        import numpy as np
        from detrack_model.evaluation import otb_scores, SequenceResult, success_plot
        box = np.array([[0.0, 0.0, 10.0, 10.0]] * 3)
        seq = SequenceResult('s', box, box, np.ones(3, bool), np.full(3, 0.01))
        success_plot({{'t': otb_scores([seq])}}, {str(tmp_path / 'p.png')!r})
        assert 'matplotlib.pyplot' not in sys.modules
    """)
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    _assert_png(tmp_path / 'p.png')


def test_comparison_table_bolds_the_best_value():
    """Markdown rows best first, each column's best value in bold, unknown values as n/a."""
    scores = _two_trackers('got10k')
    table = comparison_table(scores, 'got10k')
    lines = table.strip().splitlines()
    assert lines[0] == '| Tracker | AO | SR0.5 | SR0.75 | AUC | P@20 | NP | FPS |'
    assert lines[2].startswith('| strong | ') and lines[3].startswith('| weak | ')
    assert f'**{scores["strong"].ao:.3f}**' in lines[2]
    assert f'**{scores["strong"].precision20:.3f}**' in lines[2]
    assert f'**{scores["weak"].ao:.3f}**' not in lines[3]
    # Both trackers ran on the same times, so both speeds are best.
    assert lines[2].endswith(f'**{scores["strong"].fps:.1f}** |')
    assert lines[3].endswith(f'**{scores["weak"].fps:.1f}** |')
    scores['absent|odd'] = got10k_scores([_result('u', HAND_BOXES, HAND_ANNO, [True] + [False] * 4,
                                                  [np.nan] * 5)])
    table = comparison_table(scores, 'got10k')
    assert '| absent\\|odd | n/a |' in table
    with pytest.raises(ValueError, match='not computed under the otb protocol'):
        comparison_table(scores, 'otb')


def test_write_report(tmp_path):
    """table.md, scores.json and the three plots are written into the directory."""
    scores = _two_trackers('lasot')
    paths = write_report(scores, tmp_path / 'report', 'lasot')
    assert sorted(p.name for p in (tmp_path / 'report').iterdir()) == [
        'norm_precision_plot.png', 'precision_plot.png', 'scores.json', 'success_plot.png',
        'table.md']
    table = paths['table'].read_text()
    assert comparison_table(scores, 'lasot') in table and '**' in table
    document = json.loads(paths['scores'].read_text())
    assert document['protocol'] == 'lasot'
    assert document['trackers']['strong']['success_auc'] == pytest.approx(
        scores['strong'].success_auc)
    for kind in ('success', 'precision', 'norm_precision'):
        _assert_png(paths[kind])
