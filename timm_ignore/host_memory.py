"""Host memory for training on a CPU: keep freed buffers in the process instead of handing them back to the OS.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves every request over 32 MB with a fresh
``mmap`` and unmaps it again on free, so each such buffer is faulted in and zeroed by the kernel page by page on its
first touch, every time. A CIFAR training step allocates dozens of them (a first-stage map of 256 channels at batch
128 is 64 MB in bfloat16), and the faults cost more than the arithmetic: an elementwise loop writing a fresh 40 MB
buffer took 15 ms against 4 ms with the buffer reused (2-core Xeon), and whole training steps took 0.70x
(DenseNet: 315 000 page faults a step fell to 1 400) and 0.83x (ResNet-50) of their time with freed memory kept
(``benchmarks/host_memory_throughput.py``).

:func:`keep_freed_memory` turns glibc's ``mmap`` path off and raises its trim threshold, so freed buffers stay in
the heap for the next step to reuse, which is what glibc's ``MALLOC_MMAP_MAX_=0`` and ``MALLOC_TRIM_THRESHOLD_``
environment variables do from a process's start. The cost is that the process keeps its peak heap for its lifetime.
"""
import ctypes
import sys

__all__ = ['keep_freed_memory']

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_LARGEST_INT = 2 ** 31 - 1  # mallopt takes a C int


def keep_freed_memory() -> bool:
    """Have glibc's ``malloc`` keep freed memory in this process for reuse (see the module docstring).

    Affects the whole process from now on; calling it again changes nothing. Only glibc on Linux has these settings:
    elsewhere (macOS, Windows, musl, or another allocator preloaded) this does nothing.

    Returns:
        Whether the C library took both settings.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _LARGEST_INT) == 1
