"""timm's train.py on a GPU with the paper's ImageNet recipe: eager and --torchcompile, AMP, channels_last.

Builds a synthetic 224 px ImageFolder (10 classes of noisy, class-coloured images, so the loss can fall), then runs
``train_scripts/distributed_train.sh 1 train_scripts/imagenet_resnet50.yaml --amp --channels-last`` for a few hundred
steps with ``resnet50_cbam_ign1``, once eager and once with ``--torchcompile``. Checks that the loss falls and that
torch.compile reports no graph break or recompilation (``TORCH_LOGS=graph_breaks,recompiles``), and records images/s
(train.py's running average, after the first logged interval) with the machine in ``benchmarks/results/``.

    TIMM_TRAIN_PY=/path/to/pytorch-image-models/train.py python benchmarks/gpu_train_smoke.py

Needs a CUDA GPU, and a train.py matching the installed timm. Exit status 0 when every check holds.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys

import numpy as np
import timm
import torch
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / 'benchmarks' / 'results'
TRAIN_LINE = re.compile(r'Train: (\d+) \[\s*(\d+)/(\d+).*?Loss: ([\d.eE+-]+) \(([\d.eE+-]+)\).*?/s\s+\(.*?([\d.]+)/s\)')


def synthetic_image_folder(root: pathlib.Path, classes: int, per_class: int, size: int = 256) -> pathlib.Path:
    """``root/{train,validation}/class_k/*.jpg``: class k is a mean colour plus noise, so a network can learn it."""
    if (root / 'done').exists():
        return root
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 216, (classes, 3))
    for split, count in (('train', per_class), ('validation', max(per_class // 10, 2))):
        for k in range(classes):
            folder = root / split / f'class_{k}'
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = colours[k] + rng.normal(0, 40, (size, size, 3))
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f'{i}.jpg', quality=90)
    (root / 'done').touch()
    return root


def run(args: argparse.Namespace, data: pathlib.Path, compile_: bool) -> dict:
    name = 'torchcompile' if compile_ else 'eager'
    env = dict(os.environ, GLOBAL_BATCH=str(args.batch_size), TORCH_LOGS='graph_breaks,recompiles',
               PATH=f'{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}')
    scripts = REPO / 'train_scripts'
    command = [
        str(scripts / 'distributed_train.sh'), '1', str(scripts / 'imagenet_resnet50.yaml'),
        '--data-dir', str(data), '--model', args.model, '--num-classes', str(args.classes), '--amp', '--channels-last',
        '--epochs', str(args.epochs), '--epoch-repeats', str(args.epoch_repeats), '--workers', str(args.workers),
        '--pin-mem', '--log-interval', '10', '--output', str(args.work_dir / 'runs'), '--experiment', name]
    if compile_:
        command.append('--torchcompile')
    print('+', ' '.join(command), flush=True)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    (args.work_dir / f'{name}.log').write_text(log)
    steps = [m.groups() for m in TRAIN_LINE.finditer(log)]
    losses = [float(s[3]) for s in steps]
    rates = [float(s[5]) for s in steps if int(s[1]) > 0]  # running average after the first logged interval
    graph_breaks = len(re.findall(r'Graph break', log))
    recompiles = len(re.findall(r'Recompiling function', log))
    record = dict(
        mode=name, returncode=result.returncode, logged_steps=len(steps), first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None, images_per_s=rates[-1] if rates else None,
        graph_breaks=graph_breaks, recompiles=recompiles)
    record['ok'] = (result.returncode == 0 and len(losses) >= 2 and losses[-1] < 0.8 * losses[0]
                    and graph_breaks == 0 and recompiles == 0)
    if result.returncode != 0:
        print(log[-4000:], file=sys.stderr)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='resnet50_cbam_ign1')
    parser.add_argument('--batch-size', type=int, default=256, help='global batch (the recipe: 256)')
    parser.add_argument('--classes', type=int, default=10)
    parser.add_argument('--per-class', type=int, default=128, help='training images per class')
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--epoch-repeats', type=int, default=20, help="train.py's --epoch-repeats: steps per epoch")
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument('--work-dir', type=pathlib.Path, default=pathlib.Path('/tmp/timm_ignore_gpu_smoke'))
    parser.add_argument('--modes', default='eager,torchcompile')
    args = parser.parse_args()
    if not os.environ.get('TIMM_TRAIN_PY') or not pathlib.Path(os.environ['TIMM_TRAIN_PY']).is_file():
        print("error: set TIMM_TRAIN_PY to timm's train.py (from a pytorch-image-models checkout)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print('error: no CUDA GPU; this smoke test runs the recipe on a GPU', file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = synthetic_image_folder(args.work_dir / 'data', args.classes, args.per_class)
    records = [run(args, data, compile_=mode == 'torchcompile') for mode in args.modes.split(',')]

    print(f'\n{"mode":14s} {"ok":>3s} {"steps":>6s} {"loss first":>10s} {"loss last":>10s} {"img/s":>8s} '
          f'{"graph breaks":>12s} {"recompiles":>10s}')
    for r in records:
        print(f'{r["mode"]:14s} {"yes" if r["ok"] else "NO":>3s} {r["logged_steps"]:6d} '
              f'{r["first_loss"] or 0:10.3f} {r["last_loss"] or 0:10.3f} {r["images_per_s"] or 0:8.1f} '
              f'{r["graph_breaks"]:12d} {r["recompiles"]:10d}')
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    machine = {'gpu': torch.cuda.get_device_name(), 'torch': torch.__version__, 'timm': timm.__version__,
               'cuda': torch.version.cuda, 'python': platform.python_version(), 'platform': platform.platform()}
    path = RESULTS_DIR / f'gpu_train_smoke_{stamp}.json'
    path.write_text(json.dumps(dict(time=stamp, machine=machine, args={k: str(v) for k, v in vars(args).items()},
                                    runs=records), indent=1))
    print(f'recorded in {path.relative_to(REPO)}; logs in {args.work_dir}')
    return 0 if all(r['ok'] for r in records) else 1


if __name__ == '__main__':
    sys.exit(main())
