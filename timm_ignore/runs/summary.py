"""A run's ``summary.csv`` (timm's ``update_summary``: one row per finished epoch): its rows, read and trimmed.

The validation columns are train.py's: ``eval_loss`` and top-1/top-5 *accuracy* (%); :func:`summary_metrics` turns
the one evaluator's errors into them.
"""
import csv
import pathlib
from typing import Optional

from ..evaluate import Metrics
from .layout import SUMMARY_FILE

__all__ = ['finished_epochs', 'read_summary', 'summary_metrics', 'summary_val_error', 'trim_summary']


def read_summary(run_dir: pathlib.Path) -> list[dict[str, str]]:
    """The rows of the run's summary.csv, as written; [] without one."""
    path = pathlib.Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return []
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def finished_epochs(run_dir: pathlib.Path) -> int:
    """Epochs the run's summary.csv records (0 without one)."""
    return len(read_summary(run_dir))


def summary_val_error(run_dir: pathlib.Path, epoch: Optional[int]) -> Optional[float]:
    """Validation top-1 error (%) of ``epoch`` from the run's summary.csv (train.py writes accuracy)."""
    if epoch is None:
        return None
    row = next((r for r in read_summary(run_dir) if r.get('epoch') == str(epoch) and r.get('eval_top1')), None)
    return None if row is None else 100. - float(row['eval_top1'])


def summary_metrics(metrics: Metrics) -> dict[str, float]:
    """An evaluation as summary.csv records it: ``loss`` and top-1/top-5 accuracy (%), train.py's columns."""
    return {'loss': metrics.loss, 'top1': 100. - metrics.top1_err, 'top5': 100. - metrics.top5_err}


def trim_summary(run_dir: pathlib.Path, start_epoch: int) -> None:
    """Drop the rows of epochs a resumed run is about to redo (written after the checkpoint it resumes from).

    A missing file is left missing; the header and the rows of earlier epochs are kept as they are.
    """
    rows = read_summary(run_dir)
    kept = [row for row in rows if int(row['epoch']) < start_epoch]
    if len(kept) != len(rows):
        with open(pathlib.Path(run_dir) / SUMMARY_FILE, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)
