"""``keep_freed_memory``: large CPU tensors come from the heap, not from fresh ``mmap`` s, once it has run.

Each probe runs in its own interpreter: the setting is process-wide and would leak into every later test.
"""
import ctypes
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != 'linux' or platform.libc_ver()[0] != 'glibc', reason="glibc's malloc settings (Linux only)")

# Bytes glibc holds in mmap'ed blocks before and after a 64 MB tensor is allocated and filled.
_PROBE = """
import ctypes, sys
import torch
from timm_ignore.host_memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == 'keep' else None
before = libc.mallinfo2().hblkhd
tensor = torch.ones(64 << 20, dtype=torch.uint8)
print(kept, libc.mallinfo2().hblkhd - before)
"""


def _mapped_bytes_of_a_large_tensor(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, '-c', _PROBE, mode], capture_output=True, text=True, check=True,
                         env={'OMP_NUM_THREADS': '1', 'PATH': ''})
    kept, mapped = out.stdout.split()
    return kept, int(mapped)


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), 'mallinfo2'), reason='mallinfo2 needs glibc 2.33 or later')
def test_large_tensors_come_from_the_heap_once_freed_memory_is_kept():
    kept, mapped = _mapped_bytes_of_a_large_tensor('default')
    assert mapped >= 64 << 20  # glibc's default: a fresh mapping for anything over 32 MB
    kept, mapped = _mapped_bytes_of_a_large_tensor('keep')
    assert kept == 'True'
    assert mapped == 0  # from the heap, which keeps it for the next allocation after it is freed
