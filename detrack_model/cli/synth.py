"""
detrack-synth: write synthetic single-object tracking sequences in the GOT-10k layout.

Example::

    python -m detrack_model.cli.synth --root data/synthetic --split train --sequences 200
        --frames 100 --seed 1 --size 480x360 --workers 2

Each split draws its images from its own list (see ``detrack_model.data.synthetic``), so use a
different ``--seed`` and ``--split`` for train and val.
"""

import argparse
import sys
from typing import List, Optional, Tuple

from detrack_model.data.synthetic import generate_dataset, SPLIT_SOURCES
from tqdm import tqdm


def parse_size(text: str) -> Tuple[int, int]:
    """Parse ``WIDTHxHEIGHT`` (e.g. ``480x360``)."""
    try:
        width, height = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT, got {text!r}') from None
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError(f'frame size must be at least 32x32, got {text!r}')
    return width, height


def main(argv: Optional[List[str]] = None) -> int:
    """Generate one split and print a summary."""
    parser = argparse.ArgumentParser(prog='detrack-synth', description=__doc__.strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', required=True, help='dataset root (the split goes below)')
    parser.add_argument('--split', default='train',
                        help=f'split name; its source images: one of {sorted(SPLIT_SOURCES)} '
                             'unless --sources is given')
    parser.add_argument('--sequences', type=int, default=200, help='number of sequences')
    parser.add_argument('--frames', type=int, default=100, help='frames per sequence')
    parser.add_argument('--seed', type=int, default=1, help='base seed (>= 0)')
    parser.add_argument('--size', type=parse_size, default=(480, 360), help='WIDTHxHEIGHT')
    parser.add_argument('--workers', type=int, default=1, help='processes (sequences in parallel)')
    parser.add_argument('--sources', nargs='+', help="override the split's source images")
    parser.add_argument('--overwrite', action='store_true',
                        help='write into an existing, non-empty split directory')
    args = parser.parse_args(argv)
    if args.sequences < 1 or args.frames < 1:
        parser.error('--sequences and --frames must be >= 1')
    if args.seed < 0:
        parser.error('--seed must be >= 0')
    bar = tqdm(total=args.sequences, unit='seq', desc=f'synth {args.split}', file=sys.stderr)
    try:
        summary = generate_dataset(args.root, args.split, args.sequences, args.frames,
                                   size=args.size, seed=args.seed, sources=args.sources,
                                   workers=args.workers, overwrite=args.overwrite,
                                   progress=lambda record: bar.update(1))
    except (ValueError, FileExistsError) as error:
        bar.close()
        parser.error(str(error))
    bar.close()
    frames = summary['frames']
    print(f'{summary["split"]}: {summary["sequences"]} sequences, {frames} frames '
          f'({args.size[0]}x{args.size[1]}) in {summary["root"]}')
    absent = summary['absent_frames']
    print(f'absent frames {absent} ({100.0 * absent / frames:.1f}%), '
          f'occluded frames {summary["occluded_frames"]}, '
          f'out-of-view frames {summary["out_of_view_frames"]}')
    counts = ', '.join(f'{name} {count}' for name, count in summary['attributes'].items())
    print(f'sequences per attribute: {counts}')
    print(f'wall time {summary["wall_time_s"]:.1f} s '
          f'({1000.0 * summary["wall_time_s"] / frames:.1f} ms/frame, {args.workers} worker(s))')
    return 0


if __name__ == '__main__':
    sys.exit(main())
