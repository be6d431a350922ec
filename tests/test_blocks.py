"""SE, CBAM and MMTM blocks against the paper's equations written out literally (outputs and gradients)."""
import copy
import functools

import pytest
import torch
from timm.layers import SEModule, create_attn
from timm.layers.cbam import CbamModule
from timm.models.resnet import BasicBlock
from torch.nn import functional as F

from timm_ignore import IgnoreCbam, IgnoreMmtm, IgnoreSqueezeExcite
from timm_ignore.layers import IGN2_EPS
from timm_ignore.layers import cbam as cbam_module
from timm_ignore.layers import cbam_cpu
from timm_ignore.layers.cbam_cpu import SpatialConvFunction
from timm_ignore.layers.cpu_compiled import CpuCompiled

GATES = [('explicit', None), ('ign1', None), ('ign1', 0.8), ('ign1', 0.5), ('ign2', None), ('ign3', None)]


def flip(z: torch.Tensor, gate: str, alpha) -> torch.Tensor:
    """The paper's T, literally: Ign1/Ign2 on the sigmoid output, Ign3 on the logits."""
    s = torch.sigmoid(z)
    if gate == 'explicit':
        return s
    if gate == 'ign1':
        return 1 - (1.0 if alpha is None else alpha) * s
    if gate == 'ign2':
        return torch.sigmoid(1 / (s + IGN2_EPS))
    return torch.sigmoid(-z)


def se_reference(block: IgnoreSqueezeExcite, x: torch.Tensor, gate: str, alpha) -> torch.Tensor:
    squeezed = x.mean((2, 3))
    z = F.linear(F.relu(F.linear(squeezed, block.fc1.weight, block.fc1.bias)), block.fc2.weight, block.fc2.bias)
    return x * flip(z, gate, alpha).view(*z.shape, 1, 1)


def cbam_reference(block: IgnoreCbam, x: torch.Tensor, gate: str, alpha) -> torch.Tensor:
    def mlp(v):
        return F.linear(F.relu(F.linear(v, block.fc1.weight, block.fc1.bias)), block.fc2.weight, block.fc2.bias)

    z = mlp(F.adaptive_avg_pool2d(x, 1).flatten(1)) + mlp(F.adaptive_max_pool2d(x, 1).flatten(1))
    x = x * flip(z, gate, alpha)[:, :, None, None]
    maps = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True).values], 1)
    z = F.conv2d(maps, block.conv.weight, padding=block.conv.kernel_size[0] // 2)
    return x * flip(z, gate, alpha)


@pytest.fixture
def eager_cbam_path(monkeypatch):
    """Make CBAM's fused training path take its eager kernels on CPU too (the path other devices take)."""
    monkeypatch.setattr(cbam_module, 'CbamCpuFunction', cbam_module._CbamFunction)


@pytest.fixture
def cbam_path(request):
    """CBAM's fused path by name, for indirect parametrisation: 'cpu' (compiled loops) or 'eager' (the kernels other
    devices use)."""
    if request.param == 'eager':
        request.getfixturevalue('eager_cbam_path')
    return request.param


def _randomise(block: torch.nn.Module) -> None:
    """Give the block logits far from 0, so the flips are told apart."""
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.5)


def _check_against_reference(block, reference, shape, gate, alpha):
    torch.manual_seed(0)
    _randomise(block)
    block = block.double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    out = block(x)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *block.parameters()], grad_out)

    x_ref = x.detach().requires_grad_()
    expected = reference(block, x_ref, gate, alpha)
    expected_grads = torch.autograd.grad(expected, [x_ref, *block.parameters()], grad_out)
    torch.testing.assert_close(out, expected)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize('gate,alpha', GATES)
def test_se_matches_equation(gate, alpha):
    block = IgnoreSqueezeExcite(24, gate=gate, alpha=alpha)
    _check_against_reference(block, se_reference, (3, 24, 5, 7), gate, alpha)


