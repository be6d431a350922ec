"""The authors' Keras initialisers and BatchNorm settings, in PyTorch terms (spec section 6a).

Keras' ``he_normal`` is ``VarianceScaling(scale=2, mode='fan_in', distribution='truncated_normal')``: a normal of
std ``sqrt(2 / fan_in) / 0.87962566`` with every value beyond two of those stds redrawn. 0.87962566 is the std of a
standard normal truncated to [-2, 2], so the kept values have std ``sqrt(2 / fan_in)``. Keras' ``glorot_uniform``
is PyTorch's ``xavier_uniform_`` with gain 1 (both use the receptive field in fan-in and fan-out).
"""
import math

import torch
from torch import nn

from ..layers import IgnoreCbam, IgnoreSqueezeExcite

__all__ = ['KERAS_BN_MOMENTUM', 'TRUNCATED_STD_RATIO', 'he_normal_std', 'init_convolutions', 'keras_he_normal_']

#: PyTorch momentum of Keras' ``BatchNormalization(momentum=0.99)``: Keras keeps 0.99 of the running statistics,
#: PyTorch's momentum is the weight of the new batch.
KERAS_BN_MOMENTUM = 0.01
#: Std of a standard normal truncated to [-2, 2] (``scipy.stats.truncnorm.std(-2, 2)``), Keras' correction.
TRUNCATED_STD_RATIO = 0.87962566103423978


def he_normal_std(weight: torch.Tensor) -> float:
    """Std of the normal Keras' ``he_normal`` truncates for ``weight`` (before truncation; cut at twice this).

    The fan-in is the size of one output unit's weights: ``in_features`` of a linear layer, ``in * kh * kw`` of an
    ungrouped convolution.
    """
    return math.sqrt(2.0 / weight[0].numel()) / TRUNCATED_STD_RATIO


def keras_he_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Fill ``weight`` in place as Keras' ``he_normal`` does: truncated normal, kept values of std sqrt(2/fan_in)."""
    std = he_normal_std(weight)
    return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def init_convolutions(model: nn.Module) -> None:
    """Reset the attention blocks, then give every convolution Keras ``he_normal`` weights and zero biases.

    The attention blocks' ``reset_parameters`` set their MLPs to ``normal(0, 0.01)`` with zero biases (the authors'
    code); their spatial convolution (CBAM) is then a convolution like any other.
    """
    for m in model.modules():
        if isinstance(m, (IgnoreSqueezeExcite, IgnoreCbam)):
            m.reset_parameters()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            keras_he_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
