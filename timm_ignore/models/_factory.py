"""Turn the zoo table into timm entrypoints: attention-layer resolution and registration."""
import sys
from functools import partial
from typing import Any, Callable, Optional

from timm.models import generate_default_cfgs, register_model
from torch import nn

from ..layers import IgnoreCbam, IgnoreSqueezeExcite, resolve_gate
from ..layers.reduction import PAPER_RD_RATIO, validate_rd_ratio
from ._pretrained import guard_pretrained
from .zoo import ModelSpec, family_models, pretrained_cfgs

__all__ = ['ATTENTION_KWARGS', 'pop_attention_layer', 'register_family']

#: Model kwargs that override the attention of a model for exploration.
ATTENTION_KWARGS = ('gate', 'alpha', 'rd_ratio')
_ATTENTION_LAYERS = {'se': IgnoreSqueezeExcite, 'cbam': IgnoreCbam}


def pop_attention_layer(spec: ModelSpec, kwargs: dict[str, Any]) -> Optional[Callable[..., nn.Module]]:
    """Remove the attention overrides from ``kwargs`` and return the attention layer factory of a model.

    ``gate`` replaces the gate of the name (and drops the name's alpha), ``alpha`` the ign1 strength, ``rd_ratio``
    the MLP reduction ratio as in timm's attention modules (default 1/8, the paper's).

    Returns:
        A factory taking ``channels`` (and ``device``/``dtype``), or None for a plain network.

    Raises:
        TypeError: An override given to a plain network, which has no attention block.
        ValueError: Unknown gate, alpha out of range or for a gate without one, or a bad rd_ratio.
    """
    overrides = {k: kwargs.pop(k) for k in ATTENTION_KWARGS if k in kwargs}
    if spec.attn is None:
        if overrides:
            raise TypeError(
                f'{spec.name} has no attention block, so it takes no {", ".join(sorted(overrides))} argument; '
                f'use one of its attention variants, e.g. {spec.name}_se_ign3.')
        return None
    if 'gate' in overrides:
        gate, alpha = overrides['gate'], overrides.get('alpha')
    else:
        gate, alpha = spec.gate.name, overrides.get('alpha', spec.gate.alpha)
    resolve_gate(gate, alpha)
    rd_ratio = validate_rd_ratio(overrides.get('rd_ratio', PAPER_RD_RATIO))
    return partial(_ATTENTION_LAYERS[spec.attn], rd_ratio=rd_ratio, gate=gate, alpha=alpha)


def _entrypoint(spec: ModelSpec, module: str, create: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if not pretrained:
            return create(spec, pretrained, **kwargs)
        with guard_pretrained(spec, kwargs):  # weights only from safetensors, errors naming the file
            return create(spec, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = spec.name
    entrypoint.__module__ = module
    entrypoint.__doc__ = (
        f'{spec.family.description}: {spec.attention_label}.\n\n'
        f'Args:\n    pretrained: Load pretrained weights.\n'
        f'    **kwargs: Model args; attention models also take {", ".join(ATTENTION_KWARGS)}.\n')
    return entrypoint


def register_family(module: str, family: str, create: Callable[..., nn.Module]) -> None:
    """Register every model of a family as a timm entrypoint defined in ``module``.

    Sets the module's ``default_cfgs`` (read by timm's ``register_model``) and one attribute per model name.

    Args:
        module: ``__name__`` of the module that builds the family.
        family: Family name in the zoo table.
        create: ``create(spec, pretrained, **kwargs)`` building one model.
    """
    mod = sys.modules[module]
    specs = family_models(family)
    cfgs = {}
    for spec in specs:
        cfgs.update(pretrained_cfgs(spec))
    mod.default_cfgs = generate_default_cfgs(cfgs)
    for spec in specs:
        fn = _entrypoint(spec, module, create)
        setattr(mod, spec.name, fn)
        register_model(fn)
