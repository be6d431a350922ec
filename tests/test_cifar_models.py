"""The CIFAR families as the authors' Keras code builds them: initialisation, BatchNorm settings, conv biases."""
import copy
import math

import pytest
import timm
import torch
from torch import nn

from timm_ignore import IgnoreCbam, IgnoreSqueezeExcite
from timm_ignore.models._keras_init import TRUNCATED_STD_RATIO, keras_he_normal_

CIFAR_FAMILIES = {'cifar_resnet50': 1e-3, 'densenet': 1.1e-5}  # family: the authors' BatchNorm epsilon


def he_std(weight: torch.Tensor) -> float:
    """The std Keras' ``he_normal`` gives the kept values: sqrt(2 / fan_in)."""
    return math.sqrt(2.0 / weight[0].numel())


def test_keras_he_normal_is_a_normal_cut_at_two_of_its_stds():
    torch.manual_seed(0)
    weight = keras_he_normal_(torch.empty(1000, 2000, dtype=torch.float64))
    underlying = he_std(weight) / TRUNCATED_STD_RATIO
    assert weight.std().item() == pytest.approx(he_std(weight), rel=0.005)
    assert weight.mean().abs().item() < 0.005 * he_std(weight)
    assert weight.abs().max().item() <= 2 * underlying
    assert weight.abs().max().item() > 1.99 * underlying  # cut at two stds of the underlying normal, not sooner
    inside_one_std = (weight.abs() < underlying).double().mean().item()
    assert inside_one_std == pytest.approx(0.6827 / 0.9545, abs=0.005)  # N(0, 1) mass in [-1, 1] within [-2, 2]


@pytest.mark.parametrize('name', ['cifar_resnet50_cbam', 'densenet_cbam'])
def test_every_convolution_is_keras_he_normal(name):
    torch.manual_seed(0)
    model = timm.create_model(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(isinstance(m, IgnoreCbam) for m in model.modules()) > 0
    normalised = []
    for conv in convs:
        underlying = he_std(conv.weight) / TRUNCATED_STD_RATIO
        assert conv.weight.abs().max().item() <= 2 * underlying + 1e-7
        assert conv.bias is None or not conv.bias.any()
        normalised.append(conv.weight.detach().flatten() / he_std(conv.weight))
    # the CBAM spatial convolutions too (kaiming_normal_ would exceed the cut somewhere among them)
    spatial = [m.conv.weight for m in model.modules() if isinstance(m, IgnoreCbam)]
    assert all(w.abs().max() <= 2 * he_std(w) / TRUNCATED_STD_RATIO + 1e-7 for w in spatial)
    pooled = torch.cat(normalised)
    assert pooled.std().item() == pytest.approx(1.0, rel=0.02)
    big = max(convs, key=lambda c: c.weight.numel()).weight
    assert big.std().item() == pytest.approx(he_std(big), rel=0.03)


def test_attention_mlps_keep_the_authors_normal_init():
    torch.manual_seed(0)
    for name in ('cifar_resnet50_se', 'densenet_cbam'):
        blocks = [m for m in timm.create_model(name).modules() if isinstance(m, (IgnoreSqueezeExcite, IgnoreCbam))]
        weights = torch.cat([fc.weight.flatten() for b in blocks for fc in (b.fc1, b.fc2)])
        assert weights.std().item() == pytest.approx(0.01, rel=0.05)
        assert not any(fc.bias.any() for b in blocks for fc in (b.fc1, b.fc2))


def test_classifier_init_per_family():
    torch.manual_seed(0)
    resnet_fc = timm.create_model('cifar_resnet50', num_classes=1000).fc
    assert resnet_fc.weight.std().item() == pytest.approx(he_std(resnet_fc.weight), rel=0.02)
    assert resnet_fc.weight.abs().max().item() <= 2 * he_std(resnet_fc.weight) / TRUNCATED_STD_RATIO
    assert not resnet_fc.bias.any()
    densenet = timm.create_model('densenet', num_classes=1000)
    limit = math.sqrt(6.0 / (456 + 1000))  # glorot_uniform
    assert densenet.fc.weight.abs().max().item() <= limit
    assert densenet.fc.weight.abs().max().item() > 0.99 * limit
    assert densenet.fc.weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    assert not densenet.fc.bias.any()
    densenet.reset_classifier(10)  # a new classifier gets the family's init too
    assert densenet.fc.weight.abs().max().item() <= math.sqrt(6.0 / (456 + 10)) and not densenet.fc.bias.any()


@pytest.mark.parametrize('family', list(CIFAR_FAMILIES))
def test_every_batchnorm_has_keras_momentum_and_epsilon(family):
    model = timm.create_model(f'{family}_cbam', device='meta')
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == {'cifar_resnet50': 49, 'densenet': 3 * 2 * 12 + 2 + 1}[family]
    for norm in norms:
        assert norm.momentum == 0.01 and norm.eps == CIFAR_FAMILIES[family]


def _biased_twin(model: nn.Module) -> tuple[nn.Module, list[tuple[nn.Conv2d, nn.BatchNorm2d]]]:
    """A copy whose convolutions directly followed by BN carry a random bias, as in the authors' Keras code."""
    twin = copy.deepcopy(model)
    pairs = [(twin, 'conv1', twin.bn1)]
    for stage in (twin.layer1, twin.layer2, twin.layer3):
        for block in stage:
            pairs += [(block, 'conv1', block.bn1), (block, 'conv2', block.bn2)]
    biased = []
    for parent, name, norm in pairs:
        conv = getattr(parent, name)
        with_bias = nn.Conv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True,
            dtype=conv.weight.dtype)
        with torch.no_grad():
            with_bias.weight.copy_(conv.weight)
            nn.init.normal_(with_bias.bias)
        setattr(parent, name, with_bias)
        biased.append((with_bias, norm))
    return twin, biased


