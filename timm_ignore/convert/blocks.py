"""timm's attention blocks: where each applies its gate and which layers produce the gate's logits.

Every block type below keeps its gate in the attribute ``gate`` (timm builds it with
``create_act_layer(gate_layer)``) and applies it to the output of the layers named by its rule, summed where there
are several (CBAM's shared ``fc2`` over the average and max branches, ``SimpleCoordAttn``'s ``fc_h`` and ``fc_w``)
or one gate per layer (``CoordAttn``'s ``conv_h`` and ``conv_w``). Blocks matched by their exact type only; a
subclass may change ``forward``, so it is treated like any unknown block with a ``gate``: flipped, without a weight
map.
"""
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from timm.layers import CecaModule, EcaModule, EffectiveSEModule, GatherExcite, GlobalContext, SEModule
from timm.layers import SelectiveKernel, SplitAttn
from timm.layers.cbam import ChannelAttn, LightChannelAttn, LightSpatialAttn, SpatialAttn
from timm.layers.coord_attn import CoordAttn, EfficientLocalAttn, SimpleCoordAttn, StripAttn
from timm.layers.squeeze_excite import SqueezeExciteCl
from timm.models.efficientnet import SqueezeExcite as EfficientNetSqueezeExcite  # timm's _efficientnet_blocks class
from torch import Tensor, nn

from ..layers import IgnoreCbam, IgnoreMmtm, IgnoreSqueezeExcite
from .gate_functions import GateFunction, NotFlippable, gate_function

__all__ = ['Gating', 'GateSite', 'Unflipped', 'SEARCHED', 'find_gates', 'GatedLightChannelAttn']


@dataclass(frozen=True)
class Gating:
    """How a block applies its gate.

    Attributes:
        logits: Names of the layers whose output is the gate's logits; empty when no layer produces them.
        no_map: Why there is no exact weight map (when ``logits`` is empty).
        unused: Why the block applies no gate at all (then it is not flipped).
    """
    logits: tuple[str, ...] = ()
    no_map: str = ''
    unused: str = ''


@dataclass(frozen=True)
class GateSite:
    """A gate found in a model: the block holding it, its function and how its logits are produced."""
    path: str
    block: nn.Module
    function: str
    gating: Gating


@dataclass(frozen=True)
class Unflipped:
    """A block found but not flipped, and why."""
    path: str
    block: str
    reason: str


class GatedLightChannelAttn(LightChannelAttn):
    """timm's ``LightChannelAttn`` applying its ``gate`` attribute: timm's forward calls ``F.sigmoid`` directly.

    ``convert_gates`` gives a ``LightChannelAttn`` this class (same parameters and state dict) so its gate can be
    flipped; with a sigmoid gate it computes exactly what ``LightChannelAttn`` does.
    """

    def forward(self, x: Tensor) -> Tensor:
        x_pool = 0.5 * x.mean((2, 3), keepdim=True) + 0.5 * x.amax((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(x_pool))))


def _fixed(*logits: str) -> Callable[[nn.Module], Gating]:
    return lambda block: Gating(logits)


def _eca(block: EcaModule) -> Gating:
    return Gating(('conv',) if block.conv2 is None else ('conv2',))


def _gather_excite(block: GatherExcite) -> Gating:
    if not isinstance(block.mlp, nn.Identity):
        return Gating(('mlp',))
    if block.gather is not None:
        return Gating(('gather',))
    return Gating(no_map='its logits are the pooled input itself (use_mlp=False, extra_params=False), no layer')


def _global_context(block: GlobalContext) -> Gating:
    if block.mlp_scale is None:
        return Gating(unused='fuse_scale=False: the block applies no gate (only its additive fusion)')
    return Gating(('mlp_scale',))


def _efficient_local(block: EfficientLocalAttn) -> Gating:
    if not isinstance(block.act, nn.Identity):
        return Gating(no_map=f'its logits come out of act ({type(block.act).__name__}), which does not change sign '
                             f'with its input, so no weights negate them')
    if any(True for _ in block.norm_h.parameters()):
        return Gating(('norm_h', 'norm_w'))
    return Gating(('conv_h', 'conv_w'))


