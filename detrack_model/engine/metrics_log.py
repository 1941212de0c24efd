"""Training logs: a CSV of every logged step and TensorBoard scalars (rank 0 only)."""

import csv
import pathlib
from typing import Dict, List, Optional


class MetricsLog:
    """Append rows of scalars to ``<root>/metrics.csv`` and TensorBoard."""

    def __init__(self, root: pathlib.Path, resume_step: Optional[int] = None,
                 tensorboard: bool = True) -> None:
        self.path = root / 'metrics.csv'
        self.columns: List[str] = []
        self.rows: List[Dict[str, float]] = []
        if self.path.is_file():
            with self.path.open(newline='') as handle:
                reader = csv.DictReader(handle)
                self.columns = list(reader.fieldnames or [])
                # Rows past the resumed step were logged after the checkpoint by a run that
                # then died: the resumed run logs them again.
                self.rows = [row for row in reader
                             if resume_step is not None and int(row['step']) <= resume_step]
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(root / 'tensorboard'), purge_step=resume_step)
        self._write_all()

    def log(self, step: int, values: Dict[str, float]) -> None:
        """Record ``values`` at ``step``."""
        row = {'step': step, **values}
        new = [key for key in row if key not in self.columns]
        self.rows.append(row)
        if new:
            self.columns += new
            self._write_all()
        else:
            with self.path.open('a', newline='') as handle:
                csv.DictWriter(handle, self.columns).writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def _write_all(self) -> None:
        """Rewrite the whole file (the header changed, or rows were dropped)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open('w', newline='') as handle:
            writer = csv.DictWriter(handle, self.columns or ['step'], restval='')
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.writer is not None:
            self.writer.close()
