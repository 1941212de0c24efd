"""
detrack-synth: the image pool and synthetic single-object tracking sequences.

Fetch the image pool (Debian packages of cut-out objects, wallpapers and textures, unpacked
and indexed into a cache; needs ``apt-get`` and ``dpkg-deb``, no installation)::

    python -m detrack_model.cli.synth fetch-sources --cache build/data/image_pool
    python -m detrack_model.cli.synth fetch-sources --set photos
        --cache build/data/image_pool_photos --reuse build/data/image_pool
    python -m detrack_model.cli.synth fetch-sources --set photos2
        --cache build/data/image_pool_photos2 --reuse build/data/image_pool_photos

Write sequences in the GOT-10k layout::

    python -m detrack_model.cli.synth generate --root data/synthetic --split train
        --sequences 200 --frames 100 --seed 1 --size 480x360 --workers 2
        --pool build/data/image_pool

Each split draws its images from its own part of the pool and of scikit-image's photographs
(see ``detrack_model.data.synthetic``), so use a different ``--seed`` and ``--split`` for train
and val. ``generate`` is the default command: ``detrack-synth --root ...`` works too.
"""

import argparse
import sys
from typing import List, Optional, Tuple

from detrack_model.data.imagepool.packages import POOL_SETS
from detrack_model.data.synthetic import generate_dataset, SPLIT_SOURCES
from tqdm import tqdm

DEFAULT_POOL = 'build/data/image_pool'
COMMANDS = ('generate', 'fetch-sources')


def parse_size(text: str) -> Tuple[int, int]:
    """Parse ``WIDTHxHEIGHT`` (e.g. ``480x360``)."""
    try:
        width, height = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT, got {text!r}') from None
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError(f'frame size must be at least 32x32, got {text!r}')
    return width, height


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='detrack-synth', description=__doc__.strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    fetch = commands.add_parser('fetch-sources', help='fetch, unpack and index the image pool')
    fetch.add_argument('--cache', default=DEFAULT_POOL, help='pool directory')
    fetch.add_argument('--debs', help='take the .deb files from this directory instead of '
                                      'apt-get download')
    fetch.add_argument('--set', default='base', choices=sorted(POOL_SETS),
                       help='package set: base; photos (base and photographs of real '
                            'scenes for training backgrounds); photos2 (photos and more '
                            'photographs, which need edje_decc from libedje-bin)')
    fetch.add_argument('--reuse', help='pool directory whose unpacked packages are taken '
                                       'instead of fetching them again')
    generate = commands.add_parser('generate', help='write one split of sequences')
    generate.add_argument('--root', required=True, help='dataset root (the split goes below)')
    generate.add_argument('--split', default='train',
                          help=f'split name; its source images: one of {sorted(SPLIT_SOURCES)}'
                               ' unless --sources is given')
    generate.add_argument('--sequences', type=int, default=200, help='number of sequences')
    generate.add_argument('--frames', type=int, default=100, help='frames per sequence')
    generate.add_argument('--seed', type=int, default=1, help='base seed (>= 0)')
    generate.add_argument('--size', type=parse_size, default=(480, 360), help='WIDTHxHEIGHT')
    generate.add_argument('--workers', type=int, default=1,
                          help='processes (sequences in parallel)')
    generate.add_argument('--sources', nargs='*',
                          help="override the split's scikit-image photographs")
    generate.add_argument('--pool', help='image-pool directory (detrack-synth fetch-sources); '
                                         'without it only scikit-image photographs are used')
    generate.add_argument('--overwrite', action='store_true',
                          help='write into an existing, non-empty split directory')
    return parser


def _fetch(args: argparse.Namespace) -> int:
    from detrack_model.data.imagepool import prepare_pool

    prepare_pool(args.cache, debs_dir=args.debs, packages=POOL_SETS[args.set],
                 reuse_dir=args.reuse)
    return 0


def _generate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.sequences < 1 or args.frames < 1:
        parser.error('--sequences and --frames must be >= 1')
    if args.seed < 0:
        parser.error('--seed must be >= 0')
    bar = tqdm(total=args.sequences, unit='seq', desc=f'synth {args.split}', file=sys.stderr)
    try:
        summary = generate_dataset(args.root, args.split, args.sequences, args.frames,
                                   size=args.size, seed=args.seed, sources=args.sources,
                                   workers=args.workers, overwrite=args.overwrite,
                                   progress=lambda record: bar.update(1), pool=args.pool)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        bar.close()
        parser.error(str(error))
    bar.close()
    frames = summary['frames']
    images = ', '.join(f'{count} {kind}' for kind, count in summary['sources'].items())
    print(f'{summary["split"]}: {summary["sequences"]} sequences, {frames} frames '
          f'({args.size[0]}x{args.size[1]}) in {summary["root"]}, from {images}')
    absent = summary['absent_frames']
    print(f'absent frames {absent} ({100.0 * absent / frames:.1f}%), '
          f'occluded frames {summary["occluded_frames"]}, '
          f'out-of-view frames {summary["out_of_view_frames"]}')
    counts = ', '.join(f'{name} {count}' for name, count in summary['attributes'].items())
    print(f'sequences per attribute: {counts}')
    print(f'wall time {summary["wall_time_s"]:.1f} s '
          f'({1000.0 * summary["wall_time_s"] / frames:.1f} ms/frame, {args.workers} worker(s))')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command (``generate`` when none is named) and print a summary."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ('-h', '--help')):
        argv.insert(0, 'generate')
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == 'fetch-sources':
        return _fetch(args)
    return _generate(parser, args)


if __name__ == '__main__':
    sys.exit(main())
