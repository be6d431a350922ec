"""CBAM's training pass on CPU as a few compiled loops over the feature map.

On CPU, CBAM's cost is not its tiny MLP and convolution but memory passes: eager PyTorch makes about seven passes
over the map in forward and a dozen in backward, several of them slow (maxima with indices, scatters, per-position
broadcasts over few channels), and oneDNN runs the 2 -> 1 channel 7x7 convolution far below the machine's rate.
:class:`CbamCpuFunction` runs the same computation as three forward and three backward loops over the map, each
compiled by inductor (:class:`~timm_ignore.layers.cpu_compiled.CpuCompiled`), and the spatial convolution as
compiled shifted sums (:class:`SpatialConvFunction`). The small graphs from pooled statistics to masks go through
autograd, built in forward and kept for backward, as in the eager fused path
(:mod:`~timm_ignore.layers.fused_backward`).

The maxima's gradients are routed by equality with the saved maximum and split evenly between tied elements, as
autograd's ``amax`` does, so the gradients are the plain autograd formulation's even where maxima tie. The
channel-attended map ``x * channel_mask`` is computed in float32 (or wider) in every loop that uses it and never
rounded to the map's dtype, so each loop compares exactly the values the forward maximised. Statistics, masks'
gradients and the spatial convolution are float32 (float64 for float64 maps); the output and the input gradient
have the map's dtype and, as inductor lays out elementwise results, its memory layout.
"""
from typing import Any, Optional

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from .cpu_compiled import CpuCompiled
from .fused_backward import add_optional, autocast_off, small_graph_grads

__all__ = ['CbamCpuFunction', 'SpatialConvFunction']


def _wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or float64 if it already is."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().requires_grad_()


def _per_channel(v: torch.Tensor) -> torch.Tensor:
    return v[:, :, None, None]


def _per_position(v: torch.Tensor) -> torch.Tensor:
    return v[:, None]


def _channel_attended(x: torch.Tensor, channel_mask: torch.Tensor) -> torch.Tensor:
    return _wide(x) * _per_channel(_wide(channel_mask))


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and maximum over positions: ``(N, C, H, W) -> 2 x (N, C)``."""
    x = _wide(x)
    return x.mean((2, 3)), x.amax((2, 3))


def _spatial_stats(x: torch.Tensor, channel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and maximum over channels of the channel-attended map: ``-> 2 x (N, H, W)``."""
    attended = _channel_attended(x, channel_mask)
    return attended.mean(1), attended.amax(1)


def _attend(x: torch.Tensor, channel_mask: torch.Tensor, spatial_mask: torch.Tensor) -> torch.Tensor:
    """The block's output ``x * channel_mask * spatial_mask`` in x's dtype."""
    return (_channel_attended(x, channel_mask) * _per_position(spatial_mask)).to(x.dtype)


