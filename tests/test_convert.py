"""``convert_gates`` on every attention block timm builds: the flip, the exact weight map, the report, the refusals."""
import copy
import functools

import pytest
import torch
from timm.layers import (
    CecaModule, ConvMlp, EcaModule, EffectiveSEModule, GatherExcite, GlobalContext, SEModule, SelectiveKernel,
)
from timm.layers.cbam import CbamModule, LightCbamModule
from timm.layers.coord_attn import CoordAttn, EfficientLocalAttn, SimpleCoordAttn, StripAttn
from timm.layers.squeeze_excite import SqueezeExciteCl
from timm.models.efficientnet import SqueezeExcite
from torch import nn

from timm_ignore import IgnoreSqueezeExcite
from timm_ignore.convert import NoAttentionError, convert_gates
from timm_ignore.layers import FlippedGate, IgnoreGate

C = 16


def _ge_with_mlp() -> GatherExcite:
    """GatherExcite with its default MLP; timm 1.0.31's constructor fails for it (``*dd`` passed positionally)."""
    block = GatherExcite(C, use_mlp=False)
    block.mlp = ConvMlp(C, 4)
    return block


def _ge_with_gather_params() -> GatherExcite:
    """GatherExcite(extra_params=True, extent=4, use_mlp=False) layout, built by hand for the same timm bug."""
    block = GatherExcite(C, use_mlp=False, extent=4)
    block.gather = nn.Sequential()
    for i in (1, 2):
        block.gather.add_module(f'conv{i}', nn.Conv2d(C, C, 3, stride=2, padding=1, groups=C, bias=False))
        block.gather.add_module(f'norm{i}', nn.BatchNorm2d(C))
        if i == 1:
            block.gather.add_module('act1', nn.ReLU())
    return block