def test_conv_bias_before_batchnorm_changes_nothing():
    """Why the CIFAR ResNet leaves out the authors' biases before BN: same function, same gradients, zero bias grad."""
    torch.manual_seed(0)
    model = timm.create_model('cifar_resnet50_se_ign3', depth=14, num_classes=10).double()
    twin, biased = _biased_twin(model)
    x, y = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (8,))
    outputs = []
    for m in (model, twin):
        out = m(x)
        nn.functional.cross_entropy(out, y).backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-10, atol=1e-12)
    twin_params = dict(twin.named_parameters())
    for n, p in model.named_parameters():
        torch.testing.assert_close(twin_params[n].grad, p.grad, rtol=1e-8, atol=1e-12, msg=n)
    weight_grad_scale = min(conv.weight.grad.abs().max().item() for conv, _ in biased)
    assert max(conv.bias.grad.abs().max().item() for conv, _ in biased) < 1e-10 * weight_grad_scale
    model_buffers = dict(model.named_buffers())
    for n, b in twin.named_buffers():
        if not n.endswith('running_mean'):
            torch.testing.assert_close(b, model_buffers[n], rtol=1e-10, atol=1e-12, msg=n)
    # the running mean absorbs the bias (0.01 of it after one step from zero) ...
    norm_names = {norm: n for n, norm in twin.named_modules()}
    for conv, norm in biased:
        expected = model_buffers[f'{norm_names[norm]}.running_mean'] + 0.01 * conv.bias.detach()
        torch.testing.assert_close(norm.running_mean, expected, rtol=1e-10, atol=1e-12)
    # ... and shifted by the whole bias, eval mode is the same function too
    model.eval(), twin.eval()
    with torch.no_grad():
        for conv, norm in biased:
            norm.running_mean += 0.99 * conv.bias
        torch.testing.assert_close(twin(x), model(x), rtol=1e-10, atol=1e-12)