def _strip(block: StripAttn) -> Gating:
    if not block.use_conv:
        return Gating(no_map='its logits are the strip-pooled input itself (use_conv=False), no layer')
    return Gating(('conv_h', 'conv_w'))


#: The attention blocks whose gating is known, by exact type.
_RULES: dict[type, Callable[[nn.Module], Gating]] = {
    SEModule: _fixed('fc2'),
    EffectiveSEModule: _fixed('fc'),
    SqueezeExciteCl: _fixed('fc2'),
    EfficientNetSqueezeExcite: _fixed('conv_expand'),
    EcaModule: _eca,
    CecaModule: _fixed('conv'),
    ChannelAttn: _fixed('fc2'),
    LightChannelAttn: _fixed('fc2'),
    GatedLightChannelAttn: _fixed('fc2'),
    SpatialAttn: _fixed('conv'),
    LightSpatialAttn: _fixed('conv'),
    GatherExcite: _gather_excite,
    GlobalContext: _global_context,
    CoordAttn: _fixed('conv_h', 'conv_w'),
    SimpleCoordAttn: _fixed('fc_h', 'fc_w'),
    EfficientLocalAttn: _efficient_local,
    StripAttn: _strip,
}
#: Attention blocks recognised but not flippable, with the reason.
_UNFLIPPABLE: dict[type, str] = {
    SelectiveKernel: 'softmax over its kernel branches, not a gate of its own logit: no flip is defined',
    SplitAttn: 'rSoftMax over its radix splits (a sigmoid written into forward at radix 1): no gate module to flip',
    IgnoreSqueezeExcite: 'a timm-ignore block: its flip is chosen when it is built (its gate argument)',
    IgnoreCbam: 'a timm-ignore block: its flip is chosen when it is built (its gate argument)',
    IgnoreMmtm: 'a timm-ignore block: its flip is chosen when it is built (its gate argument)',
}
#: What :func:`find_gates` looks for, for error messages.
SEARCHED = (
    ', '.join(sorted({t.__name__ for t in _RULES if t is not GatedLightChannelAttn}))
    + ' (CbamModule and LightCbamModule through their channel and spatial parts), and any other module with a '
    'parameter-free sigmoid or hard-sigmoid `gate`')


def _function(block: nn.Module) -> GateFunction:
    if type(block) is LightChannelAttn:
        return 'sigmoid'  # its forward applies F.sigmoid, whatever its gate attribute holds
    return gate_function(block.gate)


def _generic_gate(block: nn.Module) -> bool:
    """An unknown module that looks built with a ``gate_layer``: a parameter-free ``gate`` of a gate function."""
    gate = getattr(block, 'gate', None)
    if not isinstance(gate, nn.Module) or any(True for _ in gate.parameters()):
        return False
    function = gate_function(gate)
    return not isinstance(function, NotFlippable) or function.startswith(('tanh', 'already'))


def find_gates(model: nn.Module) -> Iterator[GateSite | Unflipped]:
    """Every attention gate of ``model``, in module order: a :class:`GateSite` or an :class:`Unflipped` reason."""
    skip: list[str] = []
    for path, block in model.named_modules():
        if any(path.startswith(prefix) for prefix in skip):
            continue
        kind = type(block)
        if kind in _UNFLIPPABLE:
            skip.append(f'{path}.')
            yield Unflipped(path, kind.__name__, _UNFLIPPABLE[kind])
            continue
        rule = _RULES.get(kind)
        if rule is not None:
            gating = rule(block)
        elif _generic_gate(block):
            gating = Gating(no_map=f'{kind.__name__} is not a block whose logits layer is known')
        else:
            continue
        function = _function(block)
        if gating.unused:
            yield Unflipped(path, kind.__name__, gating.unused)
        elif isinstance(function, NotFlippable):
            yield Unflipped(path, kind.__name__, function)
        else:
            yield GateSite(path, block, function, gating)

