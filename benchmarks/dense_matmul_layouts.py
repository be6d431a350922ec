"""The fused dense block's 1x1 convolutions as matrix products: its channel-major layout against row-major features.

:class:`~timm_ignore.models._fused_dense_block.DenseBlockFunction` keeps the normalised features channel-major,
``(C, N*H*W)``, so that every layer's input is a contiguous leading slice and its BN-ReLU affine, statistics and
their backward are contiguous passes. Its 1x1 convolution is then three products per layer with the long
``N*H*W`` side on the channel-major operand. This script times those three products as the block calls them
(``channel-major``) against the same products on row-major ``(N*H*W, C)`` features (``row-major``: the layout a
matrix-product library packs cheaply, with the long side as the rows of its first operand), and what it costs to
get row-major features from the channel-major buffer (a cache-blocked 2-D transpose, the block's own copy), at one
mid-block width per stage in bf16, with a bf16 square matmul timed in the same round as the machine's peak.

Printed per stage and product: milliseconds (median over rounds) and GFLOP/s for each layout, and each GFLOP/s as a
share of the matmul's. A JSON record with the machine goes to ``benchmarks/results/``.

    python benchmarks/dense_matmul_layouts.py
    python benchmarks/dense_matmul_layouts.py --rounds 9 --batch-size 64
"""
import argparse
import statistics
import sys
import time
from typing import Callable

import torch

from attention_throughput import write_record
from cifar_model_throughput import Matmul

from timm_ignore.host_memory import keep_freed_memory
from timm_ignore.models._fused_dense_block import _copy_transposed_

BOTTLENECK = 48  # bn_size 4 x growth rate 12: the 1x1 convolution's output channels
# (stage, map side, channels at the block's middle layer) of the zoo's CIFAR DenseNet (24 -> 168 -> 312 -> 456)
STAGES = ((1, 32, 96), (2, 16, 240), (3, 8, 384))


def timed_ms(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` calls, in milliseconds (one warm-up call first)."""
    fn()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def stage_products(rows: int, chs: int) -> dict[str, Callable[[], object]]:
    """The layer's three products in both layouts, and the transpose that row-major features would cost."""
    bf16 = torch.bfloat16
    features_cm = torch.randn(chs, rows, dtype=bf16)  # the block's layout: (C, N*H*W)
    features_rm = features_cm.t().contiguous()  # (N*H*W, C)
    weight = torch.randn(BOTTLENECK, chs, dtype=bf16)
    grad_bottleneck = torch.randn(rows, BOTTLENECK, dtype=bf16)  # the bottleneck is row-major in the block
    grad_in_cm, grad_in_rm = torch.empty(chs, rows, dtype=bf16), torch.empty(rows, chs, dtype=bf16)
    return {
        # the calls DenseBlockFunction makes
        'forward channel-major': lambda: torch.mm(features_cm.t(), weight.t()),
        'input grad channel-major': lambda: torch.mm(weight.t(), grad_bottleneck.t(), out=grad_in_cm),
        'weight grad channel-major': lambda: torch.mm(features_cm, grad_bottleneck),
        # the same products on row-major features
        'forward row-major': lambda: torch.mm(features_rm, weight.t()),
        'input grad row-major': lambda: torch.mm(grad_bottleneck, weight, out=grad_in_rm),
        'weight grad row-major': lambda: torch.mm(features_rm.t(), grad_bottleneck),
        # what row-major features cost from the channel-major buffer, once per layer and direction
        'transpose to row-major': lambda: _copy_transposed_(grad_in_rm, features_cm),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=3, help='timed calls per product and round (best counts)')
    parser.add_argument('--matmul-size', type=int, default=2048)
    parser.add_argument('--no-record', action='store_true', help='do not write benchmarks/results/*.json')
    args = parser.parse_args()
    if args.batch_size < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error('--batch-size, --rounds and --repeats must be at least 1')
    keep_freed_memory()  # as the trainers run
    torch.manual_seed(0)

    matmul = Matmul(args.matmul_size, torch.device('cpu'))
    stages = {stage: (args.batch_size * side * side, chs, stage_products(args.batch_size * side * side, chs))
              for stage, side, chs in STAGES}
    times: dict[str, list[float]] = {}
    peaks: list[float] = []
    print(f'# bf16, batch {args.batch_size}, {args.rounds} rounds, best of {args.repeats} calls per round')
    for r in range(args.rounds):
        peaks.append(matmul.timed(args.repeats))
        for stage, (_, _, products) in stages.items():
            for name, fn in products.items():
                times.setdefault(f'{stage}/{name}', []).append(timed_ms(fn, args.repeats))
        print(f'round {r}: matmul {peaks[-1] / 1e9:.0f} GFLOP/s', flush=True)

    peak = statistics.median(peaks)
    print(f'\nbf16 matmul {args.matmul_size}^3: {peak / 1e9:.0f} GFLOP/s (median)\n')
    print('| stage | (rows, C) | product | channel-major ms | GFLOP/s | share | row-major ms | GFLOP/s | share |')
    print('|---|---|---|---:|---:|---:|---:|---:|---:|')
    table = []
    for stage, (rows, chs, _) in stages.items():
        flop = 2 * rows * chs * BOTTLENECK
        for product in ('forward', 'input grad', 'weight grad'):
            cm = statistics.median(times[f'{stage}/{product} channel-major'])
            rm = statistics.median(times[f'{stage}/{product} row-major'])
            row = dict(stage=stage, rows=rows, chs=chs, product=product, channel_major_ms=cm, row_major_ms=rm,
                       channel_major_gflops=flop / cm / 1e6, row_major_gflops=flop / rm / 1e6)
            table.append(row)
            print(f'| {stage} | ({rows}, {chs}) | {product} | {cm:.2f} | {row["channel_major_gflops"]:.0f} | '
                  f'{row["channel_major_gflops"] * 1e9 / peak:.2f} | {rm:.2f} | {row["row_major_gflops"]:.0f} | '
                  f'{row["row_major_gflops"] * 1e9 / peak:.2f} |')
        transpose = statistics.median(times[f'{stage}/transpose to row-major'])
        table.append(dict(stage=stage, rows=rows, chs=chs, product='transpose to row-major', ms=transpose))
        print(f'| {stage} | ({rows}, {chs}) | transpose to row-major (a copy) | {transpose:.2f} | | | | | |')
    if not args.no_record:
        write_record('dense_matmul_layouts_cpu', args, matmul_gflops=[p / 1e9 for p in peaks], table=table,
                     rounds=times)
    return 0


if __name__ == '__main__':
    sys.exit(main())
