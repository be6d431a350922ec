"""Forward + backward time of one attention block: fused backward vs plain autograd vs timm's module.

Shapes are the four ResNet-50 stages at batch 8 and 160 px. The three variants of a shape run interleaved; the
median over rounds is printed in milliseconds. CPU runs re-exec with the glibc malloc settings of
``attention_throughput.py``.

    python benchmarks/block_fused_backward.py --block cbam
"""
import argparse
import os
import statistics
import sys
import time

import torch
from timm.layers import SEModule
from timm.layers.cbam import CbamModule
from torch import nn

from timm_ignore import IgnoreCbam, IgnoreSqueezeExcite

MALLOC_ENV = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '68719476736'}
SHAPES = ((8, 256, 40, 40), (8, 512, 20, 20), (8, 1024, 10, 10), (8, 2048, 5, 5))


def blocks(kind: str, channels: int) -> dict[str, nn.Module]:
    ours = IgnoreSqueezeExcite if kind == 'se' else IgnoreCbam
    fused, plain = ours(channels), ours(channels)
    plain.fused_backward = False
    timm_block = SEModule(channels, rd_ratio=1 / 8, rd_divisor=1) if kind == 'se' else CbamModule(channels, 1 / 8)
    return {'fused': fused, 'autograd': plain, 'timm': timm_block}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--block', choices=('se', 'cbam'), default='cbam')
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--steps', type=int, default=3)
    args = parser.parse_args()
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})

    torch.manual_seed(0)
    print(f'# {args.block} block, forward + backward, ms (median of {args.rounds} rounds x {args.steps} steps), '
          f'{torch.get_num_threads()} threads, ' + ' '.join(f'{k}={v}' for k, v in MALLOC_ENV.items()))
    print(f'{"shape":22s} {"fused":>8s} {"autograd":>9s} {"timm":>8s}')
    for shape in SHAPES:
        x = torch.randn(shape, requires_grad=True)
        grad = torch.randn(shape)
        variants = blocks(args.block, shape[1])
        times: dict[str, list[float]] = {name: [] for name in variants}

        def step(block: nn.Module) -> None:
            block(x).backward(grad)
            x.grad = None

        for block in variants.values():
            step(block)
        for _ in range(args.rounds):
            for name, block in variants.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    step(block)
                times[name].append((time.perf_counter() - start) / args.steps * 1e3)
        print(f'{str(shape):22s} ' + ' '.join(f'{statistics.median(times[n]):8.2f}' for n in variants))
    return 0


if __name__ == '__main__':
    sys.exit(main())
