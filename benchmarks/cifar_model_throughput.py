"""Training throughput of the CIFAR DenseNet-40 against the CIFAR ResNet-50, and of its fused dense blocks.

Three models are measured interleaved (round-robin, one timed chunk per model per round) in two settings within one
run: float32 with contiguous tensors, and bfloat16 autocast with channels_last (how the GPU engine trains):

- ``cifar_resnet50``;
- ``densenet`` as it trains by default (dense blocks as ``DenseBlockFunction``);
- ``densenet_layerwise``: the same model with ``fused_backward = False`` on its stages (the layer-by-layer
  concatenation; both share the transitions' pool-before-convolution, which is the same function too).

A training step is forward, cross-entropy, backward and an SGD step. Each ratio is taken within a round, then the
median over rounds; compare ratios from one run, not absolute numbers across runs (the CPU may be shared). The table
is printed and a JSON record with the machine is written to ``benchmarks/results/``. On CPU the script re-runs itself
with the allocator settings of ``attention_throughput.py``.

Examples::

    python benchmarks/cifar_model_throughput.py                          # CPU, batch 128 at 32 px
    python benchmarks/cifar_model_throughput.py --device cuda --rounds 20 --steps 20
"""
import argparse
import os
import statistics
import sys

import torch

from attention_throughput import MALLOC_ENV, Runner, write_record

SETTINGS = {'fp32': dict(amp=False, channels_last=False), 'bf16_channels_last': dict(amp=True, channels_last=True)}
MODELS = ('cifar_resnet50', 'densenet', 'densenet_layerwise')
RATIOS = (('densenet', 'cifar_resnet50'), ('densenet_layerwise', 'cifar_resnet50'), ('densenet', 'densenet_layerwise'))


def make_runner(name: str, setting: dict[str, bool], args: argparse.Namespace) -> Runner:
    runner_args = argparse.Namespace(**{**vars(args), **setting, 'compile': False})
    runner = Runner(name.removesuffix('_layerwise'), runner_args)
    if name.endswith('_layerwise'):
        for stage in runner.model.stages:
            stage.fused_backward = False
    return runner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--img-size', type=int, default=32)
    parser.add_argument('--num-classes', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=1, help='timed steps per model per round')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--settings', default=','.join(SETTINGS), help=f'comma-separated: {", ".join(SETTINGS)}')
    parser.add_argument('--no-record', action='store_true', help='do not write benchmarks/results/*.json')
    args = parser.parse_args()
    settings = args.settings.split(',')
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f'unknown setting(s) {", ".join(unknown)}; allowed: {", ".join(SETTINGS)}')

    if args.device == 'cpu' and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    torch.manual_seed(0)
    runners = {(s, m): make_runner(m, SETTINGS[s], args) for s in settings for m in MODELS}
    print(f'# batch {args.batch_size} at {args.img_size}px on {args.device}, training steps, '
          f'{args.rounds} rounds x {args.steps} steps, settings {", ".join(settings)}, interleaved')
    for runner in runners.values():
        for _ in range(args.warmup):
            runner.step('train')
    results: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    for round_idx in range(args.rounds):
        for key, runner in runners.items():
            results[key].append(runner.timed('train', args.steps))
        print(f'# round {round_idx + 1}/{args.rounds} done', file=sys.stderr, flush=True)

    throughput = {s: {m: statistics.median(results[s, m]) for m in MODELS} for s in settings}
    ratios = {s: {f'{a} / {b}': statistics.median(x / y for x, y in zip(results[s, a], results[s, b]))
                  for a, b in RATIOS} for s in settings}
    print(f'\n{"train img/s (median)":28s} ' + ' '.join(f'{s:>20s}' for s in settings))
    for m in MODELS:
        print(f'{m:28s} ' + ' '.join(f'{throughput[s][m]:20.1f}' for s in settings))
    print(f'\n{"ratio (median of per-round)":40s} ' + ' '.join(f'{s:>20s}' for s in settings))
    for a, b in RATIOS:
        print(f'{a + " / " + b:40s} ' + ' '.join(f'{ratios[s][f"{a} / {b}"]:20.3f}' for s in settings))

    if not args.no_record:
        write_record(
            f'cifar_model_throughput_{args.device}', args,
            note='shared machine: other jobs ran at the same time; only the within-run ratios are meaningful',
            rounds={f'{s}/{m}': v for (s, m), v in results.items()}, throughput=throughput, ratios=ratios)
    return 0


if __name__ == '__main__':
    sys.exit(main())
