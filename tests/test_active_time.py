"""The runs' clock leaves out the time the process was stopped (``kill -STOP`` ... ``kill -CONT``), measured on a real
child process, so that a paused training run's epochs and record count only the time it trained."""
import os
import signal
import subprocess
import sys
import time

import pytest

#: The child reads the clocks, says it is ready, waits for a line, and prints wall and active seconds between.
CHILD = """
import sys, time
from timm_ignore.runs import active_time
wall, active = time.monotonic(), active_time()
print('ready', flush=True)
sys.stdin.readline()
print(time.monotonic() - wall, active_time() - active, flush=True)
"""


def _wall_and_active(stop_s: float) -> tuple[float, float]:
    child = subprocess.Popen([sys.executable, '-c', CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, 'OMP_NUM_THREADS': '1'})
    try:
        assert child.stdout.readline().strip() == 'ready'
        time.sleep(0.5)
        if stop_s:
            os.kill(child.pid, signal.SIGSTOP)
            time.sleep(stop_s)
            os.kill(child.pid, signal.SIGCONT)
        time.sleep(0.5)
        child.stdin.write('\n')
        child.stdin.flush()
        wall, active = (float(v) for v in child.stdout.readline().split())
    finally:
        child.kill()
        child.wait()
    return wall, active


@pytest.mark.skipif(not hasattr(signal, 'SIGSTOP'), reason='needs POSIX signals')
def test_a_stopped_process_does_not_count_the_stop():
    wall, active = _wall_and_active(stop_s=3.0)
    assert wall >= 4.0  # 0.5 + 3 + 0.5 s at least
    assert wall - active == pytest.approx(3.0, abs=0.4)  # the stop, within the watcher's resolution


@pytest.mark.skipif(not hasattr(signal, 'SIGSTOP'), reason='needs POSIX signals')
def test_a_running_process_counts_all_of_its_time():
    wall, active = _wall_and_active(stop_s=0.0)
    assert wall >= 1.0 and wall - active == pytest.approx(0.0, abs=0.05)
