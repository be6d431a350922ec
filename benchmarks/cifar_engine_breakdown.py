"""Where the engine's CIFAR epoch goes beyond its training steps: input pipeline, validation, checkpoints.

One engine epoch (``timm_ignore/engine``) is ``train_images // batch`` steps, each a gather of uint8 images held in
memory, :func:`~timm_ignore.engine.augment.normalize` + :func:`~timm_ignore.engine.augment.augment_batch` and a
training step; then a validation pass over ``--val-images`` at ``--val-batch-size`` and two checkpoint saves
(``last.pth.tar`` every epoch, ``model_best.pth.tar`` when validation improves). This script times each part
interleaved (per round and model: one chunk of bare training steps, the same steps with the engine's input pipeline,
one validation batch per candidate validation batch size, one checkpoint save), on random uint8 images, and projects
the epoch: ``steps * (input + step) + val_images / val_batch * val_batch_time + 2 * save``. Printed: per model the
bare step's img/s, the projected epoch's img/s and its ratio to the bare step, and each part's share of the epoch.

    python benchmarks/cifar_engine_breakdown.py                       # CPU, bf16 autocast + channels_last
    python benchmarks/cifar_engine_breakdown.py --models densenet --val-batch-sizes 1000,250,128
"""
import argparse
import io
import statistics
import sys
import time

import torch
from torch.nn import functional as F

from attention_throughput import write_record
from cifar_model_throughput import make_runner

from timm_ignore.engine.augment import augment_batch, draw_augmentation, normalize
from timm_ignore.host_memory import keep_freed_memory

PARTS = ('step', 'input', 'validation', 'checkpoints')


def _timed(fn, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default='cifar_resnet50,densenet')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--train-images', type=int, default=40_000)
    parser.add_argument('--val-images', type=int, default=10_000)
    parser.add_argument('--val-batch-sizes', default='1000,250', help='comma-separated; the first is the recipe\'s')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--steps', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-record', action='store_true')
    args = parser.parse_args()
    args.amp = args.channels_last = True
    args.img_size, args.num_classes = 32, 10
    models = args.models.split(',')
    val_sizes = [int(v) for v in args.val_batch_sizes.split(',')]

    if args.device == 'cpu':
        keep_freed_memory()  # as the trainers do: large buffers reused, not faulted in anew every step
    torch.manual_seed(0)
    device = torch.device(args.device)
    images = torch.randint(0, 256, (args.train_images, 32, 32, 3), dtype=torch.uint8, device=device)
    offset = images[:1000].permute(0, 3, 1, 2).float().mean(0).div_(255.0)  # a per-pixel mean image
    generator = torch.Generator().manual_seed(0)
    runners = {m: make_runner(m, args.batch_size, args) for m in models}

    def input_batch() -> torch.Tensor:
        idx = torch.randint(0, args.train_images, (args.batch_size,), generator=generator).to(device)
        shifts, flips = draw_augmentation(generator, args.batch_size, 4.0, 0.5)
        x = augment_batch(normalize(images[idx], offset), shifts.to(device), flips.to(device))
        return x.contiguous(memory_format=torch.channels_last)

    def validation_batch(runner, size: int) -> None:
        runner.model.eval()
        with torch.no_grad():
            x = normalize(images[:size], offset).contiguous(memory_format=torch.channels_last)
            with runner.autocast():
                logits = runner.model(x).float()
            F.cross_entropy(logits, runner.y[:1].expand(size)).item()
            logits.topk(5, dim=1)
        runner.model.train()

    def save(runner) -> None:
        torch.save(dict(state_dict=runner.model.state_dict(), optimizer=runner.optimizer.state_dict()), io.BytesIO())

    def engine_step(runner) -> None:
        runner.x = input_batch()
        runner.step('train')

    for runner in runners.values():  # warm-up
        runner.step('train'), engine_step(runner), validation_batch(runner, val_sizes[0]), save(runner)
    times = {(m, p): [] for m in models for p in ('step', 'engine_step', 'input', 'save', *val_sizes)}
    for round_idx in range(args.rounds):
        for m, runner in runners.items():
            times[m, 'step'].append(_timed(lambda: runner.step('train'), args.steps))
            times[m, 'engine_step'].append(_timed(lambda: engine_step(runner), args.steps))
            times[m, 'input'].append(_timed(input_batch, 5))
            for size in val_sizes:
                times[m, size].append(_timed(lambda: validation_batch(runner, size)) / size)
            times[m, 'save'].append(_timed(lambda: save(runner)))
        print(f'# round {round_idx + 1}/{args.rounds} done', file=sys.stderr, flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    steps = args.train_images // args.batch_size
    print(f'\n# bf16 autocast + channels_last, batch {args.batch_size}, {steps} steps + validation of '
          f'{args.val_images} per epoch, {args.rounds} rounds, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    print('| model | bare step img/s | input ms/batch | step with input img/s | validation s/epoch (batch) | '
          'saves s/epoch | projected epoch img/s | epoch / bare step | input, validation, saves share of epoch |')
    print('|---|---:|---:|---:|---|---:|---:|---:|---|')
    table = {}
    for m in models:
        val = {size: med[m, size] * args.val_images for size in val_sizes}
        epoch = steps * med[m, 'engine_step'] + val[val_sizes[0]] + 2 * med[m, 'save']
        bare = args.batch_size / med[m, 'step']
        projected = steps * args.batch_size / epoch
        shares = (steps * (med[m, 'engine_step'] - med[m, 'step']) / epoch, val[val_sizes[0]] / epoch,
                  2 * med[m, 'save'] / epoch)
        table[m] = dict(bare_img_s=bare, input_s=med[m, 'input'], engine_step_img_s=args.batch_size /
                        med[m, 'engine_step'], validation_s=val, saves_s=2 * med[m, 'save'],
                        projected_epoch_img_s=projected, epoch_over_bare=projected / bare, shares=shares)
        val_text = ', '.join(f'{v:.1f} ({size})' for size, v in val.items())
        print(f'| `{m}` | {bare:.0f} | {1e3 * med[m, "input"]:.1f} | {args.batch_size / med[m, "engine_step"]:.0f} | '
              f'{val_text} | {2 * med[m, "save"]:.2f} | {projected:.0f} | {projected / bare:.3f} | '
              + ', '.join(f'{s:.3f}' for s in shares) + ' |')
    if not args.no_record:
        write_record(f'cifar_engine_breakdown_{args.device}', args, threads=torch.get_num_threads(),
                     rounds={f'{m}/{p}': v for (m, p), v in times.items()}, table=table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
