"""``timm-ignore prepare-cifar``: the official CIFAR archive -> ImageFolder tree with the paper's split."""
import argparse

from ..data.cifar import CIFAR_FORMATS, PAPER_NUM_VAL, prepare_cifar, read_checksums
from .options import setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('source', help='cifar-10-python.tar.gz / cifar-100-python.tar.gz or its extracted folder')
    parser.add_argument('output', help='folder to create, with train/, validation/ and test/ inside')
    parser.add_argument('--dataset', choices=tuple(CIFAR_FORMATS), default=None,
                        help='which CIFAR (default: from the source name)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing output folder that holds something else')
    parser.add_argument('--num-val', type=int, default=PAPER_NUM_VAL,
                        help=f'validation images from the end of the training set (paper: {PAPER_NUM_VAL}; '
                             f'other values are for small test fixtures only)')
    parser.add_argument('--checksums', default=None, metavar='JSON',
                        help='md5 table {"member": "md5"} replacing the official checksums, for a deliberate '
                             're-pack or a test fixture only')


def run(args: argparse.Namespace) -> int:
    setup_logging()
    checksums = read_checksums(args.checksums) if args.checksums else None
    prepare_cifar(args.source, args.output, dataset=args.dataset, num_val=args.num_val, checksums=checksums,
                  overwrite=args.overwrite)
    return 0
