"""A queue of (model, seed) runs on one device: checked before any work, resumable, several runs at once.

The queue's folder holds ``queue.json`` (the recipe and every run asked for) and one folder per run. Started again
after a kill, the queue skips finished runs (those with ``run.json``), resumes cut-off runs from their last epoch and
starts the rest, so every run is trained exactly once. A folder holding runs of another recipe is refused.

With ``parallel > 1`` the runs are shared out to that many worker processes on the same device: on a GPU the small
CIFAR networks leave most of it idle when trained one at a time (kernel launches, not arithmetic, bound a step), and
separate processes fill it without any coordination beyond the work list. The dataset is decoded once and handed to
the workers in shared memory. A time limit holds for them too: the parent hands a run to a worker only when it fits
(:class:`~timm_ignore.runs.TimeBudget`, from the epoch times measured at that many runs at once), and with split runs
each worker stops its run before an epoch that would not fit.
"""
import importlib
import pathlib
import queue as queue_lib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import timm
import torch

from ..autocast_speed import check_autocast_speed
from ..provenance import machine_key
from ..runs import (
    LAST_CHECKPOINT, EpochReport, MatrixError, PlannedRun, Progress, RunSpec, SpeedBook, TimeBudget, check_class_count,
    check_matrix_folder, finished_epochs, hold_folder, left_line, matrix_records, plan_matrix, probe_unmeasured,
    read_record, read_run_args, run_matrix, run_precision, schedule_epochs, split_run_stopped_line,
    write_queue_file)
from .data import DataError, ImageData, check_image_folder, load_image_folder
from .recipe import EngineRecipe
from .run import measure_epoch_time, train_run

__all__ = ['QueueError', 'EngineTrainer', 'check_queue', 'run_queue']

#: A queue that cannot start (bad model, device, data, or an output folder of another recipe): the matrix's error.
QueueError = MatrixError
#: Seconds between a worker's progress lines within an epoch (the parent prints what it is sent).
_WORKER_STEP_INTERVAL_S = 45.0


def _check_models(runs: Sequence[RunSpec], recipe: EngineRecipe) -> None:
    for module in recipe.device_modules:
        importlib.import_module(module)
    unknown = sorted({r.model for r in runs if not timm.is_model(r.model)})
    if unknown:
        raise QueueError(f'unknown model {", ".join(unknown)}; `timm-ignore models` lists the registered ones.')


def _check_resumed_precision(runs: Sequence[RunSpec], recipe: EngineRecipe, output: pathlib.Path) -> None:
    """Refuse to resume a run in another precision than the one it started in (its ``args.yaml``): the precision is
    not part of the recipe's fingerprint, but one run is trained in one, so that its record and card can name it."""
    for spec in runs:
        folder = spec.folder(output)
        if read_record(folder) is not None or not (folder / LAST_CHECKPOINT).is_file():
            continue
        started = run_precision(read_run_args(folder))
        if started not in (None, recipe.precision):
            way = 'amp=false' if started == 'float32' else f'amp=true amp_dtype={started}'
            raise QueueError(
                f'{folder} started in {started} and would resume in {recipe.precision}: a run is trained in one '
                f'precision. Resume it with --set {way}, or delete its folder to train it anew in {recipe.precision}.')


def check_queue(
        runs: Sequence[RunSpec],
        recipe: EngineRecipe,
        data_dir: pathlib.Path,
        output: pathlib.Path,
        device: torch.device,
        parallel: int,
        landed: Optional[pathlib.Path] = None,
) -> None:
    """Check everything a queue needs before any work starts (``landed``: see :func:`run_queue`).

    Raises:
        QueueError: The first problem found, worded for the command line.
    """
    if not runs:
        raise QueueError('no runs: give at least one model and seed.')
    if parallel < 1:
        raise QueueError(f'--parallel must be at least 1, got {parallel}.')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise QueueError('--device cuda was asked for, but this machine has no CUDA GPU; use --device cpu.')
    _check_models(runs, recipe)
    try:
        check_image_folder(data_dir)
    except DataError as e:
        raise QueueError(f'--data-dir: {e}') from None
    try:
        check_class_count(data_dir, recipe.num_classes)
    except ValueError as e:
        raise QueueError(str(e)) from None
    check_matrix_folder(output, runs, recipe.training_settings(), recipe.fingerprint(), landed)
    _check_resumed_precision(runs, recipe, output)
    if recipe.amp:  # last: a mistake in the input is named before what this machine cannot do
        try:
            check_autocast_speed(device, getattr(torch, recipe.amp_dtype))
        except ValueError as e:
            raise QueueError(str(e)) from None


