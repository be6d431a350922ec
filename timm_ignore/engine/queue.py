"""A queue of (model, seed) runs on one device: checked before any work, resumable, several runs at once.

The queue's folder holds ``queue.json`` (the recipe and every run asked for) and one folder per run. Started again
after a kill, the queue skips finished runs (those with ``run.json``), resumes cut-off runs from their last epoch and
starts the rest, so every run is trained exactly once. A folder holding runs of another recipe is refused.

With ``parallel > 1`` the runs are shared out to that many worker processes on the same device: on a GPU the small
CIFAR networks leave most of it idle when trained one at a time (kernel launches, not arithmetic, bound a step), and
separate processes fill it without any coordination beyond the work list. The dataset is decoded once and handed to
the workers in shared memory.
"""
import fcntl
import json
import os
import pathlib
import queue as queue_lib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch

from .data import DataError, ImageData, check_image_folder, load_image_folder
from .recipe import EngineRecipe
from .run import EpochReport, RunSpec, read_record, train_run

__all__ = ['QueueError', 'QUEUE_FILE', 'check_queue', 'run_queue']

QUEUE_FILE = 'queue.json'
_LOCK_FILE = '.queue.lock'


class QueueError(ValueError):
    """A queue that cannot start: bad model, device, data, or an output folder of another recipe."""


def _check_models(runs: Sequence[RunSpec], recipe: EngineRecipe) -> None:
    import importlib

    import timm
    for module in recipe.device_modules:
        importlib.import_module(module)
    unknown = sorted({r.model for r in runs if not timm.is_model(r.model)})
    if unknown:
        raise QueueError(f'unknown model {", ".join(unknown)}; `timm-ignore models` lists the registered ones.')


def _check_output(output: pathlib.Path, recipe: EngineRecipe, runs: Sequence[RunSpec]) -> None:
    if output.exists() and not output.is_dir():
        raise QueueError(f'--output {output} is a file; give a folder for the queue.')
    fingerprint = recipe.fingerprint()
    queue_file = output / QUEUE_FILE
    if queue_file.is_file():
        known = json.loads(queue_file.read_text())
        if known.get('recipe_fingerprint') != fingerprint:
            raise QueueError(
                f'--output {output} holds a queue of another recipe ({known.get("recipe_name") or "unnamed"}); '
                f'resume it with that recipe or give another --output.')
    for run in runs:
        record = read_record(output / run.name)
        if record is not None and record.get('recipe_fingerprint') != fingerprint:
            raise QueueError(f'{output / run.name} was trained with another recipe; give another --output.')


