"""The registered models: names, structure against the spec, kwargs, cfgs, and the timm APIs timm's suite skips.

timm's own ``tests/test_models.py`` runs against every model in ``test_timm_model_suite.py``; the checks here cover
the paper-specific structure and what timm's suite filters out for our module names (TorchScript for ``densenet*``,
``forward_intermediates`` for the CIFAR families), plus ``torch.compile`` and ``torch.export``.
"""
import copy
import csv

import pytest
import timm
import torch
from timm.models.resnet import ResNet

from timm_ignore import IgnoreCbam, IgnoreSqueezeExcite
from timm_ignore.models import CifarDenseNet, CifarResNet, IgnoreResNet
from timm_ignore.models.zoo import DATASETS, FAMILIES, MODELS, PAPER_ID, published_tags
from timm_ignore.paper import PAPER_TABLES_CSV

ATTENTION_TYPES = {'se': IgnoreSqueezeExcite, 'cbam': IgnoreCbam}
EXPECTED_ATTENTION_BLOCKS = {'resnet50': 16, 'cifar_resnet50': 24, 'densenet': 5}
CIFAR_MODELS = [n for n, s in MODELS.items() if s.family.name != 'resnet50']


def meta_model(name: str, **kwargs) -> torch.nn.Module:
    return timm.create_model(name, device='meta', **kwargs)


def attention_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, (IgnoreSqueezeExcite, IgnoreCbam))]


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_has_every_paper_variant():
    assert len(MODELS) == 38
    for name in ('resnet50_se_ign3', 'resnet50_cbam_ign1', 'densenet_cbam_ign1_a08'):
        assert name in MODELS
    assert set(timm.list_models('*_ign*')) >= {n for n in MODELS if '_ign' in n}
    suffixes = ['', '_ign1', '_ign1_a08', '_ign1_a05', '_ign2', '_ign3']
    for family in ('resnet50', 'cifar_resnet50', 'densenet'):
        expected = {f'{family}_{a}{s}' for a in ('se', 'cbam') for s in suffixes}
        assert expected <= set(timm.list_models(f'{family}_*'))
    assert 'cifar_resnet50' in MODELS and 'densenet' in MODELS and 'resnet50' not in MODELS


def test_plain_imagenet_resnet50_is_timms():
    model = meta_model('resnet50')
    assert type(model) is ResNet and not attention_blocks(model)


@pytest.mark.parametrize('name', list(MODELS))
def test_structure_matches_name(name):
    spec = MODELS[name]
    model = meta_model(name)
    blocks = attention_blocks(model)
    if spec.attn is None:
        assert not blocks
        return
    assert len(blocks) == EXPECTED_ATTENTION_BLOCKS[spec.family.name]
    for block in blocks:
        assert type(block) is ATTENTION_TYPES[spec.attn]
        assert block.gate.name == spec.gate.name
        assert block.gate.alpha == (1.0 if spec.gate.alpha is None else spec.gate.alpha)
        assert block.fc1.out_features == block.fc1.in_features // 8


@pytest.mark.parametrize('name', [n for n, s in MODELS.items() if s.attn and s.gate.name != 'explicit'])
def test_ignore_variant_costs_what_its_twin_costs(name):
    assert num_params(meta_model(name)) == num_params(meta_model(MODELS[name].twin.name))


def test_cifar_resnet_matches_spec():
    model = meta_model('cifar_resnet50')
    assert type(model) is CifarResNet
    assert [len(getattr(model, f'layer{i}')) for i in (1, 2, 3)] == [8, 8, 8]
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    shortcuts = [b.downsample for b in model.modules() if hasattr(b, 'downsample') and b.downsample is not None]
    assert len(shortcuts) == 2
    assert all(isinstance(s, torch.nn.Conv2d) and s.stride == (2, 2) and s.bias is not None for s in shortcuts)
    assert 0.75e6 < num_params(model) < 0.78e6  # spec: about 0.76 M parameters without attention


def test_cifar_densenet_matches_spec():
    model = meta_model('densenet_se')
    assert type(model) is CifarDenseNet
    assert model.stem.out_channels == 24 and model.stem.bias is None
    assert [len(s.layers) for s in model.stages] == [12, 12, 12]
    assert [i['num_chs'] for i in model.feature_info] == [24, 168, 312, 456]
    attention_channels = [b.fc1.in_features for b in attention_blocks(model)]
    # after block 1, transition 1, block 2, transition 2, block 3
    assert attention_channels == [168, 168, 312, 312, 456]


