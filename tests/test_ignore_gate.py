"""The flips against the paper's equations, their numerics, and their argument checking."""
import functools

import pytest
import torch
from timm.layers import SEModule

from timm_ignore import IgnoreGate, ignore_gate
from timm_ignore.layers import IGN2_EPS

Z = torch.linspace(-30, 30, 241, dtype=torch.float64)


def reference_mask(z: torch.Tensor, gate: str, alpha: float = 1.0) -> torch.Tensor:
    """The equations of the paper's Section 3, written literally, in float64."""
    s = torch.sigmoid(z.double())
    if gate == 'explicit':
        return s
    if gate == 'ign1':
        return 1 - alpha * s
    if gate == 'ign2':
        return torch.sigmoid(1 / (s + IGN2_EPS))
    return torch.sigmoid(-z.double())


@pytest.mark.parametrize('gate,alpha', [
    ('explicit', None), ('ign1', None), ('ign1', 0.8), ('ign1', 0.5), ('ign1', 0.0), ('ign2', None), ('ign3', None)])
def test_gate_matches_equation(gate, alpha):
    module = IgnoreGate(gate, alpha)
    expected = reference_mask(Z, gate, 1.0 if alpha is None else alpha)
    torch.testing.assert_close(module(Z), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(module(Z.float()), expected.float(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('gate,alpha,low,high', [
    ('explicit', None, 0.0, 1.0), ('ign1', 0.8, 0.2, 1.0), ('ign1', 0.5, 0.5, 1.0), ('ign2', None, 0.7310583, 1.0),
    ('ign3', None, 0.0, 1.0)])
def test_gate_output_range(gate, alpha, low, high):
    mask = IgnoreGate(gate, alpha)(Z)
    assert mask.min() >= low - 1e-7 and mask.max() <= high
    assert mask.max() - mask.min() > 0.1 * (high - low)  # it actually spans the range, it is not constant


def test_ign1_alpha_zero_is_identity_mask():
    assert torch.equal(IgnoreGate('ign1', 0.0)(Z.float()), torch.ones_like(Z.float()))


def test_ignore_masks_are_high_where_explicit_is_low():
    explicit = IgnoreGate('explicit')(Z)
    for gate in ('ign1', 'ign2', 'ign3'):
        mask = IgnoreGate(gate)(Z)
        assert (torch.diff(mask) <= 0).all(), f'{gate} must decrease as the logit grows'
        assert (torch.diff(explicit) >= 0).all()


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_ign3_and_ign1_alpha1_are_bit_identical(dtype):
    z = (torch.randn(4096, dtype=torch.float32) * 20).to(dtype)
    assert torch.equal(IgnoreGate('ign3')(z), IgnoreGate('ign1')(z))
    assert torch.equal(IgnoreGate('ign3')(z), IgnoreGate('ign1', 1.0)(z))


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_ign2_finite_forward_and_backward(dtype):
    # every finite z of the dtype's range, including where sigmoid underflows to 0
    finfo = torch.finfo(dtype)
    z = torch.cat([torch.linspace(-60, 60, 2001), torch.tensor([finfo.min, -1e4, -5.6, -5.5, 1e4, finfo.max])])
    z = z.to(dtype).requires_grad_()
    mask = ignore_gate(z, 'ign2')
    assert mask.dtype == dtype
    assert torch.isfinite(mask).all()
    mask.sum().backward()
    assert torch.isfinite(z.grad).all(), f'non-finite ign2 gradient at z={z[~torch.isfinite(z.grad)][:5].tolist()}'


def test_ign2_finite_under_float16_autocast():
    if not torch.amp.is_autocast_available('cpu'):
        pytest.skip('no CPU autocast')
    z = torch.linspace(-40, 40, 801, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.float16):
        mask = ignore_gate(z.half(), 'ign2')
    mask.float().sum().backward()
    assert torch.isfinite(mask).all() and torch.isfinite(z.grad).all()


def test_naive_float16_ign2_is_not_finite():
    """Documents why the float32 computation exists: the literal formula breaks in float16."""
    z = torch.tensor([-8.0], dtype=torch.float16, requires_grad=True)
    naive = torch.sigmoid(1 / (torch.sigmoid(z) + IGN2_EPS))
    naive.sum().backward()
    assert not torch.isfinite(z.grad).all()


def test_gate_gradients_match_equation():
    z = torch.linspace(-8, 8, 33, dtype=torch.float64, requires_grad=True)
    for gate, alpha in [('explicit', 1.0), ('ign1', 0.8), ('ign2', 1.0), ('ign3', 1.0)]:
        (grad,) = torch.autograd.grad(ignore_gate(z, gate, alpha).sum(), z)
        zr = z.detach().requires_grad_()
        (expected,) = torch.autograd.grad(reference_mask(zr, gate, alpha).sum(), zr)
        torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize('kwargs,message', [
    (dict(gate='ign4'), 'allowed: explicit, ign1, ign2, ign3'),
    (dict(gate='IGN1'), 'allowed'),
    (dict(gate='ign1', alpha=1.5), r'\[0, 1\]'),
    (dict(gate='ign1', alpha=-0.1), r'\[0, 1\]'),
    (dict(gate='ign1', alpha=float('nan')), r'\[0, 1\]'),
    (dict(gate='ign1', alpha='0.8'), 'number'),
    (dict(gate='ign3', alpha=0.8), 'takes no alpha'),
    (dict(gate='ign2', alpha=1.0), 'takes no alpha'),
    (dict(gate='explicit', alpha=0.5), 'only ign1'),
])
def test_bad_gate_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IgnoreGate(**kwargs)


def test_usable_as_timm_gate_layer():
    torch.manual_seed(0)
    se = SEModule(32, gate_layer=functools.partial(IgnoreGate, 'ign3')).eval()
    x = torch.randn(2, 32, 5, 5)
    z = se.fc2(se.act(se.fc1(x.mean((2, 3), keepdim=True))))
    torch.testing.assert_close(se(x), x * torch.sigmoid(-z))


def test_gate_scripts():
    scripted = torch.jit.script(IgnoreGate('ign1', 0.8))
    torch.testing.assert_close(scripted(Z.float()), IgnoreGate('ign1', 0.8)(Z.float()))
