"""A run matrix: (model x seed) runs of one recipe in one folder, planned, checked, trained once each, resumable.

One matrix serves both trainers (``compare`` on timm's loaders, ``train-queue`` on the in-memory engine): the caller
gives a :class:`Trainer` that trains one run in its folder. The matrix

- plans: a finished run (:func:`~.record.is_finished`) is kept, a run with a last checkpoint resumes (a line says from
  which epoch), the rest start; a run whose record was landed in a records folder (``landed``: the copies of
  :func:`~.record.copy_run_records`, e.g. a repository's ``results/zoo-cifar10``) counts as finished, so a campaign
  whose run folders are gone (a fresh clone) does not train its landed runs again;
- holds the folder (one matrix at a time; ``flock``) and, for a trainer with a fixed recipe, records it in
  ``queue.json``: a folder of another recipe is refused with the keys that differ and how to resume or start anew;
- reports progress through one :class:`~.progress.Progress` and records every epoch's speed (``speed.json``);
- with a time limit, starts a run only when its estimated time (:class:`~.budget.SpeedBook`; a model with no
  epoch time here is first probed by the trainer) fits in what is left, and otherwise stops cleanly, saying what is
  left; with ``split_runs``, a run that does not fit trains the epochs that do, asked before each of them, and stops
  after the last with its checkpoint kept (the next piece resumes it).
"""
import contextlib
import fcntl
import json
import math
import pathlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

from .budget import SpeedBook, TimeBudget
from .layout import LAST_CHECKPOINT, LOCK_FILE, QUEUE_FILE, RunSpec
from .progress import Progress, format_time
from .record import atomic_write_text, is_finished, read_record
from .summary import finished_epochs

__all__ = ['MatrixError', 'MatrixResult', 'PlannedRun', 'Trainer', 'check_matrix_folder', 'hold_folder', 'left_line',
           'matrix_records', 'plan_matrix', 'probe_unmeasured', 'queued_runs', 'recipe_difference', 'run_matrix',
           'split_run_stopped_line', 'write_queue_file']


class MatrixError(ValueError):
    """A matrix that cannot start: worded for the command line."""


@dataclass(frozen=True)
class PlannedRun:
    """A run of the matrix, its folder, whether it finished (here or landed), and the epochs its summary holds."""
    spec: RunSpec
    folder: pathlib.Path
    finished: bool
    epochs_done: int
    landed: bool = False

    @property
    def resumes(self) -> bool:
        return not self.finished and (self.folder / LAST_CHECKPOINT).is_file()


def plan_matrix(
        specs: Sequence[RunSpec],
        output: pathlib.Path,
        epochs: Callable[[RunSpec], int],
        landed: Optional[pathlib.Path] = None,
) -> list[PlannedRun]:
    """Every run of the matrix with its state in ``output`` (finished: for its ``epochs(spec)`` epochs), or finished
    in the records folder ``landed`` when it is not in ``output``."""
    planned = []
    for s in specs:
        finished = is_finished(s.folder(output), epochs(s))
        landed_here = not finished and landed is not None and is_finished(s.folder(landed), epochs(s))
        planned.append(PlannedRun(s, s.folder(output), finished or landed_here, finished_epochs(s.folder(output)),
                                  landed_here))
    return planned


def matrix_records(
        planned: Sequence[PlannedRun], landed: Optional[pathlib.Path] = None,
) -> list[Optional[dict[str, Any]]]:
    """The record of every planned run, in order: a landed run's from the records folder ``landed``, every other
    run's from its folder (None for a run not finished there, whatever ``landed`` holds for it)."""
    return [read_record(p.spec.folder(landed) if p.landed else p.folder) for p in planned]


