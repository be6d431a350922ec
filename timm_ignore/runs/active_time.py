"""A clock that stands still while the process is stopped: the time a run trains, not the time it was paused for.

On a shared machine a long training run is paused with ``kill -STOP`` while something else needs the CPU (a test
run, a landing) and continued with ``kill -CONT``; ``time.monotonic()`` goes on meanwhile, so a run's recorded wall
time, its epoch times and the speeds that ``--time-limit`` estimates from would all count the pause as training.
:func:`active_time` subtracts it. A daemon thread wakes every :data:`TICK_S`; every thread of a process stops
together, so a wake-up more than :data:`GAP_S` late is a stop of about that lateness. Nothing else makes a sleeping
thread that late on a working machine (a thread waits for Python's GIL a few milliseconds at most), but a machine so
overloaded that it is, or a suspended virtual machine, counts as stopped too. The resolution is about :data:`TICK_S`
per stop.
"""
import threading
import time
from typing import Optional

__all__ = ['GAP_S', 'TICK_S', 'active_time']

#: Seconds between the watcher's wake-ups.
TICK_S = 0.25
#: A wake-up later than this many seconds counts as a stop (all of its lateness).
GAP_S = 2.0


class _StopWatcher:
    """Sums the time this process spent stopped, from the lateness of a daemon thread's wake-ups."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_tick = time.monotonic()
        self._stopped = 0.0
        threading.Thread(target=self._watch, name='timm-ignore-stop-watcher', daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(TICK_S)
            now = time.monotonic()
            with self._lock:
                self._stopped += self._late(now)
                self._last_tick = now

    def _late(self, now: float) -> float:
        late = now - self._last_tick - TICK_S
        return late if late > GAP_S else 0.0

    def stopped(self) -> float:
        """Seconds stopped so far, a stop the watcher has not woken up from yet included."""
        with self._lock:
            return self._stopped + self._late(time.monotonic())


_watcher: Optional[_StopWatcher] = None
_start_lock = threading.Lock()


def active_time() -> float:
    """A monotonic clock, in seconds, that does not advance while the process is stopped (from the first call on);
    differences of it are durations, as with ``time.monotonic()``."""
    global _watcher
    with _start_lock:
        if _watcher is None:
            _watcher = _StopWatcher()
    return time.monotonic() - _watcher.stopped()