def test_imagenet_resnet_attention_sits_on_the_residual_branch():
    model = timm.create_model('resnet50_se_ign3').eval()
    assert type(model) is IgnoreResNet
    block = model.layer1[0]
    x = torch.randn(1, 64, 16, 16)
    with torch.no_grad():
        branch = block.bn3(block.conv3(block.act2(block.bn2(block.conv2(block.act1(block.bn1(block.conv1(x))))))))
        expected = torch.relu(block.se(branch) + block.downsample(x))
        torch.testing.assert_close(block(x), expected)


def test_attention_keeps_authors_initialisation_in_imagenet_resnet():
    torch.manual_seed(0)
    model = timm.create_model('resnet50_se')
    weights = torch.cat([b.fc1.weight.flatten() for b in attention_blocks(model)])
    assert weights.std().item() == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize('name', ['cifar_resnet50_se', 'densenet_cbam_ign1_a08', 'resnet50_se_ign2'])
def test_default_cfgs(name):
    spec = MODELS[name]
    for tag in spec.family.datasets:
        cfg = timm.get_pretrained_cfg(f'{name}.{tag}')
        assert cfg.paper_ids == PAPER_ID
        if f'{name}.{tag}' in published_tags():  # a card in weights_cards/: its local weights and its Hub id
            assert cfg.has_weights and cfg.file.endswith('model.safetensors') and cfg.hf_hub_id.endswith(f'/{name}.{tag}')
        else:
            assert cfg.hf_hub_id is None and not cfg.has_weights
    if spec.family.name == 'resnet50':
        assert timm.get_pretrained_cfg(name).input_size == (3, 224, 224)
        return
    for tag, classes in (('cifar10', 10), ('cifar100', 100)):
        cfg = timm.get_pretrained_cfg(f'{name}.{tag}')
        assert cfg.num_classes == classes and cfg.input_size == (3, 32, 32) and cfg.crop_pct == 1.0
        assert meta_model(f'{name}.{tag}').num_classes == classes
    assert meta_model(name).num_classes == 100  # cifar100 is the default tag


def test_families_cover_the_papers_cnn_tables_exactly():
    """Each (dataset, backbone) of the paper's CNN tables (1-3, from the paper's table file) has exactly one family
    with that backbone and dataset tag, and no family trains anything the tables do not report (Table 4's MMTM is a
    fusion block, not a backbone)."""
    with open(PAPER_TABLES_CSV, newline='') as f:
        reported = {(row['dataset'], row['backbone']) for row in csv.DictReader(f) if row['table'] != '4'}
    covered = [(DATASETS[tag].paper_dataset, family.paper_backbone) for family in FAMILIES for tag in family.datasets]
    assert sorted(covered) == sorted(reported)


def test_kwargs_override_attention():
    model = meta_model('cifar_resnet50_se_ign1_a08', gate='ign2', rd_ratio=1 / 4)
    block = attention_blocks(model)[0]
    assert block.gate.name == 'ign2' and block.fc1.out_features == 16 // 4
    block = attention_blocks(meta_model('densenet_cbam_ign1', alpha=0.3))[0]
    assert block.gate.name == 'ign1' and block.gate.alpha == 0.3


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(gate='ign9'), ValueError, 'allowed: explicit, ign1, ign2, ign3'),
    (dict(alpha=1.2), ValueError, r'\[0, 1\]'),
    (dict(gate='ign3', alpha=0.5), ValueError, 'takes no alpha'),
    (dict(rd_ratio=0), ValueError, 'positive number'),
    (dict(rd_ratio='1/8'), ValueError, 'positive number'),
    (dict(not_a_model_arg=1), TypeError, 'not_a_model_arg'),
])
def test_bad_model_kwargs(kwargs, error, match):
    with pytest.raises(error, match=match):
        meta_model('cifar_resnet50_se_ign1', **kwargs)


def test_alpha_on_a_gate_without_one_is_refused():
    with pytest.raises(ValueError, match='takes no alpha'):
        meta_model('resnet50_se_ign3', alpha=0.8)


@pytest.mark.parametrize('name', ['cifar_resnet50', 'densenet'])
def test_plain_networks_take_no_attention_kwargs(name):
    with pytest.raises(TypeError, match='has no attention block'):
        meta_model(name, gate='ign3')


