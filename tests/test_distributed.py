"""DistributedDataParallel with the blocks' fused backward, and the launch script with several processes.

The launch script (``train_scripts/distributed_train.sh``: torchrun, the recipe's global batch split over the
processes) is checked on CPU with a stand-in for timm's train.py (``_train_py_stand_in.py``: train.py's steps through
timm's functions, without the ``device_ids`` that torch refuses for a CPU model), and with timm's real train.py on a
machine with two GPUs.
"""
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from PIL import Image

from _ddp_worker import train_and_compare
from _train_fixtures import timm_train_py
from _train_py_stand_in import build_model, train_one_process
from conftest import REPO_ROOT

SCRIPTS = REPO_ROOT / 'train_scripts'
RECIPE = SCRIPTS / 'cifar10.yaml'
needs_gloo = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason='torch built without gloo')


@pytest.mark.slow  # two processes
@needs_gloo
def test_ddp_gradients_are_the_mean_of_the_ranks_gradients(tmp_path):
    """2 CPU processes (gloo), an SE and a CBAM model, 3 steps each; the assertions run in the ranks."""
    names = ['cifar_resnet50_se_ign3', 'cifar_resnet50_cbam_ign1']
    mp.spawn(train_and_compare, args=(2, str(tmp_path / 'store'), names, 3), nprocs=2, join=True)


def _synthetic_image_folder(root: pathlib.Path, num_classes: int, per_class: int, size: int) -> pathlib.Path:
    """``root/{train,validation}/class_k/*.png`` of random pixels."""
    rng = np.random.default_rng(0)
    for split in ('train', 'validation'):
        for k in range(num_classes):
            folder = root / split / f'class_{k}'
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f'{i}.png')
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _launch(train_py: pathlib.Path, processes: int, global_batch: int, *args: str) -> subprocess.CompletedProcess:
    """``distributed_train.sh PROCESSES cifar10.yaml ARGS`` with ``train_py`` as timm's train.py."""
    env = dict(os.environ, TIMM_TRAIN_PY=str(train_py), GLOBAL_BATCH=str(global_batch),
               MASTER_PORT=str(_free_port()), OMP_NUM_THREADS='1')
    env['PATH'] = f'{pathlib.Path(sys.executable).parent}{os.pathsep}{env["PATH"]}'  # this environment's torchrun
    command = [str(SCRIPTS / 'distributed_train.sh'), str(processes), str(RECIPE), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # torchrun, two processes
@needs_gloo
def test_launch_script_trains_two_cpu_processes_as_one(tmp_path):
    """distributed_train.sh 2 on CPU: two gloo ranks, each with half the global batch, end with the parameters of
    one process that trains on the whole batch.

    The ranks seed differently (as train.py does), so they build different weights; DDP must start both from rank 0's,
    average the gradients of the two halves every step, and keep the ranks bit-identical.
    """
    model_args = dict(name='cifar_resnet50_cbam_ign1', num_classes=3, model_kwargs={'depth': 8})
    steps, global_batch = 3, 16
    result = _launch(pathlib.Path(__file__).with_name('_train_py_stand_in.py'), 2, global_batch,
                     '--model', model_args['name'], '--model-kwargs', 'depth=8', '--num-classes', '3',
                     '--device', 'cpu', '--output', str(tmp_path), '--steps', str(steps))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert 'global batch 16 = 2 processes x 8' in result.stdout
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in range(2)]
    assert [(r['rank'], r['world_size'], r['batch_size']) for r in ranks] == [(0, 2, 8), (1, 2, 8)]
    initial = [r['initial'] for r in ranks]
    assert not all(torch.equal(initial[0][k], initial[1][k]) for k in initial[0]), 'the ranks seed alike'
    with open(RECIPE) as f:
        recipe = yaml.safe_load(f)
    reference = build_model(recipe, rank=0, **model_args)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, initial[0][key]), key
    losses = train_one_process(reference, recipe, model_args['num_classes'], 2, 8, steps)
    rank_losses = torch.tensor([r['losses'] for r in ranks]).T  # step x rank, as the slices of one process
    torch.testing.assert_close(rank_losses, torch.tensor(losses), rtol=1e-5, atol=1e-6)
    assert losses[-1] != pytest.approx(losses[0], rel=1e-3), 'the steps changed nothing'
    for name, p in reference.named_parameters():
        assert torch.equal(ranks[0]['state_dict'][name], ranks[1]['state_dict'][name]), name
        torch.testing.assert_close(ranks[0]['state_dict'][name], p.detach(), rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow  # torchrun, two processes, timm's train.py
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason=(
    "needs 2 CUDA GPUs: timm's train.py wraps the model as DDP(model, device_ids=[device]), which torch refuses for "
    'a CPU model (the launch on CPU is test_launch_script_trains_two_cpu_processes_as_one)'))
def test_launch_script_trains_with_timms_train_py_on_two_gpus(tmp_path):
    """distributed_train.sh 2 runs the CIFAR recipe through timm's real train.py: DDP over NCCL, the batch split in
    two, one epoch written in train.py's layout."""
    train_py = timm_train_py()
    data = _synthetic_image_folder(tmp_path / 'data', num_classes=2, per_class=16, size=32)
    result = _launch(train_py, 2, 16, '--data-dir', str(data), '--model', 'cifar_resnet50_cbam_ign1',
                     '--model-kwargs', 'depth=8', '--num-classes', '2', '--epochs', '1', '--device', 'cuda',
                     '--workers', '0', '--output', str(tmp_path / 'runs'), '--experiment', 'ddp')
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert 'global batch 16 = 2 processes x 8' in log
    assert 'Process 0, total 2' in log and 'Process 1, total 2' in log, log[-3000:]
    run_dir = tmp_path / 'runs' / 'ddp'
    with open(run_dir / 'args.yaml') as f:
        args = yaml.safe_load(f)
    assert args['model'] == 'cifar_resnet50_cbam_ign1' and args['batch_size'] == 8
    assert (run_dir / 'summary.csv').read_text().splitlines()[1].startswith('0,')