def _fused_and_layerwise(name: str, **kwargs) -> tuple[nn.Module, nn.Module]:
    """A DenseNet and its copy running the layer-by-layer concatenation; BN affines random so none is trivial."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(), m.bias.normal_()
    layerwise = copy.deepcopy(model)
    for stage in layerwise.stages:
        stage.fused_backward = False
    return model, layerwise


@pytest.mark.parametrize('name, memory_format', [
    ('densenet', torch.contiguous_format), ('densenet', torch.channels_last),
    ('densenet_cbam_ign3', torch.contiguous_format)])
def test_fused_dense_blocks_are_the_layerwise_densenet(name, memory_format):
    """Both layouts: the fused block moves channels_last maps through 2-D transposes, contiguous ones through views."""
    model, layerwise = _fused_and_layerwise(name, depth=13)
    model, layerwise = (m.double().to(memory_format=memory_format) for m in (model, layerwise))
    taken = []
    model.stages[1].attn.register_forward_hook(lambda m, i, o: taken.append(type(i[0].grad_fn).__name__))
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (6,))
    results = []
    for m in (model, layerwise):
        x_in = x.clone().requires_grad_()
        out = m(x_in)
        nn.functional.cross_entropy(out, y).backward()
        results.append((out, x_in.grad))
    assert taken == ['DenseBlockFunctionBackward']  # the fused block ran
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-10, atol=1e-16)
    reference = dict(layerwise.named_parameters())
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, reference[n].grad, rtol=1e-10, atol=1e-14, msg=n)
    reference_buffers = dict(layerwise.named_buffers())
    assert model.state_dict().keys() == layerwise.state_dict().keys()
    for n, b in model.named_buffers():
        torch.testing.assert_close(b, reference_buffers[n], rtol=1e-12, atol=1e-14, msg=n)
    model.eval(), layerwise.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), layerwise(x), rtol=1e-12, atol=1e-12)


def test_fused_dense_blocks_with_frozen_parameters_and_cumulative_running_stats():
    model, layerwise = _fused_and_layerwise('densenet', depth=10)
    for m in (model, layerwise):
        m.double()
        m.stages[0].layers[0].norm1.weight.requires_grad_(False)
        m.stages[2].layers[1].conv2.weight.requires_grad_(False)
        for norm in m.modules():
            if isinstance(norm, nn.BatchNorm2d):
                norm.momentum = None  # cumulative average
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    for _ in range(2):
        for m in (model, layerwise):
            m(x).square().sum().backward()
    assert model.stages[0].layers[0].norm1.weight.grad is None
    reference = dict(layerwise.named_parameters())
    for n, p in model.named_parameters():
        if p.requires_grad:  # the squared loss makes large gradients: tolerance relative to each tensor's scale
            scale = reference[n].grad.abs().max().item()
            torch.testing.assert_close(p.grad, reference[n].grad, rtol=1e-10, atol=1e-12 * scale, msg=n)
    reference_buffers = dict(layerwise.named_buffers())
    for n, b in model.named_buffers():
        torch.testing.assert_close(b, reference_buffers[n], rtol=1e-12, atol=1e-14, msg=n)


def test_fused_dense_blocks_under_bfloat16_autocast_and_channels_last():
    """bf16 rounds differently in the two forms: each is held to the float32 result, the fused one as close as the
    layer-by-layer one."""
    model, layerwise = _fused_and_layerwise('densenet', depth=10)
    exact = copy.deepcopy(layerwise)
    x = torch.randn(8, 3, 32, 32).to(memory_format=torch.channels_last)
    outputs = []
    for m in (model, layerwise, exact):
        m.to(memory_format=torch.channels_last)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=m is not exact):
            out = m(x)
        out.float().square().mean().backward()
        outputs.append(out.float())
    torch.testing.assert_close(outputs[0], outputs[2], rtol=0.05, atol=0.05)
    layerwise_grads, exact_grads = dict(layerwise.named_parameters()), dict(exact.named_parameters())
    for n, p in model.named_parameters():
        assert p.grad.dtype == p.dtype and torch.isfinite(p.grad).all(), n
        fused_cosine, layerwise_cosine = (
            nn.functional.cosine_similarity(g.flatten(), exact_grads[n].grad.flatten(), dim=0).item()
            for g in (p.grad, layerwise_grads[n].grad))
        assert fused_cosine > 0.9 and fused_cosine > layerwise_cosine - 0.05, n


@pytest.mark.parametrize('family', ['cifar_resnet50_se', 'cifar_resnet50_cbam', 'densenet_se', 'densenet_cbam'])
def test_ign3_and_ign1_train_bit_for_bit_alike(family):
    """``sigmoid(-z) == 1 - sigmoid(z)``: with one seed, Ign3 and Ign1 (alpha 1) are one training run, in the zoo's
    regime (bf16 autocast, channels_last, the fused CPU paths, SGD with weight decay), so their zoo rows agree to the
    last digit. Ign1 with alpha 0.8 is a different function and must not agree."""
    torch.manual_seed(0)
    images = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([0, 1, 2, 3])

    def trained(name: str) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=10).to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        for _ in range(2):
            with torch.autocast('cpu', dtype=torch.bfloat16):
                loss = nn.functional.cross_entropy(model(images).float(), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.state_dict()

    ign3, ign1 = trained(f'{family}_ign3'), trained(f'{family}_ign1')
    assert ign3.keys() == ign1.keys()
    assert all(torch.equal(ign3[k], ign1[k]) for k in ign3)
    ign1_a08 = trained(f'{family}_ign1_a08')
    assert not all(torch.equal(ign3[k], ign1_a08[k]) for k in ign3)
