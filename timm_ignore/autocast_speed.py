"""Whether autocast to a lower precision pays on a CPU: a short matrix-product measurement, before any training.

A CPU without native bfloat16 arithmetic (x86 without AVX512-BF16 or AMX, e.g. AVX2-only AMD Zen 3) computes
bfloat16 products through slow fallbacks: on a 2-core AMD EPYC with AVX2 a bfloat16 matrix product ran at about
1 GFLOP/s against 120 for float32, and the zoo's short recipe (bfloat16 autocast) spent minutes on its first training
steps before saying anything. The trainers ask :func:`check_autocast_speed` first, so such a machine gets one line
naming the slowdown and the way out (float32) instead of a run a hundred times slower than it needs to be.

Only the CPU is measured; on CUDA the dtype is left to ``torch.autocast``'s own checks.
"""
import statistics
import time
from typing import Optional

import torch

__all__ = ['MIN_AUTOCAST_SPEEDUP', 'check_autocast_speed', 'matmul_speedup']

#: Autocast whose matrix products run at less than this share of float32's speed is refused: a dtype the CPU has
#: in hardware runs at 1-4x float32 (bfloat16 with AVX512-BF16 about 4x), an emulated one at 1/10 or less.
MIN_AUTOCAST_SPEEDUP = 0.25


def matmul_speedup(dtype: torch.dtype, size: int = 256, repeats: int = 5) -> float:
    """How many times faster a ``size``-cubed matrix product runs on the CPU in ``dtype`` than in float32.

    The median of ``repeats`` timed products of each (after one untimed), about a millisecond in float32; a dtype the
    CPU emulates takes up to some tens of milliseconds more.
    """
    def seconds_per_product(of: torch.dtype) -> float:
        a, b = torch.randn(size, size).to(of), torch.randn(size, size).to(of)
        torch.mm(a, b)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    return seconds_per_product(torch.float32) / seconds_per_product(dtype)


def check_autocast_speed(
        device: torch.device,
        dtype: torch.dtype,
        min_speedup: Optional[float] = None,
) -> None:
    """Refuse autocast to ``dtype`` on a CPU that computes it far slower than float32 (nothing to check on others).

    ``min_speedup`` defaults to :data:`MIN_AUTOCAST_SPEEDUP` as it is when called.

    Raises:
        ValueError: The measured speed-up is below ``min_speedup``; the message names it, the CPU's vector extension
            and the float32 way out (``amp: false``).
    """
    if device.type != 'cpu' or dtype == torch.float32:
        return
    speedup = matmul_speedup(dtype)
    if speedup < (MIN_AUTOCAST_SPEEDUP if min_speedup is None else min_speedup):
        name = str(dtype).removeprefix('torch.')
        raise ValueError(
            f'{name} autocast would run {1 / speedup:.0f}x slower than float32 on this CPU '
            f'({torch.backends.cpu.get_cpu_capability()}, no native {name} matrix products): train in float32 '
            f'(amp: false in the recipe, or --set amp=false), or on a CPU with AVX512-BF16 or AMX, or a GPU.')
