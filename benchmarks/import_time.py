"""Time that ``import timm_ignore`` adds to ``import timm``, median of fresh interpreters, per source tree.

    python benchmarks/import_time.py                    # this checkout
    python benchmarks/import_time.py . /tmp/old-tree    # interleaved with another checkout (e.g. a git worktree)

Each sample is a new interpreter that imports timm, then times ``import timm_ignore``. Bytecode caching is left on
(as users have it); one warm-up import per tree writes the caches first. Trees are sampled in turn, so load on the
machine affects them alike.
"""
import argparse
import os
import statistics
import subprocess
import sys

PROBE = 'import time, timm\nt = time.perf_counter()\nimport timm_ignore\nprint(time.perf_counter() - t)'


def _sample(tree: str) -> float:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    env.pop('PYTHONDONTWRITEBYTECODE', None)
    return float(subprocess.run([sys.executable, '-c', PROBE], env=env, capture_output=True, text=True,
                                check=True).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('trees', nargs='*', default=['.'], help='source checkouts (default: this one)')
    parser.add_argument('--samples', type=int, default=15)
    args = parser.parse_args()
    for tree in args.trees:
        _sample(tree)
    times = {tree: [] for tree in args.trees}
    for _ in range(args.samples):
        for tree in args.trees:
            times[tree].append(_sample(tree))
    print('| tree | import timm_ignore (ms, median) |\n|---|---:|')
    for tree, values in times.items():
        print(f'| {tree} | {1000 * statistics.median(values):.1f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