@dataclass
class EngineTrainer:
    """The engine as the matrix's trainer (:class:`timm_ignore.runs.Trainer`): runs on data held on the device.

    The data is decoded (unless given, on the CPU) and moved to ``device`` when the first run starts, so a matrix
    with nothing left to train reads no image. ``parallel`` is how many runs share the device (worker processes):
    their epochs take longer than one run's alone, so their speeds are kept apart (:attr:`speed_key`).
    """
    recipe: EngineRecipe
    recipe_name: str
    data_dir: pathlib.Path
    device: torch.device
    data: Optional[ImageData] = None
    log: Callable[[str], None] = print
    parallel: int = 1
    _on_device: Optional[ImageData] = field(default=None, init=False, repr=False)

    def epochs(self, spec: RunSpec) -> int:
        """The epochs a run trains, as timm's scheduler counts them (a warm-up prefix included)."""
        return schedule_epochs(self.recipe.to_dict())

    def loaded(self) -> ImageData:
        """The decoded dataset, on the CPU.

        Raises:
            QueueError: The training split is smaller than one batch.
        """
        if self.data is None:
            self.data = load_image_folder(self.data_dir)
        if len(self.data.train) < self.recipe.batch_size:
            raise QueueError(f'the training split has {len(self.data.train)} images, fewer than one batch '
                             f'({self.recipe.batch_size}).')
        return self.data

    @property
    def speed_key(self) -> str:
        """This machine (:func:`~timm_ignore.provenance.machine_key`), the recipe's precision, and the runs at once
        when more than one."""
        at_once = f', {self.parallel} runs at once' if self.parallel > 1 else ''
        return f'{machine_key(self.device)}, {self.recipe.precision}{at_once}'

    def measure_epoch_time(self, spec: RunSpec) -> Optional[float]:
        reading = f', after decoding the images of {self.data_dir}' if self.data is None else ''
        self.log(f'{spec.name}: no speed measured here for {spec.model}: timing a few training steps{reading}.')
        return measure_epoch_time(spec, self.recipe, self.on_device())

    def on_device(self) -> ImageData:
        """The decoded dataset on the training device (moved there once)."""
        if self._on_device is None:
            self._on_device = self.loaded().to(self.device)
        return self._on_device

    def train(self, spec: RunSpec, run_dir: pathlib.Path, progress: Progress,
              keep_going: Optional[Callable[[], bool]] = None) -> Optional[dict[str, Any]]:
        return train_run(spec, self.recipe, self.on_device(), run_dir, self.recipe_name, on_epoch=progress.epoch,
                         on_step=progress.step, on_resume=progress.resumed, keep_going=keep_going)


