"""Shared machinery of the attention blocks' hand-written backward passes.

Training time of SE and CBAM on CPU is dominated by memory traffic over the attended feature map, not by their tiny
MLPs and convolutions. Autograd's generic backward of ``x * mask(pool(x))`` materialises a full-size product for
every reduction, a full-size mean gradient, a full-size mask for every max, and then adds the partial gradients of
``x`` together in further passes. The blocks' ``torch.autograd.Function`` s instead build the gradient of ``x`` in one
buffer with per-channel / per-position scaling passes and scatter the gradients of maxima through their indices;
only the small part of each block (pooled statistics -> mask) goes through autograd, as a graph built in forward
and kept until backward. ``benchmarks/block_fused_backward.py`` measures the difference.

The fused path runs in eager mode when gradients are enabled. TorchScript, ``torch.compile`` / ``torch.export``
(whose compilers fuse the straightforward formulation themselves) and inference use the straightforward forward;
both give the same outputs and gradients (tested), except that off CPU a tie between maxima sends CBAM's gradient
to one of the tied elements rather than splitting it (CBAM's CPU path splits it, as autograd does). The fused
backward is once-differentiable; set the block's ``fused_backward`` attribute to False for double backward.
"""
import functools
from typing import Any, Callable, Optional, Sequence

import torch

__all__ = ['use_fused_backward', 'small_graph_grads', 'add_optional', 'autocast_off', 'scale_and_shift']


def use_fused_backward(enabled: bool) -> bool:
    """Whether a block should take its fused-backward path now (eager, gradients on, not being compiled).

    The choice per mode, as measured (``benchmarks/block_fused_backward.py``, ResNet-50 stage shapes): on CPU the
    fused path is faster than autograd in every eager mode measured, float32 (CBAM 20 vs 44 ms at the first stage,
    batch 8, 160 px) and bfloat16 autocast with channels_last (CBAM 75 vs 156 ms, SE about 1.3x, batch 16); under
    torch.compile inductor fuses the autograd formulation, and a custom Function would only break its graph. On
    CUDA the fused path has not been measured yet; ``benchmarks/README.md`` has the command that decides it.
    """
    return enabled and torch.is_grad_enabled() and not torch.compiler.is_compiling()


def small_graph_grads(
        output: torch.Tensor,
        grad_output: torch.Tensor,
        inputs: Sequence[torch.Tensor],
        params: Sequence[torch.Tensor],
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Backpropagate through a recomputed small graph.

    Args:
        output: The recomputed mask.
        grad_output: Gradient of the loss with respect to the mask.
        inputs: Leaf tensors (detached statistics) the mask was recomputed from; all get a gradient.
        params: Block parameters; frozen ones and those the mask does not depend on get None.

    Returns:
        Gradients of ``inputs`` and of ``params``.
    """
    trainable = [p for p in params if p.requires_grad]
    grads = torch.autograd.grad(output, [*inputs, *trainable], grad_output, allow_unused=True)
    input_grads, trainable_grads = list(grads[:len(inputs)]), iter(grads[len(inputs):])
    return input_grads, [next(trainable_grads) if p.requires_grad else None for p in params]


def add_optional(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``a + b`` for gradients that may be None (a parameter one small graph does not reach, or a frozen one)."""
    if a is None:
        return b
    return a if b is None else a + b


def autocast_off(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Function's backward to run with autocast off: it chooses its dtypes itself, and a backward called
    inside an autocast region (``loss.backward()`` in the ``with`` block) would otherwise mix them."""
    @functools.wraps(backward)
    def wrapper(ctx: Any, grad_output: torch.Tensor) -> Any:
        with torch.autocast(grad_output.device.type, enabled=False):
            return backward(ctx, grad_output)
    return wrapper


def scale_and_shift(t: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``t * scale + shift`` for per-channel ``(N, C, 1, 1)`` operands, by what measures fastest for ``t``'s layout.

    One ``addcmul`` pass, except for contiguous maps on CPU: there ``addcmul`` with two per-channel operands is over
    ten times slower than a multiply and an in-place add (27 vs 2 ms at (16, 256, 40, 40) in bfloat16, one thread;
    channels_last: addcmul 1.5 ms, multiply + add 2.5 ms).

    Args:
        t: The map.
        scale: Per-channel factor.
        shift: Per-channel offset.
        inplace: ``t`` may be overwritten (then it is, on the two-pass path).
    """
    if t.device.type == 'cpu' and t.is_contiguous():
        return (t.mul_(scale) if inplace else torch.mul(t, scale)).add_(shift)
    return torch.addcmul(shift, t, scale)
