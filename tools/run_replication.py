"""
Train the runs of training/replication/plan.yaml one after another; resumable.

    python -m tools.run_replication [--only NAME ...] [--jobs N] [--gpu [--nproc N]] [--dry-run]

Each run is the base recipe (``base.yaml``, or ``gpu_base.yaml`` with ``--gpu``) plus the
run's overrides and one of its seeds, trained into ``runs/replication[_gpu]/<name>_s<seed>``.
A run whose final bundle exists is skipped; an unfinished one continues from its newest
checkpoint, so the whole plan survives being stopped at any point. ``--jobs N`` trains N runs
side by side, each with 1/N of the CPU threads (on a small CPU two one-thread runs get through
about a fifth more than one two-thread run); the generated data is made once before they
start. Score the finished runs with ``python -m tools.make_replication_docs``.
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import os
import pathlib
import subprocess
import sys
from typing import List, Sequence

from detrack_model.engine.data import materialise_all
from detrack_model.engine.recipe import recipe_from_dict
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLAN = ROOT / 'training' / 'replication' / 'plan.yaml'


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the plan."""

    name: str
    seed: int
    overrides: Sequence[str]
    output: pathlib.Path

    @property
    def label(self) -> str:
        """Return ``<name>_s<seed>``, the run directory's name."""
        return f'{self.name}_s{self.seed}'


def planned_runs(plan: pathlib.Path = PLAN, gpu: bool = False,
                 only: Sequence[str] = ()) -> List[PlannedRun]:
    """Return the runs of ``plan`` (those named in ``only``, if given), in plan order."""
    runs = yaml.safe_load(plan.read_text())['runs']
    unknown = sorted(set(only) - set(runs))
    if unknown:
        raise ValueError(f'--only {unknown}: not in {plan} (runs: {", ".join(runs)})')
    folder = ROOT / 'runs' / ('replication_gpu' if gpu else 'replication')
    return [PlannedRun(name, int(seed), tuple(spec.get('set', [])),
                       folder / f'{name}_s{seed}')
            for name, spec in runs.items() if not only or name in only
            for seed in spec['seeds']]


def base_recipe(gpu: bool) -> pathlib.Path:
    """Return the base recipe of the CPU or the GPU plan."""
    return PLAN.parent / ('gpu_base.yaml' if gpu else 'base.yaml')


def command(run: PlannedRun, gpu: bool, nproc: int = 1, threads: int = 0) -> List[str]:
    """Return the detrack-train command line of ``run`` (``threads``: 0 keeps the recipe's)."""
    launcher = [sys.executable, '-m', 'detrack_model.cli.train'] if nproc <= 1 else \
        [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
         '-m', 'detrack_model.cli.train']
    settings = [f'optim.seed={run.seed}', *run.overrides] + \
        ([f'optim.threads={threads}'] if threads else [])
    return launcher + ['--config', str(base_recipe(gpu)), '--output', str(run.output),
                       '--resume', '--no-progress'] + \
        [item for setting in settings for item in ('--set', setting)]


def main() -> int:
    """Train every missing run of the plan."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--only', nargs='+', default=(), help='runs of the plan to train')
    parser.add_argument('--gpu', action='store_true', help='the paper-scale plan (GOT-10k)')
    parser.add_argument('--nproc', type=int, default=1, help='processes (GPUs) per run')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs trained side by side, each with 1/N of the CPU threads')
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    try:
        runs = planned_runs(gpu=args.gpu, only=args.only)
    except ValueError as error:
        parser.error(str(error))
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else 0
    missing = []
    for run in runs:
        if (run.output / 'model.safetensors').is_file():
            print(f'{run.label}: done', flush=True)
            continue
        line = command(run, args.gpu, args.nproc, threads)
        print(f'{run.label}: ' + ' '.join(line[1:]), flush=True)
        missing.append(line)
    if args.dry_run or not missing:
        return 0
    if args.jobs > 1:
        # Side-by-side runs would otherwise each start generating the same missing data.
        base = yaml.safe_load(base_recipe(args.gpu).read_text())
        os.chdir(ROOT)
        materialise_all(recipe_from_dict(base))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = list(pool.map(lambda line: subprocess.run(line, cwd=ROOT).returncode, missing))
    failed = sum(code != 0 for code in codes)
    if failed:
        print(f'{failed} of {len(missing)} runs failed; run the command again to resume them',
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
