"""``--time-limit``: parse a duration one way, and estimate a run's time from the speeds measured on this machine.

The speeds live in the matrix folder's ``speed.json``, in one section per machine and precision (the trainer's
``speed_key``, e.g. ``AMD EPYC (2 cores), family 25 model 1, float32``): per model, the wall time of each epoch trained
there (training and validation, as the epoch lines measure it) with their median, and the median training img/s. The
median, not the mean: an epoch during which the process was paused or preempted (a landing, a test run) is not taken
for a slow model. A campaign spread over sessions that draw different machines keeps one folder, and each machine
estimates from its own section. A run's estimate is its epochs left times its model's epoch time, which is, in order
of trust:

1. the median of its epochs trained in this folder;
2. a probe on this machine: a trainer that can time a few of the run's own steps (the engine's
   ``measure_epoch_time``) is asked before the run, and the result is kept as ``probe_epoch_time_s``;
3. the slowest model of its zoo family measured here (an attention variant costs about what its twin does, but CBAM
   can cost far more than SE, which is why a probe comes first);
4. none: the run is started only as the first run of an invocation (so every piece of a campaign makes progress and
   measures it), never after another run.

A ``speed.json`` written before the sections (one flat mapping of models) is kept in a section of its own,
:data:`UNKNOWN_MACHINE`, that no trainer's key names.

:class:`TimeBudget` holds a piece's limit and is the one rule of what may start in it, for runs trained one at a
time (:func:`~.matrix.run_matrix`) and for the engine's worker processes.
"""
import json
import math
import pathlib
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

from ..models.zoo import MODELS
from .layout import SPEED_FILE
from .record import atomic_write_text

__all__ = ['SpeedBook', 'TimeBudget', 'TimeLimitError', 'UNKNOWN_MACHINE', 'parse_duration']

#: The section of a ``speed.json`` written before speeds were kept per machine.
UNKNOWN_MACHINE = 'a machine not recorded (speeds written before they were kept per machine)'
_DURATION = re.compile(r'^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$')


class TimeLimitError(ValueError):
    """A time limit that is not a positive duration."""


def parse_duration(text: str) -> float:
    """Seconds of a duration ``2h30m``, ``90m``, ``1.5h``, ``45s`` (hours, minutes, seconds; any of them, in order).

    Raises:
        TimeLimitError: Anything else, or zero.
    """
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise TimeLimitError(f'--time-limit: expected a duration such as 2h30m, 90m or 45s, got {text!r}.')
    hours, minutes, seconds = (float(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise TimeLimitError(f'--time-limit must be more than zero, got {text!r}.')
    return total


def _family(model: str) -> Optional[str]:
    spec = MODELS.get(model)
    return None if spec is None else spec.family.name


class SpeedBook:
    """The epoch times measured in one matrix folder on one machine in one precision, per model (a section of
    ``speed.json``; the other sections are kept as they are)."""

    def __init__(self, folder: pathlib.Path, machine: str = '') -> None:
        """
        Args:
            folder: The matrix folder.
            machine: The section, the trainer's ``speed_key``: the machine and precision whose speeds these are.
        """
        self.path = pathlib.Path(folder) / SPEED_FILE
        try:
            sections = json.loads(self.path.read_text())
        except (OSError, ValueError):
            sections = {}
        sections = sections if isinstance(sections, dict) else {}
        if sections and not all(isinstance(v, dict) and 'epoch_time_s' not in v for v in sections.values()):
            sections = {UNKNOWN_MACHINE: sections}  # a flat file of models, from before the sections
        self.sections = sections
        self.speeds = sections.setdefault(machine, {})

    def add_epoch(self, model: str, epoch_time_s: float, images_per_s: float) -> None:
        """Record one epoch trained here, update the model's medians, and save.

        An entry written before the per-epoch lists were kept holds only means; they count as that many epochs of
        the mean.
        """
        entry = self.speeds.setdefault(model, dict(epochs=0, epoch_time_s=0.0, images_per_s=0.0))
        n = entry['epochs']
        times = entry.get('epoch_times_s', [entry['epoch_time_s']] * n) + [epoch_time_s]
        rates = entry.get('epoch_images_per_s', [entry['images_per_s']] * n) + [images_per_s]
        entry.update(epochs=n + 1, epoch_times_s=times, epoch_images_per_s=rates,
                     epoch_time_s=statistics.median(times), images_per_s=statistics.median(rates))
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.sections, indent=2, sort_keys=True) + '\n')

    def add_probe(self, model: str, epoch_time_s: float) -> None:
        """Record a probe's estimate of one epoch of ``model`` (used until an epoch is measured), and save."""
        self.speeds.setdefault(model, dict(epochs=0, epoch_time_s=0.0, images_per_s=0.0))
        self.speeds[model]['probe_epoch_time_s'] = epoch_time_s
        self._save()

    def measured(self, model: str) -> bool:
        """Whether ``model`` has an epoch time of its own here (trained epochs or a probe)."""
        entry = self.speeds.get(model, {})
        return entry.get('epochs', 0) > 0 or 'probe_epoch_time_s' in entry

    def epoch_time(self, model: str) -> Optional[float]:
        """Seconds per epoch of ``model``: trained here, else probed here, else the slowest measured model of its
        family, else None."""
        entry = self.speeds.get(model, {})
        if entry.get('epochs', 0) > 0:
            return entry['epoch_time_s']
        if 'probe_epoch_time_s' in entry:
            return entry['probe_epoch_time_s']
        family = _family(model)
        kin = [v['epoch_time_s'] for m, v in self.speeds.items()
               if family is not None and _family(m) == family and v.get('epochs', 0) > 0]
        return max(kin) if kin else None

    def estimate(self, model: str, epochs_left: int) -> float:
        """Seconds to train ``epochs_left`` epochs of ``model``; ``math.inf`` when it cannot be estimated."""
        per_epoch = self.epoch_time(model)
        return math.inf if per_epoch is None else per_epoch * epochs_left


@dataclass
class TimeBudget:
    """A piece's time limit (``--time-limit``) on the wall clock, from when it is made, and what fits in what is left.

    The deadline is ``time.time()``'s, so that the worker processes of one piece share it. The clock runs on while
    the process is stopped (``kill -STOP``): a limit is a job's time, not its training time.

    Attributes:
        limit_s: The limit in seconds.
        split_runs: A run that does not fit may start when one of its epochs does (it trains the epochs that fit,
            asked before each, and the next piece resumes it).
        deadline: When the piece ends (``time.time()``).
    """
    limit_s: float
    split_runs: bool = False
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.time() + self.limit_s

    def left_s(self) -> float:
        """Seconds left until the deadline (negative after it)."""
        return self.deadline - time.time()

    def fits(self, seconds: float) -> bool:
        """Whether ``seconds`` (an estimate; ``math.inf`` when unknown) fit in what is left."""
        return seconds <= self.left_s()

    def admits(self, book: SpeedBook, model: str, epochs_left: int) -> bool:
        """Whether a run of ``model`` with ``epochs_left`` epochs to train may start now: its estimate fits, or, with
        ``split_runs``, one of its epochs does. A run whose speed is unknown here is not admitted."""
        return self.fits(book.estimate(model, epochs_left)) or (self.split_runs and self.fits(book.estimate(model, 1)))
