"""The paper's CIFAR "ResNet50": the classic CIFAR ResNet v1 of depth 6n + 2 with n = 8 (paper Tables 1-2).

Stem 3x3 conv (16) + BN + ReLU at stride 1; three stages of 8 basic blocks 16, 32 and 64 wide, the first block of
stages 2 and 3 at stride 2 with a 1x1 strided convolution (no BN) as shortcut; global average pooling (8x8 at 32x32
input) and a linear classifier. The attention block sits on each residual branch after its second BN, before the
addition. The blocks are timm's ``BasicBlock``.

Details of the authors' Keras code (spec 6a) are the defaults: Keras ``he_normal`` (truncated normal) for every
convolution and the classifier, zero biases, BatchNorm momentum 0.99 in Keras terms (0.01 in PyTorch's) and epsilon
1e-3.

Convolution biases: in the authors' code every convolution has a bias, zero-initialised. Here only the shortcut
convolution (no BN after it) has one; the stem and block convolutions, each directly followed by BatchNorm, have
none. This is the same network and the same training trajectory, not an approximation: in train mode BN subtracts
the batch mean, so such a bias changes neither the output nor any other gradient, and its own gradient is zero
(the sum over the batch of BN's input gradient, which BN makes zero); zero-initialised, it stays zero (its weight
decay is zero too). In eval mode a bias would only shift the running mean by itself. ``tests/test_cifar_models.py``
checks all of this on a model with the biases put back. Leaving them out saves parameters, decay terms and work.
"""
from functools import partial
from typing import Any, Callable, Optional, Union

import torch
from timm.layers import DropPath, get_act_layer
from timm.models import build_model_with_cfg, checkpoint_seq
from timm.models._features import feature_take_indices
from timm.models.resnet import BasicBlock
from torch import nn
from torch.nn import functional as F

from ..layers.global_pool import create_pool_and_classifier
from ._factory import pop_attention_layer, register_family
from ._keras_init import KERAS_BN_MOMENTUM, init_convolutions, keras_he_normal_
from .zoo import ModelSpec

__all__ = ['CifarResNet']


class CifarResNet(nn.Module):
    """CIFAR ResNet v1 with basic blocks and optional (ignore) attention on every residual branch.

    Args:
        depth: Network depth, ``6n + 2``.
        num_classes: Classifier outputs; 0 removes the classifier.
        in_chans: Input image channels.
        widths: Width of each of the three stages.
        global_pool: timm global pool type; ``''`` disables pooling and the classifier.
        attn_layer: Factory of the attention block, called with the block's channels; None for the plain network.
        act_layer: Activation.
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth rate, linearly increasing over blocks.
        bn_eps: BatchNorm epsilon (the authors' code: 1e-3).
        bn_momentum: BatchNorm momentum in PyTorch's convention (the authors' Keras 0.99 is 0.01).
        device: Factory device.
        dtype: Factory dtype.
    """

    def __init__(
            self,
            depth: int = 50,
            num_classes: int = 100,
            in_chans: int = 3,
            widths: tuple[int, int, int] = (16, 32, 64),
            global_pool: str = 'avg',
            attn_layer: Optional[Callable[..., nn.Module]] = None,
            act_layer: Union[str, type[nn.Module]] = nn.ReLU,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            bn_eps: float = 1e-3,
            bn_momentum: float = KERAS_BN_MOMENTUM,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f'CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 14, ..., 50, ...), got {depth}.')
        blocks_per_stage = (depth - 2) // 6
        act_layer = get_act_layer(act_layer)
        norm_layer = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, padding=1, bias=False, **dd)
        self.bn1 = norm_layer(widths[0], **dd)
        self.act1 = act_layer(inplace=True)
        self.feature_info = [dict(num_chs=widths[0], reduction=1, module='act1')]

        num_blocks = 3 * blocks_per_stage
        drop_path_rates = [drop_path_rate * i / (num_blocks - 1) for i in range(num_blocks)]  # no tensor: meta-safe
        in_chs, reduction = widths[0], 1
        for stage_idx, width in enumerate(widths):
            stride = 1 if stage_idx == 0 else 2
            reduction *= stride
            blocks = []
            for block_idx in range(blocks_per_stage):
                block_stride = stride if block_idx == 0 else 1
                downsample = None
                if block_stride != 1 or in_chs != width:
                    downsample = nn.Conv2d(in_chs, width, 1, stride=block_stride, bias=True, **dd)
                dpr = drop_path_rates[stage_idx * blocks_per_stage + block_idx]
                drop_path = DropPath(dpr) if dpr > 0. else None
                blocks.append(BasicBlock(
                    in_chs, width, stride=block_stride, downsample=downsample, act_layer=act_layer,
                    norm_layer=norm_layer, attn_layer=attn_layer, drop_path=drop_path, **dd))
                in_chs = width
            name = f'layer{stage_idx + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=width, reduction=reduction, module=name))

        self.num_features = self.head_hidden_size = in_chs
        self.global_pool, self.fc = create_pool_and_classifier(
            self.num_features, num_classes, pool_type=global_pool, **dd)
        self.init_weights()

    @torch.jit.ignore
    def init_weights(self) -> None:
        """Initialise as the authors' code: Keras ``he_normal`` convolutions and classifier, zero biases, unit BN.

        Every convolution includes the CBAM spatial one; the attention MLPs are ``normal(0, 0.01)`` with zero biases.
        """
        init_convolutions(self)
        self._init_classifier()

    def _init_classifier(self) -> None:
        if isinstance(self.fc, nn.Linear):
            keras_he_normal_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r'^conv1|bn1', blocks=r'^layer(\d+)' if coarse else r'^layer(\d+)\.(\d+)')

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier; ``global_pool=None`` keeps the current pooling."""
        dd = {'device': self.conv1.weight.device, 'dtype': self.conv1.weight.dtype}
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_pool_and_classifier(
            self.num_features, num_classes, pool_type=global_pool, **dd)
        self._init_classifier()
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    def _stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3]

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, list[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[list[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]:
        """Forward features and return intermediates: index 0 is the stem, 1-3 the stage outputs.

        Args:
            x: Input images.
            indices: Take the last n features if int, all if None, the listed indices if a sequence.
            norm: Unused (the network has no final norm).
            stop_early: Stop after the last requested intermediate.
            output_fmt: Only ``'NCHW'``.
            intermediates_only: Return only the intermediates.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}.")
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        intermediates = []
        x = self.act1(self.bn1(self.conv1(x)))
        if 0 in take_indices:
            intermediates.append(x)
        stages = self._stages()[:max_index] if stop_early else self._stages()
        for feat_idx, stage in enumerate(stages, start=1):
            x = checkpoint_seq(stage, x) if self.grad_checkpointing and not torch.jit.is_scripting() else stage(x)
            if feat_idx in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, list[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> list[int]:
        """Drop the stages after the last requested intermediate (and the head if asked); returns kept indices."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for name in ('layer1', 'layer2', 'layer3')[max_index:]:
            setattr(self, name, nn.Sequential())
        if max_index < len(self.feature_info) - 1:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
            prune_head = True
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq([self.layer1, self.layer2, self.layer3], x, flatten=True)
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create(spec: ModelSpec, pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    attn_layer = pop_attention_layer(spec, kwargs)
    return build_model_with_cfg(
        CifarResNet, spec.name, pretrained, attn_layer=attn_layer, feature_cfg=dict(out_indices=(0, 1, 2, 3)),
        **kwargs)


register_family(__name__, 'cifar_resnet50', _create)
