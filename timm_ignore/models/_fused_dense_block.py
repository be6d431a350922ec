"""A dense block's training step without its quadratic copies and repeated batch statistics.

In a dense block, layer ``l`` applies BN-ReLU and a 1x1 convolution to the concatenation of all earlier features.
Written plainly, every layer copies the whole concatenation again, recomputes the batch mean and variance of every
earlier channel, and has autograd add up the gradients of those copies again: memory traffic quadratic in depth on
top of the 1x1 convolutions' own work.

In train mode the batch statistics of a channel are the same for every layer that reads it, and so is the
normalised channel ``x_hat = (x - mean) / sqrt(var + eps)``; each layer differs only in its affine
``gamma * x_hat + beta``. :class:`DenseBlockFunction` therefore writes each layer's output once into one buffer of
the block's features and its normalised values once into a channel-major ``(C, N*H*W)`` buffer (so that every
layer's input is a contiguous leading slice), with the statistics computed once by a batch-norm kernel, and runs
the 1x1 convolutions as matrix products on those slices. Its backward adds every layer's
``x_hat`` gradient into one buffer and takes each channel through the normalisation backward once, when all layers
reading it are done: the normalisation backward is linear in its incoming gradient, so this equals the sum of the
per-layer BN backwards. Each layer's own BN affine, its running statistics (updated exactly as
``nn.BatchNorm2d`` updates them) and its parameters' gradients are those of the plain block; the layer's second
half (BN-ReLU-3x3 convolution on the narrow bottleneck) goes through autograd as a small graph built in forward.

On CPU, a layer's BN-ReLU affine and its backward (the ReLU mask, the ``x_hat`` gradient and the affine's
parameter gradients) each run as one loop compiled by inductor, which makes one pass over the slice where the eager
kernels make three to five; the second half is compiled too, its BN statistics and ReLU fused around the
convolution (:class:`~timm_ignore.layers.cpu_compiled.CpuCompiled`; eager kernels elsewhere).

Requirements, checked by the caller: train mode, the block's first norms share one epsilon, BN + ReLU norms.
The backward is once-differentiable.
"""
from typing import Any, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.autograd.function import once_differentiable

from ..layers.cpu_compiled import CpuCompiled

__all__ = ['DenseBlockFunction', 'dense_block_params']


def dense_block_params(layers: Sequence[nn.Module]) -> list[torch.Tensor]:
    """The parameters :class:`DenseBlockFunction` takes, in its order: per layer norm1, conv1, norm2, conv2."""
    return [p for layer in layers for m in (layer.norm1, layer.conv1, layer.norm2, layer.conv2)
            for p in m.parameters(recurse=False)]


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _channel_major(x: torch.Tensor) -> torch.Tensor:
    """An NCHW tensor as the ``(C, N, H, W)`` view of the channel-major buffers."""
    return x.permute(1, 0, 2, 3)