def _worker(
        tasks: Any,
        events: Any,
        recipe: EngineRecipe,
        recipe_name: str,
        data: ImageData,
        output: str,
        device: str,
        threads: int,
        budget: Optional[TimeBudget],
) -> None:
    """Worker process: train runs from ``tasks`` until it yields None, reporting to ``events``.

    A task is a run and its model's epoch time in the speed book when it was handed out (None: not measured). With a
    ``budget`` (split runs; its deadline is the parent's), the run stops before an epoch that would not fit, by the
    longer of that epoch time and the median of the epochs this worker trained of it.
    """
    torch.set_num_threads(threads)
    for module in recipe.device_modules:
        importlib.import_module(module)
    data = data.to(torch.device(device))
    last_step = [0.0]

    def on_step(*step: Any) -> None:  # at most one line per interval crosses the process boundary
        if time.monotonic() - last_step[0] >= _WORKER_STEP_INTERVAL_S:
            last_step[0] = time.monotonic()
            events.put(('step', step))

    while (task := tasks.get()) is not None:
        spec, booked_epoch_s = task
        epoch_times = []

        def on_epoch(report: EpochReport) -> None:
            epoch_times.append(report.epoch_time_s)
            events.put(('epoch', report))

        def keep_going() -> bool:
            per_epoch = max(booked_epoch_s or 0.0, statistics.median(epoch_times) if epoch_times else 0.0)
            return budget.fits(per_epoch)

        try:
            record = train_run(spec, recipe, data, pathlib.Path(output) / spec.name, recipe_name, on_epoch=on_epoch,
                               on_step=on_step, on_resume=lambda *resume: events.put(('resume', resume)),
                               keep_going=None if budget is None else keep_going)
            events.put(('done', spec, record) if record is not None else ('stopped', spec, None))
        except Exception as e:  # reported by the parent, which fails the queue at the end
            events.put(('error', spec, f'{type(e).__name__}: {e}'))


