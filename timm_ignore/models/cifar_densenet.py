"""The paper's CIFAR DenseNet (Tables 1-2): depth 40, growth rate 12, bottleneck layers, no compression.

Stem: 3x3 convolution to 2k = 24 channels (no BN or pooling after it). Three dense blocks of (40 - 4) / 3 = 12
bottleneck layers (BN-ReLU-1x1 conv to 4k-BN-ReLU-3x3 conv to k, concatenated to the input); transitions after
blocks 1 and 2 (BN-ReLU-1x1 conv keeping the channels-2x2 average pool). Channels 24 -> 168 -> 312 -> 456.
Attention follows every dense block and every transition (5 blocks). Head: BN-ReLU, global average pool, linear.

Details of the authors' Keras code (spec 6a) are the defaults: Keras ``he_normal`` (truncated normal) for every
convolution, Keras ``glorot_uniform`` for the classifier with a zero bias, BatchNorm momentum 0.99 in Keras terms
(0.01 in PyTorch's) and epsilon 1.1e-5.
"""
from functools import partial
from typing import Any, Callable, Optional, Union

import torch
from timm.layers import BatchNormAct2d
from timm.models import build_model_with_cfg, checkpoint, checkpoint_seq
from timm.models._features import feature_take_indices
from torch import nn
from torch.nn import functional as F

from ..layers.fused_backward import use_fused_backward
from ..layers.global_pool import create_pool_and_classifier
from ._factory import pop_attention_layer, register_family
from ._keras_init import KERAS_BN_MOMENTUM, init_convolutions
from .zoo import ModelSpec

__all__ = ['CifarDenseNet', 'DenseLayer', 'DenseStage', 'Transition']


class DenseLayer(nn.Module):
    """Bottleneck dense layer: BN-ReLU-1x1 conv (``bn_size * growth_rate``)-BN-ReLU-3x3 conv (``growth_rate``).

    Returns only the new features; the caller concatenates them.
    """

    def __init__(
            self,
            in_chs: int,
            growth_rate: int,
            bn_size: int = 4,
            norm_layer: Callable[..., nn.Module] = BatchNormAct2d,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.norm1 = norm_layer(in_chs, **dd)
        self.conv1 = nn.Conv2d(in_chs, bn_size * growth_rate, 1, bias=False, **dd)
        self.norm2 = norm_layer(bn_size * growth_rate, **dd)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.norm2(self.conv1(self.norm1(x))))


