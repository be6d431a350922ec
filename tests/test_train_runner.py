"""``timm-ignore train``: a tiny real run on real CIFAR images, train.py's output layout, resume, and bad settings."""
import argparse
import csv
import pathlib

import pytest
import torch
import yaml

from _train_fixtures import make_cifar10_tree
from conftest import REPO_ROOT
from timm_ignore.cli import main
from timm_ignore.train import ConfigError, TrainConfig, train

RECIPE = REPO_ROOT / 'train_scripts' / 'cifar10.yaml'
EPOCHS = 4
TIMM_SUMMARY_COLUMNS = ['epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', 'lr']


def _summary(run_dir: pathlib.Path) -> list[dict]:
    with open(run_dir / 'summary.csv', newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def tree(shared_data, tmp_path_factory) -> pathlib.Path:
    return make_cifar10_tree(shared_data, tmp_path_factory.mktemp('cifar'), per_batch=40)


@pytest.fixture(scope='module')
def run_dir(tree, tmp_path_factory) -> pathlib.Path:
    """A 4-epoch run of the CIFAR-10 recipe through the CLI: a depth-8 SE-Ign3 CIFAR ResNet on 160 real images."""
    output = tmp_path_factory.mktemp('runs')
    argv = ['train', '-c', str(RECIPE), '--data-dir', str(tree), '--model', 'cifar_resnet50_se_ign3',
            '--model-kwargs', 'depth=8', '--epochs', str(EPOCHS), '--device', 'cpu', '--output', str(output),
            '--experiment', 'tiny', '--set', 'workers=0', 'batch_size=16', 'log_interval=5']
    assert main(argv) == 0
    return output / 'tiny'


def test_loss_falls(run_dir):
    losses = [float(row['train_loss']) for row in _summary(run_dir)]
    assert len(losses) == EPOCHS
    assert losses[-1] < losses[0] - 0.05, losses


def test_outputs_have_timm_train_py_layout(run_dir):
    assert {'args.yaml', 'summary.csv', 'last.pth.tar', 'model_best.pth.tar', 'checkpoint-0.pth.tar'} <= {
        p.name for p in run_dir.iterdir()}
    rows = _summary(run_dir)
    assert list(rows[0]) == TIMM_SUMMARY_COLUMNS
    assert [int(r['epoch']) for r in rows] == list(range(EPOCHS))
    assert float(rows[0]['lr']) == pytest.approx(0.1 * 16 / 128)  # the recipe's linear lr rule
    with open(run_dir / 'args.yaml') as f:
        args = yaml.safe_load(f)
    assert args['model'] == 'cifar_resnet50_se_ign3' and args['model_kwargs'] == {'depth': 8}
    assert args['decay_milestones'] == [61, 121, 161] and args['opt'] == 'momentum'
    checkpoint = torch.load(run_dir / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert checkpoint['epoch'] == EPOCHS - 1 and checkpoint['arch'] == 'cifar_resnet50_se_ign3'
    assert isinstance(checkpoint['args'], argparse.Namespace)
    best = torch.load(run_dir / 'model_best.pth.tar', map_location='cpu', weights_only=False)
    assert best['metric'] == max(float(r['eval_top1']) for r in rows)


def test_resume_continues_from_saved_epoch(run_dir, tree):
    before = _summary(run_dir)
    config = TrainConfig.from_recipe(RECIPE, dict(
        data_dir=str(tree), model='cifar_resnet50_se_ign3', model_kwargs={'depth': 8}, epochs=EPOCHS + 1,
        device='cpu', output=str(run_dir.parent), experiment=run_dir.name, resume=str(run_dir / 'last.pth.tar'),
        workers=0, batch_size=16))
    result = train(config)
    after = _summary(run_dir)
    assert result.output_dir == run_dir
    assert after[:EPOCHS] == before and [int(r['epoch']) for r in after] == list(range(EPOCHS + 1))
    assert torch.load(run_dir / 'last.pth.tar', map_location='cpu', weights_only=False)['epoch'] == EPOCHS
    assert result.best_metric == max(float(r['eval_top1']) for r in after)


def test_keep_going_stops_before_an_epoch_and_a_resume_finishes_the_run(tree, tmp_path):
    """A time limit's split run on timm's loaders: stopped before epoch 1, checkpoints kept, resumed to the end."""
    settings = dict(data_dir=str(tree), model='cifar_resnet50', model_kwargs={'depth': 8}, epochs=2, device='cpu',
                    output=str(tmp_path), experiment='split', workers=0, batch_size=16)
    asked = []

    def stop() -> bool:
        asked.append(True)
        return False

    result = train(TrainConfig.from_recipe(RECIPE, settings), keep_going=stop)
    assert not result.finished and len(asked) == 1  # asked once: before epoch 1, not before epoch 0
    assert [int(r['epoch']) for r in _summary(result.output_dir)] == [0]
    resumed = train(TrainConfig.from_recipe(RECIPE, {**settings, 'resume': str(result.output_dir / 'last.pth.tar')}),
                    keep_going=lambda: True)
    assert resumed.finished and [int(r['epoch']) for r in _summary(resumed.output_dir)] == [0, 1]


def test_existing_run_is_not_overwritten(run_dir, tree):
    config = TrainConfig.from_recipe(RECIPE, dict(
        data_dir=str(tree), model='cifar_resnet50', model_kwargs={'depth': 8}, epochs=1, device='cpu',
        output=str(run_dir.parent), experiment=run_dir.name, workers=0))
    summary = (run_dir / 'summary.csv').read_text()
    with pytest.raises(FileExistsError, match='already holds a run'):
        train(config)
    assert (run_dir / 'summary.csv').read_text() == summary


def test_unsupported_key_is_an_error_listing_supported_keys(tmp_path):
    recipe = tmp_path / 'recipe.yaml'
    recipe.write_text(RECIPE.read_text() + 'mixup: 0.2\n')
    with pytest.raises(ConfigError, match=r'does not support mixup\. Supported keys: data_dir, .*decay_milestones'):
        TrainConfig.from_recipe(recipe)


def test_wrongly_typed_value_is_an_error():
    with pytest.raises(ConfigError, match="epochs must be a int .*got '10'"):
        TrainConfig.from_dict({'epochs': '10'})
    with pytest.raises(ConfigError, match='amp must be a bool'):
        TrainConfig.from_dict({'amp': 1})
    assert TrainConfig.from_dict({'weight-decay': 1}).weight_decay == 1


def test_lr_rule_matches_train_py():
    config = TrainConfig.from_recipe(RECIPE)
    assert config.resolve_lr() == pytest.approx(0.1)
    assert config.resolve_lr(global_batch_size=512) == pytest.approx(0.4)
    assert TrainConfig.from_dict({'opt': 'adamw', 'lr_base_size': 256, 'batch_size': 1024}).resolve_lr() == \
        pytest.approx(0.2)
    assert TrainConfig.from_dict({'lr': 0.3}).resolve_lr(global_batch_size=4096) == 0.3


def test_cli_reports_bad_settings(capsys):
    assert main(['train', '-c', str(RECIPE), '--set', 'warmup=3']) == 2
    assert 'does not support warmup' in capsys.readouterr().err
