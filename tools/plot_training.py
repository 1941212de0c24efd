"""
Plot training curves from a run's metrics.csv (loss components, learning rate, validation).

Usage: python -m tools.plot_training RUN_DIR [--output docs/training-curve.png]
"""

import argparse
import csv
import pathlib
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

LOSS_KEYS = ('loss', 'qfl', 'l1', 'giou', 'dn_qfl', 'dn_l1', 'dn_giou', 'focal')


def read_metrics(run: pathlib.Path) -> dict:
    """Columns of ``run/metrics.csv`` as lists of (step, value), empty cells skipped."""
    with (run / 'metrics.csv').open(newline='') as handle:
        rows = list(csv.DictReader(handle))
    columns = {}
    for row in rows:
        for key, value in row.items():
            if key != 'step' and value not in ('', None):
                columns.setdefault(key, []).append((int(row['step']), float(value)))
    return columns


def main() -> int:
    """Draw the curves into one PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('run', type=pathlib.Path)
    parser.add_argument('--output', type=pathlib.Path)
    args = parser.parse_args()
    columns = read_metrics(args.run)
    output = args.output or args.run / 'training-curve.png'
    figure, (losses, validation) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key in LOSS_KEYS:
        if key in columns:
            steps, values = zip(*columns[key])
            losses.plot(steps, values, label=key, linewidth=2 if key == 'loss' else 1)
    losses.set_xlabel('step')
    losses.set_ylabel('loss (summed over decoder layers)')
    losses.set_yscale('log')
    losses.grid(alpha=0.3)
    losses.legend(fontsize=8)
    if 'val_mean_iou' in columns:
        steps, values = zip(*columns['val_mean_iou'])
        validation.plot(steps, values, marker='o')
    validation.set_xlabel('step')
    validation.set_ylabel('validation mean IoU (single pairs)')
    validation.set_ylim(0, 1)
    validation.grid(alpha=0.3)
    figure.suptitle(f'training: {args.run.name}')
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    print(f'wrote {output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
