"""timm's global pooling with an average whose gradient keeps the feature map's memory layout.

Autograd's backward of ``x.mean((2, 3))`` (what ``nn.AdaptiveAvgPool2d(1)`` computes) broadcasts the ``(N, C)``
gradient over the map and divides it there, which writes a new contiguous NCHW tensor whatever the layout of ``x``.
For a channels_last ``x`` the next op back, the final BN-ReLU's ReLU backward, then reads one operand of each layout,
and PyTorch's CPU loops do that element by element. Dividing the small gradient first and handing back the broadcast
view lets that op read it in any layout: ReLU, pool and their backward at DenseNet's last map, (128, 456, 8, 8) in
bfloat16, took 3.0 against 16.3 ms on a 2-core Xeon (``benchmarks/head_pool_backward.py``), about 1 % of the step.
"""
from typing import Any, Optional, Union

import torch
from timm.layers import SelectAdaptivePool2d, create_classifier, register_notrace_module
from torch import nn

__all__ = ['LayoutKeepingPool2d', 'create_pool_and_classifier']


class _MeanOverMap(torch.autograd.Function):
    """``x.mean((2, 3))`` whose backward returns ``grad / (H * W)`` as a broadcast view of the ``(N, C)`` gradient.

    The values equal autograd's (the same division of the same numbers), and the backward is itself differentiable.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.map_shape = x.shape
        return x.mean((2, 3))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        height, width = ctx.map_shape[2:]
        return (grad / (height * width))[:, :, None, None].expand(ctx.map_shape)


@register_notrace_module  # FX traces it as a leaf: its training path is an autograd.Function
class LayoutKeepingPool2d(SelectAdaptivePool2d):
    """timm's ``SelectAdaptivePool2d`` (same arguments, outputs and gradients) whose flattened global average hands
    its gradient back as a broadcast view, so a channels_last network's backward stays channels_last.

    Only the flattened average over an NCHW-ordered map (``pool_type`` ``'avg'``, ``'fast'`` or ``'fastavg'``,
    ``flatten=True``, as the CIFAR models' classifiers use it) takes that path, and only where a gradient is
    recorded in eager mode; every other pool type, TorchScript, ``torch.compile`` and inference run timm's module.
    """

    def __init__(self, output_size: Union[int, tuple[int, int]] = 1, pool_type: str = 'fast', flatten: bool = False,
                 input_fmt: str = 'NCHW') -> None:
        super().__init__(output_size, pool_type, flatten, input_fmt)
        self.mean_over_map = (output_size in (1, (1, 1)) and flatten and input_fmt == 'NCHW'
                              and self.pool_type.lower() in ('avg', 'fast', 'fastavg'))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not torch.jit.is_scripting() and self.mean_over_map and torch.is_grad_enabled()
                and not torch.compiler.is_compiling()):
            return self._mean_over_map(x)
        return self.flatten(self.pool(x))  # timm's forward (TorchScript has no super())

    @torch.jit.unused
    def _mean_over_map(self, x: torch.Tensor) -> torch.Tensor:
        return _MeanOverMap.apply(x)


def create_pool_and_classifier(
        num_features: int,
        num_classes: int,
        pool_type: str = 'avg',
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
) -> tuple[LayoutKeepingPool2d, nn.Module]:
    """timm's ``create_classifier`` (pooling, then a linear classifier or Identity) with the pooling a
    :class:`LayoutKeepingPool2d`; flattened unless ``pool_type`` is ``''`` (no pooling), as timm flattens."""
    _, fc = create_classifier(num_features, num_classes, pool_type=pool_type, device=device, dtype=dtype)
    return LayoutKeepingPool2d(pool_type=pool_type, flatten=bool(pool_type)), fc
