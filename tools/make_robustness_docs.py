"""
Write docs/robust-tracking.md: the lost state calibrated, and each robustness switch measured.

    make data
    python -m tools.make_robustness_docs        # about 20 minutes on 2 CPU cores

Settings are chosen on the cross-source **validation** sequences (docs/model-sizing.md's):
the score threshold from the score of each frame against the IoU of its box, then the lost
patience, box dynamics, motion and re-detection from a grid, by AO with false tracking kept
at most 20 % of absent frames. The **test** sequences (docs/tracking.md's headline set) are
then scored once: the chosen configuration, the old defaults, and the chosen one with each
switch off, on all sequences and on those with occlusion or out-of-view spells; recovery
after absence and false tracking during it; the largest area change between published
boxes; the time per frame while tracking and while re-detecting. The real clips of
docs/real-video.md are run before and after.
"""

import argparse
import datetime
import itertools
import json
import os
import pathlib
import platform
import sys
from typing import Any, Dict, List, Sequence, Tuple

from detrack_model.data.sequences import read_rgb
from detrack_model.evaluation import evaluate
from detrack_model.evaluation.consistency import forward_backward, max_scale_change, run_track
from detrack_model.evaluation.metrics import rect_iou
from detrack_model.evaluation.recovery import recovery
from detrack_model.evaluation.runner import run_benchmark
from detrack_model.shipped import default_model_path
from detrack_model.tracking import build_tracker, RuntimeConfig, TrackerConfig
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np
from tools.make_pretraining_docs import sequences_of
from tools.make_real_video_docs import CLIPS, ensure_clips, load_targets, read_clip
from tools.make_sizing_docs import VAL_SEED
from tools.make_tracking_docs import EVAL_SEED
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / 'docs'
MAX_FALSE_TRACKING = 0.2
# The grid searched on val (besides the threshold, which the score/IoU curve sets).
GRID = {'lost_patience': (1, 3, 5), 'dynamics': ((1.0, float('inf')), (0.7, 1.3), (0.5, 1.2)),
        'motion': (False, True), 'redetect': (False, True)}
SWITCHES = ('calibrated loss', 'box dynamics', 'motion', 'redetect')


def config_of(settings: Dict[str, Any]) -> TrackerConfig:
    """Return the TrackerConfig of one grid point."""
    size_rate, max_step = settings['dynamics']
    return TrackerConfig(score_threshold=settings['score_threshold'],
                         lost_patience=settings['lost_patience'], size_rate=size_rate,
                         max_scale_step=max_step, motion=settings['motion'],
                         redetect=settings['redetect'])


def label(settings: Dict[str, Any]) -> str:
    """Return a short name of a grid point (a results directory)."""
    size_rate, max_step = settings['dynamics']
    return (f't{settings["score_threshold"]:.2f}-p{settings["lost_patience"]}-'
            f'd{size_rate:g}_{max_step:g}-m{int(settings["motion"])}-'
            f'r{int(settings["redetect"])}')


def calibrate(model: pathlib.Path, sequences) -> Tuple[float, Dict[str, Any]]:
    """Run without a lost state; return the threshold that best separates good boxes."""
    tracker = build_tracker(model, RuntimeConfig(device='cpu', backend='onnxruntime',
                                                 threads=2), TrackerConfig(score_threshold=0))
    scores, good = [], []
    for sequence in sequences:
        frames = [read_rgb(path) for path in sequence.frames]
        run = run_track(tracker, frames, sequence.anno[0])
        iou = rect_iou(run.boxes, np.nan_to_num(sequence.anno))
        scores.append(run.scores[1:])
        good.append((iou > 0.3)[1:] & sequence.visible[1:])
    score, ok = np.concatenate(scores), np.concatenate(good)
    thresholds = np.round(np.arange(0.05, 0.95, 0.05), 2)
    balanced = [0.5 * ((score[ok] >= t).mean() + (score[~ok] < t).mean()) for t in thresholds]
    best = float(thresholds[int(np.argmax(balanced))])
    return best, {'scores': score, 'good': ok, 'thresholds': thresholds, 'balanced': balanced}


