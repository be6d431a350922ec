"""The flip T of "Learning to ignore": one place that maps attention logits to a mask.

An attention block computes pre-sigmoid logits ``z`` and multiplies its input by a mask derived from them. Explicit
attention uses ``sigmoid(z)``; the paper's ignore variants train the same logits to mark what to suppress and flip
them into a mask:

============  =====================================  ==================
variant       mask                                   range
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

__all__ = ['IgnoreGate', 'ignore_gate', 'resolve_gate', 'GATE_VARIANTS', 'IGN2_EPS']

#: Gate variants accepted everywhere in this package, in the paper's order.
GATE_VARIANTS: Final = ('explicit', 'ign1', 'ign2', 'ign3')
#: Variants that take an ``alpha``.
_ALPHA_VARIANTS: Final = ('ign1',)
#: The ``eps`` of Ign2 in the authors' code.
IGN2_EPS: Final = 1e-6


def resolve_gate(variant: str, alpha: Optional[float] = None) -> tuple[str, float]:
    """Validate a gate variant and its alpha.

    Args:
        variant: One of :data:`GATE_VARIANTS`.
        alpha: Strength of ``ign1`` in ``[0, 1]``; ``None`` means 1.0. Must be ``None`` for other variants.

    Returns:
        ``(variant, alpha)`` with alpha resolved to a float (1.0 for variants without one).

    Raises:
        ValueError: Unknown variant, alpha outside ``[0, 1]``, or alpha given for a variant that has none.
    """
    if variant not in GATE_VARIANTS:
        raise ValueError(f'Unknown gate variant {variant!r}; allowed: {", ".join(GATE_VARIANTS)}.')
    if alpha is None:
        return variant, 1.0
    if variant not in _ALPHA_VARIANTS:
        raise ValueError(
            f'Gate variant {variant!r} takes no alpha (got alpha={alpha!r}); only {", ".join(_ALPHA_VARIANTS)} does.')
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f'alpha must be a number in [0, 1], got {alpha!r}.')
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1] (0 is the identity, 1 equals ign3), got {alpha}.')
    return variant, alpha


def ignore_gate(z: torch.Tensor, variant: str = 'explicit', alpha: float = 1.0, eps: float = IGN2_EPS) -> torch.Tensor:
    """Map pre-sigmoid attention logits to a mask (the flip T).

    Inputs are not validated here (this runs in every block's forward); use :func:`resolve_gate` first.

    Args:
        z: Pre-sigmoid logits of any shape.
        variant: One of :data:`GATE_VARIANTS`.
        alpha: Strength of ``ign1``; ignored by the other variants.
        eps: The ``eps`` of ``ign2``.

    Returns:
        The mask, same shape and dtype as ``z``.
    """
    if variant == 'explicit':
        return torch.sigmoid(z)
    if variant == 'ign3':
        return torch.sigmoid(-z)
    if variant == 'ign1':
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
        variant: ``'explicit'``, ``'ign1'``, ``'ign2'`` or ``'ign3'`` (see the module docstring for the formulas).
        alpha: Strength of ``ign1`` in ``[0, 1]``, default 1.0 (which equals ``ign3``); only ``ign1`` takes it.
        inplace: Accepted for compatibility with timm's activation factory; the gate never works in place.

    Raises:
        ValueError: Unknown variant, alpha out of range, or alpha given for a variant that has none.
    """

    variant: Final[str]
    alpha: Final[float]

    def __init__(self, variant: str = 'explicit', alpha: Optional[float] = None, inplace: bool = False) -> None:
        super().__init__()
        self.variant, self.alpha = resolve_gate(variant, alpha)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return ignore_gate(z, self.variant, self.alpha)

    def extra_repr(self) -> str:
        return f'{self.variant}, alpha={self.alpha}' if self.variant in _ALPHA_VARIANTS else self.variant