@pytest.mark.parametrize('gate,alpha', GATES)
def test_cbam_matches_equation(gate, alpha):
    block = IgnoreCbam(24, gate=gate, alpha=alpha)
    _check_against_reference(block, cbam_reference, (3, 24, 9, 6), gate, alpha)


@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_cbam_max_gradient_with_ties(layout):
    """Tied maxima (e.g. after ReLU zeros): on CPU the fused path splits a tied maximum's gradient evenly between the
    tied elements, as autograd's amax (the plain path) does, element by element."""
    block = IgnoreCbam(16, gate='ign3')
    _randomise(block)
    block = block.double()
    x = torch.relu(torch.randn(2, 16, 6, 6, dtype=torch.float64)).round().contiguous(memory_format=layout)
    x[0] = 1.0  # every position and every channel of one image ties
    grad_out = torch.randn_like(x)
    _, grads = _grads(block, x, grad_out)
    block.fused_backward = False
    _, expected_grads = _grads(block, x, grad_out)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


def test_cbam_eager_fused_path_gives_a_tied_maximum_to_one_element(eager_cbam_path):
    """Off CPU the fused path routes a maximum's gradient by index: a tie sends it to one of the tied elements, as
    ``adaptive_max_pool2d`` and ``max(dim)`` in the literal reference do."""
    block = IgnoreCbam(16, gate='ign3')
    _randomise(block)
    block = block.double()
    x = torch.ones(2, 16, 6, 6, dtype=torch.float64, requires_grad=True)  # every position ties
    (g,) = torch.autograd.grad(block(x).sum(), x)
    x_ref = x.detach().requires_grad_()
    (g_ref,) = torch.autograd.grad(cbam_reference(block, x_ref, 'ign3', None).sum(), x_ref)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_reduction_and_parameter_count(cls):
    block = cls(64)
    assert block.fc1.out_features == 8 and block.fc1.bias is not None and block.fc2.bias is not None
    twins = [cls(64, gate=v, alpha=a) for v, a in GATES]
    counts = {sum(p.numel() for p in b.parameters()) for b in twins}
    assert len(counts) == 1, 'an ignore block must have exactly the parameters of its explicit twin'
    assert cls(64, rd_ratio=1 / 4).fc1.out_features == 16
    assert cls(64, rd_channels=5).fc1.out_features == 5


@pytest.mark.parametrize('kwargs', [
    dict(rd_ratio=1 / 16), dict(rd_ratio=0.3), dict(rd_ratio=1 / 8, rd_divisor=8), dict(rd_channels=12)])
@pytest.mark.parametrize('ours,timms', [(IgnoreSqueezeExcite, SEModule), (IgnoreCbam, CbamModule)])
def test_hidden_width_is_timms_for_timms_arguments(ours, timms, kwargs):
    """The blocks take timm's rd_* arguments and size the MLP exactly as timm's own module does."""
    kwargs = {'rd_divisor': 1, **kwargs}
    theirs = timms(40, **kwargs)
    theirs_fc1 = theirs.fc1 if timms is SEModule else theirs.channel.fc1
    assert ours(40, **kwargs).fc1.out_features == theirs_fc1.out_channels


def test_cbam_spatial_conv_is_paper_faithful():
    block = IgnoreCbam(32)
    assert block.conv.in_channels == 2 and block.conv.out_channels == 1
    assert block.conv.kernel_size == (7, 7) and block.conv.padding == (3, 3) and block.conv.bias is None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in block.modules())


def test_se_initialisation_is_the_authors():
    torch.manual_seed(0)
    block = IgnoreSqueezeExcite(512)
    assert block.fc1.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert block.fc2.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert not block.fc1.bias.any() and not block.fc2.bias.any()


def test_cbam_spatial_conv_is_he_normal():
    torch.manual_seed(0)
    stds = torch.stack([IgnoreCbam(8).conv.weight.std() for _ in range(200)])
    assert stds.mean().item() == pytest.approx((2 / 98) ** 0.5, rel=0.05)  # fan_in = 2 * 7 * 7


