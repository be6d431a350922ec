"""The flip T of "Learning to ignore": one place that maps attention logits to a mask.

An attention block computes pre-sigmoid logits ``z`` and multiplies its input by a mask derived from them. Explicit
attention uses ``sigmoid(z)``; the paper's ignore gates train the same logits to mark what to suppress and flip
them into a mask:

============  =====================================  ==================
gate          mask                                   range
============  =====================================  ==================
``explicit``  ``sigmoid(z)``                         (0, 1)
``ign1``      ``1 - alpha * sigmoid(z)``             (1 - alpha, 1)
``ign2``      ``sigmoid(1 / (sigmoid(z) + eps))``    (sigmoid(1), 1)
``ign3``      ``sigmoid(-z)``                        (0, 1)
============  =====================================  ==================

``sigmoid(-z) == 1 - sigmoid(z)``, so ``ign3`` and ``ign1`` with ``alpha=1`` are the same function of the same
parameters. Both names are kept because the paper reports both; this module computes them with the same
expression, so identical weights give bit-identical outputs.

Every SE, CBAM and MMTM block of this package, and every registered model, applies its mask through this module.

Gates other than the sigmoid (:class:`FlippedGate`, used by :func:`timm_ignore.convert_gates`): for a gate function
``g`` that is point-symmetric about ``(0, 1/2)``, i.e. ``g(-z) == 1 - g(z)``, the flips are ``explicit`` ``g(z)``,
``ign1`` ``1 - alpha * g(z)`` and ``ign3`` ``g(-z)``. Ign2 is defined on the sigmoid only. The gate functions
recognised are listed in :data:`GATE_FUNCTIONS`.
"""
from typing import Final, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    'IgnoreGate', 'ignore_gate', 'resolve_gate', 'GATE_NAMES', 'IGN2_EPS', 'GATE_FUNCTIONS', 'FlippedGate',
    'flip_gate', 'resolve_gate_function',
]

#: Gates (values of the ``gate`` argument) accepted everywhere in this package, in the paper's order.
GATE_NAMES: Final = ('explicit', 'ign1', 'ign2', 'ign3')
#: Gates that take an ``alpha``.
_ALPHA_GATES: Final = ('ign1',)
#: Gate functions g the flip is defined on: point-symmetric about (0, 1/2), g(-z) == 1 - g(z). ``hard_sigmoid`` is
#: timm's and torch's ``relu6(z + 3) / 6``.
GATE_FUNCTIONS: Final = ('sigmoid', 'hard_sigmoid')
#: The ``eps`` of Ign2 in the authors' code.
IGN2_EPS: Final = 1e-6


def resolve_gate(gate: str, alpha: Optional[float] = None) -> tuple[str, float]:
    """Validate a gate name and its alpha.

    Args:
        gate: One of :data:`GATE_NAMES`.
        alpha: Strength of ``ign1`` in ``[0, 1]``; ``None`` means 1.0. Must be ``None`` for other gates.

    Returns:
        ``(gate, alpha)`` with alpha resolved to a float (1.0 for gates without one).

    Raises:
        ValueError: Unknown gate, alpha outside ``[0, 1]``, or alpha given for a gate that has none.
    """
    if gate not in GATE_NAMES:
        raise ValueError(f'Unknown gate {gate!r}; allowed: {", ".join(GATE_NAMES)}.')
    if alpha is None:
        return gate, 1.0
    if gate not in _ALPHA_GATES:
        raise ValueError(
            f'Gate {gate!r} takes no alpha (got alpha={alpha!r}); only {", ".join(_ALPHA_GATES)} does.')
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f'alpha must be a number in [0, 1], got {alpha!r}.')
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1] (0 is the identity, 1 equals ign3), got {alpha}.')
    return gate, alpha


def ignore_gate(z: torch.Tensor, gate: str = 'explicit', alpha: float = 1.0, eps: float = IGN2_EPS) -> torch.Tensor:
    """Map pre-sigmoid attention logits to a mask (the flip T).

    Inputs are not validated here (this runs in every block's forward); use :func:`resolve_gate` first.

    Args:
        z: Pre-sigmoid logits of any shape.
        gate: One of :data:`GATE_NAMES`.
        alpha: Strength of ``ign1``; ignored by the other gates.
        eps: The ``eps`` of ``ign2``.

    Returns:
        The mask, same shape and dtype as ``z``.
    """
    if gate == 'explicit':
        return torch.sigmoid(z)
    if gate == 'ign3':
        return torch.sigmoid(-z)
    if gate == 'ign1':
        # 1 - alpha * sigmoid(z) written as (1 - alpha) + alpha * sigmoid(-z): exact where sigmoid(z) rounds to 1,
        # and bit-identical to ign3 at alpha == 1.
        return torch.sigmoid(-z) * alpha + (1.0 - alpha)
    # ign2: 1 / (s + eps) reaches 1e6, past float16's range; compute in float32 (or float64) so the mask and its
    # gradient stay finite for every finite z under any autocast dtype, then return in z's dtype.
    s = torch.sigmoid(z if z.dtype == torch.float64 else z.float())
    return torch.sigmoid(torch.reciprocal(s + eps)).to(z.dtype)


