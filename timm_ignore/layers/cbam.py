"""CBAM with the ignore flip on both of its gates, as in the paper (Eq. 7) and the authors' code."""
from typing import Any, Optional

import torch
from timm.layers import register_notrace_module
from torch import nn
from torch.nn import functional as F
from torch.autograd.function import once_differentiable

from .cbam_cpu import CbamCpuFunction
from .fused_backward import add_optional, autocast_off, scale_and_shift, small_graph_grads, use_fused_backward
from .ignore_gate import IgnoreGate
from .reduction import PAPER_RD_RATIO, reduced_channels

__all__ = ['IgnoreCbam']


@register_notrace_module  # FX traces it as a leaf: its training path is an autograd.Function
class IgnoreCbam(nn.Module):
    """Convolutional Block Attention Module with the flip ``T`` on its channel and spatial gates.

    Channel attention first: a shared MLP on the spatially average- and max-pooled vectors, outputs summed, gated
    by ``T``, multiplied channel-wise. Spatial attention second, on the channel-attended map: channel mean and max,
    a ``spatial_kernel_size`` convolution to one map (no bias, no norm), gated by the same ``T``, multiplied pixel-wise.

    Differs from timm's ``CbamModule`` where the paper does: the MLP has biases, reduction is 8 (``rd_ratio=1/8``), the
    spatial convolution has no BatchNorm and is He-normal initialised, and both gates use the flip. ``channels``,
    ``rd_ratio``, ``rd_channels``, ``rd_divisor`` and ``spatial_kernel_size`` mean what they mean in timm's
    ``CbamModule``, so the class plugs into timm's ``attn_layer`` hooks.

    Training in eager mode uses a fused backward (see :mod:`timm_ignore.layers.fused_backward`): on CPU as compiled
    loops (:mod:`timm_ignore.layers.cbam_cpu`, which compiles at the first training step), elsewhere as eager kernels.
    Set ``fused_backward = False`` on an instance for the plain autograd formulation (e.g. for double backward).

    Args:
        channels: Channels of the attended feature map.
        rd_ratio: Hidden width of the channel MLP is ``channels * rd_ratio`` (the paper: ``channels // 8``).
        rd_channels: Hidden width, overriding ``rd_ratio``.
        rd_divisor: Round the hidden width to a multiple of this (timm's ``make_divisible``).
        spatial_kernel_size: Spatial convolution size (odd, 'same' padding).
        gate: The flip applied to both gates, see :class:`~timm_ignore.IgnoreGate`.
        alpha: ``ign1`` strength, see :class:`~timm_ignore.IgnoreGate`.
        act_layer: Activation inside the channel MLP.
        device: Factory device for the parameters.
        dtype: Factory dtype for the parameters.

    Raises:
        ValueError: Bad gate or reduction arguments, or an even kernel size.
    """

    def __init__(
            self,
            channels: int,
            rd_ratio: float = PAPER_RD_RATIO,
            rd_channels: Optional[int] = None,
            rd_divisor: int = 1,
            spatial_kernel_size: int = 7,
            gate: str = 'explicit',
            alpha: Optional[float] = None,
            act_layer: type[nn.Module] = nn.ReLU,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        if spatial_kernel_size < 1 or spatial_kernel_size % 2 == 0:
            raise ValueError(
                f'spatial_kernel_size must be a positive odd integer for same padding, got {spatial_kernel_size}.')
        self.gate = IgnoreGate(gate, alpha)
        hidden = reduced_channels(channels, rd_ratio, rd_channels, rd_divisor)
        self.fc1 = nn.Linear(channels, hidden, **dd)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, **dd)
        self.conv = nn.Conv2d(2, 1, spatial_kernel_size, padding=spatial_kernel_size // 2, bias=False, **dd)
        self.fused_backward = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise: the spatial convolution He-normal (fan-in), as in the authors' code.

        The spec states the authors' initialisation for the SE block only; the channel MLP here uses the same
        (weights ``normal(0, 0.01)``, zero biases), so both blocks start with logits near 0 and masks near T(0).
        """
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)
        nn.init.kaiming_normal_(self.conv.weight, mode='fan_in', nonlinearity='relu')

    def channel_mask(self, avg: torch.Tensor, max: torch.Tensor) -> torch.Tensor:
        """Channel mask ``T(mlp(avg) + mlp(max))`` from the spatially pooled ``(N, C)`` vectors."""
        z = self.fc2(self.act(self.fc1(torch.cat([avg, max], 0))))
        return self.gate(z[:avg.shape[0]] + z[avg.shape[0]:])

    def spatial_mask(self, avg: torch.Tensor, max: torch.Tensor) -> torch.Tensor:
        """Spatial mask ``T(conv([avg, max]))`` from the channel-pooled ``(N, 1, H, W)`` maps."""
        return self.gate(self.conv(torch.cat([avg, max], 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and use_fused_backward(self.fused_backward):
            return self._forward_fused(x)
        if not torch.is_grad_enabled():  # inference: the channel-attended map is ours to update in place
            x = x * self.channel_mask(x.mean((2, 3)), x.amax((2, 3)))[:, :, None, None]
            return x.mul_(self.spatial_mask(x.mean(1, keepdim=True), x.amax(1, keepdim=True)))
        x = x * self.channel_mask(x.mean((2, 3)), _max_over_positions(x))[:, :, None, None]
        return x * self.spatial_mask(x.mean(1, keepdim=True), _max_over_channels(x))

    @torch.jit.unused
    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        function = CbamCpuFunction if x.device.type == 'cpu' else _CbamFunction
        return function.apply(x, self, *self.parameters())


class _CbamFunction(torch.autograd.Function):
    """CBAM whose backward builds no full-size mask and keeps one full-size temporary: the fused path on devices other
    than CPU (CPU maps take :class:`~timm_ignore.layers.cbam_cpu.CbamCpuFunction`).

    The maxima are taken with their indices, so their gradients are scattered into the fused ``addcmul`` results
    rather than spread by full-size equality masks. With ``P = grad_y * x``, both gate gradients are matrix-vector
    products: ``grad_spatial_mask = channel_mask . P`` over channels and ``P . spatial_mask`` (plus the terms of the
    spatial statistics) over positions, so the channel-attended map ``x1`` is neither saved nor rebuilt. Scatters
    and gathers run along the map's memory layout (contiguous or channels_last), where they need no copy of the map;
    the per-channel and per-position vectors they feed are summed in float32 whatever the map's dtype.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, block: IgnoreCbam, *params: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # max_pool1d finds maxima with their indices several times faster than torch.max(dim) on CPU
        channel_max, channel_argmax = F.max_pool1d(x.reshape(n, c, h * w), h * w, return_indices=True)
        with torch.enable_grad():  # the small graphs are kept for backward rather than recomputed
            channel_stats = [x.mean((2, 3)).detach().requires_grad_(), channel_max[:, :, 0].detach().requires_grad_()]
            channel_mask = block.channel_mask(*channel_stats)
        x1 = x * channel_mask.detach()[:, :, None, None]
        spatial_max, spatial_argmax = F.max_pool1d(x1.reshape(n, c, h * w).transpose(1, 2), c, return_indices=True)
        with torch.enable_grad():
            spatial_stats = [
                x1.mean(1, keepdim=True).detach().requires_grad_(),
                spatial_max.view(n, 1, h, w).detach().requires_grad_()]
            spatial_mask = block.spatial_mask(*spatial_stats)
        ctx.small_graphs = (channel_stats, channel_mask, spatial_stats, spatial_mask)
        # the position of each channel's maximum (N, C) and the channel of each position's maximum (N, HW)
        ctx.save_for_backward(x, channel_argmax.view(n, c), spatial_argmax.view(n, h * w), *params)
        return x1.mul_(spatial_mask.detach())

    @staticmethod
    @once_differentiable
    @autocast_off
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        x, channel_argmax, spatial_argmax, *params = ctx.saved_tensors
        channel_stats, channel_mask, spatial_stats, spatial_mask = ctx.small_graphs
        del ctx.small_graphs
        n, c, h, w = x.shape
        dtype = grad_y.dtype
        acc = torch.promote_types(dtype, torch.float32)  # the small vectors' dtype
        gate_c = channel_mask.detach().to(dtype)
        gate_s = spatial_mask.detach().to(dtype)
        grad_x_times_x = grad_y * x

        # spatial gate, y = x1 * spatial_mask with x1 = x * channel_mask: sum over channels of grad_y * x1
        grad_spatial_mask = _weighted_sum_over_channels(grad_x_times_x, gate_c).view(n, 1, h, w)
        (grad_s_avg, grad_s_max), grad_spatial_params = small_graph_grads(
            spatial_mask, grad_spatial_mask.to(spatial_mask.dtype), spatial_stats, params)
        grad_s_avg, grad_s_max = (grad_s_avg.to(acc) / c).reshape(n, h * w), grad_s_max.to(acc).reshape(n, h * w)

        # channel gate: sum over positions of grad_x1 * x, grad_x1 = grad_y * spatial_mask + spatial-statistics terms
        grad_channel_mask = _weighted_sum_over_positions(grad_x_times_x, gate_s.reshape(n, h * w)).to(acc)
        del grad_x_times_x
        grad_channel_mask += _weighted_sum_over_positions(x, grad_s_avg.to(dtype)).to(acc)
        x_at_max = _gather_channels(x, spatial_argmax).to(acc) * grad_s_max
        grad_channel_mask.scatter_add_(1, spatial_argmax, x_at_max)
        (grad_c_avg, grad_c_max), grad_channel_params = small_graph_grads(
            channel_mask, grad_channel_mask.to(channel_mask.dtype), channel_stats, params)

        # grad_x = grad_x1 * channel_mask + channel-statistics terms
        grad_x = torch.addcmul(grad_s_avg.to(dtype).view(n, 1, h, w), grad_y, gate_s)
        grad_x = _scatter_add_channels_(grad_x, spatial_argmax, grad_s_max.to(dtype))
        grad_from_avg = (grad_c_avg.to(acc) / (h * w)).to(dtype)[:, :, None, None]
        grad_x = scale_and_shift(grad_x, gate_c[:, :, None, None], grad_from_avg, inplace=True)
        grad_x = _scatter_add_positions_(grad_x, channel_argmax, grad_c_max.to(dtype))

        grad_params = [add_optional(a, b) for a, b in zip(grad_spatial_params, grad_channel_params)]
        return grad_x, None, *grad_params


def _channels_inner(t: torch.Tensor) -> bool:
    """Whether ``t`` is laid out channels_last (and not also contiguous, as maps of one pixel or channel are)."""
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


# The weighted sums are batched matrix-vector products taken along the map's memory layout: a channels_last map is an
# (N, HW, C) batch of matrices and a contiguous one an (N, C, HW) batch, so neither is copied (a transposed view made
# bmm copy the map: 1 ms each at (128, 16, 32, 32)).
def _weighted_sum_over_channels(t: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_c t[n, c, p] * weights[n, c]``: ``(N, C, H, W), (N, C) -> (N, HW)``."""
    n, c, h, w = t.shape
    if _channels_inner(t):
        return torch.bmm(t.permute(0, 2, 3, 1).reshape(n, h * w, c), weights[:, :, None])[:, :, 0]
    return torch.bmm(weights[:, None, :], t.reshape(n, c, h * w))[:, 0, :]


def _weighted_sum_over_positions(t: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_p t[n, c, p] * weights[n, p]``: ``(N, C, H, W), (N, HW) -> (N, C)``."""
    n, c, h, w = t.shape
    if _channels_inner(t):
        return torch.bmm(weights[:, None, :], t.permute(0, 2, 3, 1).reshape(n, h * w, c))[:, 0, :]
    return torch.bmm(t.reshape(n, c, h * w), weights[:, :, None])[:, :, 0]


def _gather_channels(x: torch.Tensor, channel_index: torch.Tensor) -> torch.Tensor:
    """``x[n, channel_index[n, p], p]`` for every position ``p``: ``(N, C, H, W), (N, HW) -> (N, HW)``."""
    n, c, h, w = x.shape
    if _channels_inner(x):
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c).gather(2, channel_index[:, :, None])[:, :, 0]
    return x.reshape(n, c, h * w).gather(1, channel_index[:, None, :])[:, 0, :]


def _add_at_unique_(t: torch.Tensor, dim: int, index: torch.Tensor, values: torch.Tensor) -> None:
    """``t.scatter_add_(dim, index, values)`` on a contiguous 3-d ``t``, for an index that names every element at most
    once (one maximum per row), through flat indices: on CPU ``scatter_add_`` and ``scatter_`` copy the whole of ``t``
    twice (2 ms at (128, 16, 32, 32) in bfloat16); reading and writing the indexed elements of its flat view does not.
    """
    flat_index = index * t.stride(dim)
    for d in range(3):
        if d != dim:
            shape = [1, 1, 1]
            shape[d] = t.shape[d]
            flat_index = flat_index + torch.arange(t.shape[d], device=t.device).view(shape) * t.stride(d)
    flat, flat_index = t.view(-1), flat_index.view(-1)
    flat[flat_index] = flat[flat_index] + values.reshape(-1)


def _scatter_add_channels_(t: torch.Tensor, channel_index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``t[n, channel_index[n, p], p] += values[n, p]`` in place (``t`` made dense first if it is neither layout)."""
    n, c, h, w = t.shape
    if _channels_inner(t):
        _add_at_unique_(t.permute(0, 2, 3, 1).view(n, h * w, c), 2, channel_index[:, :, None], values[:, :, None])
        return t
    t = t.contiguous()
    _add_at_unique_(t.view(n, c, h * w), 1, channel_index[:, None, :], values[:, None, :])
    return t


def _scatter_add_positions_(t: torch.Tensor, position_index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``t[n, c, position_index[n, c]] += values[n, c]`` in place (``t`` made dense first if it is neither layout)."""
    n, c, h, w = t.shape
    if _channels_inner(t):
        _add_at_unique_(t.permute(0, 2, 3, 1).view(n, h * w, c), 1, position_index[:, None, :], values[:, None, :])
        return t
    t = t.contiguous()
    _add_at_unique_(t.view(n, c, h * w), 2, position_index[:, :, None], values[:, :, None])
    return t


def _compiling() -> bool:
    return not torch.jit.is_scripting() and torch.compiler.is_compiling()


# Under torch.compile the maxima of the autograd formulation are taken with their indices, so their backward routes
# the gradient by index. amax's backward instead compares the input with the recomputed maximum, and inductor (torch
# 2.14, CPU, bfloat16 autocast) computes the two in different precisions, divides by a zero count of matches and
# gives NaN gradients (timm's CbamModule as well). The spatial maximum is taken along the map's memory layout: on a
# channels_last map, a maximum over the (N, C, H*W) view made inductor scatter its gradient into a channel-major
# buffer and read it back transposed, and that fused kernel (torch 2.14, CPU, bfloat16, BN -> CBAM -> residual ->
# ReLU) gave non-finite input gradients. Eager keeps amax: exact there, and it splits a tied maximum's gradient
# evenly.
def _max_over_positions(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W) -> (N, C)``."""
    if not _compiling():
        return x.amax((2, 3))
    if _channels_inner(x):
        return x.permute(0, 2, 3, 1).flatten(1, 2).max(1).values
    return x.flatten(2).max(2).values


def _max_over_channels(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W) -> (N, 1, H, W)``."""
    return x.max(1, keepdim=True).values if _compiling() else x.amax(1, keepdim=True)
