"""The paper's recipes in ``train_scripts/``: their schedule, data config and augmentation, and timm's real train.py."""
import csv
import os
import pathlib
import subprocess
import sys

import pytest
import torch
import yaml
from PIL import Image
from timm.data import create_transform
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from torchvision import transforms

from _train_fixtures import make_cifar10_tree, timm_train_py
from conftest import REPO_ROOT
from timm_ignore.models.zoo import DATASETS, MODELS
from timm_ignore.train.config import SUPPORTED_KEYS, TrainConfig

SCRIPTS = REPO_ROOT / 'train_scripts'
RECIPES = {'cifar10': 'cifar10.yaml', 'cifar100': 'cifar100.yaml', 'in1k': 'imagenet_resnet50.yaml'}
#: (recipe, epochs at which the lr is checked, the paper's lr there), spec section 6.
PAPER_SCHEDULES = {
    'cifar100.yaml': ((0, 59, 60, 119, 120, 160, 199), (0.1, 0.1, 0.02, 0.02, 0.004, 0.0008, 0.0008)),
    'cifar10.yaml': ((0, 59, 60, 119, 120, 160, 199), (0.1, 0.1, 0.02, 0.02, 0.004, 0.0008, 0.0008)),
    'imagenet_resnet50.yaml': ((0, 29, 30, 60, 80, 89), (0.1, 0.1, 0.01, 0.001, 0.0001, 0.0001)),
}


def _recipe(name: str) -> dict:
    with open(SCRIPTS / name) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize('tag, name', RECIPES.items())
def test_recipe_matches_zoo_data_config(tag, name):
    recipe, data = _recipe(name), DATASETS[tag]
    assert recipe['device_modules'] == ['timm_ignore']
    assert recipe['model'] in MODELS
    assert recipe['num_classes'] == data.num_classes
    assert tuple(recipe['input_size']) == data.input_size
    assert recipe['crop_pct'] == data.crop_pct
    if 'mean' in recipe:
        assert tuple(recipe['mean']) == data.mean and tuple(recipe['std']) == data.std
    assert recipe['smoothing'] == 0 and recipe['color_jitter'] == 0 and recipe['warmup_epochs'] == 0
    assert (SCRIPTS / name).read_text().startswith('# Paper recipe')
    assert set(recipe) <= set(SUPPORTED_KEYS)  # so `timm-ignore train` runs it too


@pytest.mark.parametrize('name', PAPER_SCHEDULES)
def test_recipe_gives_the_paper_lr_schedule(name):
    config = TrainConfig.from_recipe(SCRIPTS / name)
    epochs, expected = PAPER_SCHEDULES[name]
    optimizer = create_optimizer_v2(torch.nn.Linear(2, 2), opt=config.opt, lr=config.resolve_lr(), momentum=0.9)
    assert optimizer.defaults['nesterov'] == (name == 'imagenet_resnet50.yaml')
    scheduler, num_epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(config), updates_per_epoch=1)
    assert num_epochs == config.epochs
    for epoch, lr in zip(epochs, expected):
        scheduler.step(epoch)
        assert optimizer.param_groups[0]['lr'] == pytest.approx(lr), f'epoch {epoch}'


@pytest.mark.parametrize('name', ['cifar10.yaml', 'cifar100.yaml'])
def test_cifar_augmentation_is_translation_and_flip_only(name):
    recipe = _recipe(name)
    transform = create_transform(
        recipe['input_size'], is_training=True, train_crop_mode=recipe['train_crop_mode'], scale=recipe['scale'],
        ratio=recipe['ratio'], hflip=recipe['hflip'], color_jitter=recipe['color_jitter'],
        interpolation=recipe['train_interpolation'], mean=recipe['mean'], std=recipe['std'])
    kinds = {type(t).__name__ for t in transform.transforms}
    assert 'RandomResizedCropAndInterpolation' not in kinds
    # timm always inserts ColorJitter; with color_jitter 0 every factor is None, i.e. an identity.
    jitters = [t for t in transform.transforms if isinstance(t, transforms.ColorJitter)]
    assert all(t.brightness is t.contrast is t.saturation is t.hue is None for t in jitters)
    assert {'ResizeKeepRatio', 'RandomCropOrPad', 'RandomHorizontalFlip'} <= kinds
    image = Image.new('RGB', (32, 32))
    assert all(transform(image).shape == (3, 32, 32) for _ in range(20))


def _summary(run_dir: pathlib.Path) -> list[dict]:
    with open(run_dir / 'summary.csv') as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # a training run through timm's train.py
def test_timm_train_py_runs_recipe_through_launch_script(shared_data, tmp_path):
    train_py = timm_train_py()
    tree = make_cifar10_tree(shared_data, tmp_path, per_batch=20)
    env = dict(os.environ, TIMM_TRAIN_PY=str(train_py), GLOBAL_BATCH='32', MASTER_PORT='29581')
    env['PATH'] = f'{pathlib.Path(sys.executable).parent}{os.pathsep}{env["PATH"]}'
    command = [
        str(SCRIPTS / 'distributed_train.sh'), '1', str(SCRIPTS / 'cifar10.yaml'), '--data-dir', str(tree),
        '--model', 'cifar_resnet50_se_ign3', '--model-kwargs', 'depth=8', '--epochs', '2', '--device', 'cpu',
        '--workers', '0', '--output', str(tmp_path / 'runs'), '--experiment', 'launch']
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / 'runs' / 'launch'
    assert [row['epoch'] for row in _summary(run_dir)] == ['0', '1']
    assert float(_summary(run_dir)[0]['lr']) == pytest.approx(0.1 * 32 / 128)
    assert {'args.yaml', 'last.pth.tar', 'model_best.pth.tar'} <= {p.name for p in run_dir.iterdir()}
    with open(run_dir / 'args.yaml') as f:
        assert yaml.safe_load(f)['model'] == 'cifar_resnet50_se_ign3'


def test_launch_script_refuses_uneven_global_batch(tmp_path):
    fake_train_py = tmp_path / 'train.py'
    fake_train_py.write_text('raise SystemExit("must not be reached")\n')
    env = dict(os.environ, TIMM_TRAIN_PY=str(fake_train_py), GLOBAL_BATCH='128')
    env['PATH'] = f'{pathlib.Path(sys.executable).parent}{os.pathsep}{env["PATH"]}'
    result = subprocess.run([str(SCRIPTS / 'distributed_train.sh'), '3', str(SCRIPTS / 'cifar10.yaml')],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert 'global batch 128 does not divide over 3 processes' in result.stderr


def test_launch_script_needs_train_py(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'TIMM_TRAIN_PY'}
    result = subprocess.run([str(SCRIPTS / 'distributed_train.sh'), '1', str(SCRIPTS / 'cifar10.yaml')],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and 'set TIMM_TRAIN_PY' in result.stderr
