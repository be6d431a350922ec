"""CPU training steps with freed memory kept in the process (as the trainers run) against glibc's default.

``timm_ignore.host_memory.keep_freed_memory`` stops glibc from mapping every buffer over 32 MB anew and unmapping it
on free. The setting is process-wide and cannot be undone cleanly (freed buffers already in the heap would serve the
other arm), so each arm runs in a fresh interpreter: per round and model, one child process per arm, in alternating
order, each building the model, warming up and timing ``--steps`` training steps in the campaign's regime (bf16
autocast + channels_last, batch 128 at 32 px, timm's SGD). Printed per model: the median step time of each arm and
the median over rounds of the within-round ratio kept / default (below 1: keeping is faster), and the page faults
per step of each arm. A JSON record with the machine goes to ``benchmarks/results/``.

    python benchmarks/host_memory_throughput.py                         # cifar_resnet50 and densenet
    python benchmarks/host_memory_throughput.py --models densenet_se --rounds 6
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from attention_throughput import write_record
from cifar_model_throughput import make_runner

from timm_ignore.host_memory import keep_freed_memory

ARMS = ('default', 'kept')


def child(model: str, arm: str, steps: int, warmup: int) -> dict[str, float]:
    """Time ``steps`` training steps of ``model`` in this process, with freed memory kept or not."""
    if arm == 'kept' and not keep_freed_memory():
        raise SystemExit('this C library has no mallopt settings (glibc on Linux only)')
    args = argparse.Namespace(device='cpu', amp=True, channels_last=True, img_size=32, num_classes=10)
    runner = make_runner(model, 128, args)
    for _ in range(warmup):
        runner.step('train')
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(steps):
        runner.step('train')
    seconds = (time.perf_counter() - start) / steps
    return dict(step_s=seconds, faults_per_step=(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default='cifar_resnet50,densenet')
    parser.add_argument('--rounds', type=int, default=4)
    parser.add_argument('--steps', type=int, default=3, help='timed training steps per child process')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first (compilation, allocator)')
    parser.add_argument('--child', nargs=2, metavar=('MODEL', 'ARM'), help=argparse.SUPPRESS)
    parser.add_argument('--no-record', action='store_true', help='do not write benchmarks/results/*.json')
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.steps, args.warmup)))
        return 0

    models = args.models.split(',')
    results = {m: {arm: [] for arm in ARMS} for m in models}
    print(f'# CPU training steps, bf16 autocast + channels_last, batch 128 at 32 px, {args.rounds} rounds x '
          f'{args.steps} steps, one process per arm and round')
    for r in range(args.rounds):
        for model in models:
            for arm in ARMS if r % 2 == 0 else ARMS[::-1]:
                out = subprocess.run([sys.executable, __file__, '--child', model, arm, '--steps', str(args.steps),
                                      '--warmup', str(args.warmup)], capture_output=True, text=True, check=True)
                results[model][arm].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f'round {r}: ' + '  '.join(
            f'{m} {results[m]["kept"][-1]["step_s"] / results[m]["default"][-1]["step_s"]:.3f}' for m in models),
            flush=True)

    print(f'\n{"model":18s} {"default ms":>11s} {"kept ms":>8s} {"kept / default":>15s} {"faults/step default":>20s} '
          f'{"kept":>6s}')
    summary = {}
    for model, arms in results.items():
        ratio = statistics.median(k['step_s'] / d['step_s'] for k, d in zip(arms['kept'], arms['default']))
        row = {arm: dict(step_ms=1e3 * statistics.median(x['step_s'] for x in arms[arm]),
                         faults_per_step=statistics.median(x['faults_per_step'] for x in arms[arm])) for arm in ARMS}
        summary[model] = dict(**row, kept_over_default=ratio)
        print(f'{model:18s} {row["default"]["step_ms"]:11.0f} {row["kept"]["step_ms"]:8.0f} {ratio:15.3f} '
              f'{row["default"]["faults_per_step"]:20.0f} {row["kept"]["faults_per_step"]:6.0f}')
    if not args.no_record:
        write_record('host_memory_throughput_cpu', args, summary=summary, rounds=results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
