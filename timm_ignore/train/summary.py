"""Editing timm train.py's ``summary.csv`` (one row per finished epoch) when a run resumes."""
import csv
import pathlib

__all__ = ['trim_summary']


def trim_summary(summary: pathlib.Path, start_epoch: int) -> None:
    """Drop the rows of epochs a resumed run is about to redo (written after the checkpoint it resumes from).

    A missing file is left missing; the header and the rows of earlier epochs are kept as they are.
    """
    if not summary.is_file():
        return
    with open(summary, newline='') as f:
        rows = list(csv.DictReader(f))
    kept = [row for row in rows if int(row['epoch']) < start_epoch]
    if len(kept) != len(rows):
        with open(summary, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)
