"""Every README command that runs timm's train.py, run as written against the real train.py (``TIMM_TRAIN_PY``).

Only the paths and what makes a run short (epochs, batch, a shallow network, CPU) are added; everything else is the
README's text, which the ungated test below keeps in step with this file.
"""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from _train_fixtures import make_cifar100_archive, make_cifar10_tree, timm_train_py
from _weights_fixtures import MODEL, add_to_hub_cache, trained_model, write_run, write_split
from conftest import REPO_ROOT

README = (REPO_ROOT / 'README.md').read_text()
RECIPE_COMMAND = ('python train.py -c train_scripts/cifar100.yaml --data-dir data/cifar100 '
                  '--model densenet_cbam_ign1_a08')
TWIN_COMMAND = 'python train.py /data/imagenet --model seresnet50_ign3 --pretrained --device-modules timm_ignore'
FINE_TUNE_COMMAND = ('python train.py /data/pets --model cifar_resnet50_se_ign3 --num-classes 37 --pretrained '
                     '--pretrained-path hub/se_ign3/model.safetensors --device-modules timm_ignore')
SHORT_RUN = ['--epochs', '1', '--device', 'cpu', '--workers', '0', '-b', '16']


def readme_train_py_commands() -> list[str]:
    """The README's ``python train.py ...`` commands, continuation lines joined, comments dropped."""
    blocks = re.findall(r'```bash\n(.*?)```', README, re.S)
    lines = '\n'.join(blocks).replace('\\\n', ' ').splitlines()
    return [' '.join(line.split('#')[0].split()) for line in lines if line.startswith('python train.py')]


def test_every_readme_train_py_command_is_run_here():
    assert readme_train_py_commands() == [TWIN_COMMAND, RECIPE_COMMAND, FINE_TUNE_COMMAND]


def _run(command: str, replacements: dict[str, str], extra: list[str], cwd: pathlib.Path, **env: str) -> None:
    argv = shlex.split(command)
    argv = [replacements.get(arg, arg) for arg in argv]
    assert argv[:2] == ['python', 'train.py']
    argv = [sys.executable, str(timm_train_py())] + argv[2:] + extra
    env = dict(os.environ, PYTHONPATH=f'{REPO_ROOT}{os.pathsep}{os.environ.get("PYTHONPATH", "")}', **env)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # a training run through timm's train.py
def test_recipe_command(shared_data, tmp_path):
    train_py_dir = timm_train_py()  # skips without TIMM_TRAIN_PY
    from timm_ignore.data.cifar import prepare_cifar
    archive, checksums = make_cifar100_archive(shared_data, tmp_path, num_train=400, num_test=50)
    tree = prepare_cifar(archive, tmp_path / 'cifar100', num_val=100, checksums=checksums, progress=lambda _: None)
    _run(RECIPE_COMMAND, {'data/cifar100': str(tree)},
         SHORT_RUN + ['--model-kwargs', 'depth=7', '--output', str(tmp_path / 'runs'), '--experiment', 'readme'],
         cwd=REPO_ROOT)
    assert train_py_dir.is_file()
    run = tmp_path / 'runs' / 'readme'
    assert {'args.yaml', 'summary.csv', 'model_best.pth.tar'} <= {p.name for p in run.iterdir()}
    assert torch.load(run / 'last.pth.tar', weights_only=False)['arch'] == 'densenet_cbam_ign1_a08'


@pytest.mark.slow  # a training run through timm's train.py
def test_fine_tune_command_from_a_published_folder(shared_data, tmp_path):
    """A published folder's weights fine-tuned by train.py to another class count: body loaded, a new head."""
    timm_train_py()
    from timm_ignore.hub.publish import publish_folder
    (tmp_path / 'cifar').mkdir()
    tree = make_cifar10_tree(shared_data, tmp_path / 'cifar', per_batch=20)
    run = write_run(tmp_path / 'run', trained_model(), MODEL)
    write_split(shared_data, tmp_path / 'eval')
    publish_folder(run, tmp_path / 'hub' / 'se_ign3', data_root=tmp_path / 'eval', repo_id='org/name')
    pets = tmp_path / 'pets'  # a 4-class dataset
    for split in ('train', 'validation'):
        for name in sorted(p.name for p in (tree / split).iterdir())[:4]:
            shutil.copytree(tree / split / name, pets / split / name)
    _run(FINE_TUNE_COMMAND, {'/data/pets': str(pets), '37': '4'},
         SHORT_RUN + ['--model-kwargs', 'depth=8', '--lr', '1e-4', '--warmup-epochs', '0', '--output',
                      str(tmp_path / 'runs'), '--experiment', 'finetune'], cwd=tmp_path)
    tuned = torch.load(tmp_path / 'runs' / 'finetune' / 'last.pth.tar', weights_only=False)['state_dict']
    published = load_file(tmp_path / 'hub' / 'se_ign3' / 'model.safetensors')
    assert tuned['fc.weight'].shape[0] == 4 and published['fc.weight'].shape[0] == 10
    body = [k for k in published if k.endswith('conv1.weight')]
    assert all(torch.allclose(tuned[k], published[k], atol=1e-3) for k in body)  # loaded, then a few tiny steps


@pytest.mark.slow  # a training run through timm's train.py
def test_twin_command_fine_tunes_timm_weights_mapped(shared_data, tmp_path):
    """seresnet50_ign3 --pretrained reads timm's seresnet50 weights (here a stand-in in an offline Hub cache)."""
    timm_train_py()
    import timm
    from safetensors.torch import save_file
    source = timm.create_model('seresnet50')
    (tmp_path / 'weights').mkdir()
    save_file(source.state_dict(), tmp_path / 'weights' / 'model.safetensors')
    add_to_hub_cache(tmp_path / 'hub-cache', timm.models.get_pretrained_cfg('seresnet50').hf_hub_id,
                     tmp_path / 'weights')
    (tmp_path / 'cifar').mkdir()
    tree = make_cifar10_tree(shared_data, tmp_path / 'cifar', per_batch=20)
    _run(TWIN_COMMAND, {'/data/imagenet': str(tree)},
         SHORT_RUN + ['--num-classes', '10', '--img-size', '64', '--lr', '1e-4', '--warmup-epochs', '0', '--output',
                      str(tmp_path / 'runs'), '--experiment', 'twin'],
         cwd=tmp_path, HF_HUB_CACHE=str(tmp_path / 'hub-cache'), HF_HUB_OFFLINE='1')
    tuned = torch.load(tmp_path / 'runs' / 'twin' / 'last.pth.tar', weights_only=False)['state_dict']
    assert tuned['fc.weight'].shape[0] == 10
    assert torch.allclose(tuned['conv1.weight'], source.conv1.weight, atol=1e-3)  # loaded, then tiny steps
    # the twin's gate logits layer is the source's negated (convert_gates' exact map)
    assert torch.allclose(tuned['layer1.0.se.fc2.weight'], -source.layer1[0].se.fc2.weight, atol=1e-3)