def _spatial_mask_grad(grad: torch.Tensor, x: torch.Tensor, channel_mask: torch.Tensor,
                       spatial_max: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The spatial mask's gradient, a sum over channels of ``grad * attended``, and how many channels hold each
    position's maximum."""
    attended = _channel_attended(x, channel_mask)
    at_max = attended == _per_position(spatial_max)
    return (_wide(grad) * attended).sum(1), at_max.to(attended.dtype).sum(1)


def _attended_grad(grad: torch.Tensor, x: torch.Tensor, channel_mask: torch.Tensor, spatial_mask: torch.Tensor,
                   spatial_avg_grad: torch.Tensor, spatial_max_grad: torch.Tensor,
                   spatial_max: torch.Tensor) -> torch.Tensor:
    """The gradient of the channel-attended map: through the spatial mask and through its two statistics (the
    maximum's gradient already divided by the number of tied channels)."""
    attended = _channel_attended(x, channel_mask)
    at_max = attended == _per_position(spatial_max)
    from_mean = _per_position(spatial_avg_grad) / x.shape[1]
    return (_wide(grad) * _per_position(spatial_mask) + from_mean
            + torch.where(at_max, _per_position(spatial_max_grad), 0.))


def _channel_mask_grad(grad: torch.Tensor, x: torch.Tensor, channel_mask: torch.Tensor, spatial_mask: torch.Tensor,
                       spatial_avg_grad: torch.Tensor, spatial_max_grad: torch.Tensor, spatial_max: torch.Tensor,
                       channel_max: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The channel mask's gradient, a sum over positions of ``attended_grad * x``, and how many positions hold each
    channel's maximum."""
    attended_grad = _attended_grad(grad, x, channel_mask, spatial_mask, spatial_avg_grad, spatial_max_grad,
                                   spatial_max)
    x = _wide(x)
    at_max = x == _per_channel(channel_max)
    return (attended_grad * x).sum((2, 3)), at_max.to(x.dtype).sum((2, 3))


def _input_grad(grad: torch.Tensor, x: torch.Tensor, channel_mask: torch.Tensor, spatial_mask: torch.Tensor,
                spatial_avg_grad: torch.Tensor, spatial_max_grad: torch.Tensor, spatial_max: torch.Tensor,
                channel_avg_grad: torch.Tensor, channel_max_grad: torch.Tensor,
                channel_max: torch.Tensor) -> torch.Tensor:
    """The input's gradient in grad's dtype: through the channel mask and through the channel statistics."""
    attended_grad = _attended_grad(grad, x, channel_mask, spatial_mask, spatial_avg_grad, spatial_max_grad,
                                   spatial_max)
    at_max = _wide(x) == _per_channel(channel_max)
    from_mean = _per_channel(channel_avg_grad) / (x.shape[2] * x.shape[3])
    grad_x = attended_grad * _per_channel(_wide(channel_mask)) + from_mean
    return (grad_x + torch.where(at_max, _per_channel(channel_max_grad), 0.)).to(grad.dtype)


# The formulas are their own eager twins: the twins run only where inductor cannot compile on a CPU.
_channel_stats_compiled = CpuCompiled(_channel_stats, _channel_stats)
_spatial_stats_compiled = CpuCompiled(_spatial_stats, _spatial_stats)
_attend_compiled = CpuCompiled(_attend, _attend)
_spatial_mask_grad_compiled = CpuCompiled(_spatial_mask_grad, _spatial_mask_grad)
_channel_mask_grad_compiled = CpuCompiled(_channel_mask_grad, _channel_mask_grad)
_input_grad_compiled = CpuCompiled(_input_grad, _input_grad)


class CbamCpuFunction(torch.autograd.Function):
    """:class:`~timm_ignore.IgnoreCbam`'s training pass for CPU maps (called with the block and its parameters)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, block: torch.nn.Module, *params: torch.Tensor) -> torch.Tensor:
        channel_avg, channel_max = _channel_stats_compiled(x)
        with torch.enable_grad():  # the small graphs are kept for backward rather than recomputed
            channel_stats = [_leaf(channel_avg.to(x.dtype)), _leaf(channel_max.to(x.dtype))]  # as the MLP gets them
            channel_mask = block.channel_mask(*channel_stats)
        spatial_avg, spatial_max = _spatial_stats_compiled(x, channel_mask.detach())
        with torch.enable_grad():
            spatial_stats = [_leaf(spatial_avg[:, None]), _leaf(spatial_max[:, None])]
            spatial_mask = block.gate(SpatialConvFunction.apply(torch.cat(spatial_stats, 1), block.conv.weight))
        ctx.small_graphs = (channel_stats, channel_mask, spatial_stats, spatial_mask)
        ctx.save_for_backward(x, channel_max, spatial_max, *params)
        return _attend_compiled(x, channel_mask.detach(), spatial_mask.detach()[:, 0])

    @staticmethod
    @once_differentiable
    @autocast_off
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        x, channel_max, spatial_max, *params = ctx.saved_tensors
        channel_stats, channel_mask, spatial_stats, spatial_mask = ctx.small_graphs
        del ctx.small_graphs
        channel_mask_value, spatial_mask_value = channel_mask.detach(), spatial_mask.detach()[:, 0]

        grad_spatial_mask, spatial_ties = _spatial_mask_grad_compiled(grad_y, x, channel_mask_value, spatial_max)
        (spatial_avg_grad, spatial_max_grad), grad_spatial_params = small_graph_grads(
            spatial_mask, grad_spatial_mask[:, None].to(spatial_mask.dtype), spatial_stats, params)
        spatial_terms = (spatial_mask_value, spatial_avg_grad[:, 0], spatial_max_grad[:, 0] / spatial_ties,
                         spatial_max)

        grad_channel_mask, channel_ties = _channel_mask_grad_compiled(
            grad_y, x, channel_mask_value, *spatial_terms, channel_max)
        (channel_avg_grad, channel_max_grad), grad_channel_params = small_graph_grads(
            channel_mask, grad_channel_mask.to(channel_mask.dtype), channel_stats, params)
        grad_x = _input_grad_compiled(grad_y, x, channel_mask_value, *spatial_terms, channel_avg_grad,
                                      channel_max_grad / channel_ties, channel_max)
        grad_params = [add_optional(a, b) for a, b in zip(grad_spatial_params, grad_channel_params)]
        return grad_x, None, *grad_params


def _windows(padded: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Every ``height x width`` window of the last two dims, as a view: ``(..., H', W') -> (..., k, k, height,
    width)`` for ``k = H' - height + 1``."""
    return padded.unfold(-2, height, 1).unfold(-2, width, 1)


def _shifted_sums(padded: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv2d(padded, weight)`` for one output channel, as one reduction over a window view (inductor makes it one
    loop): ``(N, C, H + k - 1, W + k - 1), (1, C, k, k) -> (N, 1, H, W)``."""
    k = weight.shape[-1]
    windows = _windows(padded, padded.shape[2] - k + 1, padded.shape[3] - k + 1)  # (N, C, k, k, H, W)
    return (windows * weight[0, :, :, :, None, None]).sum((1, 2, 3))[:, None]


def _shifted_sums_input_grad(padded_grad: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The input gradient of :func:`_shifted_sums`, one ``(N, H, W)`` map per input channel, from the padded
    ``(N, H + k - 1, W + k - 1)`` output gradient: the same sums with the kernel flipped."""
    k = weight.shape[-1]
    windows = _windows(padded_grad, padded_grad.shape[1] - k + 1, padded_grad.shape[2] - k + 1)  # (N, k, k, H, W)
    flipped = weight[0].flip(-2, -1)
    return tuple((windows * flipped[c, :, :, None, None]).sum((1, 2)) for c in range(weight.shape[1]))


def _shifted_sums_weight_grad(grad: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
    """The weight gradient of :func:`_shifted_sums` per image, ``(N, C * k * k)``: summed over each image's
    positions only, so that each image's maps are read from cache for all its sums."""
    windows = _windows(padded, grad.shape[2], grad.shape[3])  # (N, C, k, k, H, W)
    return (windows * grad[:, :, None, None]).sum((4, 5)).flatten(1)


_shifted_sums_compiled = CpuCompiled(_shifted_sums, _shifted_sums)
_shifted_sums_input_grad_compiled = CpuCompiled(_shifted_sums_input_grad, _shifted_sums_input_grad)
_shifted_sums_weight_grad_compiled = CpuCompiled(_shifted_sums_weight_grad, _shifted_sums_weight_grad)


class SpatialConvFunction(torch.autograd.Function):
    """CBAM's spatial convolution on CPU: ``conv2d(maps, weight, padding=k // 2)`` with one output channel and no
    bias, in float32 (float64 for float64 maps) whatever autocast says.

    oneDNN runs this 2 -> 1 channel 7x7 convolution at a few GFLOP/s on CPU; as compiled reductions over window views
    its forward and backward take about a quarter of the time (10.5 -> 2.5 ms at (128, 2, 32, 32) in float32, 2-core
    Xeon). Written as 98 shifted views instead, it ran 0.2 ms faster but took ten times as long to compile.
    """

    @staticmethod
    def forward(ctx: Any, maps: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        k = weight.shape[-1]
        padded = F.pad(_wide(maps), (k // 2,) * 4)
        weight_wide = weight.to(padded.dtype)
        ctx.save_for_backward(padded, weight_wide)
        ctx.weight_dtype = weight.dtype
        return _shifted_sums_compiled(padded, weight_wide)

    @staticmethod
    @once_differentiable
    @autocast_off
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        padded, weight = ctx.saved_tensors
        k = weight.shape[-1]
        grad = grad.to(padded.dtype)
        grad_maps = grad_weight = None
        if ctx.needs_input_grad[0]:
            padded_grad = F.pad(grad[:, 0], (k // 2,) * 4)
            grad_maps = torch.stack(_shifted_sums_input_grad_compiled(padded_grad, weight), 1)
        if ctx.needs_input_grad[1]:
            per_image = _shifted_sums_weight_grad_compiled(grad, padded)
            grad_weight = per_image.sum(0).view(weight.shape).to(ctx.weight_dtype)
        return grad_maps, grad_weight
