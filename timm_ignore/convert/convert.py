"""``convert_gates``: flip the gate of every attention block of a timm model, optionally mapping its weights."""
from dataclasses import dataclass
from typing import Optional

import torch
from timm.layers.cbam import LightChannelAttn
from torch import nn

from ..layers import resolve_gate, resolve_gate_function
from .blocks import SEARCHED, GatedLightChannelAttn, GateSite, Unflipped, find_gates
from .gate_functions import flipped_gate_module
from .negate import NoExactMap, output_parameters

__all__ = ['ConversionReport', 'GateChange', 'NoAttentionError', 'Unflipped', 'convert_gates']


class NoAttentionError(ValueError):
    """The model has no attention gate that can be flipped; the message names what was searched and found."""


@dataclass(frozen=True)
class GateChange:
    """One gate flipped: the block, the gate before and after, and the parameters negated (``map_weights``)."""
    path: str
    block: str
    old_gate: str
    new_gate: str
    negated: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert_gates` changed (``flipped``) and what it found but left as it was (``not_flipped``)."""
    gate: str
    alpha: float
    map_weights: bool
    flipped: tuple[GateChange, ...]
    not_flipped: tuple[Unflipped, ...]

    def __str__(self) -> str:
        lines = [f'{len(self.flipped)} gates flipped to {_describe(self.gate, self.alpha)}'
                 + (' with weights mapped' if self.map_weights else '')
                 + (f', {len(self.not_flipped)} blocks not flipped' if self.not_flipped else '') + ':']
        lines += [f'  {c.path} ({c.block}): {c.old_gate} -> {c.new_gate}'
                  + (f'; negated {", ".join(c.negated)}' if c.negated else '') for c in self.flipped]
        lines += [f'  not flipped: {u.path} ({u.block}): {u.reason}' for u in self.not_flipped]
        return '\n'.join(lines)


def _describe(gate: str, alpha: float, function: str = 'sigmoid') -> str:
    name = f'{gate} (alpha={alpha})' if gate == 'ign1' and alpha != 1.0 else gate
    return name if function == 'sigmoid' else f'{name} of {function}'


def exact_map(gate: str, alpha: float) -> bool:
    """Whether negating the logits layers maps explicit weights to this flip exactly: g(-(-z)) = g(z)."""
    return gate in ('explicit', 'ign3') or (gate == 'ign1' and alpha == 1.0)


def _refuse_map(gate: str, alpha: float) -> ValueError:
    return ValueError(
        f'map_weights=True needs a flip that the explicit weights map to exactly: ign3 (or ign1 with alpha=1), where '
        f'g(-z) with negated logits is g(z); {_describe(gate, alpha)} has none (its mask is another function of the '
        f'logits). Convert with map_weights=False: the model then starts from the explicit weights as a different '
        f'function and needs fine-tuning (docs/convert.md).')


def _plan(model: nn.Module, gate: str, alpha: Optional[float], map_weights: bool
          ) -> tuple[list[tuple[GateSite, tuple[str, ...]]], list[Unflipped]]:
    """The gates to flip (with the parameters to negate) and those left as they are; validates before any change."""
    flips, unflipped = [], []
    for found in find_gates(model):
        if isinstance(found, Unflipped):
            unflipped.append(found)
            continue
        resolve_gate_function(found.function, gate, alpha)  # ign2 on a hard sigmoid: refused before any change
        negated: tuple[str, ...] = ()
        if map_weights and gate != 'explicit':
            try:
                if not found.gating.logits:
                    raise NoExactMap(found.gating.no_map)
                negated = tuple(p for layer in found.gating.logits for p in output_parameters(
                    found.block.get_submodule(layer), layer))
            except NoExactMap as e:
                unflipped.append(Unflipped(
                    found.path, type(found.block).__name__,
                    f'no exact weight map ({e}); left as it was so the outputs stay the explicit ones '
                    f'(map_weights=False flips it)'))
                continue
        flips.append((found, negated))
    return flips, unflipped


def convert_gates(
        model: nn.Module, gate: str = 'ign3', alpha: Optional[float] = None, map_weights: bool = False,
) -> ConversionReport:
    """Replace the gate of every attention block of a timm model with its flip, in place.

    Flips the blocks timm builds (``SEModule``, ``EffectiveSEModule``, EfficientNet/MobileNet ``SqueezeExcite``,
    ``EcaModule``, ``CecaModule``, ``CbamModule``/``LightCbamModule``, ``GatherExcite``, ``GlobalContext``,
    ``CoordAttn`` and its variants) and any other module with a sigmoid or hard-sigmoid ``gate``. A sigmoid gate
    becomes ``IgnoreGate(gate, alpha)``; a hard sigmoid ``FlippedGate('hard_sigmoid', gate, alpha)``.

    With ``map_weights=True`` the layer producing each gate's logits is negated, so that the converted model
    computes exactly what the explicit one did (``ign3``, or ``ign1`` with alpha 1: ``g(-(-z)) = g(z)``). A block
    whose logits no weights produce (e.g. ``GatherExcite`` without MLP) is then left explicit and reported.

    Everything is validated before the model is changed.

    Args:
        model: A model, changed in place.
        gate: ``'explicit'``, ``'ign1'``, ``'ign2'`` (sigmoid gates only) or ``'ign3'``.
        alpha: Strength of ``ign1`` in ``[0, 1]`` (default 1); only ``ign1`` takes it.
        map_weights: Negate the logits layers so the outputs stay those of the explicit model.

    Returns:
        The report: every gate flipped (block path and type, old and new gate, parameters negated) and every block
        found but not flipped, with the reason.

    Raises:
        ValueError: A bad flip or alpha, ``ign2`` on a gate other than the sigmoid, or ``map_weights=True`` with a
            flip that has no exact map.
        NoAttentionError: Nothing in the model can be flipped (the message names what was searched and found).
    """
    gate, resolved_alpha = resolve_gate(gate, alpha)
    if map_weights and not exact_map(gate, resolved_alpha):
        raise _refuse_map(gate, resolved_alpha)
    flips, unflipped = _plan(model, gate, alpha, map_weights)
    if not flips:
        found = ''.join(f'; found {u.path or "the model"} ({u.block}): {u.reason}' for u in unflipped)
        raise NoAttentionError(
            f'{type(model).__name__} has no attention gate to flip; searched for {SEARCHED}{found}.')
    changes = []
    negated_ids = set()
    with torch.no_grad():
        for site, negated in flips:
            block, kind = site.block, type(site.block)
            if kind is LightChannelAttn:  # timm's forward applies F.sigmoid, not its gate attribute
                block.__class__ = GatedLightChannelAttn
            block.gate = flipped_gate_module(site.function, gate, alpha)
            names = tuple(f'{site.path}.{p}' if site.path else p for p in negated)
            for parameter in map(model.get_parameter, names):
                if id(parameter) not in negated_ids:  # a layer shared by blocks is negated once
                    negated_ids.add(id(parameter))
                    parameter.neg_()
            changes.append(GateChange(
                site.path, kind.__name__, site.function, _describe(gate, resolved_alpha, site.function), names))
    return ConversionReport(gate, resolved_alpha, map_weights, tuple(changes), tuple(unflipped))