class CustomGated(nn.Module):
    """A block timm does not know, built with a gate_layer."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(C, C, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.proj(x))


# name: (factory, [(gate path, block type, old gate, negated layers)], NHWC input)
BLOCKS = {
    'se': (lambda: SEModule(C), [('0', 'SEModule', 'sigmoid', ('fc2.weight', 'fc2.bias'))]),
    'se_bn_nobias': (lambda: SEModule(C, bias=False, norm_layer=nn.BatchNorm2d),
                     [('0', 'SEModule', 'sigmoid', ('fc2.weight',))]),
    'se_hard': (lambda: SEModule(C, gate_layer='hard_sigmoid'),
                [('0', 'SEModule', 'hard_sigmoid', ('fc2.weight', 'fc2.bias'))]),
    'ese': (lambda: EffectiveSEModule(C), [('0', 'EffectiveSEModule', 'hard_sigmoid', ('fc.weight', 'fc.bias'))]),
    'se_cl': (lambda: SqueezeExciteCl(C), [('0', 'SqueezeExciteCl', 'sigmoid', ('fc2.weight', 'fc2.bias'))]),
    'effnet_se': (lambda: SqueezeExcite(C),
                  [('0', 'SqueezeExcite', 'sigmoid', ('conv_expand.weight', 'conv_expand.bias'))]),
    'mbv3_se': (lambda: SqueezeExcite(C, gate_layer='hard_sigmoid', force_act_layer=nn.ReLU),
                [('0', 'SqueezeExcite', 'hard_sigmoid', ('conv_expand.weight', 'conv_expand.bias'))]),
    'eca': (lambda: EcaModule(C), [('0', 'EcaModule', 'sigmoid', ('conv.weight',))]),
    'eca_mlp': (lambda: EcaModule(C, use_mlp=True), [('0', 'EcaModule', 'sigmoid', ('conv2.weight', 'conv2.bias'))]),
    'ceca': (lambda: CecaModule(C), [('0', 'CecaModule', 'sigmoid', ('conv.weight',))]),
    'cbam': (lambda: CbamModule(C, rd_ratio=0.25), [
        ('0.channel', 'ChannelAttn', 'sigmoid', ('fc2.weight',)),
        ('0.spatial', 'SpatialAttn', 'sigmoid', ('conv.bn.weight', 'conv.bn.bias'))]),
    'cbam_hard': (lambda: CbamModule(C, rd_ratio=0.25, gate_layer='hard_sigmoid', mlp_bias=True), [
        ('0.channel', 'ChannelAttn', 'hard_sigmoid', ('fc2.weight', 'fc2.bias')),
        ('0.spatial', 'SpatialAttn', 'hard_sigmoid', ('conv.bn.weight', 'conv.bn.bias'))]),
    'lcbam': (lambda: LightCbamModule(C, rd_ratio=0.25), [
        ('0.channel', 'LightChannelAttn', 'sigmoid', ('fc2.weight',)),
        ('0.spatial', 'LightSpatialAttn', 'sigmoid', ('conv.bn.weight', 'conv.bn.bias'))]),
    'ge_mlp': (_ge_with_mlp, [('0', 'GatherExcite', 'sigmoid', ('mlp.fc2.weight', 'mlp.fc2.bias'))]),
    'ge_gather': (_ge_with_gather_params,
                  [('0', 'GatherExcite', 'sigmoid', ('gather.norm2.weight', 'gather.norm2.bias'))]),
    'gc': (lambda: GlobalContext(C),
           [('0', 'GlobalContext', 'sigmoid', ('mlp_scale.fc2.weight', 'mlp_scale.fc2.bias'))]),
    'gc_fuse_both': (lambda: GlobalContext(C, fuse_add=True, fuse_scale=True),
                     [('0', 'GlobalContext', 'sigmoid', ('mlp_scale.fc2.weight', 'mlp_scale.fc2.bias'))]),
    'coord': (lambda: CoordAttn(C), [('0', 'CoordAttn', 'sigmoid', ('conv_h.weight', 'conv_w.weight'))]),
    'coord_bias_hard': (lambda: CoordAttn(C, bias=True, gate_layer='hard_sigmoid'), [
        ('0', 'CoordAttn', 'hard_sigmoid', ('conv_h.weight', 'conv_h.bias', 'conv_w.weight', 'conv_w.bias'))]),
    'scoord': (lambda: SimpleCoordAttn(C), [
        ('0', 'SimpleCoordAttn', 'sigmoid', ('fc_h.weight', 'fc_h.bias', 'fc_w.weight', 'fc_w.bias'))]),
    'strip': (lambda: StripAttn(C), [('0', 'StripAttn', 'sigmoid', ('conv_h.weight', 'conv_w.weight'))]),
}
#: Blocks whose gate flips but whose logits no weights produce (no exact map): name -> (factory, reason fragment).
NO_MAP = {
    'ge_pool': (lambda: GatherExcite(C, use_mlp=False), 'pooled input itself'),
    'ge_pool_extent': (lambda: GatherExcite(C, use_mlp=False, extent=2), 'pooled input itself'),
    'ela': (lambda: EfficientLocalAttn(C), 'come out of act (SiLU)'),
    'strip_noconv': (lambda: StripAttn(C, use_conv=False), 'strip-pooled input itself'),
    'custom': (CustomGated, 'CustomGated is not a block whose logits layer is known'),
}


def _randomised(block: nn.Module) -> nn.Sequential:
    """The block in float64, every parameter and statistic random (timm's inits zero some layers), in a container."""
    torch.manual_seed(0)
    model = nn.Sequential(block).double()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if 'running_var' in name else torch.randn_like(tensor))
    return model.eval()


def _input(name: str) -> torch.Tensor:
    x = torch.randn(3, C, 8, 8, dtype=torch.float64)
    return x.permute(0, 2, 3, 1).contiguous() if name == 'se_cl' else x


