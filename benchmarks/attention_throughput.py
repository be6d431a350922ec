"""Throughput of ignore variants against their explicit twins, and of attention families against the plain network.

All models of a run are measured interleaved (round-robin, one timed chunk per model per round), and every ratio is
taken within a round before the median over rounds, so slow drifts of the machine cancel out. Results are printed as
a table and appended as JSON (with the machine they ran on) to ``benchmarks/results/``.

On CPU, glibc returns large buffers to the OS after every step, which made timings vary up to 2x; the benchmarks keep
them in the process, as the trainers do (``timm_ignore.host_memory.keep_freed_memory``).

Examples::

    python benchmarks/attention_throughput.py                      # ResNet-50 family, CPU, batch 8 at 160
    python benchmarks/attention_throughput.py --family cifar_resnet50 --batch-size 64
    python benchmarks/attention_throughput.py --device cuda --amp --channels-last --batch-size 256 --img-size 224
    python benchmarks/attention_throughput.py --compile --models resnet50,resnet50_se,timm_se
    python benchmarks/attention_throughput.py --models resnet50_cbam,resnet50_cbam+autograd   # fused vs autograd

A ``+autograd`` suffix builds the model with its blocks' fused backward off (``fused_backward = False``).
"""
import argparse
import datetime
import functools
import json
import pathlib
import statistics
import sys
import time
from typing import Callable

import torch
from torch import nn

import timm
from timm.layers import SEModule
from timm.layers.cbam import CbamModule

import timm_ignore  # noqa: F401  (registers the models)
from timm_ignore.host_memory import keep_freed_memory
from timm_ignore.provenance import code_version, machine_info
from timm_ignore.models.zoo import MODELS

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / 'results'

#: timm's own attention modules at the paper's reduction, as references for the ResNet-50 family.
TIMM_REFERENCES: dict[str, Callable[..., nn.Module]] = {
    'timm_se': functools.partial(SEModule, rd_ratio=1 / 8, rd_divisor=1),
    'timm_cbam': functools.partial(CbamModule, rd_ratio=1 / 8, rd_divisor=1),
}


def create(name: str, num_classes: int) -> nn.Module:
    if name in TIMM_REFERENCES:
        return timm.create_model('resnet50', block_args=dict(attn_layer=TIMM_REFERENCES[name]), num_classes=num_classes)
    base, autograd = name.removesuffix('+autograd'), name.endswith('+autograd')
    model = timm.create_model(base, num_classes=num_classes)
    for module in model.modules():
        if autograd and hasattr(module, 'fused_backward'):
            module.fused_backward = False
    return model


def default_models(family: str) -> list[str]:
    names = [family] if family == 'resnet50' else []
    names += [n for n, s in MODELS.items() if s.family.name == family]
    if family == 'resnet50':
        names += list(TIMM_REFERENCES)
    return names


class Runner:
    """One model prepared for timed inference or training steps."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.device = torch.device(args.device)
        model = create(name, args.num_classes).to(self.device)
        memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        self.model = torch.compile(model) if args.compile else model
        self.params = sum(p.numel() for p in model.parameters())
        shape = (args.batch_size, 3, args.img_size, args.img_size)
        self.x = torch.randn(shape, device=self.device).to(memory_format=memory_format)
        self.y = torch.randint(0, args.num_classes, (args.batch_size,), device=self.device)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        self.autocast = functools.partial(
            torch.autocast, self.device.type, dtype=torch.bfloat16, enabled=args.amp)

    def step(self, mode: str) -> None:
        if mode == 'infer':
            self.model.eval()
            with torch.inference_mode(), self.autocast():
                self.model(self.x)
        else:
            self.model.train()
            with self.autocast():
                loss = nn.functional.cross_entropy(self.model(self.x), self.y)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    def timed(self, mode: str, steps: int) -> float:
        """Images per second over ``steps`` steps."""
        self.sync()
        start = time.perf_counter()
        for _ in range(steps):
            self.step(mode)
        self.sync()
        return steps * self.x.shape[0] / (time.perf_counter() - start)

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize()


def pairs(names: list[str]) -> list[tuple[str, str]]:
    """(model, reference) pairs to report: ignore vs explicit twin, explicit vs plain, ours vs timm's module."""
    out = []
    for name in names:
        spec = MODELS.get(name)
        if spec is not None and spec.twin is not None and spec.twin.name in names:
            out.append((name, spec.twin.name))
    family_plain = {'timm_se': 'resnet50', 'timm_cbam': 'resnet50'}
    for ref, plain in family_plain.items():
        if ref in names and plain in names:
            out.append((ref, plain))
    for ours, ref in (('resnet50_se', 'timm_se'), ('resnet50_cbam', 'timm_cbam')):
        if ours in names and ref in names:
            out.append((ours, ref))
    out += [(name, name.removesuffix('+autograd')) for name in names
            if name.endswith('+autograd') and name.removesuffix('+autograd') in names]
    return out