def _normalise_(raw: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-normalise the channel-major ``(C, rows)`` ``raw`` in place, without affine.

    Returns 1/std (for backward) and the mean and unbiased variance (for the running statistics), computed as
    ``nn.BatchNorm2d`` computes them. Channel-major rows are what the batch-norm kernel is fastest on: a
    channels_last map of 12 channels took it several times longer.
    """
    stats_dtype = torch.promote_types(raw.dtype, torch.float32)
    mean, unbiased_var = raw.new_zeros(raw.shape[0], dtype=stats_dtype), raw.new_zeros(raw.shape[0], dtype=stats_dtype)
    # momentum 1: the "running" statistics are this batch's
    x_hat, _, save_invstd = torch.native_batch_norm(raw[None], None, None, mean, unbiased_var, True, 1.0, eps)
    raw.copy_(x_hat[0])
    return save_invstd, mean, unbiased_var


def _update_running_stats(norm: nn.BatchNorm2d, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
    """``norm``'s running statistics updated from batch statistics as ``nn.BatchNorm2d`` does in train mode."""
    norm.num_batches_tracked.add_(1)
    factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    norm.running_mean.mul_(1 - factor).add_(mean.to(norm.running_mean.dtype), alpha=factor)
    norm.running_var.mul_(1 - factor).add_(unbiased_var.to(norm.running_var.dtype), alpha=factor)


def _unit_stats(chs: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean 0 and variance 1 for ``chs`` channels, in ``like``'s dtype (the kernels want their parameters' dtype):
    batch-norm kernels run with them on already normalised values."""
    return like.new_zeros(chs), like.new_ones(chs)


def _affine_relu(x_hat: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``relu(gamma * x_hat + beta)`` on channel-major ``x_hat``, in float32 or wider: a layer's first BN-ReLU."""
    acc = torch.promote_types(x_hat.dtype, torch.float32)
    return (x_hat.to(acc) * gamma.to(acc)[:, None] + beta.to(acc)[:, None]).relu().to(x_hat.dtype)


def _affine_relu_eager(x_hat: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    # the inference batch-norm kernel with mean 0, variance 1 and epsilon 0: one vectorised pass per channel, where
    # addcmul with two per-channel operands is over ten times slower on CPU (19 vs 1.2 ms at (156, 32768) in
    # bfloat16, one thread)
    chs = x_hat.shape[0]
    return F.batch_norm(x_hat[None], gamma.new_zeros(chs), gamma.new_ones(chs), gamma, beta, False, 0.0, 0.0)[0].relu_()


def _affine_relu_backward_(grad: torch.Tensor, output: torch.Tensor, x_hat: torch.Tensor, gamma: torch.Tensor,
                           grad_x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward of ``output = relu(gamma * x_hat + beta)`` (channel-major): adds the ``x_hat`` gradient into
    ``grad_x_hat`` in place and returns the gradients of ``gamma`` and ``beta`` (float32 or wider)."""
    acc = torch.promote_types(grad.dtype, torch.float32)
    grad = torch.where(output > 0, grad, 0).to(acc)
    grad_x_hat.add_((grad * gamma.to(acc)[:, None]).to(grad_x_hat.dtype))
    return (grad * x_hat.to(acc)).sum(1), grad.sum(1)


def _affine_relu_backward_eager_(grad: torch.Tensor, output: torch.Tensor, x_hat: torch.Tensor, gamma: torch.Tensor,
                                 grad_x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    grad = torch.ops.aten.threshold_backward(grad, output, 0)  # ReLU's own backward
    # gamma and beta gradients in one batch-norm kernel: x_hat is "normalised" with mean 0, var 1, eps 0
    chs = grad.shape[0]
    _, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
        grad[None], x_hat[None], gamma, gamma.new_zeros(chs), gamma.new_ones(chs), None, None, False, 0.0,
        [False, True, True])
    grad_x_hat.addcmul_(grad, gamma.to(grad.dtype)[:, None])
    return grad_gamma, grad_beta


def _narrow_half(bottleneck: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
                 running_var: torch.Tensor, conv_weight: torch.Tensor, conv_bias: Optional[torch.Tensor],
                 momentum: float, eps: float) -> torch.Tensor:
    """A layer's second half, BN (batch statistics; running statistics updated in place)-ReLU-3x3 convolution, as
    ``BatchNormAct2d`` and the convolution compute it."""
    x = F.batch_norm(bottleneck, running_mean, running_var, weight, bias, True, momentum, eps).relu()
    return F.conv2d(x, conv_weight, conv_bias, padding=1)


# Fused into one pass each on CPU: 2-3x faster than the eager kernels at the first stage's (96 - 156, 131072) in
# bfloat16, about 0.93x the time of the whole DenseNet training step (interleaved A/B, 2-core Xeon).
_bottleneck_input = CpuCompiled(_affine_relu, _affine_relu_eager)
_bottleneck_input_backward_ = CpuCompiled(_affine_relu_backward_, _affine_relu_backward_eager_)
# The BN's statistics, ReLU and their backward fused around the convolution: about 0.95x the step's time.
_narrow_half_compiled = CpuCompiled(_narrow_half, _narrow_half)


def _second_half(layer: nn.Module, bottleneck: torch.Tensor) -> torch.Tensor:
    """``layer.conv2(layer.norm2(bottleneck))``, with the norm's running statistics updated as its forward does."""
    norm, conv = layer.norm2, layer.conv2
    if norm.momentum is None or not norm.track_running_stats:  # a cumulative average: a new factor every step
        return conv(norm(bottleneck))
    norm.num_batches_tracked.add_(1)
    return _narrow_half_compiled(bottleneck, norm.weight, norm.bias, norm.running_mean, norm.running_var,
                                 conv.weight, conv.bias, norm.momentum, norm.eps)


def _rows(t: torch.Tensor) -> Optional[torch.Tensor]:
    """A dense channels_last NCHW map as its ``(N*H*W, C)`` matrix (a view), else None."""
    if _memory_format(t) is not torch.channels_last:
        return None
    n, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).view(n * h * w, c)


# Between channels_last maps and channel-major buffers the copies go through 2-D transposes, which PyTorch copies
# in cache blocks: five times faster on CPU than the same copy through 4-D permuted views (22 vs 110 ms at
# (128, 168, 32, 32) in bfloat16, one thread). On CPU they go in slabs of rows, whose both sides stay in cache: 2x
# faster again (11.5 vs 21 ms at (131072, 168) bf16, two threads).
_TRANSPOSE_SLAB = 4096


def _copy_transposed_(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``out.copy_(t.t())`` for 2-D tensors, on CPU in slabs along the longer side."""
    if out.device.type != 'cpu':
        return out.copy_(t.t())
    if out.shape[0] >= out.shape[1]:
        for start in range(0, out.shape[0], _TRANSPOSE_SLAB):
            out[start:start + _TRANSPOSE_SLAB].copy_(t[:, start:start + _TRANSPOSE_SLAB].t())
    else:
        for start in range(0, out.shape[1], _TRANSPOSE_SLAB):
            out[:, start:start + _TRANSPOSE_SLAB].copy_(t[start:start + _TRANSPOSE_SLAB].t())
    return out


def _to_channel_major(t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Copy the NCHW map ``t`` into the channel-major ``(C, N*H*W)`` ``out``."""
    n, c, h, w = t.shape
    rows = _rows(t)
    if rows is not None:
        return _copy_transposed_(out, rows)
    _channel_major(out.view(c, n, h, w)).copy_(t)
    return out


def _from_channel_major(t: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """The channel-major ``(C, N*H*W)`` ``t`` as an NCHW view (no copy)."""
    return _channel_major(t.view(-1, n, h, w))


def _to_map(t: torch.Tensor, n: int, h: int, w: int, memory_format: torch.memory_format) -> torch.Tensor:
    """The channel-major ``(C, N*H*W)`` ``t`` copied into an NCHW map of ``memory_format``."""
    out = torch.empty((n, t.shape[0], h, w), dtype=t.dtype, device=t.device, memory_format=memory_format)
    rows = _rows(out)
    if rows is not None:
        _copy_transposed_(rows, t)
    else:
        out.copy_(_from_channel_major(t, n, h, w))
    return out


class DenseBlockFunction(torch.autograd.Function):
    """Train-mode forward and backward of a block of ``DenseLayer`` s, the input's channels first in the output.

    ``apply(x, layers, growth_rate, *dense_block_params(layers))`` returns the concatenation of ``x`` and every
    layer's output, in the memory format of ``x``.

    Layouts: the normalised features and their gradients are channel-major ``(C, N*H*W)`` (each layer reads a
    contiguous leading slice); a layer's bottleneck is row-major ``(N*H*W, 4k)``, which is the channels_last map
    its 3x3 convolution wants, so the 1x1 convolution's three matrix products take transposed operands instead of
    copies.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layers: Sequence[nn.Module], growth_rate: int,
                *params: torch.Tensor) -> torch.Tensor:
        n, in_chs, h, w = x.shape
        rows, out_chs = n * h * w, in_chs + len(layers) * growth_rate
        eps = layers[0].norm1.eps
        features = torch.empty((n, out_chs, h, w), dtype=x.dtype, device=x.device, memory_format=_memory_format(x))
        x_hat = x.new_empty(out_chs, rows)
        features[:, :in_chs].copy_(x)
        save_invstd, mean, var = _normalise_(_to_channel_major(x, x_hat[:in_chs]), eps)
        invstds, means, vars = [save_invstd], [mean], [var]
        graphs = []
        for i, layer in enumerate(layers):
            chs = in_chs + i * growth_rate
            with torch.no_grad():
                _update_running_stats(layer.norm1, torch.cat(means), torch.cat(vars))
            # parameters enter the compiled function as plain tensors, whose sizes may vary without recompiling
            bottleneck_in = _bottleneck_input(x_hat[:chs], layer.norm1.weight.detach(), layer.norm1.bias.detach())
            weight = layer.conv1.weight.view(layer.conv1.out_channels, chs).to(bottleneck_in.dtype)
            bottleneck = torch.mm(bottleneck_in.t(), weight.t())  # (rows, 4k): the channels_last map
            with torch.enable_grad():  # the narrow second half: a small graph kept for backward
                bottleneck = bottleneck.detach().requires_grad_()
                out = _second_half(layer, bottleneck.view(n, h, w, -1).permute(0, 3, 1, 2))
            new = slice(chs, chs + growth_rate)
            features[:, new].copy_(out)
            save_invstd, mean, var = _normalise_(_to_channel_major(out.detach(), x_hat[new]), eps)
            invstds.append(save_invstd), means.append(mean), vars.append(var)
            graphs.append((bottleneck_in, bottleneck, out))
        ctx.graphs, ctx.layers, ctx.growth_rate = graphs, layers, growth_rate
        ctx.save_for_backward(x_hat, torch.cat(invstds), *params)
        return features

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        x_hat, invstd, *params = ctx.saved_tensors
        graphs, layers, growth_rate = ctx.graphs, ctx.layers, ctx.growth_rate
        del ctx.graphs, ctx.layers
        n, out_chs, h, w = grad_output.shape
        rows, in_chs = n * h * w, out_chs - len(layers) * growth_rate
        grad_features = _to_channel_major(grad_output, grad_output.new_empty(out_chs, rows))
        grad_x_hat = torch.zeros_like(x_hat, dtype=grad_output.dtype)
        no_mean, unit_invstd = _unit_stats(out_chs, invstd)

        def grad_of_normalised(chunk: slice) -> torch.Tensor:
            # every layer reading these channels has added its x_hat gradient: one normalisation backward. With
            # x_hat as the input, mean 0 and 1/std 1, the kernel's weight is where the true 1/std goes.
            grad = torch.ops.aten.native_batch_norm_backward(
                grad_x_hat[chunk][None], x_hat[chunk][None], invstd[chunk], None, None, no_mean[chunk],
                unit_invstd[chunk], True, 0.0, [True, False, False])[0][0]
            return grad.add_(grad_features[chunk])

        param_grads: list[Optional[torch.Tensor]] = []
        grad_in_buffer: Optional[torch.Tensor] = None
        for i in reversed(range(len(layers))):
            layer, (bottleneck_in, bottleneck, out) = layers[i], graphs[i]
            graphs[i] = None  # free what this layer kept as soon as it is done
            chs = in_chs + i * growth_rate
            grad_new = _from_channel_major(grad_of_normalised(slice(chs, chs + growth_rate)), n, h, w)
            small_params = [*layer.norm2.parameters(recurse=False), *layer.conv2.parameters(recurse=False)]
            trainable = [p for p in small_params if p.requires_grad]
            grads = torch.autograd.grad(out, [bottleneck, *trainable], grad_new)
            grad_bottleneck, trainable_grads = grads[0], iter(grads[1:])
            small_grads = [next(trainable_grads) if p.requires_grad else None for p in small_params]
            # the first half: relu(gamma * x_hat + beta) -> 1x1 convolution as matrix products
            grad_bottleneck = grad_bottleneck.to(bottleneck_in.dtype)  # (rows, 4k)
            weight = layer.conv1.weight
            grad_weight = torch.mm(bottleneck_in, grad_bottleneck).t().reshape_as(weight).to(weight.dtype)
            if grad_in_buffer is None:  # the widest layer comes first; every layer's gradient reuses its buffer
                grad_in_buffer = bottleneck_in.new_empty(chs, rows)
            grad_in = torch.mm(weight.view(weight.shape[0], chs).t().to(grad_bottleneck.dtype), grad_bottleneck.t(),
                               out=grad_in_buffer[:chs])
            gamma = layer.norm1.weight
            grad_gamma, grad_beta = _bottleneck_input_backward_(
                grad_in, bottleneck_in, x_hat[:chs], gamma.detach(), grad_x_hat[:chs])
            grad_gamma, grad_beta = grad_gamma.to(gamma.dtype), grad_beta.to(layer.norm1.bias.dtype)
            param_grads = [grad_gamma, grad_beta, grad_weight, *small_grads] + param_grads
        grad_x = _to_map(grad_of_normalised(slice(0, in_chs)), n, h, w, _memory_format(grad_output))
        param_grads = [g if p.requires_grad else None for g, p in zip(param_grads, params)]
        return grad_x, None, None, *param_grads
