"""Negating the output of the layer that produces a gate's logits, by negating its parameters.

For a point-symmetric gate ``g`` (``g(-z) = 1 - g(z)``), ``ign3(z) = g(-z)``: a block whose logits layer has the
opposite sign computes with ``ign3`` exactly what the explicit block computed with ``g``. A layer's output changes
sign with its parameters when the output is linear in them: a convolution or linear layer (weight and bias; a layer
without bias needs the weight only), or an affine normalisation (its scale and shift, in training and eval mode),
possibly followed only by sign-preserving modules (identity, dropout).
"""
from timm.layers import ConvMlp, ConvNormAct
from torch import nn

__all__ = ['NoExactMap', 'output_parameters']

_LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)
#: Modules after the last parametrised one that keep the sign of their input's negation: f(-x) = -f(x).
_ODD = (nn.Identity, nn.Dropout)


class NoExactMap(ValueError):
    """The layer's output cannot be negated by negating parameters; the message says why."""


def _params(layer: nn.Module, name: str, *attrs: str) -> list[str]:
    return [f'{name}.{a}' if name else a for a in attrs if getattr(layer, a, None) is not None]


def output_parameters(layer: nn.Module, name: str = '') -> list[str]:
    """Names of the parameters of ``layer`` whose negation negates its output.

    Args:
        layer: The layer producing a gate's logits.
        name: Its name, prefixed to the returned names.

    Returns:
        Parameter names (``name.weight``, ``name.bias``, or those of the sub-layer that produces the output).

    Raises:
        NoExactMap: The output is not linear in parameters that can be negated (a non-affine norm, an activation
            after the last layer, an unknown layer type).
    """
    prefix = f'{name}.' if name else ''
    if isinstance(layer, _LINEAR):
        return _params(layer, name, 'weight', 'bias')
    if isinstance(layer, _NORMS):
        if getattr(layer, 'weight', None) is None:
            raise NoExactMap(f'{name or type(layer).__name__} is a normalisation without affine parameters')
        for post in ('drop', 'act'):  # timm's norm-act layers (BatchNormAct2d, ...)
            module = getattr(layer, post, None)
            if module is not None and not isinstance(module, _ODD):
                raise NoExactMap(f'{prefix}{post} ({type(module).__name__}) follows the normalisation')
        return _params(layer, name, 'weight', 'bias')
    if isinstance(layer, ConvMlp):
        return output_parameters(layer.fc2, f'{prefix}fc2')
    if isinstance(layer, ConvNormAct):
        aa = getattr(layer, 'aa', None)
        if aa is not None and not isinstance(aa, nn.Identity):
            raise NoExactMap(f'{prefix}aa ({type(aa).__name__}) follows the convolution')
        if any(True for _ in layer.bn.parameters()):
            return output_parameters(layer.bn, f'{prefix}bn')
        return output_parameters(layer.conv, f'{prefix}conv')
    if isinstance(layer, nn.Sequential):
        children = list(layer.named_children())
        for i in range(len(children) - 1, -1, -1):
            child_name, child = children[i]
            if any(True for _ in child.parameters()):
                return output_parameters(child, prefix + child_name)
            if not isinstance(child, _ODD):
                raise NoExactMap(f'{prefix}{child_name} ({type(child).__name__}) follows the last layer with weights')
        raise NoExactMap(f'{name or "the sequence"} has no parameters')
    raise NoExactMap(f'{name or "the layer"} is a {type(layer).__name__}, not a layer whose output sign follows its '
                     f'parameters')