def recipe_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every recipe key whose value differs (a key missing on one side shows as unset)."""
    def shown(values: dict[str, Any], key: str) -> str:
        return repr(values[key]) if key in values else 'unset'
    return [f'{key}: {shown(old, key)} -> {shown(new, key)}' for key in sorted(set(old) | set(new))
            if key not in old or key not in new or old[key] != new[key]]


def check_matrix_folder(
        output: pathlib.Path,
        specs: Sequence[RunSpec],
        recipe: Optional[dict[str, Any]],
        fingerprint: Optional[str],
        landed: Optional[pathlib.Path] = None,
) -> None:
    """Refuse a folder that is a file, or (for a fixed recipe) holds a matrix or runs of another recipe; likewise
    a records folder ``landed`` that is not a folder or holds records of the matrix's runs with another recipe.

    Raises:
        MatrixError: Naming the keys that differ (queue value -> given value) and how to resume or start anew.
    """
    if landed is not None and not landed.is_dir():
        raise MatrixError(f'--records-dir {landed}: no such folder of landed records.')
    if output.exists() and not output.is_dir():
        raise MatrixError(f'--output {output} is a file; give a folder for the runs.')
    if recipe is None:
        return
    queue_file = output / QUEUE_FILE
    if queue_file.is_file():
        known = json.loads(queue_file.read_text())
        if known.get('recipe_fingerprint') != fingerprint:
            changed = recipe_difference(known.get('recipe') or {}, recipe)
            name = known.get('recipe_name') or 'unnamed'
            raise MatrixError(
                f'--output {output} holds runs of another recipe (its queue.json, from {name}) than the one given; '
                f'differing: {"; ".join(changed) or "the recipe fingerprint"}. To resume it, give its recipe with the '
                f'same options (e.g. the queue\'s --epochs); to start anew, give another --output.')
    for spec in specs:
        if _of_another_recipe(spec.folder(output), fingerprint):
            raise MatrixError(f'{spec.folder(output)} was trained with another recipe; give another --output.')
        if landed is not None and _of_another_recipe(spec.folder(landed), fingerprint):
            raise MatrixError(f'{spec.folder(landed)} was landed from a run of another recipe; leave out --records-dir '
                              f'to train {spec.name} again with this one.')


def _of_another_recipe(run_dir: pathlib.Path, fingerprint: Optional[str]) -> bool:
    """Whether ``run_dir`` holds a record whose recipe fingerprint is known and not ``fingerprint``."""
    record = read_record(run_dir)
    return record is not None and record.get('recipe_fingerprint') not in (None, fingerprint)


def write_queue_file(
        output: pathlib.Path, specs: Sequence[RunSpec], recipe: dict[str, Any], fingerprint: str, recipe_name: str,
) -> None:
    """``queue.json``: the recipe and every run ever asked for in this folder (atomically)."""
    queue_file = output / QUEUE_FILE
    known = json.loads(queue_file.read_text())['runs'] if queue_file.is_file() else []
    entries = known + [e for e in ({'model': s.model, 'seed': s.seed} for s in specs) if e not in known]
    atomic_write_text(queue_file, json.dumps(dict(
        recipe_name=recipe_name, recipe_fingerprint=fingerprint, recipe=recipe, runs=entries), indent=2) + '\n')


def queued_runs(output: pathlib.Path) -> list[RunSpec]:
    """Every run ever asked for in the matrix folder ``output`` (its ``queue.json``); [] without one."""
    queue_file = pathlib.Path(output) / QUEUE_FILE
    if not queue_file.is_file():
        return []
    return [RunSpec(e['model'], int(e['seed'])) for e in json.loads(queue_file.read_text())['runs']]


@contextlib.contextmanager
def hold_folder(output: pathlib.Path) -> Iterator[None]:
    """Create ``output`` and hold it for one matrix at a time.

    Raises:
        MatrixError: Another matrix is training in it.
    """
    output.mkdir(parents=True, exist_ok=True)
    with open(output / LOCK_FILE, 'w') as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MatrixError(f'another queue is already running in {output}.') from None
        yield


class Trainer(Protocol):
    """What the matrix needs of a trainer: the epochs a run trains, its speed here, and training one run."""

    @property
    def speed_key(self) -> str:
        """The machine and precision its runs train on, naming their section of ``speed.json``."""

    def epochs(self, spec: RunSpec) -> int:
        """Epochs the run trains in all."""

    def measure_epoch_time(self, spec: RunSpec) -> Optional[float]:
        """Seconds one epoch of the run takes on this machine, from a short probe; None if the trainer cannot tell."""

    def train(self, spec: RunSpec, run_dir: pathlib.Path, progress: Progress,
              keep_going: Optional[Callable[[], bool]] = None) -> Optional[dict[str, Any]]:
        """Train (or resume) the run, reporting to ``progress``; returns its record (``run.json``), or None when
        ``keep_going`` (asked before every epoch after the first one this call trains) said stop: the run's last
        checkpoint is then kept for a later call."""


@dataclass(frozen=True)
class MatrixResult:
    """The records of the runs, in matrix order (None for a run left for later), and the line saying what is left
    (empty when every run finished)."""
    records: list
    left: str = ''


def left_line(left: Sequence[PlannedRun], book: SpeedBook, epochs: Callable[[RunSpec], int]) -> str:
    """The line a time-limited piece stops with: the runs ``left`` (each run's ``epochs`` less those its folder
    holds) and their estimate from ``book``."""
    estimate = sum(book.estimate(p.spec.model, epochs(p.spec) - finished_epochs(p.folder)) for p in left)
    shown = 'unknown (no speed measured here for some of their models)' if math.isinf(estimate) else \
        f'about {format_time(estimate)}'
    return (f'time limit: stopping; {len(left)} runs left ({", ".join(p.spec.name for p in left[:4])}'
            f'{", ..." if len(left) > 4 else ""}), estimated {shown}; run the same command again to continue.')


def split_run_stopped_line(spec: RunSpec, folder: pathlib.Path, epochs: int) -> str:
    """The line of a run that a time limit stopped before its last epoch (``--split-runs``)."""
    return (f'{spec.name}: time limit: stopped after epoch {finished_epochs(folder)} of {epochs}; its last checkpoint '
            f'is kept and the next piece resumes it.')


def probe_unmeasured(
        spec: RunSpec, trainer: Trainer, book: SpeedBook, log: Callable[[str], None], runs_at_once: int = 1,
) -> None:
    """Have ``trainer`` probe the speed of a run whose model has no epoch time in ``book``, and keep the probe there.

    A probe times one run alone; with ``runs_at_once`` runs sharing the device, each of their epochs is taken as that
    many times as long (a device they saturate) until their own epochs are measured.
    """
    if book.measured(spec.model):
        return
    probed = trainer.measure_epoch_time(spec)
    if probed is not None:
        book.add_probe(spec.model, probed * runs_at_once)
        shared = f', taken as {runs_at_once}x at {runs_at_once} runs at once' if runs_at_once > 1 else ''
        log(f'{spec.name}: speed probe on this machine: about {format_time(probed)} per epoch{shared}.')


def run_matrix(
        specs: Sequence[RunSpec],
        output: pathlib.Path,
        trainer: Trainer,
        log: Callable[[str], None] = print,
        time_limit_s: Optional[float] = None,
        log_every: int = 1,
        split_runs: bool = False,
        landed: Optional[pathlib.Path] = None,
) -> MatrixResult:
    """Train every run not finished yet, one after another, within ``time_limit_s`` when given.

    With ``split_runs`` (and a time limit), a run whose estimate does not fit in what is left still starts when one
    epoch does, and every run stops before an epoch that would not fit (its checkpoint kept); the matrix then stops
    as it does at a run that cannot start. A run finished in the records folder ``landed`` (and not in ``output``) is
    kept as finished and its landed record returned. The folder is checked and held by the caller
    (:func:`check_matrix_folder`, :func:`hold_folder`).
    """
    budget = None if time_limit_s is None else TimeBudget(time_limit_s, split_runs)
    planned = plan_matrix(specs, output, trainer.epochs, landed)
    pending = [p for p in planned if not p.finished]
    book = SpeedBook(output, trainer.speed_key)
    progress = Progress(list(specs), {p.spec: trainer.epochs(p.spec) - p.epochs_done for p in pending}, log,
                        log_every=log_every, speeds=book)
    for p in planned:
        if p.finished:
            progress.kept(p.spec, landed if p.landed else None)

    def stop(index: int) -> MatrixResult:
        left = left_line(pending[index:], book, trainer.epochs)
        log(left)
        return MatrixResult(matrix_records(planned, landed), left)

    for index, p in enumerate(pending):
        keep_going = None
        if budget is not None:
            probe_unmeasured(p.spec, trainer, book, log)
            estimate = book.estimate(p.spec.model, trainer.epochs(p.spec) - p.epochs_done)
            if math.isinf(estimate) and index == 0:
                log(f'{p.spec.name}: no speed measured here for its model family; starting it as the first run of '
                    f'this piece (time limit {format_time(time_limit_s)}).')
            elif not budget.admits(book, p.spec.model, trainer.epochs(p.spec) - p.epochs_done):
                return stop(index)
            elif not budget.fits(estimate):
                log(f'{p.spec.name}: estimated {format_time(estimate)}, more than the {format_time(budget.left_s())} '
                    f'left: training the epochs that fit, to be resumed by the next piece.')
            if split_runs:
                def keep_going(model: str = p.spec.model) -> bool:
                    return budget.fits(book.estimate(model, 1))
        record = trainer.train(p.spec, p.folder, progress, keep_going)
        if record is None:
            log(split_run_stopped_line(p.spec, p.folder, trainer.epochs(p.spec)))
            return stop(index)
        progress.finished(p.spec, record)
    return MatrixResult(matrix_records(planned, landed))
