"""``pretrained=True``, ``hf-hub:`` and ``local-dir:`` through timm and huggingface_hub, offline, for real.

A published folder is put into huggingface_hub's cache layout under a temporary ``HF_HUB_CACHE``; a subprocess with
``HF_HUB_OFFLINE=1`` and a cards folder holding the folder's card imports timm (both libraries read these variables
at import) and loads the model every way a user can.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file

from _weights_fixtures import MODEL, MODEL_KWARGS, TAG, add_to_hub_cache, trained_model, write_run, write_split
from conftest import REPO_ROOT
from timm_ignore.hub.publish import publish_folder

PAPER_TABLES = REPO_ROOT.parent / 'shared' / 'reference' / 'paper_tables.csv'

# Runs in the subprocess: every load is compared with the published model's logits; errors are reported by name.
_CHILD = '''
import json, sys, timm, torch, timm_ignore
from safetensors.torch import load_file
expected = load_file(sys.argv[1])
x, logits = expected['x'], expected['logits']
report = {}
def attempt(key, name, **kwargs):
    try:
        model = timm.create_model(name, pretrained=True, **kwargs).eval()
        report[key] = dict(equal=torch.equal(model(x), logits), num_classes=model.num_classes,
                           body_equal=torch.equal(model.conv1.weight, expected['conv1.weight']))
    except Exception as e:
        report[key] = dict(error=type(e).__name__, message=str(e))
attempt('hf_hub', 'hf-hub:org/name')
attempt('tag', 'cifar_resnet50_se_ign3.cifar10', depth=8)
attempt('fine_tune', 'cifar_resnet50_se_ign3.cifar10', depth=8, num_classes=5)
attempt('no_weights', 'cifar_resnet50_se_ign3.cifar100', depth=8)
attempt('default_tag', 'cifar_resnet50_se_ign3', depth=8)
for repo in ('org/truncated', 'org/another-arch', 'org/class-count', 'org/pickle-only', 'org/absent'):
    attempt(repo, 'hf-hub:' + repo)
report['cfg'] = timm.models.get_pretrained_cfg('cifar_resnet50_se_ign3.cifar10').to_dict()['hf_hub_id']
print(json.dumps(report))
'''


def edited_copy(folder: pathlib.Path, target: pathlib.Path, kind: str) -> pathlib.Path:
    """A copy of a published folder broken in one way."""
    shutil.copytree(folder, target)
    weights = target / 'model.safetensors'
    if kind == 'truncated':
        weights.write_bytes(weights.read_bytes()[:4000])
    elif kind == 'another-arch':
        save_file(timm.create_model('densenet', depth=7, num_classes=10).state_dict(), weights)
    elif kind == 'class-count':
        config = json.loads((target / 'config.json').read_text())
        config['num_classes'] = config['model_args']['num_classes'] = 100
        (target / 'config.json').write_text(json.dumps(config))
    elif kind == 'pickle-only':
        torch.save(trained_model().state_dict(), target / 'pytorch_model.bin')
        weights.unlink()
    return target


@pytest.fixture(scope='module')
def hub(shared_data, tmp_path_factory):
    """A published folder, a Hub cache holding it (and broken copies) and a cards folder registering it."""
    root = tmp_path_factory.mktemp('hub')
    write_split(shared_data, root / 'data')
    model = trained_model()
    write_run(root / 'run', model, MODEL)
    folder = publish_folder(root / 'run', root / 'published', data_root=root / 'data', repo_id='org/name',
                            paper_tables=PAPER_TABLES).path
    cache = root / 'cache'
    add_to_hub_cache(cache, 'org/name', folder)
    for kind in ('truncated', 'another-arch', 'class-count', 'pickle-only'):
        add_to_hub_cache(cache, f'org/{kind}', edited_copy(folder, root / kind, kind))
    cards = root / 'cards'
    cards.mkdir()
    shutil.copyfile(folder / 'README.md', cards / f'{MODEL}.{TAG}.md')
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        save_file({'x': x, 'logits': model(x), 'conv1.weight': model.conv1.weight}, root / 'expected.safetensors')
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE='1', TIMM_IGNORE_WEIGHTS_CARDS=str(cards))
    env.pop('HF_HUB_DISABLE_SYMLINKS', None)
    child = subprocess.run([sys.executable, '-c', _CHILD, str(root / 'expected.safetensors')], env=env,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    return dict(root=root, folder=folder, model=model, report=json.loads(child.stdout.splitlines()[-1]))


def test_hf_hub_and_registered_tag_load_the_published_logits(hub):
    report = hub['report']
    assert report['hf_hub'] == dict(equal=True, num_classes=10, body_equal=True)
    assert report['tag'] == dict(equal=True, num_classes=10, body_equal=True)
    assert report['cfg'] == 'org/name'  # the card gave the tag its hf_hub_id


def test_fine_tuning_resets_only_the_head(hub):
    assert hub['report']['fine_tune'] == dict(equal=False, num_classes=5, body_equal=True)


def test_tag_without_card_names_the_tag_with_weights(hub):
    for key in ('no_weights', 'default_tag'):  # the family's default tag stays cifar100, which has no card
        report = hub['report'][key]
        assert report['error'] == 'NoPretrainedWeightsError'
        assert 'cifar_resnet50_se_ign3.cifar100 has no pretrained weights' in report['message']
        assert 'tags with weights: cifar_resnet50_se_ign3.cifar10' in report['message']


@pytest.mark.parametrize('repo, error, problem', [
    ('org/truncated', 'ValueError', 'truncated or corrupt safetensors file'),
    ('org/another-arch', 'ValueError', 'not weights of cifar_resnet50_se_ign3'),
    ('org/class-count', 'ValueError', 'fc.weight has 10 classes but the config of these weights says 100'),
    ('org/pickle-only', 'FileNotFoundError', 'not found on the Hub or in its offline cache'),
    ('org/absent', 'LocalEntryNotFoundError', ''),  # timm's own config.json download fails first
])
def test_bad_hub_weights_are_named_with_their_problem(hub, repo, error, problem):
    report = hub['report'][repo]
    assert report['error'] == error and problem in report['message']
    if repo != 'org/absent':
        assert f'hf-hub:{repo}/model.safetensors' in report['message']
    if repo == 'org/truncated':
        assert 'models--org--truncated' in report['message']  # the cached file


@pytest.mark.parametrize('kind, error, problem', [
    ('truncated', ValueError, 'truncated or corrupt safetensors file'),
    ('another-arch', ValueError, 'not weights of cifar_resnet50_se_ign3'),
    ('class-count', ValueError, 'fc.weight has 10 classes but the config of these weights says 100'),
    ('pickle-only', FileNotFoundError, 'missing; a published folder holds its weights in model.safetensors'),
])
def test_bad_local_dir_weights_are_named_with_their_problem(hub, kind, error, problem):
    with pytest.raises(error, match=problem) as raised:
        timm.create_model(f'local-dir:{hub["root"] / kind}', pretrained=True)
    assert str(hub['root'] / kind / 'model.safetensors') in str(raised.value)


def test_local_dir_new_head_for_another_class_count(hub):
    model = timm.create_model(f'local-dir:{hub["folder"]}', pretrained=True, num_classes=3)
    assert model.fc.out_features == 3
    assert torch.equal(model.conv1.weight, hub['model'].conv1.weight)


def test_train_py_pretrained_path_fine_tunes_from_the_safetensors(hub):
    """What timm's train.py does for ``--pretrained --pretrained-path FILE --num-classes 37``."""
    model = timm.create_model(
        MODEL, pretrained=True, num_classes=37, depth=8,
        pretrained_cfg_overlay=dict(file=str(hub['folder'] / 'model.safetensors'), num_classes=-1))
    assert model.fc.out_features == 37
    assert torch.equal(model.conv1.weight, hub['model'].conv1.weight)


def test_validate_pretrained_local_dir_matches_the_card(hub, capsys):
    from timm_ignore.cli import main
    card = (hub['folder'] / 'README.md').read_text()
    assert main(['validate', str(hub['root'] / 'data'), '--model', f'local-dir:{hub["folder"]}', '--pretrained',
                 '--json']) == 0
    result = json.loads(capsys.readouterr().out)
    assert f'value: {round(result["top1_err"], 4)}' in card and result['num_images'] == 120
    assert MODEL_KWARGS['depth'] == json.loads((hub['folder'] / 'config.json').read_text())['model_args']['depth']
