"""Ign3 twins of timm's pretrained attention models, registered in timm (``seresnet50_ign3``, ...).

A twin is built by the timm model's own entrypoint (with every argument ``timm.create_model`` passes, the pretrained
tag included, so timm loads the timm model's weights from its own ``hf_hub_id``) and then converted with
``convert_gates(model, 'ign3', map_weights=True)``: every gate becomes Ign3 and the layer producing its logits is
negated, so the twin computes exactly what the timm model computes, pretrained or freshly initialised (same seed,
same function). Its pretrained tags are the timm model's, in the same order, with the same files.

Pretrained weights of a twin are always the timm model's weights (a tag, or a ``file``/``--pretrained-path`` in the
pretrained cfg); they are mapped on load. A checkpoint of a fine-tuned twin is loaded as such with
``checkpoint_path``/``--initial-checkpoint`` or ``--resume``, which load into the built twin without mapping.
"""
import sys
from collections.abc import Callable
from typing import Any

from timm.models import generate_default_cfgs, get_arch_pretrained_cfgs, model_entrypoint, register_model
from torch import nn

from .zoo import TWIN_GATE, TWINS

__all__ = ['register_twins']


def _entrypoint(twin: str, source: str) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        from ..convert import convert_gates  # loaded on first use: import timm_ignore stays cheap
        model = model_entrypoint(source)(pretrained=pretrained, **kwargs)
        report = convert_gates(model, TWIN_GATE.name, map_weights=True)
        if report.not_flipped:
            raise RuntimeError(f'{twin}: blocks of {source} left unflipped:\n{report}')
        for attr in ('pretrained_cfg', 'default_cfg'):  # the cfg of the twin: the timm model's, renamed
            cfg = getattr(model, attr, None)
            if isinstance(cfg, dict):
                setattr(model, attr, {**cfg, 'architecture': twin})
        return model

    entrypoint.__name__ = entrypoint.__qualname__ = twin
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = (
        f"timm's {source} with its attention gates flipped to {TWIN_GATE.name} and its weights mapped exactly "
        f'(same outputs as {source}, pretrained tags and files of {source}).\n\n'
        f'Args:\n    pretrained: Load the pretrained weights of {source}, mapped.\n'
        f'    **kwargs: Arguments of {source}.\n')
    return entrypoint


def register_twins() -> None:
    """Register every twin of :data:`~timm_ignore.models.zoo.TWINS` with the timm model's pretrained cfgs.

    The cfgs go to timm's ``generate_default_cfgs`` in the order timm lists them for the source model, default first:
    that order already puts any tag with weights before those without, so it is rebuilt unchanged.
    """
    mod = sys.modules[__name__]
    cfgs = {}
    for twin, source in TWINS.items():
        cfgs.update({f'{twin}.{name.partition(".")[2]}': cfg for name, cfg in get_arch_pretrained_cfgs(source).items()})
    mod.default_cfgs = generate_default_cfgs(cfgs)
    for twin, source in TWINS.items():
        fn = _entrypoint(twin, source)
        setattr(mod, twin, fn)
        register_model(fn)

register_twins()