def score_plot(calibration: Dict[str, Any], threshold: float, path: pathlib.Path) -> None:
    """Plot the score distributions of good and bad boxes and the balanced accuracy."""
    figure = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    bins = np.linspace(0, 1, 41)
    left.hist(calibration['scores'][calibration['good']], bins, alpha=0.6,
              label='box on the target (IoU > 0.3)')
    left.hist(calibration['scores'][~calibration['good']], bins, alpha=0.6,
              label='box off the target, or target absent')
    left.axvline(threshold, color='k', linestyle='--')
    left.set_xlabel('network score')
    left.set_ylabel('frames')
    left.legend(fontsize=8)
    right.plot(calibration['thresholds'], calibration['balanced'], marker='o')
    right.axvline(threshold, color='k', linestyle='--')
    right.set_xlabel('score threshold')
    right.set_ylabel('balanced accuracy')
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def measure(model: pathlib.Path, sequences, settings: Dict[str, Any], output: pathlib.Path,
            subset: Sequence[str]) -> Dict[str, Any]:
    """Run one configuration; return AO (all, subset), recovery, false tracking, scale, times."""
    tracker = build_tracker(model, RuntimeConfig(device='cpu', backend='onnxruntime',
                                                 threads=2), config_of(settings))
    results = run_benchmark(lambda: tracker, sequences, str(output), label(settings))
    hard = [r for r in results if r.name in subset]
    spells = recovery(results)
    ratios = [max_scale_change(r.boxes, r.lost).max_ratio for r in results]
    tracking = np.concatenate([r.times[1:][~r.lost[1:]] for r in results])
    lost = np.concatenate([r.times[1:][r.lost[1:]] for r in results])
    return {'ao': evaluate(results, 'got10k').ao,
            'ao_hard': evaluate(hard, 'got10k').ao if hard else float('nan'),
            'recovery': spells.recovery_rate, 'false_tracking': spells.false_tracking_rate,
            'max_area_ratio': float(max(ratios)),
            'track_ms': float(np.median(tracking) * 1000) if tracking.size else float('nan'),
            'lost_ms': float(np.median(lost) * 1000) if lost.size else float('nan')}


def hard_sequences(sequences) -> List[str]:
    """Return the names of generated sequences with an occlusion or out-of-view spell."""
    names = []
    for sequence in sequences:
        info = pathlib.Path(sequence.frames[0]).parent / 'synthetic.json'
        attributes = json.loads(info.read_text()).get('attributes', {})
        if attributes.get('occlusion') or attributes.get('out_of_view'):
            names.append(sequence.name)
    return names


def choose(rows: List[Tuple[Dict[str, Any], Dict[str, Any]]]) -> Dict[str, Any]:
    """Pick the grid point of best val AO among those that keep false tracking low."""
    allowed = [r for r in rows if r[1]['false_tracking'] <= MAX_FALSE_TRACKING] or rows
    return max(allowed, key=lambda r: (r[1]['ao'], r[1]['recovery']))[0]


def real_clips(model: pathlib.Path, configs: Dict[str, Dict[str, Any]]
               ) -> List[Tuple[str, str, float, float, float]]:
    """Return (target, config, largest area ratio, lost fraction, FB IoU) on the real clips."""
    document = load_targets()
    clips = ensure_clips(document, CLIPS)
    rows = []
    for target in document['targets']:
        frames, _ = read_clip(clips[target['clip']])
        frames = frames[int(target['start']):int(target['end']) + 1]
        for name, settings in configs.items():
            def factory(settings=settings):
                return build_tracker(model, RuntimeConfig(device='cpu', backend='onnxruntime',
                                                          threads=2), config_of(settings))
            run = run_track(factory(), frames, target['box'])
            fb = forward_backward(factory, frames, target['box'], len(frames) - 1, forward=run)
            rows.append((target['name'], name, max_scale_change(run.boxes, run.lost).max_ratio,
                         float(run.lost.mean()), fb.iou))
    return rows


