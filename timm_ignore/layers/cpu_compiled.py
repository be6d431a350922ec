"""Small elementwise functions compiled by inductor for CPU tensors, with an eager twin for everything else.

PyTorch's eager CPU kernels make one pass over memory per op, so a chain of elementwise ops and reductions over a
large tensor is bound by memory traffic; inductor fuses the chain into one vectorised C++ loop. The fused training
paths use this for their hottest chains. Compilation needs a C++ compiler and happens at the first call (seconds);
shapes are dynamic, so a new size does not recompile (inductor still specialises some sizes, such as 1). Nothing is
compiled, and inductor is not imported, before the first call with CPU tensors. Where inductor cannot compile (no
compiler, an unsupported platform), the eager twin runs from then on, after one warning. Other devices always take
the eager twin: the compiled loops were measured only on CPU, and on a GPU inductor would generate Triton kernels, a
dependency of its own.
"""
import warnings
from typing import Any, Callable, Optional

import torch

__all__ = ['CpuCompiled']


class CpuCompiled:
    """Call ``formula`` compiled by inductor on CPU tensors, ``eager`` otherwise; both compute the same values.

    Args:
        formula: The function to compile, written as plain tensor ops (inductor fuses them).
        eager: The same function for eager mode, written with whatever eager kernels are fastest.
    """

    def __init__(self, formula: Callable[..., Any], eager: Callable[..., Any]) -> None:
        self.formula = formula
        self.eager = eager
        self._compiled: Optional[Callable[..., Any]] = None  # made at the first CPU call: torch.compile loads inductor
        self._state = 'untried'  # 'untried' -> 'compiled' or 'eager'

    def __call__(self, *args: Any) -> Any:
        if self._state == 'eager' or args[0].device.type != 'cpu' or torch.compiler.is_compiling():
            return self.eager(*args)
        if self._state == 'compiled':
            return self._compiled(*args)
        try:  # the first call compiles; a failure there has run nothing yet
            self._compiled = torch.compile(self.formula, dynamic=True)
            result = self._compiled(*args)
        except Exception as error:  # noqa: BLE001 - any compiler failure: the eager twin computes the same
            self._state = 'eager'
            warnings.warn(f'{self.formula.__qualname__}: inductor could not compile it on this machine '
                          f'({type(error).__name__}); running its eager form from now on, which is slower.')
            return self.eager(*args)
        self._state = 'compiled'
        return result
