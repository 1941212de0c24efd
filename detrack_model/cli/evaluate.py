"""
detrack-eval: one-pass evaluation of DETRack and OpenCV peers on a benchmark, side by side.

Examples::

    detrack-eval --benchmark got10k --root data/got10k --split val
        --tracker detrack --tracker detrack:layers=1 --tracker csrt --tracker kcf
    detrack-eval --benchmark lasot --root data/lasot --sequences lasot_test.txt
        --tracker detrack:model=runs/x/model,backend=onnxruntime,name=x-ort

A DETRack tracker is ``detrack[:key=value,...]`` with keys ``model`` (bundle or .onnx,
default: the shipped model), ``backend`` (torch | onnxruntime), ``layers`` (decoder layers),
``device``, ``threads``, ``fp16``, ``ce`` (candidate elimination 0/1), ``hanning`` (0/1),
``threshold`` and ``patience`` (score threshold and misses in a row of the lost state),
``size_rate`` and ``max_step`` (box dynamics: the damping of size changes by confidence and the
largest size change per frame), ``motion`` and ``redetect`` (0/1: coasting while lost, and
whole-frame re-detection), ``reference`` (frames of the score reference), ``recover`` and
``growth`` (the recovery threshold of a lost target and the growth of its radius per frame),
``template`` (0/1: confident views taken as the template), ``name`` (results directory).
Peers: csrt, kcf, mosse, medianflow.

Results go to ``<output>/results/<tracker>/<seq>/`` in the GOT-10k toolkit's format (an
interrupted run resumes where it stopped); ``<output>/table.md``, ``scores.json`` and the
success / precision plots compare all trackers of the run.
"""

import argparse
import logging
import pathlib
import sys
from typing import Callable, Dict, List, Optional, Tuple

from detrack_model.cli.common import non_negative_int
from detrack_model.data.sequences import FrameError
from detrack_model.evaluation import evaluate, PROTOCOLS, Scores, write_report
from detrack_model.evaluation.peers import create_peer, PEERS
from detrack_model.evaluation.report import comparison_table
from detrack_model.evaluation.runner import run_benchmark
from detrack_model.evaluation.sequences import BENCHMARKS, load_benchmark
from detrack_model.export.bundle import BundleError
from detrack_model.shipped import default_model_path

# Tracker options that are TrackerConfig fields: option -> (field, type).
TRACKER_SETTINGS = {'threshold': ('score_threshold', float), 'patience': ('lost_patience', int),
                    'search': ('search_patience', int), 'size_rate': ('size_rate', float),
                    'max_step': ('max_scale_step', float), 'motion': ('motion', bool),
                    'redetect': ('redetect', bool), 'reference': ('reference_frames', int),
                    'recover': ('recover_threshold', float), 'growth': ('recover_growth', float),
                    'template': ('template_update', bool)}
DETRACK_KEYS = ('model', 'backend', 'layers', 'device', 'threads', 'fp16', 'ce', 'hanning',
                *TRACKER_SETTINGS, 'name')


def parse_tracker(spec: str) -> Tuple[str, Dict[str, str]]:
    """Split ``kind[:key=value,...]`` into the kind and its options (checked)."""
    kind, _, rest = spec.partition(':')
    kind = kind.strip().lower()
    options: Dict[str, str] = {}
    for item in filter(None, rest.split(',')):
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'tracker {spec!r}: expected key=value, got {item!r}')
        options[key.strip()] = value.strip()
    if kind == 'detrack':
        unknown = sorted(set(options) - set(DETRACK_KEYS))
        if unknown:
            raise ValueError(f'tracker {spec!r}: unknown keys {unknown}; known: '
                             f'{", ".join(DETRACK_KEYS)}')
    elif kind in PEERS:
        unknown = sorted(set(options) - {'name'})
        if unknown:
            raise ValueError(f'tracker {spec!r}: OpenCV trackers take only name=, got {unknown}')
    else:
        raise ValueError(f'unknown tracker {kind!r}; choose detrack or one of {", ".join(PEERS)}')
    return kind, options


def _flag(options: Dict[str, str], key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None:
        return default
    if value.lower() in ('1', 'true', 'yes', 'on'):
        return True
    if value.lower() in ('0', 'false', 'no', 'off'):
        return False
    raise ValueError(f'{key}={value!r}: expected 0/1')


def _number(options: Dict[str, str], key: str, kind: type) -> float:
    try:
        return kind(options[key])
    except ValueError:
        raise ValueError(f'{key}={options[key]!r}: expected a number') from None


def _count(options: Dict[str, str], key: str) -> Optional[int]:
    value = options.get(key)
    if value is None:
        return None
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f'{key}={value!r}: expected a whole number') from None
    if count < 1:
        raise ValueError(f'{key}={value!r}: must be at least 1')
    return count


