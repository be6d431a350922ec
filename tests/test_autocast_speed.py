"""Autocast on a CPU without the dtype in hardware is refused in one line, before any training (train-queue, train)."""
import pytest
import torch

from _engine_fixtures import write_cifar10_slice
from _train_fixtures import make_cifar10_tree
from conftest import REPO_ROOT
from timm_ignore import autocast_speed
from timm_ignore.autocast_speed import check_autocast_speed, matmul_speedup
from timm_ignore.cli import main
from timm_ignore.engine import EngineRecipe, RunSpec, check_queue
from timm_ignore.train import ConfigError, TrainConfig, train

SHORT_RECIPE = REPO_ROOT / 'train_scripts' / 'cifar10_short.yaml'


def test_speedup_is_float32_time_over_the_dtypes():
    # float64 products run at about half the float32 rate on every x86 and ARM CPU (half the lanes per vector)
    assert matmul_speedup(torch.float64) < 0.8


def test_slow_dtype_is_refused_with_the_way_out():
    with pytest.raises(ValueError) as refused:
        check_autocast_speed(torch.device('cpu'), torch.bfloat16, min_speedup=1e9)
    message = str(refused.value)
    assert message.startswith('bfloat16 autocast would run') and 'slower than float32' in message
    assert torch.backends.cpu.get_cpu_capability() in message and '--set amp=false' in message
    check_autocast_speed(torch.device('cpu'), torch.bfloat16, min_speedup=0.0)


def test_only_a_lower_precision_on_the_cpu_is_measured():
    check_autocast_speed(torch.device('cpu'), torch.float32, min_speedup=1e9)  # float32 is the reference
    check_autocast_speed(torch.device('cuda'), torch.bfloat16, min_speedup=1e9)  # a GPU: torch.autocast's own checks


@pytest.fixture
def bfloat16_refused(monkeypatch):
    """Every dtype too slow, as bfloat16 is on an AVX2-only CPU."""
    monkeypatch.setattr(autocast_speed, 'MIN_AUTOCAST_SPEEDUP', 1e9)


def test_train_queue_refuses_slow_autocast_before_any_work(bfloat16_refused, shared_data, tmp_path, capsys):
    data = write_cifar10_slice(shared_data, tmp_path / 'cifar10', 16, 16, 16)
    output = tmp_path / 'queue'

    def train_queue(data_dir):
        return main(['train-queue', '-c', str(SHORT_RECIPE), '--data-dir', str(data_dir), '--models', 'cifar_resnet50',
                     '--output', str(output), '--device', 'cpu'])
    assert train_queue(data) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('timm-ignore train-queue: error: bfloat16 autocast would run') and '\n' not in err
    assert not output.exists()
    assert train_queue(tmp_path / 'none') == 2  # a mistake in the input is named first
    assert 'autocast' not in capsys.readouterr().err
    # the way out the line names: the queue's checks pass in float32
    check_queue([RunSpec('cifar_resnet50', 0)], EngineRecipe.from_yaml(SHORT_RECIPE, {'amp': False}), data, output,
                torch.device('cpu'), 1)


def test_train_refuses_slow_autocast_before_writing_a_run(bfloat16_refused, shared_data, tmp_path):
    tree = make_cifar10_tree(shared_data, tmp_path, per_batch=2)
    config = TrainConfig.from_recipe(REPO_ROOT / 'train_scripts' / 'cifar10.yaml', dict(
        data_dir=str(tree), model='cifar_resnet50', model_kwargs={'depth': 8}, epochs=1, device='cpu',
        output=str(tmp_path / 'runs'), workers=0, amp=True, amp_dtype='bfloat16'))
    with pytest.raises(ConfigError, match='bfloat16 autocast would run'):
        train(config)
    assert not (tmp_path / 'runs').exists()