def _gate_io(model: nn.Module, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Input and output of every replaced gate module in one forward."""
    seen = []
    hooks = [m.register_forward_hook(lambda _, args, out: seen.append((args[0], out)))
             for m in model.modules() if isinstance(m, (IgnoreGate, FlippedGate))]
    model(x)
    for h in hooks:
        h.remove()
    return seen


ALL = sorted(BLOCKS) + sorted(NO_MAP)


def _factory(name):
    return BLOCKS[name][0] if name in BLOCKS else NO_MAP[name][0]


@pytest.mark.parametrize('name', ALL)
@pytest.mark.parametrize('gate, alpha', [('ign3', None), ('ign1', 0.7), ('explicit', None)])
def test_every_gate_is_replaced_by_its_flip(name, gate, alpha):
    model = _randomised(_factory(name)())
    x = _input(name)
    explicit = model(x)
    report = convert_gates(model, gate, alpha)
    functions = {c.path: c.old_gate for c in report.flipped}
    assert report.flipped and not report.not_flipped
    pairs = _gate_io(model, x)
    assert pairs, 'the new gates are applied in forward'
    for z, mask in pairs:  # each gate maps its logits z with the flip of its own function g
        g = torch.sigmoid if set(functions.values()) == {'sigmoid'} else nn.functional.hardsigmoid
        a = 1.0 if alpha is None else alpha
        expected = {'ign3': g(-z), 'ign1': 1 - a * g(z), 'explicit': g(z)}[gate]
        torch.testing.assert_close(mask, expected, rtol=1e-12, atol=1e-12)
    if gate == 'explicit':
        torch.testing.assert_close(model(x), explicit, rtol=0, atol=0)
    else:
        assert not torch.allclose(model(x), explicit), 'a flip without weight map changes the function'


@pytest.mark.parametrize('name', sorted(BLOCKS))
@pytest.mark.parametrize('gate', ['ign3', 'ign1'])
def test_weight_map_gives_the_explicit_outputs(name, gate):
    model = _randomised(BLOCKS[name][0]())
    x = _input(name)
    explicit = model(x)
    before = copy.deepcopy(model.state_dict())
    report = convert_gates(model, gate, map_weights=True)
    torch.testing.assert_close(model(x), explicit, rtol=1e-12, atol=1e-12)
    expected = [(path, block, old, tuple(f'{path}.{p}' for p in negated))
                for path, block, old, negated in BLOCKS[name][1]]
    assert [(c.path, c.block, c.old_gate, c.negated) for c in report.flipped] == expected
    negated = {p for c in report.flipped for p in c.negated}
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():  # exactly the reported parameters changed, by sign
        assert torch.equal(after[key], -value if key in negated else value), key


@pytest.mark.parametrize('name', ['cbam', 'lcbam', 'se_bn_nobias', 'ge_gather'])
def test_weight_map_holds_in_training_mode(name):
    """BatchNorm on the logits path normalises with batch statistics; negating its affine parameters still maps."""
    model = _randomised(BLOCKS[name][0]()).train()
    explicit = copy.deepcopy(model)
    convert_gates(model, 'ign3', map_weights=True)
    x = _input(name)
    torch.testing.assert_close(model(x), explicit(x), rtol=1e-12, atol=1e-12)
    for (k, a), b in zip(model.state_dict().items(), explicit.state_dict().values()):
        if 'running' in k:
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize('name', sorted(NO_MAP))
def test_blocks_without_weight_map_are_left_explicit_and_reported(name):
    factory, reason = NO_MAP[name]
    model = nn.Sequential(_randomised(factory()), _randomised(SEModule(C)))
    x = _input(name)
    explicit = model(x)
    report = convert_gates(model, 'ign3', map_weights=True)
    assert [c.path for c in report.flipped] == ['1.0']
    (unflipped,) = report.not_flipped
    assert unflipped.path == '0.0' and 'no exact weight map' in unflipped.reason and reason in unflipped.reason
    torch.testing.assert_close(model(x), explicit, rtol=1e-12, atol=1e-12)
    assert 'not flipped: 0.0' in str(report)


def test_report_of_a_model():
    model = nn.Sequential(SEModule(C), nn.ReLU(), CbamModule(C, rd_ratio=0.25), SEModule(C, gate_layer='tanh'))
    report = convert_gates(model, 'ign1', 0.5)
    assert [(c.path, c.block, c.old_gate, c.new_gate, c.negated) for c in report.flipped] == [
        ('0', 'SEModule', 'sigmoid', 'ign1 (alpha=0.5)', ()),
        ('2.channel', 'ChannelAttn', 'sigmoid', 'ign1 (alpha=0.5)', ()),
        ('2.spatial', 'SpatialAttn', 'sigmoid', 'ign1 (alpha=0.5)', ())]
    (tanh,) = report.not_flipped
    assert (tanh.path, tanh.block) == ('3', 'SEModule') and 'not point-symmetric about (0, 1/2)' in tanh.reason
    assert type(model[3].gate).__name__ == 'Tanh'  # left as it was
    assert (report.gate, report.alpha, report.map_weights) == ('ign1', 0.5, False)
    text = str(report)
    assert text.startswith('3 gates flipped to ign1 (alpha=0.5), 1 blocks not flipped:')
    assert '  2.spatial (SpatialAttn): sigmoid -> ign1 (alpha=0.5)' in text


def test_hard_sigmoid_gets_its_own_flip():
    model = nn.Sequential(SqueezeExcite(C, gate_layer='hard_sigmoid'))
    report = convert_gates(model)
    assert report.flipped[0].new_gate == 'ign3 of hard_sigmoid'
    assert isinstance(model[0].gate, FlippedGate) and (model[0].gate.function, model[0].gate.name) == (
        'hard_sigmoid', 'ign3')


def test_light_channel_attention_keeps_its_state_dict():
    model = _randomised(LightCbamModule(C, rd_ratio=0.25))
    keys = list(model.state_dict())
    convert_gates(model, 'ign3')
    assert list(model.state_dict()) == keys
    assert isinstance(model[0].channel.gate, IgnoreGate)


@pytest.mark.parametrize('gate, alpha', [('ign1', 0.8), ('ign1', 0.0), ('ign2', None)])
def test_map_weights_refused_without_an_exact_map(gate, alpha):
    model = nn.Sequential(SEModule(C))
    with pytest.raises(ValueError, match='map_weights=True needs a flip that the explicit weights map to exactly'):
        convert_gates(model, gate, alpha, map_weights=True)
    assert isinstance(model[0].gate, nn.Module) and not isinstance(model[0].gate, IgnoreGate)


def test_ign2_refused_on_a_hard_sigmoid_before_any_change():
    model = nn.Sequential(SEModule(C), SqueezeExcite(C, gate_layer='hard_sigmoid'))
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match='ign2 .* is defined on the sigmoid only, not on hard_sigmoid'):
        convert_gates(model, 'ign2')
    assert not isinstance(model[0].gate, IgnoreGate), 'nothing changed: the sigmoid block is not flipped either'
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    convert_gates(model[:1], 'ign2')  # on the sigmoid alone it is the paper's Ign2
    assert isinstance(model[0].gate, IgnoreGate)


@pytest.mark.parametrize('model, found', [
    (nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), ''),
    (nn.Sequential(SelectiveKernel(C, C)), 'found 0 (SelectiveKernel): softmax over its kernel branches'),
    (nn.Sequential(GlobalContext(C, fuse_add=True, fuse_scale=False)), 'fuse_scale=False'),
    (nn.Sequential(IgnoreSqueezeExcite(C, gate='ign3')), 'a timm-ignore block'),
])
def test_model_without_flippable_attention_raises_naming_the_search(model, found):
    with pytest.raises(NoAttentionError, match='Sequential has no attention gate to flip; searched for ') as raised:
        convert_gates(model)
    for name in ('SEModule', 'SqueezeExcite', 'EcaModule', 'CecaModule', 'CbamModule', 'LightCbamModule',
                 'GatherExcite', 'GlobalContext', 'CoordAttn', 'EffectiveSEModule', 'any other module'):
        assert name in str(raised.value)
    assert found in str(raised.value)


def test_converted_model_is_not_converted_twice():
    model = nn.Sequential(SEModule(C))
    convert_gates(model)
    with pytest.raises(NoAttentionError, match=r'found 0 \(SEModule\): already flipped \(ign3\)'):
        convert_gates(model)


def test_timm_gate_layer_with_explicit_ignore_gate_is_flipped():
    model = nn.Sequential(SEModule(C, gate_layer=functools.partial(IgnoreGate, 'explicit')))
    assert convert_gates(model).flipped[0].old_gate == 'sigmoid'


@pytest.mark.parametrize('kwargs, message', [
    (dict(gate='ign4'), "Unknown gate 'ign4'"),
    (dict(gate='ign3', alpha=0.5), 'takes no alpha'),
    (dict(gate='ign1', alpha=1.5), r'alpha must be in \[0, 1\]'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        convert_gates(nn.Sequential(SEModule(C)), **kwargs)


def test_converted_block_scripts_and_trains():
    model = _randomised(CbamModule(C, rd_ratio=0.25, gate_layer='hard_sigmoid')).float().train()
    convert_gates(model, 'ign1', 0.5)
    x = torch.randn(2, C, 8, 8)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))
    model(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
