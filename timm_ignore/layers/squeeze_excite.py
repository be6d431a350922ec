"""Squeeze-and-Excitation with the ignore flip, as in the paper (Eq. 6) and the authors' code."""
from typing import Optional

import torch
from torch import nn

from .ignore_gate import IgnoreGate
from .reduction import reduced_channels

__all__ = ['IgnoreSqueezeExcite']


class IgnoreSqueezeExcite(nn.Module):
    """SE block whose mask is ``T(fc2(relu(fc1(mean_hw(x)))))`` for the flip ``T`` chosen by ``variant``.

    Differs from timm's ``SEModule`` where the paper does: reduction 8 (not 1/16, no rounding to a divisor),
    fully connected layers initialised ``normal(0, 0.01)`` with zero bias (the authors' initialisation), and the
    flip applied to the logits. The first positional argument is ``channels`` so the class plugs into timm's
    ``attn_layer`` hooks, e.g. ``functools.partial(IgnoreSqueezeExcite, variant='ign3')``.

    Args:
        channels: Channels of the attended feature map.
        reduction: Hidden width is ``channels // reduction``.
        variant: Gate variant, see :class:`~timm_ignore.IgnoreGate`.
        alpha: ``ign1`` strength, see :class:`~timm_ignore.IgnoreGate`.
        act_layer: Activation between the two fully connected layers.
        device: Factory device for the parameters.
        dtype: Factory dtype for the parameters.

    Raises:
        ValueError: Bad gate arguments, or a reduction that leaves no hidden channel.
    """

    def __init__(
            self,
            channels: int,
            reduction: int = 8,
            variant: str = 'explicit',
            alpha: Optional[float] = None,
            act_layer: type[nn.Module] = nn.ReLU,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.gate = IgnoreGate(variant, alpha)
        hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Linear(channels, hidden, **dd)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Apply the authors' initialisation: weights ``normal(0, 0.01)``, biases zero."""
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc2(self.act(self.fc1(x.mean((2, 3)))))
        return x * self.gate(z)[:, :, None, None]
