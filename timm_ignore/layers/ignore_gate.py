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
"""
from typing import Final, Optional

import torch
from torch import nn

__all__ = ['IgnoreGate', 'ignore_gate', 'resolve_gate', 'GATE_NAMES', 'IGN2_EPS']

#: Gates (values of the ``gate`` argument) accepted everywhere in this package, in the paper's order.
GATE_NAMES: Final = ('explicit', 'ign1', 'ign2', 'ign3')
#: Gates that take an ``alpha``.
_ALPHA_GATES: Final = ('ign1',)
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
