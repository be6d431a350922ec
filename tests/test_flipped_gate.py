"""The flip of a gate function other than the sigmoid (``FlippedGate``) against its equations."""
import pytest
import torch
from timm.layers.activations import HardSigmoid, hard_sigmoid
from torch import nn

from timm_ignore.layers import FlippedGate, IgnoreGate, flip_gate, resolve_gate_function

Z = torch.linspace(-8, 8, 321, dtype=torch.float64)  # hard sigmoid saturates at |z| = 3


def test_timm_hard_sigmoid_is_point_symmetric():
    """The premise of the flip: g(-z) = 1 - g(z), for torch's and timm's hard sigmoid (relu6(z + 3) / 6)."""
    for g in (nn.Hardsigmoid(), HardSigmoid(), lambda z: hard_sigmoid(z)):
        torch.testing.assert_close(g(-Z), 1 - g(Z), rtol=0, atol=1e-15)
    assert nn.Hardsigmoid()(Z).min() == 0 and nn.Hardsigmoid()(Z).max() == 1


@pytest.mark.parametrize('gate, alpha', [
    ('explicit', None), ('ign1', None), ('ign1', 0.8), ('ign1', 0.0), ('ign3', None)])
def test_hard_sigmoid_flips_match_equations(gate, alpha):
    g = torch.clamp((Z + 3) / 6, 0, 1)
    a = 1.0 if alpha is None else alpha
    expected = {'explicit': g, 'ign1': 1 - a * g, 'ign3': torch.clamp((-Z + 3) / 6, 0, 1)}[gate]
    torch.testing.assert_close(FlippedGate('hard_sigmoid', gate, alpha)(Z), expected, rtol=0, atol=1e-15)


def test_hard_sigmoid_explicit_is_bit_identical_to_timm_gates():
    z = torch.randn(4096) * 5
    assert torch.equal(FlippedGate('hard_sigmoid')(z), nn.Hardsigmoid()(z))
    assert torch.equal(FlippedGate('hard_sigmoid')(z), HardSigmoid()(z))


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_hard_sigmoid_ign3_equals_ign1_alpha1_bitwise(dtype):
    z = (torch.randn(4096) * 5).to(dtype)
    assert torch.equal(FlippedGate('hard_sigmoid', 'ign3')(z), FlippedGate('hard_sigmoid', 'ign1')(z))


@pytest.mark.parametrize('gate, alpha', [('explicit', None), ('ign1', 0.5), ('ign2', None), ('ign3', None)])
def test_sigmoid_flipped_gate_is_ignore_gate(gate, alpha):
    z = torch.randn(4096) * 10
    assert torch.equal(FlippedGate('sigmoid', gate, alpha)(z), IgnoreGate(gate, alpha)(z))
    assert torch.equal(flip_gate(z, 'sigmoid', gate, 1.0 if alpha is None else alpha), IgnoreGate(gate, alpha)(z))


def test_hard_sigmoid_gradient_is_the_flipped_slope():
    z = torch.tensor([-4.0, -1.0, 0.5, 2.0, 4.0], dtype=torch.float64, requires_grad=True)
    FlippedGate('hard_sigmoid', 'ign1', 0.6)(z).sum().backward()
    inside = (z.detach().abs() < 3).double()
    torch.testing.assert_close(z.grad, -0.6 * inside / 6)


@pytest.mark.parametrize('args, message', [
    (('hard_sigmoid', 'ign2'), 'ign2 .* is defined on the sigmoid only, not on hard_sigmoid'),
    (('tanh', 'ign3'), "Unknown gate function 'tanh'; the flip is defined on: sigmoid, hard_sigmoid"),
    (('hard_sigmoid', 'ign4'), "Unknown gate 'ign4'"),
    (('hard_sigmoid', 'ign3', 0.5), 'takes no alpha'),
])
def test_bad_flipped_gate_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        FlippedGate(*args)
    with pytest.raises(ValueError, match=message):
        resolve_gate_function(*args)


def test_flipped_gate_repr():
    assert repr(FlippedGate('hard_sigmoid', 'ign1', 0.8)) == 'FlippedGate(hard_sigmoid, ign1, alpha=0.8)'


def test_flipped_gate_scripts():
    gate = FlippedGate('hard_sigmoid', 'ign1', 0.5)
    z = torch.randn(64) * 4
    assert torch.equal(torch.jit.script(gate)(z), gate(z))
