"""MMTM multimodal fusion (Joze et al., CVPR 2020) with the ignore flip, as used in the paper's Table 4."""
from typing import Optional

import torch
from torch import nn

from .ignore_gate import IgnoreGate

__all__ = ['IgnoreMmtm']


def _squeeze(x: torch.Tensor) -> torch.Tensor:
    """Average over every dimension after the channel one: ``(N, C, ...) -> (N, C)``."""
    return x.flatten(2).mean(-1) if x.ndim > 2 else x


def _expand_like(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape an ``(N, C)`` mask to broadcast channel-wise over ``x`` of shape ``(N, C, ...)``."""
    return mask.reshape(mask.shape + (1,) * (x.ndim - 2))


class IgnoreMmtm(nn.Module):
    """Multimodal Transfer Module fusing two streams, each masked by the flip ``T`` of its own excitation.

    Both streams are squeezed by averaging over every dimension after the channel one (2-D maps, 3-D video,
    skeleton sequences and plain vectors all work), concatenated, projected to ``int(2 * (C_a + C_b) / ratio)``
    with ReLU, then projected back to each stream's channels; each stream is multiplied channel-wise by
    ``T(logits)``.

    Args:
        channels_a: Channels of the first stream.
        channels_b: Channels of the second stream.
        ratio: Reduction ratio of the joint representation (4 in the MMTM authors' NTU-RGBD model).
        gate: The flip, see :class:`~timm_ignore.IgnoreGate`.
        alpha: ``ign1`` strength, see :class:`~timm_ignore.IgnoreGate`.
        device: Factory device for the parameters.
        dtype: Factory dtype for the parameters.

    Raises:
        ValueError: Bad gate arguments or a ratio that leaves no joint channel.
    """

    def __init__(
            self,
            channels_a: int,
            channels_b: int,
            ratio: float = 4,
            gate: str = 'explicit',
            alpha: Optional[float] = None,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        if not ratio > 0:
            raise ValueError(f'ratio must be positive, got {ratio!r}.')
        joint = int(2 * (channels_a + channels_b) / ratio)
        if joint < 1:
            raise ValueError(f'ratio {ratio} leaves no joint channel for {channels_a} + {channels_b} channels.')
        self.gate = IgnoreGate(gate, alpha)
        self.fc_squeeze = nn.Linear(channels_a + channels_b, joint, **dd)
        self.act = nn.ReLU(inplace=True)
        self.fc_a = nn.Linear(joint, channels_a, **dd)
        self.fc_b = nn.Linear(joint, channels_b, **dd)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse two streams of shapes ``(N, C_a, ...)`` and ``(N, C_b, ...)``; returns both, masked."""
        excitation = self.act(self.fc_squeeze(torch.cat([_squeeze(x_a), _squeeze(x_b)], 1)))
        mask_a = self.gate(self.fc_a(excitation))
        mask_b = self.gate(self.fc_b(excitation))
        return x_a * _expand_like(mask_a, x_a), x_b * _expand_like(mask_b, x_b)