def main() -> int:
    """Calibrate and choose on val, score on test once, write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--model', type=pathlib.Path, default=default_model_path())
    parser.add_argument('--pool', default=str(ROOT / 'build' / 'data' / 'image_pool'))
    parser.add_argument('--work', type=pathlib.Path,
                        default=ROOT / 'build' / 'eval' / 'robustness')
    parser.add_argument('--docs', type=pathlib.Path, default=DOCS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    val = sequences_of(ROOT / 'build' / 'data' / 'sizing_val', 'val', VAL_SEED, 30, 80,
                       args.pool)
    test = sequences_of(ROOT / 'build' / 'data' / 'tracking_eval' / 'cross_source', 'test',
                        EVAL_SEED, 30, 100, args.pool)
    threshold, calibration = calibrate(args.model, val)
    score_plot(calibration, threshold, args.docs / 'robust-scores.png')
    old = TrackerConfig()
    val_hard = hard_sequences(val)
    rows = []
    for values in itertools.product(*GRID.values()):
        settings = {'score_threshold': threshold, **dict(zip(GRID, values))}
        print(label(settings), flush=True)
        rows.append((settings, measure(args.model, val, settings, args.work / 'val',
                                       val_hard)))
    chosen = choose(rows)
    baseline = {'score_threshold': old.score_threshold, 'lost_patience': old.lost_patience,
                'dynamics': (1.0, float('inf')), 'motion': False, 'redetect': False}
    configs = {'chosen': chosen, 'old defaults': baseline,
               'without calibrated loss': {**chosen, 'score_threshold': old.score_threshold,
                                           'lost_patience': old.lost_patience},
               'without box dynamics': {**chosen, 'dynamics': (1.0, float('inf'))},
               'without motion': {**chosen, 'motion': False},
               'without re-detection': {**chosen, 'redetect': False}}
    test_hard = hard_sequences(test)
    measured = {name: measure(args.model, test, settings, args.work / 'test', test_hard)
                for name, settings in configs.items()}
    clips = real_clips(args.model, {'old defaults': baseline, 'chosen': chosen})
    (args.docs / 'robust-tracking.md').write_text(
        page(threshold, rows, chosen, configs, measured, clips, len(val), len(test),
             len(test_hard), args.model))
    print((args.docs / 'robust-tracking.md').read_text())
    return 0


def page(threshold: float, rows, chosen: Dict[str, Any], configs: Dict[str, Dict[str, Any]],
         measured: Dict[str, Dict[str, Any]], clips, val_count: int, test_count: int,
         hard_count: int, model: pathlib.Path) -> str:
    """Render docs/robust-tracking.md."""
    name = model.relative_to(ROOT) if model.is_relative_to(ROOT) else model
    lines = [
        '# Robust tracking: the lost state, box dynamics, motion and re-detection', '',
        'Generated by `python -m tools.make_robustness_docs` '
        f'({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPU '
        f'cores, torch {torch.__version__}); model `{name}`, onnxruntime, 2 threads.', '',
        f'## Chosen on validation ({val_count} cross-source sequences)', '',
        f'**Score threshold {threshold:.2f}**: the threshold at which "score >= t" best '
        'separates frames whose box is on the target (IoU > 0.3) from the rest (balanced '
        'accuracy), from one run without a lost state:', '',
        '![scores](robust-scores.png)', '',
        f'Then a grid of {len(rows)} configurations (lost patience x box dynamics x motion x '
        're-detection); the best AO among those whose false tracking stays at most '
        f'{MAX_FALSE_TRACKING:.0%} of absent frames: lost patience '
        f'{chosen["lost_patience"]}, size rate / largest step {chosen["dynamics"][0]:g} / '
        f'{chosen["dynamics"][1]:g}, motion {"on" if chosen["motion"] else "off"}, '
        f're-detection {"on" if chosen["redetect"] else "off"}.', '',
        f'## Test ({test_count} cross-source sequences, {hard_count} with occlusion or '
        'out-of-view; scored once)', '',
        '| configuration | AO | AO occlusion/out-of-view | recovery in 30 frames | false '
        'tracking | largest area step | ms tracking | ms lost |',
        '|:--|--:|--:|--:|--:|--:|--:|--:|']
    for label_, values in measured.items():
        lines.append(f'| {label_} | {values["ao"]:.3f} | {values["ao_hard"]:.3f} | '
                     f'{values["recovery"]:.0%} | {values["false_tracking"]:.0%} | '
                     f'{values["max_area_ratio"]:.2f} | {values["track_ms"]:.2f} | '
                     f'{values["lost_ms"]:.2f} |')
    chosen_row, old_row = measured['chosen'], measured['old defaults']
    lines += [
        '', '**Against the targets**', '',
        f'- Recovery within 30 frames: {chosen_row["recovery"]:.0%} of absence spells '
        f'(target at least 80 %: {"met" if chosen_row["recovery"] >= 0.8 else "missed"}).',
        f'- False tracking: {chosen_row["false_tracking"]:.0%} of absent frames (target at '
        f'most 20 %: {"met" if chosen_row["false_tracking"] <= 0.2 else "missed"}).',
        f'- AO on occlusion/out-of-view sequences: {chosen_row["ao_hard"]:.3f} against '
        f'{old_row["ao_hard"]:.3f} without these features (target +0.10: '
        f'{"met" if chosen_row["ao_hard"] - old_row["ao_hard"] >= 0.1 else "missed"}).',
        f'- Largest area step between published boxes: {chosen_row["max_area_ratio"]:.2f}x '
        f'(target at most 3x: {"met" if chosen_row["max_area_ratio"] <= 3 else "missed"}).',
        f'- Median time per tracked frame: {chosen_row["track_ms"]:.2f} ms against '
        f'{old_row["track_ms"]:.2f} ms (target within 10 %: '
        f'{"met" if chosen_row["track_ms"] <= 1.1 * old_row["track_ms"] else "missed"}).',
        '', '## Real clips (docs/real-video.md)', '',
        "Forward-backward IoU: the tracker runs to the clip's last frame, a fresh one runs "
        'back from the box it ended on, and its box on the first frame is compared with the '
        'start box (1.0: it retraced its path).', '',
        '| target | configuration | largest area step | frames lost | forward-backward IoU |',
        '|:--|:--|--:|--:|--:|']
    lines += [f'| {t} | {c} | {r:.2f} | {lost:.0%} | {fb:.2f} |'
              for t, c, r, lost, fb in clips]
    lines += ['', 'Regenerate: `make data`, then `python -m tools.make_robustness_docs`.', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
