"""The engine's speed targets on one GPU, in one command: single runs, several runs at once, and timm's train.py.

    python benchmarks/cifar_engine_gpu.py --data-dir DIR                               # on the GPU machine
    TIMM_TRAIN_PY=/path/to/train.py python benchmarks/cifar_engine_gpu.py --data-dir DIR

DIR is the paper's split of CIFAR-10 (``make_imagefolder.py`` of the JPEG copy). Three measurements, each printed
as a table and recorded in results/ with the GPU's name:

1. **Single run**: images/s of one ``cifar_resnet50`` and one ``densenet`` run with the authors' recipe (batch 128,
   bf16 autocast, channels_last), eager and under ``torch.compile`` (``--compile-modes``), over ``--epochs`` epochs
   after a warm-up epoch; the projected wall time of the full 200 epochs (target for cifar_resnet50: 4 minutes).
2. **Queue**: aggregate images/s of ``--parallel`` runs at once (the queue's worker processes) on a mix of the zoo's
   CIFAR-10 models (target: 60 000 images/s).
3. **timm's train.py** (when ``TIMM_TRAIN_PY`` is set): one epoch of the same model, batch, optimizer and precision
   with ``--amp --channels-last`` through timm's loader (its time per epoch from the difference of a 2- and a 1-epoch
   run, so start-up is not counted); the engine / train.py ratio (target: 5x).

Runs on a CPU too (``--device cpu`` with small ``--train-images``), which checks the script, not the targets.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import torch
from attention_throughput import write_record

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timm_ignore.engine import EngineRecipe, RunSpec, load_image_folder, run_queue, train_run  # noqa: E402
from timm_ignore.engine.data import ImageData, SplitTensors  # noqa: E402

RECIPE = ROOT / 'train_scripts' / 'cifar10_authors.yaml'
QUEUE_MODELS = ('cifar_resnet50_se', 'cifar_resnet50_cbam_ign1', 'densenet_se_ign3', 'densenet_cbam')


def _head(data: ImageData, train_images: int) -> ImageData:
    if not train_images or train_images >= len(data.train):
        return data
    split = SplitTensors(data.train.images[:train_images], data.train.labels[:train_images])
    return ImageData(split, data.validation, None, data.classes, data.mean_image, data.source)


def _queue_speed(models, data: ImageData, data_dir: pathlib.Path, device: torch.device, parallel: int,
                 recipe: EngineRecipe, out: pathlib.Path) -> float:
    """Aggregate training images/s of a queue, timed from its start to its end (process start-up and compilation
    included, so a lower bound of the steady state)."""
    start = time.perf_counter()
    run_queue([RunSpec(m, 0) for m in models], recipe, data_dir, out, device, parallel, log=lambda line: None,
              data=data)
    wall = time.perf_counter() - start
    return len(models) * (len(data.train) // recipe.batch_size * recipe.batch_size) * recipe.epochs / wall


def _single_runs(args, data: ImageData, device: torch.device) -> list[dict]:
    """Per model and compile mode: images/s and seconds per epoch (validation included) after a warm-up epoch."""
    rows = []
    on_device = data.to(device)
    for model in args.models:
        for mode in args.compile_modes:
            compile_keys = {} if mode == 'eager' else {'torchcompile': 'inductor',
                                                       'compile_mode': None if mode == 'default' else mode}
            recipe = EngineRecipe.from_yaml(RECIPE, {'epochs': args.epochs + 1, **compile_keys})
            reports = []
            with tempfile.TemporaryDirectory() as out:
                train_run(RunSpec(model, 0), recipe, on_device, pathlib.Path(out), on_epoch=reports.append)
            timed = reports[1:]
            speed = sum(r.images_per_s for r in timed) / len(timed)
            epoch_s = sum(r.epoch_time_s for r in timed) / len(timed)
            scale = 40_000 / len(data.train)  # to a full epoch of the paper's split
            rows.append(dict(model=model, mode=mode, images_per_s=speed, epoch_s=epoch_s * scale,
                             projected_200_epochs_min=200 * epoch_s * scale / 60))
            print(f'| {model} | {mode} | {speed:,.0f} | {epoch_s * scale:.2f} | {200 * epoch_s * scale / 60:.1f} |',
                  flush=True)
    return rows


def _timm_train_py(args, device) -> dict:
    train_py = os.environ.get('TIMM_TRAIN_PY')
    if not train_py:
        return {}
    epoch_time = {}
    for epochs in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, train_py, '-c', str(ROOT / 'train_scripts' / 'cifar10.yaml'),
                       '--data-dir', str(args.data_dir), '--model', args.models[0], '--epochs', str(epochs),
                       '--amp', '--amp-dtype', 'bfloat16', '--channels-last', '--workers', str(args.workers),
                       '--output', out, '--device', str(device)]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            epoch_time[epochs] = time.perf_counter() - start
    seconds = max(epoch_time[2] - epoch_time[1], 1e-9)
    return dict(model=args.models[0], epoch_s=seconds, images_per_s=40_000 // 128 * 128 / seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-dir', type=pathlib.Path, required=True)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--models', nargs='+', default=['cifar_resnet50', 'densenet'])
    parser.add_argument('--compile-modes', nargs='+', default=['eager', 'default', 'reduce-overhead'])
    parser.add_argument('--epochs', type=int, default=2, help='timed epochs after one warm-up epoch')
    parser.add_argument('--parallel', nargs='+', type=int, default=[1, 4, 8])
    parser.add_argument('--train-images', type=int, default=0, help='use the first N training images (0: all)')
    parser.add_argument('--workers', type=int, default=8, help="train.py's loader processes")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = _head(load_image_folder(args.data_dir), args.train_images)
    print('| model | mode | train img/s | s/epoch | 200 epochs (min) |\n|---|---|---:|---:|---:|')
    singles = _single_runs(args, data, device)
    queue_rows = []
    print('\n| parallel runs | aggregate img/s |\n|---:|---:|')
    for parallel in args.parallel:
        recipe = EngineRecipe.from_yaml(RECIPE, {'epochs': args.epochs})
        models = [QUEUE_MODELS[i % len(QUEUE_MODELS)] for i in range(max(parallel, len(QUEUE_MODELS)))]
        with tempfile.TemporaryDirectory() as out:
            speed = _queue_speed(models, data, args.data_dir, device, parallel, recipe, pathlib.Path(out))
        queue_rows.append(dict(parallel=parallel, runs=len(models), images_per_s=speed))
        print(f'| {parallel} | {speed:,.0f} |', flush=True)
    train_py = _timm_train_py(args, device)
    if train_py:
        engine = next(r for r in singles if r['model'] == train_py['model'] and r['mode'] == 'eager')
        train_py['engine_over_train_py'] = engine['images_per_s'] / train_py['images_per_s']
        print(f'\ntimm train.py {train_py["model"]}: {train_py["images_per_s"]:,.0f} img/s; engine (eager) / train.py '
              f'= {train_py["engine_over_train_py"]:.1f}x')
    write_record(f'cifar_engine_gpu_{device.type}', args, single_runs=singles, queue=queue_rows, timm_train_py=train_py)
    return 0


if __name__ == '__main__':
    sys.exit(main())
