"""Which gate function a timm gate module computes, and the module that computes its flip.

timm builds a block's gate with ``create_act_layer(gate_layer)``: ``'sigmoid'`` gives timm's ``Sigmoid``,
``'hard_sigmoid'`` torch's ``nn.Hardsigmoid`` (or timm's own ``HardSigmoid``/``HardSigmoidMe`` where torch has none), a
class gives an instance of it. Only gates recognised here are flipped; anything else is reported with the reason.
"""
from typing import Optional, Union

from timm.layers.activations import HardSigmoid, Sigmoid, Tanh
from timm.layers.activations_me import HardSigmoidMe
from torch import nn

from ..layers import FlippedGate, IgnoreGate

__all__ = ['GateFunction', 'NotFlippable', 'gate_function', 'flipped_gate_module']

_FUNCTIONS: dict[type, str] = {
    nn.Sigmoid: 'sigmoid', Sigmoid: 'sigmoid',
    nn.Hardsigmoid: 'hard_sigmoid', HardSigmoid: 'hard_sigmoid', HardSigmoidMe: 'hard_sigmoid',
}
_NOT_POINT_SYMMETRIC: dict[type, str] = {
    nn.Tanh: 'tanh', Tanh: 'tanh',
}


class NotFlippable(str):
    """The reason a gate module cannot be flipped (a ``str``, told apart from a function name by its type)."""


#: The gate function of a module (one of ``GATE_FUNCTIONS``), or why it has none that can be flipped.
GateFunction = Union[str, NotFlippable]


def gate_function(gate: nn.Module) -> GateFunction:
    """The gate function ``gate`` computes, e.g. ``'sigmoid'``, or a :class:`NotFlippable` reason.

    An ``IgnoreGate``/``FlippedGate`` with ``explicit`` counts as its function; with another flip it is already
    flipped and is not flipped again.
    """
    if isinstance(gate, (IgnoreGate, FlippedGate)):
        function = gate.function if isinstance(gate, FlippedGate) else 'sigmoid'
        return function if gate.name == 'explicit' else NotFlippable(f'already flipped ({gate.extra_repr()})')
    function = _FUNCTIONS.get(type(gate))
    if function is not None:
        return function
    symmetric = _NOT_POINT_SYMMETRIC.get(type(gate))
    if symmetric is not None:
        return NotFlippable(
            f'{symmetric} gate ({type(gate).__name__}): not point-symmetric about (0, 1/2), g(-z) != 1 - g(z), so '
            f'its flip is not defined')
    if isinstance(gate, nn.Identity):
        return NotFlippable('no gate function (Identity)')
    return NotFlippable(
        f'unrecognised gate {type(gate).__name__}: the flip is defined only for the point-symmetric gates '
        f'(g(-z) = 1 - g(z)) sigmoid and hard_sigmoid')


def flipped_gate_module(function: str, gate: str, alpha: Optional[float]) -> nn.Module:
    """The gate module computing flip ``gate`` of ``function``: ``IgnoreGate`` for the sigmoid, else ``FlippedGate``.

    Args:
        function: A gate function from :func:`gate_function`.
        gate: The flip (validated by the caller with ``resolve_gate_function``).
        alpha: ``ign1``'s alpha as the user gave it (None unless ``ign1``).
    """
    if function == 'sigmoid':
        return IgnoreGate(gate, alpha)
    return FlippedGate(function, gate, alpha)