def check_queue(
        runs: Sequence[RunSpec],
        recipe: EngineRecipe,
        data_dir: pathlib.Path,
        output: pathlib.Path,
        device: torch.device,
        parallel: int,
) -> None:
    """Check everything a queue needs before any work starts.

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
    num_classes = sum(1 for p in (data_dir / 'train').iterdir() if p.is_dir())
    if num_classes != recipe.num_classes:
        raise QueueError(
            f'--data-dir has {num_classes} classes but the recipe trains num_classes: {recipe.num_classes}.')
    _check_output(output, recipe, runs)


def _write_queue_file(output: pathlib.Path, recipe: EngineRecipe, recipe_name: str, runs: Sequence[RunSpec]) -> None:
    queue_file = output / QUEUE_FILE
    known = json.loads(queue_file.read_text())['runs'] if queue_file.is_file() else []
    entries = known + [e for e in ({'model': r.model, 'seed': r.seed} for r in runs) if e not in known]
    text = json.dumps(dict(recipe_name=recipe_name, recipe_fingerprint=recipe.fingerprint(), recipe=recipe.to_dict(),
                           runs=entries), indent=2)
    tmp = queue_file.with_name(f'.{QUEUE_FILE}.tmp')
    tmp.write_text(text + '\n')
    os.replace(tmp, queue_file)


def _format_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f'{hours}h{rest // 60:02d}m' if hours else f'{rest // 60}m{rest % 60:02d}s'


@dataclass
class _Progress:
    """Per-run and whole-queue progress lines with images/s and ETA."""
    runs: Sequence[RunSpec]
    epochs: int
    parallel: int
    log: Callable[[str], None]
    log_every: int = 1
    started: float = field(default_factory=time.perf_counter)
    epochs_done: dict = field(default_factory=dict)
    images: int = 0
    epoch_times: list = field(default_factory=list)

    def epoch(self, report: EpochReport, images: int) -> None:
        self.epochs_done[report.run] = report.epoch + 1
        self.images += images
        self.epoch_times.append(report.epoch_time_s)
        if report.epoch % self.log_every and report.epoch + 1 != report.epochs:
            return
        mean_epoch = sum(self.epoch_times[-50:]) / len(self.epoch_times[-50:])
        run_eta = (report.epochs - report.epoch - 1) * report.epoch_time_s
        left = sum(self.epochs - self.epochs_done.get(r, 0) for r in self.runs)
        elapsed = time.perf_counter() - self.started
        self.log(
            f'[{self.runs.index(report.run) + 1}/{len(self.runs)}] {report.run.name} epoch {report.epoch + 1}/'
            f'{report.epochs}  loss {report.train_loss:.4f}  val err {report.val_top1_err:.2f}%  lr {report.lr:.2g}  '
            f'{report.images_per_s:,.0f} img/s  run ETA {_format_time(run_eta)}  |  queue '
            f'{self.images / elapsed:,.0f} img/s, ETA {_format_time(left * mean_epoch / self.parallel)}')

    def finished(self, run: RunSpec, record: dict[str, Any]) -> None:
        self.epochs_done[run] = self.epochs
        test = record.get('test_top1_err')
        self.log(f'done {run.name}: best epoch {record["best_epoch"]}, val err {record["val_top1_err"]:.2f}%'
                 f'{"" if test is None else f", test err {test:.2f}%"}, {_format_time(record["wall_time_s"])}')


def _worker(
        tasks: Any,
        events: Any,
        recipe: EngineRecipe,
        recipe_name: str,
        data: ImageData,
        output: str,
        device: str,
        threads: int,
) -> None:
    """Worker process: train runs from ``tasks`` until it yields None, reporting to ``events``."""
    torch.set_num_threads(threads)
    for module in recipe.device_modules:
        __import__(module)
    data = data.to(torch.device(device))
    while (spec := tasks.get()) is not None:
        try:
            record = train_run(spec, recipe, data, pathlib.Path(output) / spec.name, recipe_name,
                               on_epoch=lambda report: events.put(('epoch', report)))
            events.put(('done', spec, record))
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
) -> list[dict[str, Any]]:
    """Train every run not finished yet; returns the records of all ``runs``, in order.

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

    Raises:
        QueueError: From :func:`check_queue`, or another queue already running in ``output``.
        RuntimeError: Some runs failed; the others finished and are recorded.
    """
    check_queue(runs, recipe, data_dir, output, device, parallel)
    output.mkdir(parents=True, exist_ok=True)
    lock = open(output / _LOCK_FILE, 'w')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise QueueError(f'another queue is already running in {output}.') from None
    try:
        _write_queue_file(output, recipe, recipe_name, runs)
        pending = [r for r in runs if read_record(output / r.name) is None]
        log(f'{len(runs) - len(pending)} of {len(runs)} runs already finished; {len(pending)} to train on {device} '
            f'({parallel} at a time).')
        if pending:
            data = data or load_image_folder(data_dir)
            if len(data.train) < recipe.batch_size:
                raise QueueError(f'the training split has {len(data.train)} images, fewer than one batch '
                                 f'({recipe.batch_size}).')
            progress = _Progress(pending, recipe.epochs, parallel, log, log_every=max(1, recipe.epochs // 20))
            images_per_epoch = len(data.train) // recipe.batch_size * recipe.batch_size
            job = _Job(pending, recipe, recipe_name, data, output, device, progress, images_per_epoch)
            failed = job.run_here() if parallel == 1 else job.run_workers(parallel)
            if failed:
                raise RuntimeError('runs failed: ' + '; '.join(f'{spec.name}: {why}' for spec, why in failed))
        return [read_record(output / r.name) for r in runs]
    finally:
        lock.close()


@dataclass
class _Job:
    """The runs left to train and what every one of them shares."""
    pending: Sequence[RunSpec]
    recipe: EngineRecipe
    recipe_name: str
    data: ImageData
    output: pathlib.Path
    device: torch.device
    progress: _Progress
    images_per_epoch: int

    def run_here(self) -> list[tuple[RunSpec, str]]:
        """Train the runs one after another in this process; a failure ends the queue."""
        data = self.data.to(self.device)
        for spec in self.pending:
            record = train_run(spec, self.recipe, data, self.output / spec.name, self.recipe_name,
                               on_epoch=lambda report: self.progress.epoch(report, self.images_per_epoch))
            self.progress.finished(spec, record)
        return []

    def run_workers(self, parallel: int) -> list[tuple[RunSpec, str]]:
        """Train the runs in ``parallel`` worker processes; returns the failed runs and why."""
        context = torch.multiprocessing.get_context('spawn')
        tasks, events = context.Queue(), context.Queue()
        workers = min(parallel, len(self.pending))
        for spec in [*self.pending, *[None] * workers]:
            tasks.put(spec)
        self.data.share_memory_()
        cpu = self.device.type == 'cpu'
        threads = max(1, torch.get_num_threads() // workers) if cpu else torch.get_num_threads()
        processes = [context.Process(
            target=_worker, daemon=True,
            args=(tasks, events, self.recipe, self.recipe_name, self.data, str(self.output), str(self.device), threads),
        ) for _ in range(workers)]
        for process in processes:
            process.start()
        failed, finished = [], 0
        while finished < len(self.pending):
            try:
                event = events.get(timeout=5.0)
            except queue_lib.Empty:
                if not any(p.is_alive() for p in processes):
                    done = {spec for spec, _ in failed}
                    failed += [(s, 'worker process died') for s in self.pending
                               if s not in done and read_record(self.output / s.name) is None]
                    break
                continue
            if event[0] == 'epoch':
                self.progress.epoch(event[1], self.images_per_epoch)
                continue
            finished += 1
            if event[0] == 'done':
                self.progress.finished(event[1], event[2])
            else:
                failed.append((event[1], event[2]))
                self.progress.log(f'FAILED {event[1].name}: {event[2]}')
        for process in processes:
            process.join()
        return failed
