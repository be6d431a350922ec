"""``LayoutKeepingPool2d``: timm's pooling, values and gradients, with the average's gradient as a broadcast view."""
import pytest
import timm
import torch
from timm.layers import SelectAdaptivePool2d

from timm_ignore.layers.global_pool import LayoutKeepingPool2d, create_pool_and_classifier

POOL_TYPES = ['avg', 'fast', 'max', 'avgmax', 'catavgmax', '']


def _map(dtype: torch.dtype, memory_format: torch.memory_format) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(4, 24, 5, 7, dtype=dtype).contiguous(memory_format=memory_format)


def _output_and_grads(pool: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pool's output, the gradient it hands back, and the gradient of the ReLU in front of it."""
    x = x.detach().requires_grad_()
    relu = x.relu()
    handed_back = []
    relu.register_hook(handed_back.append)
    y = pool(relu)
    y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
    return y, handed_back[0], x.grad


@pytest.mark.parametrize('memory_format', [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('pool_type', POOL_TYPES)
def test_values_and_gradients_are_timms(pool_type, dtype, memory_format):
    x = _map(dtype, memory_format)
    flatten = bool(pool_type)
    ours = _output_and_grads(LayoutKeepingPool2d(pool_type=pool_type, flatten=flatten), x)
    timms = _output_and_grads(SelectAdaptivePool2d(pool_type=pool_type, flatten=flatten), x)
    for a, b in zip(ours, timms):
        assert a.shape == b.shape
        assert torch.equal(a, b)


@pytest.mark.parametrize('pool_type', ['avg', 'fast'])
def test_average_gradient_is_a_broadcast_view_and_the_relu_gradient_keeps_channels_last(pool_type):
    x = _map(torch.bfloat16, torch.channels_last)
    _, handed_back, grad_x = _output_and_grads(LayoutKeepingPool2d(pool_type=pool_type, flatten=True), x)
    assert handed_back.stride()[2:] == (0, 0)
    assert grad_x.is_contiguous(memory_format=torch.channels_last)
    _, timms_handed_back, _ = _output_and_grads(SelectAdaptivePool2d(pool_type=pool_type, flatten=True), x)
    assert timms_handed_back.is_contiguous()  # what the view replaces: a dense NCHW tensor


def test_other_settings_take_timms_path():
    x = _map(torch.float32, torch.channels_last).requires_grad_()
    for pool in (LayoutKeepingPool2d(pool_type='max', flatten=True), LayoutKeepingPool2d(pool_type='avg')):
        assert not pool.mean_over_map
    with torch.no_grad():  # inference: timm's module, same values
        assert torch.equal(LayoutKeepingPool2d(pool_type='avg', flatten=True)(x), x.mean((2, 3)))


def test_gradient_of_gradient():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    pool = LayoutKeepingPool2d(pool_type='avg', flatten=True)
    assert torch.autograd.gradcheck(pool, (x,))
    assert torch.autograd.gradgradcheck(lambda t: pool(t * t), (x,))


def test_scripted_module_runs_timms_path():
    pool = torch.jit.script(LayoutKeepingPool2d(pool_type='avg', flatten=True))
    x = _map(torch.float32, torch.contiguous_format)
    assert torch.equal(pool(x), x.mean((2, 3)))


@pytest.mark.parametrize('model_name', ['cifar_resnet50_se', 'densenet_cbam'])
def test_models_pool_with_it_and_keep_it_when_the_classifier_is_reset(model_name):
    model = timm.create_model(model_name, num_classes=10)
    assert isinstance(model.global_pool, LayoutKeepingPool2d) and model.global_pool.pool_type == 'avg'
    model.reset_classifier(5)
    assert isinstance(model.global_pool, LayoutKeepingPool2d) and model.global_pool.pool_type == 'avg'
    model.reset_classifier(0, '')
    assert model.global_pool.is_identity()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, model.num_features, 8, 8)


def test_create_pool_and_classifier_matches_timms_head():
    pool, fc = create_pool_and_classifier(16, 3, pool_type='catavgmax')
    assert pool.feat_mult() == 2 and fc.in_features == 32 and fc.out_features == 3
    pool, fc = create_pool_and_classifier(16, 0, pool_type='')
    assert pool.is_identity() and isinstance(fc, torch.nn.Identity)