class Transition(nn.Sequential):
    """BN-ReLU, 1x1 convolution keeping the channels, 2x2 average pool; run with the pool before the convolution.

    A 1x1 convolution and an average pool commute (both are linear, one per pixel, the other per channel), so
    pooling first is the same function at a quarter of the convolution's work. The modules keep the order of the
    definition (and of the authors' code) for their state-dict keys.
    """

    def __init__(
            self,
            chs: int,
            norm_layer: Callable[..., nn.Module] = BatchNormAct2d,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__(norm_layer(chs, **dd), nn.Conv2d(chs, chs, 1, bias=False, **dd), nn.AvgPool2d(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[1](self[2](self[0](x)))


class DenseStage(nn.Module):
    """One resolution stage: an optional transition and its attention, then a dense block and its attention.

    Training in eager mode runs the dense block as :class:`~timm_ignore.models._fused_dense_block.DenseBlockFunction`
    (one feature buffer, each channel's batch statistics computed once; same outputs, gradients and running
    statistics as the layer-by-layer concatenation, tested). TorchScript, ``torch.compile`` / ``torch.export``,
    eval mode and inference use the layer-by-layer form. Set ``fused_backward = False`` on an instance for the plain
    autograd form (e.g. for double backward).

    Args:
        in_chs: Input channels.
        num_layers: Dense layers in the block.
        growth_rate: Channels each layer adds.
        bn_size: Bottleneck width multiplier.
        transition: Start with a transition (BN-ReLU-1x1 conv-2x2 average pool, channels kept).
        attn_layer: Attention factory taking channels, or None.
        norm_layer: BatchNorm + ReLU factory taking channels.
        device: Factory device.
        dtype: Factory dtype.
    """

    def __init__(
            self,
            in_chs: int,
            num_layers: int,
            growth_rate: int,
            bn_size: int = 4,
            transition: bool = False,
            attn_layer: Optional[Callable[..., nn.Module]] = None,
            norm_layer: Callable[..., nn.Module] = BatchNormAct2d,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        if transition:
            self.transition = Transition(in_chs, norm_layer, **dd)
            self.transition_attn = attn_layer(in_chs, **dd) if attn_layer else nn.Identity()
        else:
            self.transition = nn.Identity()
            self.transition_attn = nn.Identity()
        self.layers = nn.ModuleList([
            DenseLayer(in_chs + i * growth_rate, growth_rate, bn_size, norm_layer, **dd) for i in range(num_layers)])
        self.growth_rate = growth_rate
        self.out_chs = in_chs + num_layers * growth_rate
        self.attn = attn_layer(self.out_chs, **dd) if attn_layer else nn.Identity()
        self.fused_backward = all(
            type(norm) is BatchNormAct2d and type(norm.act) is nn.ReLU and type(norm.drop) is nn.Identity
            for layer in self.layers for norm in (layer.norm1, layer.norm2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transition_attn(self.transition(x))
        if not torch.jit.is_scripting() and self._use_fused(x):
            x = self._forward_fused(x)
        else:
            for layer in self.layers:
                x = torch.cat([x, layer(x)], 1)
        return self.attn(x)

    @torch.jit.unused
    def _use_fused(self, x: torch.Tensor) -> bool:
        if isinstance(x, torch.fx.Proxy):  # FX symbolic tracing records the layer-by-layer form
            return False
        return (self.training and len(self.layers) > 0 and use_fused_backward(self.fused_backward)
                and len({layer.norm1.eps for layer in self.layers}) == 1)

    @torch.jit.unused
    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        from ._fused_dense_block import DenseBlockFunction, dense_block_params  # training only: import stays light
        return DenseBlockFunction.apply(x, list(self.layers), self.growth_rate, *dense_block_params(self.layers))


class CifarDenseNet(nn.Module):
    """CIFAR DenseNet-BC style network with optional (ignore) attention after every block and transition.

    Args:
        depth: Network depth; each of the three blocks has ``(depth - 4) // 3`` layers, as in the authors' code.
        growth_rate: Channels each dense layer adds (k).
        bn_size: Bottleneck width multiplier (4k channels in the 1x1 convolution).
        num_classes: Classifier outputs; 0 removes the classifier.
        in_chans: Input image channels.
        global_pool: timm global pool type; ``''`` disables pooling and the classifier.
        attn_layer: Attention factory taking channels, or None for the plain network.
        drop_rate: Dropout before the classifier.
        bn_eps: BatchNorm epsilon (the authors' code: 1.1e-5).
        bn_momentum: BatchNorm momentum in PyTorch's convention (the authors' Keras 0.99 is 0.01).
        device: Factory device.
        dtype: Factory dtype.
    """

    def __init__(
            self,
            depth: int = 40,
            growth_rate: int = 12,
            bn_size: int = 4,
            num_classes: int = 100,
            in_chans: int = 3,
            global_pool: str = 'avg',
            attn_layer: Optional[Callable[..., nn.Module]] = None,
            drop_rate: float = 0.,
            bn_eps: float = 1.1e-5,
            bn_momentum: float = KERAS_BN_MOMENTUM,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        if depth < 7 or (depth - 4) % 3:
            raise ValueError(f'CIFAR DenseNet depth must be 3n + 4 with n >= 1 (7, 10, ..., 40, ...), got {depth}.')
        num_layers = (depth - 4) // 3
        norm_layer = partial(BatchNormAct2d, eps=bn_eps, momentum=bn_momentum)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        chs = 2 * growth_rate
        self.stem = nn.Conv2d(in_chans, chs, 3, padding=1, bias=False, **dd)
        self.feature_info = [dict(num_chs=chs, reduction=1, module='stem')]
        stages = []
        for i in range(3):
            stage = DenseStage(chs, num_layers, growth_rate, bn_size, transition=i > 0, attn_layer=attn_layer,
                norm_layer=norm_layer, **dd)
            chs = stage.out_chs
            stages.append(stage)
            if i < 2:  # the last stage's feature is taken after the final norm
                self.feature_info.append(dict(num_chs=chs, reduction=2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.norm = norm_layer(chs, **dd)
        self.feature_info.append(dict(num_chs=chs, reduction=4, module='norm'))

        self.num_features = self.head_hidden_size = chs
        self.global_pool, self.fc = create_pool_and_classifier(chs, num_classes, pool_type=global_pool, **dd)
        self.init_weights()

    @torch.jit.ignore
    def init_weights(self) -> None:
        """Initialise as the authors' code: Keras ``he_normal`` convolutions, ``glorot_uniform`` classifier, unit BN.

        Every convolution includes the CBAM spatial one; the attention MLPs are ``normal(0, 0.01)`` with zero biases.
        """
        init_convolutions(self)
        self._init_classifier()

    def _init_classifier(self) -> None:
        if isinstance(self.fc, nn.Linear):
            nn.init.xavier_uniform_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r'^stem',
            blocks=r'^stages\.(\d+)' if coarse else [
                (r'^stages\.(\d+)\.(?:transition|transition_attn)\.', None),
                (r'^stages\.(\d+)\.layers\.(\d+)', None),
                (r'^stages\.(\d+)\.attn\.', None),
                (r'^norm', (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier; ``global_pool=None`` keeps the current pooling."""
        dd = {'device': self.stem.weight.device, 'dtype': self.stem.weight.dtype}
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_pool_and_classifier(
            self.num_features, num_classes, pool_type=global_pool, **dd)
        self._init_classifier()
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, list[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[list[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]:
        """Forward features and return intermediates: 0 the stem, 1-2 the first two stages, 3 the final norm.

        Args:
            x: Input images.
            indices: Take the last n features if int, all if None, the listed indices if a sequence.
            norm: Unused (the last intermediate is always the normed output, as in timm's DenseNet).
            stop_early: Stop after the last requested intermediate.
            output_fmt: Only ``'NCHW'``.
            intermediates_only: Return only the intermediates.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}.")
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        intermediates = []
        x = self.stem(x)
        if 0 in take_indices:
            intermediates.append(x)
        last = len(self.feature_info) - 1
        num_stages = min(max_index, last) if stop_early else last
        for feat_idx, stage in enumerate(self.stages[:num_stages], start=1):
            x = checkpoint(stage, x) if self.grad_checkpointing and not torch.jit.is_scripting() else stage(x)
            if feat_idx in take_indices and feat_idx < last:
                intermediates.append(x)
        if num_stages == last:
            x = self.norm(x)
            if last in take_indices:
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
        """Drop what follows the last requested intermediate (and the head if asked); returns kept indices."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        last = len(self.feature_info) - 1
        if max_index < last:
            self.stages = self.stages[:max_index]
            self.norm = nn.Identity()
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
            prune_head = True
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.stages, x)
        else:
            x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create(spec: ModelSpec, pretrained: bool = False, **kwargs: Any) -> CifarDenseNet:
    attn_layer = pop_attention_layer(spec, kwargs)
    return build_model_with_cfg(
        CifarDenseNet, spec.name, pretrained, attn_layer=attn_layer,
        feature_cfg=dict(flatten_sequential=True, out_indices=(0, 1, 2, 3)), **kwargs)


register_family(__name__, 'densenet', _create)
