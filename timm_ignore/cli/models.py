"""``timm-ignore models``: list the registered models."""
import argparse
import fnmatch

from ..models.zoo import MODELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('pattern', nargs='?', default='*', help='shell-style filter on model names')


def run(args: argparse.Namespace) -> int:
    for name, spec in MODELS.items():
        if fnmatch.fnmatch(name, args.pattern):
            print(f'{name:32s} {", ".join(spec.family.datasets)}')
    return 0
