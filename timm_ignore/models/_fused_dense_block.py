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

Requirements, checked by the caller: train mode, the block's first norms share one epsilon, BN + ReLU norms.
The backward is once-differentiable.
"""
from typing import Any, Optional, Sequence

import torch
from torch import nn
from torch.autograd.function import once_differentiable

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


def _normalise(
        x: torch.Tensor,
        eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-normalise ``x`` without affine; returns x_hat, mean, 1/std (for backward) and mean, unbiased var."""
    stats_dtype = torch.promote_types(x.dtype, torch.float32)
    mean, unbiased_var = x.new_zeros(x.shape[1], dtype=stats_dtype), x.new_zeros(x.shape[1], dtype=stats_dtype)
    # momentum 1: the "running" statistics are this batch's, computed as nn.BatchNorm2d computes them
    x_hat, save_mean, save_invstd = torch.native_batch_norm(x, None, None, mean, unbiased_var, True, 1.0, eps)
    return x_hat, save_mean, save_invstd, mean, unbiased_var


def _update_running_stats(norm: nn.BatchNorm2d, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
    """``norm``'s running statistics updated from batch statistics as ``nn.BatchNorm2d`` does in train mode."""
    norm.num_batches_tracked.add_(1)
    factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    norm.running_mean.mul_(1 - factor).add_(mean.to(norm.running_mean.dtype), alpha=factor)
    norm.running_var.mul_(1 - factor).add_(unbiased_var.to(norm.running_var.dtype), alpha=factor)


def _bottleneck_input(x_hat: torch.Tensor, norm: nn.BatchNorm2d) -> torch.Tensor:
    """``relu(gamma * x_hat + beta)`` on channel-major ``x_hat``: a layer's first BN-ReLU on the shared x_hat."""
    dtype = x_hat.dtype
    return torch.addcmul(norm.bias.to(dtype)[:, None], x_hat, norm.weight.to(dtype)[:, None]).relu_()


class DenseBlockFunction(torch.autograd.Function):
    """Train-mode forward and backward of a block of ``DenseLayer`` s, the input's channels first in the output.

    ``apply(x, layers, growth_rate, *dense_block_params(layers))`` returns the concatenation of ``x`` and every
    layer's output, in the memory format of ``x``.
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
        chunk_hat, save_mean, save_invstd, mean, var = _normalise(x, eps)
        _channel_major(x_hat[:in_chs].view(in_chs, n, h, w)).copy_(chunk_hat)
        saved = [(save_mean, save_invstd)]
        means, vars = [mean], [var]
        graphs = []
        for i, layer in enumerate(layers):
            chs = in_chs + i * growth_rate
            with torch.no_grad():
                _update_running_stats(layer.norm1, torch.cat(means), torch.cat(vars))
            bottleneck_in = _bottleneck_input(x_hat[:chs], layer.norm1)
            weight = layer.conv1.weight.view(layer.conv1.out_channels, chs)
            bottleneck = torch.mm(weight.to(bottleneck_in.dtype), bottleneck_in)  # channel-major
            with torch.enable_grad():  # the narrow second half: a small graph kept for backward
                bottleneck = bottleneck.detach().requires_grad_()
                bottleneck_nchw = _channel_major(bottleneck.view(-1, n, h, w))
                bottleneck_nchw = bottleneck_nchw.contiguous(memory_format=torch.channels_last)
                out = layer.conv2(layer.norm2(bottleneck_nchw))
            new = slice(chs, chs + growth_rate)
            features[:, new].copy_(out)
            chunk_hat, save_mean, save_invstd, mean, var = _normalise(out.detach(), eps)
            _channel_major(x_hat[new].view(growth_rate, n, h, w)).copy_(chunk_hat)
            saved.append((save_mean, save_invstd))
            means.append(mean), vars.append(var)
            graphs.append((bottleneck_in, bottleneck, out))
        ctx.graphs, ctx.saved, ctx.layers, ctx.growth_rate, ctx.eps = graphs, saved, layers, growth_rate, eps
        ctx.save_for_backward(x, x_hat, *params)
        return features

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        x, x_hat, *params = ctx.saved_tensors
        graphs, saved, layers, growth_rate, eps = ctx.graphs, ctx.saved, ctx.layers, ctx.growth_rate, ctx.eps
        del ctx.graphs, ctx.saved, ctx.layers
        n, out_chs, h, w = grad_output.shape
        rows, in_chs = n * h * w, out_chs - len(layers) * growth_rate
        grad_x_hat = torch.zeros_like(x_hat, dtype=grad_output.dtype)
        no_mean = grad_output.new_zeros(out_chs, dtype=layers[0].norm1.weight.dtype)  # the kernel wants its dtype
        no_var = torch.ones_like(no_mean)

        def grad_of_normalised(chunk: slice, raw: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]):
            # every layer reading these channels has added its x_hat gradient: one normalisation backward
            grad_hat = _channel_major(grad_x_hat[chunk].view(-1, n, h, w)).contiguous(memory_format=_memory_format(raw))
            grad = torch.ops.aten.native_batch_norm_backward(
                grad_hat, raw, None, None, None, *stats, True, eps, [True, False, False])[0]
            return grad_output[:, chunk] + grad

        param_grads: list[Optional[torch.Tensor]] = []
        for i in reversed(range(len(layers))):
            layer, (bottleneck_in, bottleneck, out) = layers[i], graphs[i]
            graphs[i] = None  # free what this layer kept as soon as it is done
            chs = in_chs + i * growth_rate
            grad_new = grad_of_normalised(slice(chs, chs + growth_rate), out, saved[i + 1])
            norm2, conv2 = layer.norm2, layer.conv2
            small_params = [*norm2.parameters(recurse=False), *conv2.parameters(recurse=False)]
            trainable = [p for p in small_params if p.requires_grad]
            grads = torch.autograd.grad(out, [bottleneck, *trainable], grad_new)
            grad_bottleneck, trainable_grads = grads[0], iter(grads[1:])
            small_grads = [next(trainable_grads) if p.requires_grad else None for p in small_params]
            # the first half: relu(gamma * x_hat + beta) -> 1x1 convolution as a matrix product
            grad_bottleneck = grad_bottleneck.to(bottleneck_in.dtype)  # channel-major
            weight = layer.conv1.weight
            grad_weight = torch.mm(grad_bottleneck, bottleneck_in.t()).view_as(weight).to(weight.dtype)
            grad_in = torch.mm(weight.view(weight.shape[0], chs).t().to(grad_bottleneck.dtype), grad_bottleneck)
            grad_in = torch.ops.aten.threshold_backward(grad_in, bottleneck_in, 0)  # ReLU's own backward
            gamma = layer.norm1.weight
            # gamma and beta gradients in one batch-norm kernel: x_hat is "normalised" with mean 0, var 1, eps 0
            _, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
                grad_in[None, :, :, None], x_hat[None, :chs, :, None], gamma, no_mean[:chs], no_var[:chs], None,
                None, False, 0.0, [False, True, True])
            grad_x_hat[:chs].addcmul_(grad_in, gamma.to(grad_in.dtype)[:, None])
            param_grads = [grad_gamma, grad_beta, grad_weight, *small_grads] + param_grads
        grad_x = grad_of_normalised(slice(0, in_chs), x, saved[0])
        param_grads = [g if p.requires_grad else None for g, p in zip(param_grads, params)]
        return grad_x, None, None, *param_grads
