"""The time each finished epoch of a run took, kept in its folder so a record's times cover every piece of the run.

A run trained in pieces (``--time-limit --split-runs``, or resumed after a kill) is trained by several processes; the
one that finishes it writes the record and knows only its own piece's time. timm's checkpoint has no room for more,
so the timm trainer writes each epoch's times to ``epoch_times.json`` (atomically, after the epoch's checkpoint) and
its record sums them. The engine keeps the same sums in its own checkpoint.

An epoch redone after a resume replaces the times of that epoch and drops those of any later one; an epoch cut off by
a kill is not counted (as its summary row is not written).
"""
import json
import pathlib
from typing import Any, Optional

from .layout import EPOCH_TIMES_FILE
from .record import atomic_write_text

__all__ = ['add_epoch_time', 'run_times']


def _read(run_dir: pathlib.Path) -> dict[int, dict[str, float]]:
    path = pathlib.Path(run_dir) / EPOCH_TIMES_FILE
    if not path.is_file():
        return {}
    return {int(epoch): times for epoch, times in json.loads(path.read_text()).items()}


def add_epoch_time(run_dir: pathlib.Path, epoch: int, wall_s: float, train_s: float, images: int) -> None:
    """Keep epoch ``epoch``'s times: ``wall_s`` for the whole epoch (training and validation), ``train_s`` and
    ``images`` for its training steps alone."""
    times = {e: t for e, t in _read(run_dir).items() if e < epoch}
    times[epoch] = dict(wall_s=wall_s, train_s=train_s, images=images)
    atomic_write_text(pathlib.Path(run_dir) / EPOCH_TIMES_FILE, json.dumps({str(e): t for e, t in times.items()}))


def run_times(run_dir: pathlib.Path, epochs: int) -> Optional[dict[str, Any]]:
    """The record's times over the run's ``epochs`` finished epochs: ``wall_time_s``, ``train_time_s``,
    ``train_images_per_s``; None unless the folder keeps the times of exactly those (a piece trained by a version
    that did not write them)."""
    kept = _read(run_dir)
    if epochs < 1 or sorted(kept) != list(range(epochs)):
        return None
    times = kept.values()
    train_s = sum(t['train_s'] for t in times)
    return dict(wall_time_s=round(sum(t['wall_s'] for t in times), 1), train_time_s=round(train_s, 1),
                train_images_per_s=round(sum(t['images'] for t in times) / max(train_s, 1e-9), 1))
