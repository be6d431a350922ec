"""Forward + backward time of one attention block: fused backward vs plain autograd vs timm's module.

Shapes are the four ResNet-50 stages (default batch 8 at 160 px). The three variants of a shape run interleaved;
the minimum over rounds (the least disturbed on a shared machine) is printed in milliseconds. CPU runs re-exec with
the glibc malloc settings of ``attention_throughput.py``. This is the measurement behind the per-device choice of
the fused backward (``timm_ignore/layers/fused_backward.py``).

    python benchmarks/block_fused_backward.py --block cbam
    python benchmarks/block_fused_backward.py --block cbam --amp --channels-last --batch-size 16   # CPU, AMX-like
    python benchmarks/block_fused_backward.py --block cbam --device cuda --amp --channels-last --batch-size 256 \
        --img-size 224
"""
import argparse
import sys
import time

import torch
from timm.layers import SEModule
from timm.layers.cbam import CbamModule
from torch import nn

from timm_ignore import IgnoreCbam, IgnoreSqueezeExcite
from timm_ignore.host_memory import keep_freed_memory


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
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=160)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true', help='bfloat16 autocast, the map in bfloat16 (as in a network)')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    args = parser.parse_args()
    if args.device == 'cpu':
        keep_freed_memory()  # as the trainers do: large buffers reused, not faulted in anew every step
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.amp else torch.float32
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    print(f'# {args.block} block, forward + backward, ms (min of {args.rounds} rounds x {args.steps} steps), '
          f'{args.device}, amp={args.amp}, channels_last={args.channels_last}, {torch.get_num_threads()} threads'
          + (', freed memory kept' if args.device == 'cpu' else ''))
    print(f'{"shape":22s} {"fused":>8s} {"autograd":>9s} {"timm":>8s}')
    for stage, channels in enumerate((256, 512, 1024, 2048)):
        size = args.img_size // 2 ** (stage + 2)
        shape = (args.batch_size, channels, size, size)
        x = torch.randn(shape, device=device, dtype=dtype).to(memory_format=memory_format).requires_grad_()
        grad = torch.randn(shape, device=device, dtype=dtype).to(memory_format=memory_format)
        variants = {k: v.to(device) for k, v in blocks(args.block, channels).items()}
        times: dict[str, list[float]] = {name: [] for name in variants}

        def step(block: nn.Module) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
                y = block(x)
            y.backward(grad)
            x.grad = None

        def sync() -> None:
            if device.type == 'cuda':
                torch.cuda.synchronize()

        for block in variants.values():
            step(block)
        for _ in range(args.rounds):
            for name, block in variants.items():
                sync()
                start = time.perf_counter()
                for _ in range(args.steps):
                    step(block)
                sync()
                times[name].append((time.perf_counter() - start) / args.steps * 1e3)
        print(f'{str(shape):22s} ' + ' '.join(f'{min(times[n]):8.2f}' for n in variants), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
