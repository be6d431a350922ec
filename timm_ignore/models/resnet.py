"""ImageNet ResNet-50 with ignore attention (paper Table 3), built on timm's own ResNet.

The attention block sits in every bottleneck on the residual branch, after the last convolution and batch norm
and before the addition with the shortcut: the position timm's ``Bottleneck`` gives its ``attn_layer``. The plain
network is timm's ``resnet50``; this module registers the twelve attention variants (``resnet50_se``,
``resnet50_se_ign3``, ``resnet50_cbam_ign1_a08``, ...).
"""
from typing import Any

from timm.models import build_model_with_cfg
from timm.models.resnet import Bottleneck, ResNet

from ..layers import IgnoreCbam, IgnoreSqueezeExcite
from ._factory import pop_attention_layer, register_family
from .zoo import ModelSpec

__all__ = ['IgnoreResNet']


class IgnoreResNet(ResNet):
    """timm's ``ResNet`` whose attention blocks keep the authors' initialisation.

    ``ResNet.init_weights`` re-initialises every convolution of the network, the attention's included; this
    subclass restores each attention block's own initialisation afterwards. Everything else is timm's ``ResNet``.
    """

    def init_weights(self, zero_init_last: bool = True) -> None:
        super().init_weights(zero_init_last=zero_init_last)
        for m in self.modules():
            if isinstance(m, (IgnoreSqueezeExcite, IgnoreCbam)):
                m.reset_parameters()


def _create(spec: ModelSpec, pretrained: bool = False, **kwargs: Any) -> IgnoreResNet:
    attn_layer = pop_attention_layer(spec, kwargs)
    block_args = dict(kwargs.pop('block_args', None) or {}, attn_layer=attn_layer)
    return build_model_with_cfg(
        IgnoreResNet, spec.name, pretrained, block=Bottleneck, layers=(3, 4, 6, 3), block_args=block_args, **kwargs)


register_family(__name__, 'resnet50', _create)
