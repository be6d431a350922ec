"""CBAM with the ignore flip on both of its gates, as in the paper (Eq. 7) and the authors' code."""
from typing import Optional

import torch
from torch import nn

from .ignore_gate import IgnoreGate
from .reduction import reduced_channels

__all__ = ['IgnoreCbam']


class IgnoreCbam(nn.Module):
    """Convolutional Block Attention Module with the flip ``T`` on its channel and spatial gates.

    Channel attention first: a shared MLP on the spatially average- and max-pooled vectors, outputs summed, gated
    by ``T``, multiplied channel-wise. Spatial attention second, on the channel-attended map: channel mean and max,
    a ``kernel_size`` convolution to one map (no bias, no norm), gated by the same ``T``, multiplied pixel-wise.

    Differs from timm's ``CbamModule`` where the paper does: the MLP has biases, reduction is 8, the spatial
    convolution has no BatchNorm and is He-normal initialised, and both gates use the flip. The first positional
    argument is ``channels`` so the class plugs into timm's ``attn_layer`` hooks.

    Args:
        channels: Channels of the attended feature map.
        reduction: Hidden width of the channel MLP is ``channels // reduction``.
        kernel_size: Spatial convolution size (odd, 'same' padding).
        variant: Gate variant applied to both gates, see :class:`~timm_ignore.IgnoreGate`.
        alpha: ``ign1`` strength, see :class:`~timm_ignore.IgnoreGate`.
        act_layer: Activation inside the channel MLP.
        device: Factory device for the parameters.
        dtype: Factory dtype for the parameters.

    Raises:
        ValueError: Bad gate arguments, a reduction that leaves no hidden channel, or an even kernel size.
    """

    def __init__(
            self,
            channels: int,
            reduction: int = 8,
            kernel_size: int = 7,
            variant: str = 'explicit',
            alpha: Optional[float] = None,
            act_layer: type[nn.Module] = nn.ReLU,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd integer for same padding, got {kernel_size}.')
        self.gate = IgnoreGate(variant, alpha)
        hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Linear(channels, hidden, **dd)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, **dd)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False, **dd)
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

    def channel_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Channel-gate logits ``mlp(avg) + mlp(max)``, shape ``(N, C)``."""
        pooled = torch.cat([x.mean((2, 3)), x.amax((2, 3))], 0)
        z = self.fc2(self.act(self.fc1(pooled)))
        return z[:x.shape[0]] + z[x.shape[0]:]

    def spatial_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial-gate logits from channel mean and max, shape ``(N, 1, H, W)``."""
        return self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.gate(self.channel_logits(x))[:, :, None, None]
        return x * self.gate(self.spatial_logits(x))
