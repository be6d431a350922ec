"""The Ign3 twins of timm's attention models: registry cfgs, the exact weight map, pretrained loading through the real
timm / huggingface_hub download code from an offline Hub cache, and timm's train.py fine-tuning a twin."""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from _weights_fixtures import add_to_hub_cache
from conftest import REPO_ROOT
from timm_ignore.convert import convert_gates
from timm_ignore.layers import FlippedGate, IgnoreGate
from timm_ignore.models.zoo import TWINS

#: Twins loaded pretrained from the offline cache: an SE-ResNet (sigmoid) and MobileNetV3 (hard sigmoid).
PRETRAINED = {'seresnet50_ign3.a1_in1k': 'seresnet50.a1_in1k', 'mobilenetv3_large_100_ign3.ra_in1k':
              'mobilenetv3_large_100.ra_in1k'}


def test_every_twin_is_registered_with_the_timm_models_tags():
    assert sorted(TWINS) == sorted(timm.list_models(module='attention_twins'))
    assert set(TWINS.values()) >= {'seresnet50', 'seresnext50_32x4d', 'ecaresnet50d', 'efficientnet_b0',
                                   'mobilenetv3_large_100', 'regnety_016'}
    for twin, source in TWINS.items():
        assert twin == f'{source}_ign3'
        source_cfgs = timm.models.get_arch_pretrained_cfgs(source)
        twin_cfgs = timm.models.get_arch_pretrained_cfgs(twin)
        assert [k.replace(twin, source, 1) for k in twin_cfgs] == list(source_cfgs), 'same tags, same order'
        for (name, cfg), source_cfg in zip(twin_cfgs.items(), source_cfgs.values()):
            assert (cfg.architecture, cfg.tag) == (twin, source_cfg.tag)
            assert {**cfg.to_dict(), 'architecture': source} == source_cfg.to_dict(), name  # same hub id, files, data
        assert timm.models.get_pretrained_cfg(twin).tag == timm.models.get_pretrained_cfg(source).tag
        assert timm.models.is_model_pretrained(twin) == timm.models.is_model_pretrained(source)


@pytest.mark.parametrize('twin', sorted(TWINS))
def test_twin_is_the_timm_model_with_gates_flipped_and_logits_negated(twin):
    source = TWINS[twin]
    torch.manual_seed(0)
    explicit = timm.create_model(source).eval()
    torch.manual_seed(0)
    model = timm.create_model(twin).eval()
    assert model.pretrained_cfg['architecture'] == twin
    assert model.pretrained_cfg['tag'] == explicit.pretrained_cfg['tag']
    gates = [m for m in model.modules() if isinstance(m, (IgnoreGate, FlippedGate))]
    assert gates and all(g.name == 'ign3' for g in gates)
    reference = timm.create_model(source).eval()
    reference.load_state_dict(explicit.state_dict())
    report = convert_gates(reference, 'ign3', map_weights=True)
    negated = {p for change in report.flipped for p in change.negated}
    assert negated and len(report.flipped) == len(gates)
    for key, value in explicit.state_dict().items():
        assert torch.equal(model.state_dict()[key], -value if key in negated else value), key
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), explicit(x)), 'negation is exact: g(-(-z)) is g(z) bit for bit'


def _explicit_checkpoint(name: str, folder: pathlib.Path) -> torch.nn.Module:
    """A locally built checkpoint of a timm model (random weights and statistics), as its Hub repo holds it."""
    torch.manual_seed(1)
    model = timm.create_model(name).eval()
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point() and tensor.dim() == 1:
                tensor.add_(torch.rand_like(tensor) * 0.1)  # non-trivial BN statistics and biases
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / 'model.safetensors')
    return model


# Runs in a subprocess with HF_HUB_OFFLINE=1 (read at import): every load goes through timm's hf download code.
_CHILD = '''
import json, sys, timm, torch, timm_ignore
from safetensors.torch import load_file
pairs = json.loads(sys.argv[1])
report = {}
x = torch.randn(2, 3, 64, 64)
for twin, explicit_name in pairs.items():
    expected = load_file(sys.argv[2] + '/' + explicit_name + '.safetensors')
    explicit = timm.create_model(explicit_name, pretrained=True).eval()
    model = timm.create_model(twin, pretrained=True).eval()
    tuned = timm.create_model(twin, pretrained=True, num_classes=5)
    features = timm.create_model(twin, pretrained=True, features_only=True).eval()
    explicit_features = timm.create_model(explicit_name, pretrained=True, features_only=True).eval()
    with torch.no_grad():
        same = torch.allclose(model(x), explicit(x), rtol=1e-5, atol=1e-5)
        same_features = all(torch.allclose(a, b, rtol=1e-5, atol=1e-5)
                            for a, b in zip(features(x), explicit_features(x)))
    state = model.state_dict()
    report[twin] = dict(
        same_logits=same, same_features=same_features,
        loaded_file=all(torch.equal(explicit.state_dict()[k], v) for k, v in expected.items()),
        changed=sorted(k for k, v in expected.items() if not torch.equal(state[k], v)),
        negated=all(torch.equal(state[k], -expected[k]) for k, v in expected.items() if not torch.equal(state[k], v)),
        tuned_classes=tuned.num_classes,
        tuned_body=all(torch.equal(tuned.state_dict()[k], v) for k, v in state.items() if k in tuned.state_dict()
                       and tuned.state_dict()[k].shape == v.shape),
        architecture=model.pretrained_cfg['architecture'], hub_id=model.pretrained_cfg['hf_hub_id'])
try:
    timm.create_model('seresnet50_ign3.ra2_in1k', pretrained=True)
except Exception as e:
    report['absent'] = type(e).__name__
print(json.dumps(report))
'''


