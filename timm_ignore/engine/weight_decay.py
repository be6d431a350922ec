"""Per-tensor weight decay of the authors' Keras code (spec section 6a), as optimizer parameter groups.

Keras adds ``l * sum(w ** 2)`` to the loss for each regularised tensor, which is SGD weight decay ``2 * l``:

=====================  =====================================================================  ============
family                 tensors                                                                decay
=====================  =====================================================================  ============
CIFAR ResNet           every convolution (kernel and bias) and the classifier (kernel, bias)   1e-3
CIFAR DenseNet         the stem convolution, every bottleneck and transition 1x1 convolution  2e-4
CIFAR DenseNet         the dense layers' 3x3 convolutions, the classifier                      0
both                   attention blocks (SE/CBAM MLP kernels and biases, CBAM spatial conv)    2e-4
both                   BatchNorm scale and shift                                               0
=====================  =====================================================================  ============

The family comes from the zoo table by the model's name (timm's ``pretrained_cfg['architecture']``), not from the
model classes, so the engine depends on the zoo's names only; the rules inside a family are module types (BatchNorm,
the attention blocks of ``timm_ignore.layers``, 1x1 convolutions, the ``stem`` the DenseNet declares).
"""
from collections import defaultdict
from typing import Callable, Optional

from torch import nn

from ..layers import IgnoreCbam, IgnoreSqueezeExcite
from ..models.zoo import MODELS

__all__ = ['authors_param_groups', 'RESNET_DECAY', 'DENSENET_DECAY', 'ATTENTION_DECAY']

#: Keras L2 5e-4 -> SGD weight decay 1e-3.
RESNET_DECAY = 1e-3
#: Keras L2 1e-4 -> SGD weight decay 2e-4.
DENSENET_DECAY = 2e-4
#: Keras L2 1e-4 on attention layers -> 2e-4.
ATTENTION_DECAY = 2e-4


def _resnet_decay(model: nn.Module, module: nn.Module) -> float:
    return RESNET_DECAY


def _densenet_decay(model: nn.Module, module: nn.Module) -> float:
    is_decayed_conv = isinstance(module, nn.Conv2d) and (
        module is getattr(model, 'stem', None) or module.kernel_size == (1, 1))
    return DENSENET_DECAY if is_decayed_conv else 0.0


#: Zoo family name -> decay of the parameters a (non-norm, non-attention) module owns directly.
_FAMILY_DECAY: dict[str, Callable[[nn.Module, nn.Module], float]] = {
    'cifar_resnet50': _resnet_decay, 'densenet': _densenet_decay}


def _family(model: nn.Module) -> Optional[str]:
    architecture = (getattr(model, 'pretrained_cfg', None) or {}).get('architecture', '')
    spec = MODELS.get(architecture)
    return None if spec is None else spec.family.name


def _module_decay(model: nn.Module, module: nn.Module, family: str) -> float:
    """Decay of the parameters a module owns directly (attention blocks are handled by the caller)."""
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return 0.0
    return _FAMILY_DECAY[family](model, module)


def authors_param_groups(model: nn.Module) -> list[dict]:
    """Parameter groups with the authors' weight decay, one group per decay value (decreasing).

    Usable as timm's ``create_optimizer_v2(model, param_group_fn=authors_param_groups)``.

    Raises:
        ValueError: ``model`` is not one of the paper's CIFAR networks; the authors' code defines no decay for it.
    """
    family = _family(model)
    if family not in _FAMILY_DECAY:
        raise ValueError(
            f'weight_decay_policy "authors" is defined for the CIFAR ResNet and DenseNet only, '
            f'not {type(model).__name__}; use "uniform" or "timm" with weight_decay.')
    groups: dict[float, list[nn.Parameter]] = defaultdict(list)
    attention_params = set()
    for module in model.modules():
        if isinstance(module, (IgnoreSqueezeExcite, IgnoreCbam)):
            for param in module.parameters():
                attention_params.add(param)
                groups[ATTENTION_DECAY].append(param)
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if param not in attention_params:
                groups[_module_decay(model, module, family)].append(param)
    return [{'params': params, 'weight_decay': decay} for decay, params in sorted(groups.items(), reverse=True)]