class IgnoreGate(nn.Module):
    """The flip T as a module: maps pre-sigmoid logits to the attention mask.

    Usable wherever timm accepts a ``gate_layer``, e.g.
    ``timm.layers.SEModule(64, gate_layer=functools.partial(IgnoreGate, 'ign3'))``.

    Args:
        gate: ``'explicit'``, ``'ign1'``, ``'ign2'`` or ``'ign3'`` (see the module docstring for the formulas).
        alpha: Strength of ``ign1`` in ``[0, 1]``, default 1.0 (which equals ``ign3``); only ``ign1`` takes it.
        inplace: Accepted for compatibility with timm's activation factory; the gate never works in place.

    Attributes:
        name: The gate, one of :data:`GATE_NAMES`.
        alpha: The resolved ``ign1`` strength (1.0 for the other gates).

    Raises:
        ValueError: Unknown gate, alpha out of range, or alpha given for a gate that has none.
    """

    name: Final[str]
    alpha: Final[float]

    def __init__(self, gate: str = 'explicit', alpha: Optional[float] = None, inplace: bool = False) -> None:
        super().__init__()
        self.name, self.alpha = resolve_gate(gate, alpha)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return ignore_gate(z, self.name, self.alpha)

    def extra_repr(self) -> str:
        return f'{self.name}, alpha={self.alpha}' if self.name in _ALPHA_GATES else self.name


def resolve_gate_function(function: str, gate: str, alpha: Optional[float] = None) -> tuple[str, float]:
    """Validate a flip of a gate function: :func:`resolve_gate`, plus the function and Ign2's restriction.

    Args:
        function: One of :data:`GATE_FUNCTIONS`.
        gate: One of :data:`GATE_NAMES`; ``ign2`` only with ``function='sigmoid'``.
        alpha: As for :func:`resolve_gate`.

    Returns:
        ``(gate, alpha)`` as :func:`resolve_gate` returns them.

    Raises:
        ValueError: Unknown function, a bad gate or alpha, or ``ign2`` on a gate other than the sigmoid.
    """
    if function not in GATE_FUNCTIONS:
        raise ValueError(f'Unknown gate function {function!r}; the flip is defined on: {", ".join(GATE_FUNCTIONS)}.')
    gate, alpha = resolve_gate(gate, alpha)
    if gate == 'ign2' and function != 'sigmoid':
        raise ValueError(
            f'ign2 (sigmoid(1 / (sigmoid(z) + eps))) is defined on the sigmoid only, not on {function}; '
            f'use explicit, ign1 or ign3 for a {function} gate.')
    return gate, alpha


def flip_gate(z: torch.Tensor, function: str = 'sigmoid', gate: str = 'explicit', alpha: float = 1.0) -> torch.Tensor:
    """The flip T of a point-symmetric gate function ``g``: ``g(z)``, ``1 - alpha * g(z)`` or ``g(-z)``.

    The sigmoid goes through :func:`ignore_gate` (bit-identical to :class:`IgnoreGate`, ``ign2`` included). Inputs are
    not validated here; use :func:`resolve_gate_function` first.

    Args:
        z: Logits of the gate, any shape.
        function: One of :data:`GATE_FUNCTIONS`.
        gate: One of :data:`GATE_NAMES` (``ign2`` for the sigmoid only).
        alpha: Strength of ``ign1``; ignored by the other gates.

    Returns:
        The mask, same shape and dtype as ``z``.
    """
    if function == 'sigmoid':
        return ignore_gate(z, gate, alpha)
    if gate == 'explicit':
        return F.hardsigmoid(z)
    # g(-z) == 1 - g(z) for a point-symmetric g: ign1 written as in ignore_gate, bit-identical to ign3 at alpha == 1
    flipped = F.hardsigmoid(-z)
    return flipped if gate == 'ign3' else flipped * alpha + (1.0 - alpha)


class FlippedGate(nn.Module):
    """The flip T of a point-symmetric gate function, as a module (timm's ``gate_layer`` interface).

    ``FlippedGate('sigmoid', v, a)`` computes what ``IgnoreGate(v, a)`` does; ``FlippedGate('hard_sigmoid', 'ign3')``
    is MobileNetV3's hard-sigmoid gate flipped, ``relu6(-z + 3) / 6``.

    Args:
        function: One of :data:`GATE_FUNCTIONS`.
        gate: ``'explicit'``, ``'ign1'``, ``'ign2'`` (sigmoid only) or ``'ign3'``.
        alpha: Strength of ``ign1`` in ``[0, 1]``, default 1.0; only ``ign1`` takes it.
        inplace: Accepted for compatibility with timm's activation factory; the gate never works in place.

    Attributes:
        function: The gate function, one of :data:`GATE_FUNCTIONS`.
        name: The flip, one of :data:`GATE_NAMES`.
        alpha: The resolved ``ign1`` strength (1.0 for the other flips).

    Raises:
        ValueError: Unknown function or gate, a bad alpha, or ``ign2`` on a gate other than the sigmoid.
    """

    function: Final[str]
    name: Final[str]
    alpha: Final[float]

    def __init__(
            self, function: str = 'sigmoid', gate: str = 'explicit', alpha: Optional[float] = None,
            inplace: bool = False) -> None:
        super().__init__()
        self.function = function
        self.name, self.alpha = resolve_gate_function(function, gate, alpha)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return flip_gate(z, self.function, self.name, self.alpha)

    def extra_repr(self) -> str:
        alpha = f', alpha={self.alpha}' if self.name in _ALPHA_GATES else ''
        return f'{self.function}, {self.name}{alpha}'