@pytest.fixture(scope='module')
def hub_cache(tmp_path_factory):
    """An offline Hub cache holding locally built checkpoints of the twins' timm models under their hf_hub_ids."""
    root = tmp_path_factory.mktemp('twin-hub')
    for explicit in PRETRAINED.values():
        model = _explicit_checkpoint(explicit.split('.')[0], root / 'folders' / explicit)
        save_file(model.state_dict(), root / f'{explicit}.safetensors')
        hub_id = timm.models.get_pretrained_cfg(explicit).hf_hub_id
        add_to_hub_cache(root / 'cache', hub_id, root / 'folders' / explicit)
    env = dict(os.environ, HF_HUB_CACHE=str(root / 'cache'), HF_HUB_OFFLINE='1')
    env.pop('HF_HUB_DISABLE_SYMLINKS', None)
    return root, env


@pytest.mark.slow  # six ImageNet checkpoints, in a fresh process
def test_pretrained_twins_load_the_timm_weights_mapped_exactly(hub_cache):
    root, env = hub_cache
    child = subprocess.run([sys.executable, '-c', _CHILD, json.dumps(PRETRAINED), str(root)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.splitlines()[-1])
    for twin, explicit in PRETRAINED.items():
        result = report[twin]
        assert result['loaded_file'], 'the explicit model loaded the cached checkpoint'
        assert result['same_logits'] and result['same_features']
        assert result['changed'] and result['negated']  # exactly the logits layers, by sign
        logits_layers = ('.fc2.', '.conv_expand.')
        assert all(any(s in k for s in logits_layers) for k in result['changed']), result['changed']
        assert result['tuned_classes'] == 5 and result['tuned_body']
        assert result['architecture'] == twin.split('.')[0]
        assert result['hub_id'] == timm.models.get_pretrained_cfg(explicit).hf_hub_id
    assert report['absent'] in ('LocalEntryNotFoundError', 'RuntimeError', 'OSError')  # a tag not in the cache


@pytest.mark.slow  # an ImageNet checkpoint, in a fresh process
def test_readme_conversion_runs_against_the_hub_cache(hub_cache):
    readme = (REPO_ROOT / 'README.md').read_text()
    section = readme[readme.index('## Learning to ignore in any timm model'):]
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    check = '\nprint(len(report.flipped), len(report.not_flipped), sum(len(c.negated) for c in report.flipped))'
    child = subprocess.run([sys.executable, '-c', f'import timm, timm_ignore\n{code}{check}'], env=hub_cache[1],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.splitlines()[-1] == '16 0 32'
    first = 'layer1.0.se (SEModule): sigmoid -> ign3; negated layer1.0.se.fc2.weight, layer1.0.se.fc2.bias'
    assert first in child.stdout


def _train_py() -> pathlib.Path:
    path = os.environ.get('TIMM_TRAIN_PY')
    if not path:
        pytest.skip("TIMM_TRAIN_PY is not set: point it at timm's train.py to fine-tune a twin through it")
    if not pathlib.Path(path).is_file():
        pytest.fail(f'TIMM_TRAIN_PY={path} is not a file')
    return pathlib.Path(path)


def _image_folder(root: pathlib.Path) -> pathlib.Path:
    generator = torch.Generator().manual_seed(0)
    for split in ('train', 'validation'):
        for label in ('a', 'b'):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                pixels = torch.randint(0, 256, (32, 32, 3), generator=generator, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / label / f'{i}.png')
    return root


@pytest.mark.slow  # a training run through timm's train.py
def test_timm_train_py_fine_tunes_a_pretrained_twin(hub_cache, tmp_path):
    train_py = _train_py()
    _, env = hub_cache
    data = _image_folder(tmp_path / 'data')
    command = [
        sys.executable, str(train_py), '--data-dir', str(data), '--model', 'seresnet50_ign3', '--pretrained',
        '--device-modules', 'timm_ignore', '--device', 'cpu', '--num-classes', '2', '--img-size', '64',
        '--batch-size', '4', '--epochs', '1', '--warmup-epochs', '0', '--sched', 'cosine', '--workers', '0',
        '--no-prefetcher', '--log-interval', '1', '--output', str(tmp_path / 'runs'), '--experiment', 'twin']
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / 'runs' / 'twin'
    assert 'Loading pretrained weights from Hugging Face hub (timm/seresnet50.a1_in1k)' in result.stderr + result.stdout
    assert (run_dir / 'summary.csv').read_text().splitlines()[1].startswith('0,')
    checkpoint = torch.load(run_dir / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert checkpoint['arch'] == 'seresnet50_ign3'
    model = timm.create_model('seresnet50_ign3', num_classes=2)
    model.load_state_dict(checkpoint['state_dict'])  # the fine-tuned twin loads as itself, without mapping


def test_models_command_lists_the_twins(capsys):
    from timm_ignore.cli import main
    from timm_ignore.models.zoo import TWINS
    assert main(['models', 'seresnet*']) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [t for t in TWINS if t.startswith('seresnet')]
