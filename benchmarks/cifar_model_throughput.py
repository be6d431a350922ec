"""Training throughput of the CIFAR zoo's families against the CIFAR ResNet-50, and against the machine's matmul.

The campaign's regime by default: bfloat16 autocast with channels_last, batch 128 at 32 px, full training steps
(forward, cross-entropy, backward, an SGD step of timm's ``create_optimizer_v2``), models as ``timm.create_model``
builds them. Per round, every model runs one timed chunk of steps and a matrix product of ``--matmul-size`` in the
regime's dtype is timed too (interleaved, so drifts of the machine cancel). The table gives per model:

- train img/s (median over rounds);
- its ratio to ``cifar_resnet50`` (taken within each round, median over rounds);
- its share of the matmul's FLOP/s: training FLOPs per image (3x the forward's matmul/convolution FLOPs counted by
  ``torch.utils.flop_counter``) times img/s over the matmul's FLOP/s in the same round (median), i.e. how far the
  model is from the machine's compute peak.

A ``+autograd`` suffix turns every ``fused_backward`` off (``densenet+autograd``: the dense blocks as the
layer-by-layer concatenation; attention blocks through plain autograd). ``--batch-sizes`` repeats the models at
several batch sizes within the run. The table is printed and a JSON record with the machine is written to
``benchmarks/results/``. On CPU it keeps freed memory in the process, as the trainers do.

Examples::

    python benchmarks/cifar_model_throughput.py                          # CPU, the campaign's regime
    python benchmarks/cifar_model_throughput.py --models cifar_resnet50,densenet --batch-sizes 64,128,256
    python benchmarks/cifar_model_throughput.py --device cuda --rounds 20 --steps 20
"""
import argparse
import copy
import statistics
import sys
import time

import torch
from timm.optim import create_optimizer_v2
from torch.utils.flop_counter import FlopCounterMode

from attention_throughput import Runner, write_record

from timm_ignore.host_memory import keep_freed_memory

MODELS = ('cifar_resnet50', 'cifar_resnet50_se', 'cifar_resnet50_cbam', 'densenet', 'densenet+autograd',
          'densenet_se', 'densenet_cbam')
REFERENCE = 'cifar_resnet50'


def make_runner(name: str, batch_size: int, args: argparse.Namespace) -> Runner:
    """A model in the regime of ``args`` whose steps use timm's SGD (momentum 0.9, weight decay as the recipes)."""
    runner_args = argparse.Namespace(**{**vars(args), 'batch_size': batch_size, 'compile': False})
    runner = Runner(name, runner_args)
    runner.optimizer = create_optimizer_v2(runner.model, 'sgd', lr=0.1, momentum=0.9, weight_decay=1e-4)
    return runner


def train_flops_per_image(runner: Runner) -> float:
    """3x the forward's FLOPs (matmuls and convolutions) per image: forward, input gradient, weight gradient."""
    model = copy.deepcopy(runner.model).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), runner.autocast(), counter:
        model(runner.x)
    return 3 * counter.get_total_flops() / runner.x.shape[0]


class Matmul:
    """A square matrix product in the regime's dtype on the benchmark's device: the machine's compute peak in this
    run (bf16 for the campaign's regime, float32 under ``--fp32``)."""

    def __init__(self, size: int, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        self.a = torch.randn(size, size, device=device, dtype=dtype)
        self.b = torch.randn(size, size, device=device, dtype=dtype)
        self.flops = 2 * size ** 3

    def timed(self, steps: int) -> float:
        """FLOP/s over ``steps`` products."""
        self.sync()
        start = time.perf_counter()
        for _ in range(steps):
            torch.mm(self.a, self.b)
        self.sync()
        return steps * self.flops / (time.perf_counter() - start)

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default=','.join(MODELS), help='comma-separated (a +autograd suffix allowed)')
    parser.add_argument('--batch-sizes', default='128', help='comma-separated batch sizes')
    parser.add_argument('--img-size', type=int, default=32)
    parser.add_argument('--num-classes', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=2, help='timed steps per model per round')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--matmul-size', type=int, default=2048)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--fp32', action='store_true', help='float32, contiguous (default: bf16 autocast + '
                                                             'channels_last)')
    parser.add_argument('--no-record', action='store_true', help='do not write benchmarks/results/*.json')
    args = parser.parse_args()
    models = args.models.split(',')
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(',')]
    except ValueError:
        parser.error(f'--batch-sizes must be comma-separated integers, got {args.batch_sizes!r}')
    if REFERENCE not in models:
        parser.error(f'--models must include the reference {REFERENCE}')
    args.amp, args.channels_last = not args.fp32, not args.fp32

    if args.device == 'cpu':
        keep_freed_memory()  # as the trainers do: large buffers reused, not faulted in anew every step
    torch.manual_seed(0)
    runners = {(b, m): make_runner(m, b, args) for b in batch_sizes for m in models}
    flops = {m: train_flops_per_image(runners[batch_sizes[0], m]) for m in models}
    matmul = Matmul(args.matmul_size, torch.device(args.device), torch.float32 if args.fp32 else torch.bfloat16)
    regime = 'float32' if args.fp32 else 'bf16 autocast + channels_last'
    print(f'# {regime}, batch {",".join(map(str, batch_sizes))} at {args.img_size}px on {args.device}, training '
          f'steps (timm SGD), {args.rounds} rounds x {args.steps} steps, interleaved; torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    for runner in runners.values():
        for _ in range(args.warmup):
            runner.step('train')
    matmul.timed(args.steps)
    results: dict[tuple[int, str], list[float]] = {key: [] for key in runners}
    matmul_flops: list[float] = []
    for round_idx in range(args.rounds):
        matmul_flops.append(matmul.timed(args.steps))
        for key, runner in runners.items():
            results[key].append(runner.timed('train', args.steps))
        print(f'# round {round_idx + 1}/{args.rounds} done', file=sys.stderr, flush=True)

    rows = {}
    for (b, m), r in results.items():
        reference = results[b, REFERENCE]
        rows[f'{m}@{b}'] = dict(
            model=m, batch_size=b, img_s=statistics.median(r),
            ratio=statistics.median(x / y for x, y in zip(r, reference)),
            matmul_share=statistics.median(x * flops[m] / f for x, f in zip(r, matmul_flops)),
            train_gflop_per_image=flops[m] / 1e9)
    peak = statistics.median(matmul_flops)
    dtype_name = str(matmul.dtype).replace('torch.', '')
    print(f'\n{dtype_name} matmul {args.matmul_size}^3: {peak / 1e9:.0f} GFLOP/s (median)\n')
    print(f'| model | batch | train img/s | ratio to {REFERENCE} | train GFLOP/img | share of matmul FLOP/s |')
    print('|---|---:|---:|---:|---:|---:|')
    for row in rows.values():
        print(f'| `{row["model"]}` | {row["batch_size"]} | {row["img_s"]:.0f} | {row["ratio"]:.2f} | '
              f'{row["train_gflop_per_image"]:.3f} | {row["matmul_share"]:.2f} |')

    if not args.no_record:
        write_record(
            f'cifar_model_throughput_{args.device}', args, regime=regime, threads=torch.get_num_threads(),
            matmul_flops=matmul_flops, rounds={k: v for k, v in zip(rows, results.values())}, table=rows)
    return 0


if __name__ == '__main__':
    sys.exit(main())
