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
both give the same outputs and gradients (tested), except that a tie between maxima sends CBAM's gradient to one of
the tied elements rather than splitting it. The fused backward is once-differentiable; set the block's
``fused_backward`` attribute to False for double backward.
"""
import functools
from typing import Any, Callable, Sequence

import torch

__all__ = ['use_fused_backward', 'small_graph_grads', 'autocast_off']


def use_fused_backward(enabled: bool) -> bool:
    """Whether a block should take its fused-backward path now (eager, gradients on, not being compiled)."""
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


def autocast_off(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Function's backward to run with autocast off: it chooses its dtypes itself, and a backward called
    inside an autocast region (``loss.backward()`` in the ``with`` block) would otherwise mix them."""
    @functools.wraps(backward)
    def wrapper(ctx: Any, grad_output: torch.Tensor) -> Any:
        with torch.autocast(grad_output.device.type, enabled=False):
            return backward(ctx, grad_output)
    return wrapper
