"""The classifier head's backward to the last BN-ReLU: timm's global average pool against ``LayoutKeepingPool2d``.

Times ``relu -> pool -> backward`` on the CIFAR models' last feature maps (bf16, channels_last, as the zoo trains),
interleaved per round, best of ``--repeats`` calls; prints milliseconds (median over rounds) and the ratio
ours / timm's (below 1: ours is faster). timm's pool hands back a dense NCHW gradient, which the ReLU's backward then
reads against its channels_last output element by element; ``LayoutKeepingPool2d`` hands back a broadcast view. A
JSON record with the machine goes to ``benchmarks/results/``.

    python benchmarks/head_pool_backward.py
"""
import argparse
import statistics
import sys
import time

import torch
from timm.layers import SelectAdaptivePool2d
from torch import nn

from attention_throughput import write_record

from timm_ignore.host_memory import keep_freed_memory
from timm_ignore.layers.global_pool import LayoutKeepingPool2d

# the last feature maps of the zoo's CIFAR families at batch 128: densenet*, cifar_resnet50*
HEAD_MAPS = {'densenet': (128, 456, 8, 8), 'cifar_resnet50': (128, 64, 8, 8)}


def relu_pool_backward_ms(pool: nn.Module, features: torch.Tensor, repeats: int) -> float:
    """Best of ``repeats`` forward + backward passes through ReLU and ``pool``, in milliseconds."""
    best = float('inf')
    for _ in range(repeats + 1):  # the first is a warm-up
        x = features.detach().requires_grad_()
        start = time.perf_counter()
        pool(x.relu()).sum().backward()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--no-record', action='store_true', help='do not write benchmarks/results/*.json')
    args = parser.parse_args()
    if args.rounds < 1 or args.repeats < 1:
        parser.error('--rounds and --repeats must be at least 1')
    keep_freed_memory()  # as the trainers run
    torch.manual_seed(0)
    pools = {'timm': SelectAdaptivePool2d(pool_type='avg', flatten=True),
             'ours': LayoutKeepingPool2d(pool_type='avg', flatten=True)}
    maps = {family: torch.randn(shape, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
            for family, shape in HEAD_MAPS.items()}
    times = {f'{family}/{name}': [] for family in maps for name in pools}
    for r in range(args.rounds):
        for family, features in maps.items():
            for name in (pools if r % 2 == 0 else reversed(pools)):
                times[f'{family}/{name}'].append(relu_pool_backward_ms(pools[name], features, args.repeats))

    print(f'# ReLU -> global average pool, forward + backward, bf16 channels_last, {args.rounds} rounds, '
          f'best of {args.repeats}\n')
    print('| family | last map | timm ms | LayoutKeepingPool2d ms | ours / timm (median of rounds) |')
    print('|---|---|---:|---:|---:|')
    table = []
    for family, shape in HEAD_MAPS.items():
        theirs, ours = times[f'{family}/timm'], times[f'{family}/ours']
        row = dict(family=family, shape=shape, timm_ms=statistics.median(theirs), ours_ms=statistics.median(ours),
                   ratio=statistics.median(o / t for o, t in zip(ours, theirs)))
        table.append(row)
        print(f'| {family} | {shape} | {row["timm_ms"]:.2f} | {row["ours_ms"]:.2f} | {row["ratio"]:.2f} |')
    if not args.no_record:
        write_record('head_pool_backward_cpu', args, table=table, rounds=times)
    return 0


if __name__ == '__main__':
    sys.exit(main())
