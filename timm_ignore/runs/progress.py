"""The one progress reporter of a run matrix: lines within an epoch, per epoch, per run, with img/s and time left.

Both trainers report through it, so ``compare`` and ``train-queue`` print alike:

- within an epoch, at most one line every ``step_interval_s`` seconds (default 45 s; none for short epochs):
  the step, img/s so far and the epoch's time left;
- per epoch (every epoch, or every ``log_every``-th for long runs): loss, validation loss and error, lr, img/s, the
  run's time left, and the matrix's img/s and time left (runs left x epochs x the mean epoch time / runs at once);
- a line when a run resumes (from which epoch), when it finishes, and when it is kept finished.
"""
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from .active_time import active_time
from .budget import SpeedBook
from .layout import RunSpec

__all__ = ['EpochReport', 'Progress', 'format_time']


def format_time(seconds: float) -> str:
    """``1h05m`` from an hour up, else ``4m07s``."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f'{hours}h{rest // 60:02d}m' if hours else f'{rest // 60}m{rest % 60:02d}s'


@dataclass(frozen=True)
class EpochReport:
    """A run after one epoch (``epoch`` counts from 0, as in summary.csv); errors in %, None when not measured."""
    run: RunSpec
    epoch: int
    epochs: int
    train_loss: float
    val_loss: Optional[float]
    val_top1_err: Optional[float]
    lr: float
    images_per_s: float
    epoch_time_s: float
    images: int


@dataclass
class Progress:
    """Progress lines of the runs of one matrix (see the module docstring).

    Attributes:
        runs: Every run of the matrix, in order (the ``[i/n]`` of a line).
        epochs_left: Epochs still to train per run (runs not listed have none left).
        log: Where lines go.
        parallel: Runs trained at once (divides the matrix's time left).
        log_every: Per-epoch line every this many epochs (and the last).
        step_interval_s: Seconds between lines within an epoch.
        speeds: Where every epoch's time and img/s is recorded (for ``--time-limit``), if anywhere.
    """
    runs: Sequence[RunSpec]
    epochs_left: dict
    log: Callable[[str], None] = print
    parallel: int = 1
    log_every: int = 1
    step_interval_s: float = 45.0
    speeds: Optional[SpeedBook] = None
    started: float = field(default_factory=active_time)  # the queue's img/s counts the time it trained
    images: int = 0
    epoch_times: list = field(default_factory=list)
    _last_step_line: float = field(default_factory=time.perf_counter)

    def _prefix(self, run: RunSpec) -> str:
        index = self.runs.index(run) + 1 if run in self.runs else '?'
        return f'[{index}/{len(self.runs)}] {run.model} seed {run.seed}'

    def kept(self, run: RunSpec, landed: Optional[pathlib.Path] = None) -> None:
        """Say that ``run`` finished earlier: in this folder, or with its record landed in the folder ``landed``."""
        where = 'kept' if landed is None else f'its record landed in {landed}; not trained again'
        self.log(f'{self._prefix(run)}: finished earlier, {where}')

    def resumed(self, run: RunSpec, start_epoch: int, epochs: int) -> None:
        self.log(f'{self._prefix(run)}: resuming from its last checkpoint at epoch {start_epoch}/{epochs - 1} '
                 f'({start_epoch} epochs done)')
        self._last_step_line = time.perf_counter()

    def step(
            self, run: RunSpec, epoch: int, step: int, steps: int, images_per_s: float, epoch_elapsed_s: float,
    ) -> None:
        """Within an epoch: a line when ``step_interval_s`` passed since the last line."""
        now = time.perf_counter()
        if now - self._last_step_line < self.step_interval_s or step >= steps:
            return
        self._last_step_line = now
        left = epoch_elapsed_s / max(step, 1) * (steps - step)
        self.log(f'{self._prefix(run)}: epoch {epoch} step {step}/{steps} ({100 * step // steps}%)  '
                 f'{images_per_s:,.0f} img/s  epoch time left {format_time(left)}')

    def epoch(self, report: EpochReport) -> None:
        self._last_step_line = time.perf_counter()
        if self.speeds is not None:
            self.speeds.add_epoch(report.run.model, report.epoch_time_s, report.images_per_s)
        self.epochs_left[report.run] = report.epochs - report.epoch - 1
        self.images += report.images
        self.epoch_times.append(report.epoch_time_s)
        if report.epoch % self.log_every and report.epoch + 1 != report.epochs:
            return
        recent = self.epoch_times[-50:]
        left = sum(self.epochs_left.values()) * sum(recent) / len(recent) / self.parallel
        elapsed = active_time() - self.started
        val = '' if report.val_top1_err is None else \
            f'  val loss {report.val_loss:.4f}  val err {report.val_top1_err:.2f}%'
        self.log(f'{self._prefix(report.run)}: epoch {report.epoch}/{report.epochs - 1}  loss {report.train_loss:.4f}'
                 f'{val}  lr {report.lr:.2g}  {report.images_per_s:,.0f} img/s  run ETA '
                 f'{format_time((report.epochs - report.epoch - 1) * report.epoch_time_s)}  |  queue '
                 f'{self.images / max(elapsed, 1e-9):,.0f} img/s, ETA {format_time(left)}')

    def finished(self, run: RunSpec, record: dict[str, Any]) -> None:
        self.epochs_left.pop(run, None)
        test, flip = record.get('test_top1_err'), record.get('test_top1_err_flip')
        tested = '' if test is None else \
            f', test err {test:.2f}%' + ('' if flip is None else f' (flip TTA {flip:.2f}%)')
        wall = record.get('wall_time_s')
        self.log(f'done {run.name}: best epoch {record.get("best_epoch")}, val err {record.get("val_top1_err")}%'
                 f'{tested}' + ('' if wall is None else f', {format_time(wall)}'))