def run_queue(
        runs: Sequence[RunSpec],
        recipe: EngineRecipe,
        data_dir: pathlib.Path,
        output: pathlib.Path,
        device: torch.device,
        parallel: int = 1,
        recipe_name: str = '',
        log: Callable[[str], None] = print,
        data: Optional[ImageData] = None,
        time_limit_s: Optional[float] = None,
        split_runs: bool = False,
        landed: Optional[pathlib.Path] = None,
) -> list[Optional[dict[str, Any]]]:
    """Train every run not finished yet; returns the records of all ``runs``, in order (None: left for later).

    Args:
        runs: (model, seed) pairs; runs already finished in ``output`` are kept as they are.
        recipe: Training settings, shared by every run.
        data_dir: ImageFolder tree with ``train/``, ``validation/`` and optionally ``test/``.
        output: The queue's folder; one subfolder per run.
        device: Training device; all runs share it.
        parallel: Runs trained at once, each in its own process (1: in this process).
        recipe_name: The recipe's name for the records (its file name).
        log: Where progress lines go.
        data: The decoded dataset when the caller already has it (on the CPU); else read from ``data_dir``.
        time_limit_s: Start a run only when its estimated time fits in what is left of this many seconds, then
            stop with a line saying what is left (``timm_ignore.runs.budget``); with ``parallel``, a run is handed
            to a free worker only when it fits.
        split_runs: With ``time_limit_s``: a run that does not fit trains the epochs that do, its checkpoint kept
            for the next piece (:func:`timm_ignore.runs.run_matrix`).
        landed: A records folder (``publish-zoo --records-dir``): a run not finished in ``output`` but finished
            there with this recipe is not trained again, and its landed record is returned.

    Raises:
        QueueError: From :func:`check_queue`, or another queue already running in ``output``.
        RuntimeError: Some runs failed; the others finished and are recorded.
    """
    check_queue(runs, recipe, data_dir, output, device, parallel, landed)
    with hold_folder(output):
        write_queue_file(output, runs, recipe.training_settings(), recipe.fingerprint(), recipe_name)
        trainer = EngineTrainer(recipe, recipe_name, data_dir, device, data, log, parallel)
        epochs = trainer.epochs(runs[0]) if runs else recipe.epochs
        planned = plan_matrix(runs, output, trainer.epochs, landed)
        pending = [p.spec for p in planned if not p.finished]
        landed_count = sum(p.landed for p in planned)
        landed_note = f' ({landed_count} landed in {landed})' if landed_count else ''
        log(f'{len(runs) - len(pending)} of {len(runs)} runs already finished{landed_note}; {len(pending)} to train on '
            f'{device} ({parallel} at a time).')
        log_every = max(1, epochs // 20)
        if parallel == 1 or not pending:
            return run_matrix(runs, output, trainer, log, time_limit_s, log_every, split_runs, landed).records
        budget = None if time_limit_s is None else TimeBudget(time_limit_s, split_runs)
        trainer.loaded()
        progress = Progress(list(runs), {p.spec: epochs - p.epochs_done for p in planned if not p.finished}, log,
                            parallel, log_every, speeds=SpeedBook(output, trainer.speed_key))
        failed, left = _run_workers([p for p in planned if not p.finished], trainer, output, progress, budget)
        if left:
            log(left_line(left, progress.speeds, trainer.epochs))
        if failed:
            raise RuntimeError('runs failed: ' + '; '.join(f'{spec.name}: {why}' for spec, why in failed))
        return matrix_records(planned, landed)


def _run_workers(
        pending: Sequence[PlannedRun],
        trainer: EngineTrainer,
        output: pathlib.Path,
        progress: Progress,
        budget: Optional[TimeBudget],
) -> tuple[list[tuple[RunSpec, str]], list[PlannedRun]]:
    """Train the runs in ``trainer.parallel`` worker processes, handing the next run in order to a worker when it is
    free and, with ``budget``, only while the runs fit: the first run that does not fit or that a split run's deadline
    stops, and every run after it, is left for the next piece, as when runs train one at a time. The models of the
    first runs handed out that have no epoch time at this many runs at once are probed first
    (:func:`~timm_ignore.runs.probe_unmeasured`).

    Returns:
        The failed runs with why, and the runs left for the next piece (not started, or stopped by a split run's
        deadline), in order.
    """
    book, waiting, closed = progress.speeds, list(pending), [False]  # closed: a run did not fit
    workers = min(trainer.parallel, len(pending))
    if budget is not None:
        for p in pending[:workers]:
            probe_unmeasured(p.spec, trainer, book, progress.log, workers)

    def next_run() -> Optional[PlannedRun]:
        if closed[0] or not waiting:
            return None
        run = waiting[0]
        if budget is not None and not budget.admits(book, run.spec.model,
                                                    trainer.epochs(run.spec) - finished_epochs(run.folder)):
            closed[0] = True
            return None
        return waiting.pop(0)

    def task(run: PlannedRun) -> tuple[RunSpec, Optional[float]]:
        return run.spec, book.epoch_time(run.spec.model)

    first = []
    while len(first) < workers and (run := next_run()) is not None:
        first.append(run)
    if not first:
        return [], waiting
    context = torch.multiprocessing.get_context('spawn')
    tasks, events = context.Queue(), context.Queue()
    for run in first:
        tasks.put(task(run))
    data = trainer.loaded()
    data.share_memory_()
    device = trainer.device
    threads = max(1, torch.get_num_threads() // len(first)) if device.type == 'cpu' else torch.get_num_threads()
    split_budget = budget if budget is not None and budget.split_runs else None
    processes = [context.Process(
        target=_worker, daemon=True,
        args=(tasks, events, trainer.recipe, trainer.recipe_name, data, str(output), str(device), threads,
              split_budget),
    ) for _ in first]
    for process in processes:
        process.start()
    in_flight = {run.spec: run for run in first}
    failed, stopped = [], []
    while in_flight:
        try:
            event = events.get(timeout=5.0)
        except queue_lib.Empty:
            if not any(p.is_alive() for p in processes):
                failed += [(spec, 'worker process died') for spec in in_flight]
                break
            continue
        kind = event[0]
        if kind == 'epoch':
            progress.epoch(event[1])
        elif kind == 'step':
            progress.step(*event[1])
        elif kind == 'resume':
            progress.resumed(*event[1])
        if kind in ('epoch', 'step', 'resume'):
            continue
        run = in_flight.pop(event[1])
        if kind == 'done':
            progress.finished(run.spec, event[2])
        elif kind == 'stopped':  # as one at a time, the runs after a split run wait for the next piece
            progress.log(split_run_stopped_line(run.spec, run.folder, trainer.epochs(run.spec)))
            stopped.append(run)
            closed[0] = True
        else:
            failed.append((run.spec, event[2]))
            progress.log(f'FAILED {run.spec.name}: {event[2]}')
        following = next_run()
        tasks.put(None if following is None else task(following))  # None ends the worker that asked
        if following is not None:
            in_flight[following.spec] = following
    for process in processes:
        process.join()
    return failed, [p for p in pending if p in stopped or p in waiting]