def detrack_name(options: Dict[str, str]) -> str:
    """Return the results-directory name of a DETRack configuration."""
    if 'name' in options:
        return options['name']
    parts = ['detrack']
    if 'model' in options:
        parts.append(pathlib.Path(options['model']).stem)
    if 'layers' in options:
        parts.append(f'L{options["layers"]}')
    if options.get('backend', 'torch') != 'torch':
        parts.append('ort')
    if not _flag(options, 'ce', True):
        parts.append('noce')
    if not _flag(options, 'hanning', True):
        parts.append('nohann')
    parts += [f'{key}{options[key]}' for key in TRACKER_SETTINGS if key in options]
    return '-'.join(parts)


def build_factory(kind: str, options: Dict[str, str]) -> Tuple[str, Callable[[], object]]:
    """Return the results name and a factory of ready trackers for one ``--tracker``."""
    if kind in PEERS:
        return options.get('name', kind), lambda: create_peer(kind)
    from detrack_model.tracking import build_tracker, RuntimeConfig, TrackerConfig
    from detrack_model.tracking.session import OfflineSession
    runtime = RuntimeConfig(
        device=options.get('device', 'auto'), backend=options.get('backend', 'torch'),
        fp16=_flag(options, 'fp16', False),
        decoder_layers=_count(options, 'layers'), candidate_elimination=_flag(options, 'ce', True),
        threads=_count(options, 'threads'))
    settings = {'hanning': _flag(options, 'hanning', True)}
    for key, (field, kind) in TRACKER_SETTINGS.items():
        if key in options:
            settings[field] = _flag(options, key, False) if kind is bool else \
                _number(options, key, kind)
    config = TrackerConfig(**settings)
    tracker = build_tracker(options.get('model') or default_model_path(), runtime, config)
    # The node's session drives it; one network serves every sequence (initialize() resets
    # all per-target state).
    session = OfflineSession(tracker)
    return detrack_name(options), lambda: session


def run(args: argparse.Namespace) -> Dict[str, Scores]:
    """Evaluate every tracker of the command line; return their scores by name."""
    sequences = load_benchmark(args.benchmark, args.root, split=args.split,
                               sequences=args.sequences)
    if args.limit:
        sequences = sequences[:args.limit]
    protocol = args.protocol or args.benchmark
    output = pathlib.Path(args.output)
    scores: Dict[str, Scores] = {}
    for spec in args.trackers:
        kind, options = parse_tracker(spec)
        name, factory = build_factory(kind, options)
        if name in scores:
            raise ValueError(f'two trackers are named {name!r}; give one a name=')
        results = run_benchmark(factory, sequences, str(output / 'results'), name,
                                resume=not args.no_resume, progress=args.progress)
        scores[name] = evaluate(results, protocol)
    write_report(scores, output, protocol)
    return scores


def main(argv: Optional[List[str]] = None) -> int:
    """Run the evaluation and print the comparison table."""
    parser = argparse.ArgumentParser(prog='detrack-eval', description=__doc__.splitlines()[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n'.join(__doc__.splitlines()[3:]))
    parser.add_argument('--benchmark', required=True, choices=BENCHMARKS,
                        help='dataset layout')
    parser.add_argument('--root', required=True, help='dataset root directory')
    parser.add_argument('--split', help='GOT-10k split (default: val)')
    parser.add_argument('--sequences', help='file with one sequence name per line (subset)')
    parser.add_argument('--limit', type=non_negative_int, default=0,
                        help='first N sequences only (0: all)')
    parser.add_argument('--tracker', dest='trackers', action='append', default=[],
                        metavar='SPEC', help='detrack[:key=value,...] or a peer (repeatable)')
    parser.add_argument('--protocol', choices=PROTOCOLS,
                        help="scoring rules (default: the benchmark's own)")
    parser.add_argument('--output', default='runs/eval', help='results and report directory')
    parser.add_argument('--no-resume', action='store_true', help='rerun finished sequences')
    parser.add_argument('--progress', action='store_true', help='one line per sequence')
    args = parser.parse_args(argv)
    if not args.trackers:
        args.trackers = ['detrack']
    logging.basicConfig(level=logging.WARNING, format='%(name)s: %(message)s')
    try:
        for spec in args.trackers:
            parse_tracker(spec)
        scores = run(args)
    except (ValueError, OSError, BundleError, FrameError) as error:
        # run_sequence notes which frame of which sequence failed.
        where = ''.join(f' ({note})' for note in getattr(error, '__notes__', ()))
        parser.exit(2, f'detrack-eval: error: {error}{where}\n')
    print(comparison_table(scores, args.protocol or args.benchmark))
    print(f'\nreport: {pathlib.Path(args.output) / "table.md"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