@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_factory_kwargs(cls):
    block = cls(16, device='meta', dtype=torch.bfloat16)
    assert all(p.device.type == 'meta' and p.dtype == torch.bfloat16 for p in block.parameters())


@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_plugs_into_timm_attn_hook(cls):
    block = create_attn(functools.partial(cls, gate='ign1', alpha=0.8), 32)
    assert isinstance(block, cls) and block.gate.name == 'ign1' and block.gate.alpha == 0.8


@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_bfloat16_forward_backward(cls):
    block = cls(32, gate='ign2').to(torch.bfloat16)
    x = torch.randn(2, 32, 8, 8, dtype=torch.bfloat16, requires_grad=True)
    out = block(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize('kwargs,error', [
    (dict(gate='ign5'), 'Unknown gate'),
    (dict(gate='ign2', alpha=0.5), 'takes no alpha'),
    (dict(rd_ratio=0), 'positive number'),
    (dict(rd_ratio='1/8'), 'positive number'),
    (dict(rd_channels=2.5), 'positive integer'),
    (dict(rd_divisor=0), 'positive integer'),
])
@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_bad_block_arguments(cls, kwargs, error):
    with pytest.raises(ValueError, match=error):
        cls(32, **kwargs)


def test_cbam_even_kernel_refused():
    with pytest.raises(ValueError, match='odd'):
        IgnoreCbam(32, spatial_kernel_size=6)


@pytest.mark.parametrize('gate,alpha', GATES)
def test_mmtm_matches_equation(gate, alpha):
    torch.manual_seed(0)
    block = IgnoreMmtm(12, 20, ratio=4, gate=gate, alpha=alpha).double()
    _randomise(block)
    video = torch.randn(2, 12, 3, 4, 4, dtype=torch.float64)  # (N, C, T, H, W)
    skeleton = torch.randn(2, 20, 7, dtype=torch.float64)  # (N, C, T)
    out_a, out_b = block(video, skeleton)
    assert block.fc_squeeze.out_features == int(2 * 32 / 4)
    joint = F.relu(block.fc_squeeze(torch.cat([video.mean((2, 3, 4)), skeleton.mean(2)], 1)))
    torch.testing.assert_close(out_a, video * flip(block.fc_a(joint), gate, alpha)[:, :, None, None, None])
    torch.testing.assert_close(out_b, skeleton * flip(block.fc_b(joint), gate, alpha)[:, :, None])


def test_mmtm_vectors_and_bad_ratio():
    block = IgnoreMmtm(8, 4)
    a, b = block(torch.randn(3, 8), torch.randn(3, 4))
    assert a.shape == (3, 8) and b.shape == (3, 4)
    with pytest.raises(ValueError, match='ratio'):
        IgnoreMmtm(8, 4, ratio=0)


def _grads(block, x, grad_out):
    x = x.detach().requires_grad_()
    out = block(x)
    grads = torch.autograd.grad(out, [x, *block.parameters()], grad_out)
    return out, grads


# 8 float32 channels fill less than a 512-bit register: CBAM's narrow channels_last path (dense per-position operands)
@pytest.mark.parametrize('channels', [32, 8])
@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('gate,alpha', [('explicit', None), ('ign1', 0.5), ('ign2', None), ('ign3', None)])
@pytest.mark.parametrize('cls,cbam_path', [(IgnoreSqueezeExcite, 'cpu'), (IgnoreCbam, 'cpu'), (IgnoreCbam, 'eager')],
                         indirect=['cbam_path'])
def test_fused_backward_matches_plain_autograd(cls, gate, alpha, memory_format, channels, cbam_path):
    torch.manual_seed(0)
    block = cls(channels, gate=gate, alpha=alpha, rd_channels=4)
    _randomise(block)
    x = torch.randn(4, channels, 10, 12).to(memory_format=memory_format)
    grad_out = torch.randn_like(x)
    out, grads = _grads(block, x, grad_out)
    block.fused_backward = False
    expected, expected_grads = _grads(block, x, grad_out)
    torch.testing.assert_close(out, expected)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('cls,cbam_path', [(IgnoreSqueezeExcite, 'cpu'), (IgnoreCbam, 'cpu'), (IgnoreCbam, 'eager')],
                         indirect=['cbam_path'])
def test_fused_backward_under_bfloat16_autocast(cls, cbam_path):
    torch.manual_seed(0)
    block = cls(32, gate='ign2')
    _randomise(block)
    x = torch.randn(2, 32, 8, 8).bfloat16()
    grad_out = torch.randn_like(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, grads = _grads(block, x, grad_out)
        block.fused_backward = False
        expected, expected_grads = _grads(block, x, grad_out)
    assert out.dtype == expected.dtype
    torch.testing.assert_close(out, expected)
    (gx, *gp), (ex, *ep) = grads, expected_grads
    assert gx.dtype == ex.dtype
    # bfloat16 maxima tie often: autograd splits a tied maximum's gradient, the eager fused path gives it to one element
    close = torch.isclose(gx.float(), ex.float(), rtol=0.05, atol=0.05)
    assert close.float().mean() > 0.995
    torch.testing.assert_close(gx.float().sum((2, 3)), ex.float().sum((2, 3)), rtol=0.05, atol=0.1)
    for g, e in zip(gp, ep):
        torch.testing.assert_close(g, e, rtol=0.05, atol=0.05)


def test_cbam_cpu_path_keeps_channels_last_and_equals_its_contiguous_result():
    """16 bfloat16 channels, channels_last (the CIFAR ResNet's first stage in the campaign's regime): the compiled CPU
    path returns channels_last output and input gradient, equal to the contiguous map's results to one bfloat16 ulp
    (its loops sum in another order per layout)."""
    torch.manual_seed(0)
    block = IgnoreCbam(16, gate='ign2', rd_channels=4)
    _randomise(block)
    x = torch.randn(4, 16, 8, 8).bfloat16()
    grad_out = torch.randn_like(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, grads = _grads(block, x.contiguous(memory_format=torch.channels_last),
                            grad_out.contiguous(memory_format=torch.channels_last))
        expected, expected_grads = _grads(block, x, grad_out)
    compiled = [v for v in vars(cbam_cpu).values() if isinstance(v, CpuCompiled)]
    assert len(compiled) == 9 and all(kernel._state == 'compiled' for kernel in compiled)  # no silent eager fallback
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert grads[0].is_contiguous(memory_format=torch.channels_last) and grads[0].dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, rtol=0.008, atol=1e-3)
    torch.testing.assert_close(grads[0], expected_grads[0], rtol=0.01, atol=0.01)
    for g, e in zip(grads[1:], expected_grads[1:]):
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-3)


def test_cbam_cpu_spatial_convolution_is_conv2d():
    """The CPU path's spatial convolution (reductions over window views) against ``conv2d``: values and both
    gradients in float64 (gradcheck), a non-square map and a 3x3 kernel included."""
    torch.manual_seed(0)
    for kernel, shape in ((7, (2, 2, 9, 6)), (3, (3, 2, 5, 5))):
        maps = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(1, 2, kernel, kernel, dtype=torch.float64, requires_grad=True)
        torch.testing.assert_close(SpatialConvFunction.apply(maps, weight), F.conv2d(maps, weight, padding=kernel // 2))
        assert torch.autograd.gradcheck(SpatialConvFunction.apply, (maps, weight))


@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_fused_backward_with_frozen_parameters(cls):
    block = cls(16)
    block.fc1.requires_grad_(False)
    if cls is IgnoreCbam:
        block.conv.requires_grad_(False)
    x = torch.randn(2, 16, 6, 6, requires_grad=True)
    block(x).sum().backward()
    assert block.fc1.weight.grad is None and block.fc2.weight.grad is not None and x.grad is not None
    assert cls is not IgnoreCbam or block.conv.weight.grad is None


@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_double_backward_needs_plain_path(cls):
    torch.manual_seed(0)
    block = cls(8).double()
    _randomise(block)
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64, requires_grad=True)  # tiny: gradgradcheck is O(numel^2)
    (g,) = torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()
    block.fused_backward = False
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny ops: a second thread only waits (up to 50x slower on a busy machine)
    try:
        assert torch.autograd.gradcheck(block, (x,)) and torch.autograd.gradgradcheck(block, (x,))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_inference_path_matches_training_path(cls):
    block = cls(16, gate='ign1', alpha=0.8)
    _randomise(block)
    x = torch.randn(2, 16, 7, 7)
    with torch.no_grad():
        expected = block(x)
    torch.testing.assert_close(block(x.requires_grad_()), expected)


@pytest.mark.parametrize('cls', [IgnoreSqueezeExcite, IgnoreCbam])
def test_ign3_is_explicit_with_the_last_layer_negated(cls):
    """sigmoid(-z) = sigmoid(z') with z' = -z: the README's note on why Ign3, Ign1(1) and explicit train alike."""
    torch.manual_seed(0)
    ign3, explicit = cls(16, gate='ign3'), cls(16)
    _randomise(ign3)
    explicit.load_state_dict(ign3.state_dict())
    with torch.no_grad():
        last_layers = [explicit.fc2.weight, explicit.fc2.bias] + ([explicit.conv.weight] if cls is IgnoreCbam else [])
        for p in last_layers:
            p.neg_()
    same_weights = cls(16)
    same_weights.load_state_dict(ign3.state_dict())
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(explicit(x), ign3(x))
    assert not torch.allclose(same_weights(x), ign3(x), atol=1e-3)  # the flip itself does change the function


@pytest.mark.slow
@pytest.mark.parametrize('cls', [IgnoreCbam])
def test_inductor_matches_eager(cls):
    """torch.compile (inductor, whole graph) of a block: outputs, input and parameter gradients, float32 and
    bfloat16 autocast (where amax's backward used to give NaN under inductor).

    CBAM holds every op of both blocks (mean, max, MLP, conv, the flip); one block keeps inductor's build short.
    Whole models are captured in ``test_models.py`` (AOT autograd, without code generation).
    """
    torch.manual_seed(0)
    block = cls(16, gate='ign2')
    _randomise(block)
    compiled = torch.compile(copy.deepcopy(block), backend='inductor', fullgraph=True)
    x = torch.randn(2, 16, 6, 6)
    grad_out = torch.randn_like(x)
    (out, grads), (expected, expected_grads) = _grads(compiled, x, grad_out), _grads(block, x, grad_out)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        (out, grads), (expected, expected_grads) = _grads(compiled, x, grad_out), _grads(block, x, grad_out)
    for g, e in zip((out, *grads), (expected, *expected_grads)):
        assert torch.isfinite(g).all()
        assert ((g.double() - e.double()).norm() / e.double().norm()).item() < 0.05


@pytest.mark.slow
def test_inductor_cbam_in_a_channels_last_residual_block_under_bfloat16():
    """The CIFAR ResNet's basic block with CBAM (BN -> CBAM -> residual add -> ReLU), compiled whole, channels_last,
    bfloat16 autocast: inductor fused the spatial maximum's gradient with the BN backward and gave non-finite input
    gradients while the spatial maximum was taken over the channel-major view of the map."""
    torch.manual_seed(0)
    block = BasicBlock(64, 64, attn_layer=IgnoreCbam).to(memory_format=torch.channels_last)
    _randomise(block.se)
    compiled = torch.compile(copy.deepcopy(block), backend='inductor', fullgraph=True)
    x = torch.randn(32, 64, 8, 8).relu().to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    grads = []
    for model in (compiled, block):
        x_in = x.clone().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            model(x_in).float().square().sum().backward()
        grads.append(x_in.grad.double())
    assert torch.isfinite(grads[0]).all()
    assert ((grads[0] - grads[1]).norm() / grads[1].norm()).item() < 0.05
