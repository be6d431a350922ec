"""Training throughput of the in-memory engine against ``timm-ignore train`` (timm's loader and loop), interleaved.

Both train the same model for one epoch on the same ImageFolder split at batch 128 and validate once; a round runs
every trainer once, and the ratio engine / trainer is taken within a round (median over rounds), so machine drifts
cancel. Images/s counts training images over the whole epoch's wall time (validation included, as a run spends it).

    python benchmarks/cifar_engine_throughput.py --data-dir DIR            # DIR: train/ and validation/ folders
    python benchmarks/cifar_engine_throughput.py --data-dir DIR --device cuda --rounds 2 --train-images 40000

``timm-ignore train`` runs the paper-text recipe (train_scripts/cifar10.yaml: timm's loader, PIL augmentation in
``--workers`` processes); the engine runs the authors' recipe (train_scripts/cifar10_authors.yaml). Same model,
batch, optimizer and precision. A JSON record goes to results/.
"""
import argparse
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import torch
from attention_throughput import write_record

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timm_ignore.engine import EngineRecipe, RunSpec, load_image_folder, train_run  # noqa: E402
from timm_ignore.train import TrainConfig, train  # noqa: E402


def _subset_tree(data_dir: pathlib.Path, out: pathlib.Path, train_images: int, val_images: int) -> pathlib.Path:
    """Link the first images of each class (round robin) into a smaller ImageFolder tree both trainers read."""
    for split, count in (('train', train_images), ('validation', val_images)):
        classes = sorted(p for p in (data_dir / split).iterdir() if p.is_dir())
        files = [sorted(c.iterdir()) for c in classes]
        for i in range(count):
            source = files[i % len(classes)][i // len(classes)]
            target = out / split / source.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source.resolve())
    return out


def _engine_epoch(model: str, data, device: torch.device, amp: bool, channels_last: bool, out: pathlib.Path) -> float:
    recipe = EngineRecipe(epochs=1, amp=amp, channels_last=channels_last)
    start = time.perf_counter()
    train_run(RunSpec(model, 0), recipe, data, out / f'engine-{time.monotonic_ns()}')
    return (len(data.train) // recipe.batch_size * recipe.batch_size) / (time.perf_counter() - start)


def _trainer_epoch(model: str, data_dir: pathlib.Path, device: torch.device, amp: bool, workers: int,
                   out: pathlib.Path) -> float:
    config = TrainConfig.from_recipe(ROOT / 'train_scripts' / 'cifar10.yaml', dict(
        data_dir=str(data_dir), model=model, epochs=1, device=str(device), amp=amp, amp_dtype='bfloat16',
        workers=workers, output=str(out), experiment=f'train-{time.monotonic_ns()}', log_interval=10_000))
    images = sum(1 for _ in (data_dir / 'train').rglob('*.*')) // config.batch_size * config.batch_size
    start = time.perf_counter()
    train(config)
    return images / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-dir', type=pathlib.Path, required=True)
    parser.add_argument('--model', default='cifar_resnet50_se')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--train-images', type=int, default=2048)
    parser.add_argument('--val-images', type=int, default=256)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--workers', type=int, default=2, help="timm-ignore train's loader processes")
    args = parser.parse_args()
    device = torch.device(args.device)
    work = pathlib.Path(tempfile.mkdtemp(prefix='engine-bench-'))
    try:
        data_dir = _subset_tree(args.data_dir, work / 'data', args.train_images, args.val_images)
        data = load_image_folder(data_dir).to(device)
        modes = {'float32': (False, False), 'bf16 autocast': (True, True)}
        speeds: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for mode, (amp, channels_last) in modes.items():
                speeds.setdefault(f'engine {mode}', []).append(
                    _engine_epoch(args.model, data, device, amp, channels_last, work))
                speeds.setdefault(f'timm-ignore train {mode}', []).append(
                    _trainer_epoch(args.model, data_dir, device, amp, args.workers, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = {mode: statistics.median(e / t for e, t in zip(speeds[f'engine {mode}'],
                                                             speeds[f'timm-ignore train {mode}'])) for mode in modes}
    print(f'{args.model}, batch 128, {args.train_images} training images, {device}, {args.rounds} rounds')
    print(f'| trainer | {" | ".join(modes)} |\n|---|{"---:|" * len(modes)}')
    for trainer in ('engine', 'timm-ignore train'):
        cells = ' | '.join(f'{statistics.median(speeds[f"{trainer} {m}"]):,.0f} img/s' for m in modes)
        print(f'| {trainer} | {cells} |')
    print(f'| engine / timm-ignore train | {" | ".join(f"{ratios[m]:.2f}x" for m in modes)} |')
    write_record(f'cifar_engine_throughput_{device.type}_{args.model}', args, images_per_s=speeds,
                 ratio_engine_over_trainer=ratios)
    return 0


if __name__ == '__main__':
    sys.exit(main())