def test_ign3_equals_ign1_alpha1_from_identical_weights():
    torch.manual_seed(0)
    ign3 = timm.create_model('cifar_resnet50_cbam_ign3', depth=8).eval()
    ign1 = timm.create_model('cifar_resnet50_cbam_ign1', depth=8).eval()
    ign1.load_state_dict(ign3.state_dict())
    for block in attention_blocks(ign3):  # logits far from zero so the masks are not all ~0.5
        torch.nn.init.normal_(block.fc2.bias, std=3.0)
    ign1.load_state_dict(ign3.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ign3(x), ign1(x))


@pytest.mark.parametrize('name', ['densenet', 'densenet_se_ign3', 'densenet_cbam_ign2'])
def test_densenet_torchscript(name):
    """timm's suite excludes ``densenet*`` from TorchScript; ours scripts."""
    with timm.set_scriptable(True):
        model = timm.create_model(name, depth=10).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


@pytest.mark.parametrize('name', ['cifar_resnet50_se_ign1_a05', 'densenet_cbam_ign3'])
def test_cifar_forward_intermediates_and_pruning(name):
    """timm's suite runs these for the module names it knows (ours: ``resnet`` only), so the CIFAR ones are here."""
    small = dict(depth=8) if name.startswith('cifar') else dict(depth=7)
    model = timm.create_model(name, **small).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        final, taps = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        assert [t.shape[1] for t in taps] == [i['num_chs'] for i in model.feature_info]
        assert [32 // t.shape[-1] for t in taps] == [i['reduction'] for i in model.feature_info]
        for i in range(len(taps)):
            early = model.forward_intermediates(x, indices=[i], stop_early=True, intermediates_only=True)
            torch.testing.assert_close(early[0], taps[i])
            pruned = copy.deepcopy(model)
            kept = pruned.prune_intermediate_layers([i])
            pruned_taps = pruned.forward_intermediates(x, indices=kept, intermediates_only=True)
            torch.testing.assert_close(pruned_taps[0], taps[i])
            if i < len(taps) - 1:
                torch.testing.assert_close(pruned.forward_features(x), taps[i])
        model.set_grad_checkpointing()
        torch.testing.assert_close(model.forward_intermediates(x)[0], final)
    features = timm.create_model(name, features_only=True, **small).eval()
    with torch.no_grad():
        for got, expected in zip(features(x), taps):
            assert got.shape == expected.shape


def test_fused_training_step_matches_plain_autograd_in_a_model():
    torch.manual_seed(0)
    model = timm.create_model('cifar_resnet50_cbam_ign2', depth=8, num_classes=10)
    plain = copy.deepcopy(model)
    for block in attention_blocks(plain):
        block.fused_backward = False
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for m in (model, plain):
        torch.nn.functional.cross_entropy(m(x), y).backward()
    for (n, p), q in zip(model.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.slow  # graph capture through AOT autograd
@pytest.mark.parametrize('name', ['cifar_resnet50_cbam_ign2', 'densenet_se_ign3'])
def test_torch_compile_matches_eager(name):
    """Whole-graph capture of each family through AOT autograd, training and eval, against eager.

    Inductor's code generation is tested on the blocks (``test_blocks.py``); its build of a whole model took minutes.
    """
    torch.manual_seed(0)
    small = dict(depth=8) if name.startswith('cifar') else dict(depth=7)
    model = timm.create_model(name, num_classes=10, **small)
    compiled = torch.compile(copy.deepcopy(model), backend='aot_eager', fullgraph=True)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    for m in (model, compiled):
        torch.nn.functional.cross_entropy(m(x), y).backward()
    for p, q in zip(model.parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-5)
    model.eval(), compiled.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', ['cifar_resnet50_cbam_ign2', 'densenet_se_ign1'])
def test_torch_export(name):
    small = dict(depth=8) if name.startswith('cifar') else dict(depth=7)
    model = timm.create_model(name, **small).eval()
    x = torch.randn(2, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize('name', ['cifar_resnet50_cbam_ign2', 'densenet_se_ign1_a05'])
def test_built_in_bfloat16(name):
    small = dict(depth=8) if name.startswith('cifar') else dict(depth=7)
    model = timm.create_model(name, dtype=torch.bfloat16, num_classes=10, **small)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    out = model(torch.randn(2, 3, 32, 32, dtype=torch.bfloat16))
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