def write_record(prefix: str, args: argparse.Namespace, **fields) -> pathlib.Path:
    """Write ``results/PREFIX_TIME.json`` with the time, code version, machine, arguments and fields."""
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    record = dict(time=stamp, code=code_version(), machine=machine_info(), args=vars(args),
                  **fields)
    path = RESULTS_DIR / f'{prefix}_{stamp}.json'
    path.write_text(json.dumps(record, indent=1, default=str))
    print(f'\nrecorded in {path.relative_to(RESULTS_DIR.parent.parent)}')
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--family', default='resnet50', help='model family to benchmark (default: resnet50)')
    parser.add_argument('--models', default='', help='comma-separated models instead of the whole family')
    parser.add_argument('--modes', default='infer,train', help='comma-separated: infer, train')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=160)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--steps', type=int, default=3, help='timed steps per model per round')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--amp', action='store_true', help='bfloat16 autocast')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true', help='torch.compile every model')
    parser.add_argument('--no-record', action='store_true', help='do not write benchmarks/results/*.json')
    args = parser.parse_args()

    if args.device == 'cpu':
        keep_freed_memory()  # as the trainers do: large buffers reused, not faulted in anew every step
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = args.models.split(',') if args.models else default_models(args.family)
    modes = args.modes.split(',')
    runners = [Runner(n, args) for n in names]
    print(f'# {len(names)} models, batch {args.batch_size} at {args.img_size}px on {args.device}, amp={args.amp}, '
          f'channels_last={args.channels_last}, compile={args.compile}, {args.rounds} rounds x {args.steps} steps')
    if args.device == 'cpu':
        print('# CPU timings with freed memory kept in the process (glibc would return large buffers to the OS after '
              'every step otherwise: up to 2x noise)')

    results: dict[str, dict[str, list[float]]] = {m: {r.name: [] for r in runners} for m in modes}
    for mode in modes:
        for r in runners:
            for _ in range(args.warmup):
                r.step(mode)
        for round_idx in range(args.rounds):
            for r in runners:
                results[mode][r.name].append(r.timed(mode, args.steps))
            print(f'# {mode} round {round_idx + 1}/{args.rounds} done', file=sys.stderr, flush=True)

    print(f'\n{"model":32s} {"params":>11s} ' + ' '.join(f'{m + " img/s":>12s}' for m in modes))
    for r in runners:
        print(f'{r.name:32s} {r.params:11,d} ' + ' '.join(
            f'{statistics.median(results[m][r.name]):12.1f}' for m in modes))

    ratios = {}
    print(f'\n{"ratio (median of per-round ratios)":56s} ' + ' '.join(f'{m:>8s}' for m in modes))
    for a, b in pairs(names):
        row = {m: statistics.median(x / y for x, y in zip(results[m][a], results[m][b])) for m in modes}
        ratios[f'{a} / {b}'] = row
        print(f'{a + " / " + b:56s} ' + ' '.join(f'{row[m]:8.3f}' for m in modes))

    if not args.no_record:
        write_record(
            f'attention_throughput_{args.device}_{args.family}', args,
            throughput={m: {n: statistics.median(v) for n, v in results[m].items()} for m in modes}, ratios=ratios)
    return 0


if __name__ == '__main__':
    sys.exit(main())
