"""The layout of a run folder and of a matrix (queue) folder: every file name, and the run folder's name.

A run folder has timm train.py's layout (``args.yaml``, ``summary.csv``, ``last.pth.tar``, ``model_best.pth.tar``) so
timm's tools and this package's read it alike, plus ``run.json``, the run's record, written last. A matrix folder holds
``queue.json`` (the recipe and every run asked for) and one run folder ``{model}-seed{seed}`` per run.
"""
import pathlib
from dataclasses import dataclass
from typing import Union

from ..checkpoint import ARGS_FILE, CHECKPOINT_FILES

__all__ = ['ARGS_FILE', 'BEST_CHECKPOINT', 'EPOCH_TIMES_FILE', 'LAST_CHECKPOINT', 'LOCK_FILE', 'QUEUE_FILE',
           'RECORD_FILE', 'SPEED_FILE', 'SUMMARY_FILE', 'RunSpec', 'run_name']

#: The run's record (JSON), written last: its presence means the run finished (see :func:`~.record.is_finished`).
RECORD_FILE = 'run.json'
#: One row per finished epoch, timm's ``update_summary`` columns.
SUMMARY_FILE = 'summary.csv'
#: Each finished epoch's times, so a record covers every piece of a resumed run (timm trainer: :mod:`.epoch_times`).
EPOCH_TIMES_FILE = 'epoch_times.json'
#: The checkpoint of the best validation epoch (tested), and of the last epoch (resumed from).
BEST_CHECKPOINT = CHECKPOINT_FILES['best']
LAST_CHECKPOINT = CHECKPOINT_FILES['last']
#: A matrix folder's recipe and run list.
QUEUE_FILE = 'queue.json'
#: Held (``flock``) while a matrix trains in the folder.
LOCK_FILE = '.queue.lock'
#: A matrix folder's measured training speeds (img/s per model on this machine), for ``--time-limit``.
SPEED_FILE = 'speed.json'


def run_name(model: str, seed: int) -> str:
    """The folder name of the run of ``model`` with ``seed``: ``{model}-seed{seed}``."""
    return f'{model}-seed{seed}'


@dataclass(frozen=True)
class RunSpec:
    """One run of a matrix: a registered model and a seed."""
    model: str
    seed: int

    @property
    def name(self) -> str:
        """The run's folder name (:func:`run_name`)."""
        return run_name(self.model, self.seed)

    def folder(self, output: Union[str, pathlib.Path]) -> pathlib.Path:
        """The run's folder in the matrix folder ``output``."""
        return pathlib.Path(output) / self.name
