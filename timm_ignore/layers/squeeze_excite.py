"""Squeeze-and-Excitation with the ignore flip, as in the paper (Eq. 6) and the authors' code."""
from typing import Any, Optional

import torch
from timm.layers import register_notrace_module
from torch import nn
from torch.autograd.function import once_differentiable

from .fused_backward import autocast_off, scale_and_shift, small_graph_grads, use_fused_backward
from .ignore_gate import IgnoreGate
from .reduction import PAPER_RD_RATIO, reduced_channels

__all__ = ['IgnoreSqueezeExcite']


@register_notrace_module  # FX traces it as a leaf: its training path is an autograd.Function
class IgnoreSqueezeExcite(nn.Module):
    """SE block whose mask is ``T(fc2(relu(fc1(mean_hw(x)))))`` for the flip ``T`` chosen by ``gate``.

    Differs from timm's ``SEModule`` where the paper does: reduction 8 (``rd_ratio=1/8``, not 1/16, and no rounding
    to a divisor of 8), fully connected layers initialised ``normal(0, 0.01)`` with zero bias (the authors'
    initialisation), and the flip applied to the logits. ``channels``, ``rd_ratio``, ``rd_channels`` and
    ``rd_divisor`` mean what they mean in timm's ``SEModule``, so the class plugs into timm's ``attn_layer`` hooks,
    e.g. ``functools.partial(IgnoreSqueezeExcite, gate='ign3')``.

    Training in eager mode uses a fused backward (see :mod:`timm_ignore.layers.fused_backward`); set
    ``fused_backward = False`` on an instance for the plain autograd formulation (e.g. for double backward).

    Args:
        channels: Channels of the attended feature map.
        rd_ratio: Hidden width is ``channels * rd_ratio`` (the paper: ``channels // 8``).
        rd_channels: Hidden width, overriding ``rd_ratio``.
        rd_divisor: Round the hidden width to a multiple of this (timm's ``make_divisible``).
        gate: The flip, see :class:`~timm_ignore.IgnoreGate`.
        alpha: ``ign1`` strength, see :class:`~timm_ignore.IgnoreGate`.
        act_layer: Activation between the two fully connected layers.
        device: Factory device for the parameters.
        dtype: Factory dtype for the parameters.

    Raises:
        ValueError: Bad gate or reduction arguments.
    """

    def __init__(
            self,
            channels: int,
            rd_ratio: float = PAPER_RD_RATIO,
            rd_channels: Optional[int] = None,
            rd_divisor: int = 1,
            gate: str = 'explicit',
            alpha: Optional[float] = None,
            act_layer: type[nn.Module] = nn.ReLU,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.gate = IgnoreGate(gate, alpha)
        hidden = reduced_channels(channels, rd_ratio, rd_channels, rd_divisor)
        self.fc1 = nn.Linear(channels, hidden, **dd)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, **dd)
        self.fused_backward = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Apply the authors' initialisation: weights ``normal(0, 0.01)``, biases zero."""
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)

    def excite(self, squeezed: torch.Tensor) -> torch.Tensor:
        """The channel mask from the squeezed ``(N, C)`` vector."""
        return self.gate(self.fc2(self.act(self.fc1(squeezed))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and use_fused_backward(self.fused_backward):
            return self._forward_fused(x)
        return x * self.excite(x.mean((2, 3)))[:, :, None, None]

    @torch.jit.unused
    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        return _SqueezeExciteFunction.apply(x, self, *self.parameters())


class _SqueezeExciteFunction(torch.autograd.Function):
    """``x * excite(mean_hw(x))`` whose backward makes two passes over the map.

    ``grad_x = grad_y * mask + grad_squeezed / HW`` in one ``addcmul``, and ``grad_mask = sum_hw(grad_y * x)`` as a
    batched dot product without a full-size temporary.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, block: IgnoreSqueezeExcite, *params: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():  # the small graph is kept for backward rather than recomputed
            squeezed = x.mean((2, 3)).detach().requires_grad_()
            mask = block.excite(squeezed)
        ctx.small_graph = (squeezed, mask)
        ctx.save_for_backward(x, *params)
        return x * mask.detach()[:, :, None, None]

    @staticmethod
    @once_differentiable
    @autocast_off
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        x, *params = ctx.saved_tensors
        squeezed, mask = ctx.small_graph
        del ctx.small_graph
        grad_mask = (grad_y * x).sum((2, 3)).to(mask.dtype)
        (grad_squeezed,), grad_params = small_graph_grads(mask, grad_mask, [squeezed], params)
        grad_from_squeeze = (grad_squeezed / (x.shape[2] * x.shape[3])).to(grad_y.dtype)[:, :, None, None]
        grad_x = scale_and_shift(grad_y, mask.detach().to(grad_y.dtype)[:, :, None, None], grad_from_squeeze)
        return grad_x, None, *grad_params
