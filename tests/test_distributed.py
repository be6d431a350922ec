"""DistributedDataParallel with the blocks' fused backward, and the launch script with several processes."""
import os
import pathlib
import subprocess
import sys

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from _ddp_worker import train_and_compare
from _train_fixtures import timm_train_py
from conftest import REPO_ROOT

SCRIPTS = REPO_ROOT / 'train_scripts'
#: timm's train.py (1.0.x) wraps the model as DDP(model, device_ids=[device]), which torch refuses for a CPU module.
TIMM_CPU_DDP_LIMITATION = 'DistributedDataParallel device_ids and output_device arguments only work'


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason='torch built without gloo')
def test_ddp_gradients_are_the_mean_of_the_ranks_gradients(tmp_path):
    """2 CPU processes (gloo), an SE and a CBAM model, 3 steps each; the assertions run in the ranks."""
    names = ['cifar_resnet50_se_ign3', 'cifar_resnet50_cbam_ign1']
    mp.spawn(train_and_compare, args=(2, str(tmp_path / 'store'), names, 3), nprocs=2, join=True)


def _synthetic_image_folder(root: pathlib.Path, num_classes: int, per_class: int, size: int) -> pathlib.Path:
    """``root/{train,validation}/class_k/*.png`` of random pixels."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split in ('train', 'validation'):
        for k in range(num_classes):
            folder = root / split / f'class_{k}'
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f'{i}.png')
    return root


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_launch_script_trains_with_two_cpu_processes(tmp_path):
    """distributed_train.sh 2 runs the CIFAR recipe through timm's train.py: DDP over gloo, the batch split in two.

    Everything up to the DDP wrap is asserted (torchrun, two ranks in one gloo group, per-rank batch, the model
    built from the recipe); a train.py that still passes ``device_ids`` for a CPU model fails there, which is
    reported as an expected failure naming that limitation, any other failure fails the test.
    """
    train_py = timm_train_py()
    data = _synthetic_image_folder(tmp_path / 'data', num_classes=2, per_class=16, size=32)
    env = dict(os.environ, TIMM_TRAIN_PY=str(train_py), GLOBAL_BATCH='16', MASTER_PORT=str(_free_port()),
               OMP_NUM_THREADS='1')
    env['PATH'] = f'{pathlib.Path(sys.executable).parent}{os.pathsep}{env["PATH"]}'
    command = [
        str(SCRIPTS / 'distributed_train.sh'), '2', str(SCRIPTS / 'cifar10.yaml'), '--data-dir', str(data),
        '--model', 'cifar_resnet50_cbam_ign1', '--model-kwargs', 'depth=8', '--num-classes', '2', '--epochs', '1',
        '--device', 'cpu', '--workers', '0', '--output', str(tmp_path / 'runs'), '--experiment', 'ddp']
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    log = result.stdout + result.stderr
    assert 'global batch 16 = 2 processes x 8' in log
    assert 'Process 0, total 2' in log and 'Process 1, total 2' in log, log[-3000:]
    if result.returncode != 0 and TIMM_CPU_DDP_LIMITATION in log and 'Model cifar_resnet50_cbam_ign1 created' in log:
        pytest.xfail("timm's train.py passes device_ids to DDP, which torch refuses for CPU models (train.py "
                     "task.prepare_distributed(device_ids=[device])); the launch itself works up to there")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / 'runs' / 'ddp'
    with open(run_dir / 'args.yaml') as f:
        args = yaml.safe_load(f)
    assert args['model'] == 'cifar_resnet50_cbam_ign1' and args['batch_size'] == 8
    assert (run_dir / 'summary.csv').read_text().splitlines()[1].startswith('0,')
