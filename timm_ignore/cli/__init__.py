"""The ``timm-ignore`` command: one subcommand per module of this package, imported only when used.

``main`` is the one error boundary: a mistake the user can fix (a missing file, a bad option, an unreadable
checkpoint, an existing output) is printed as one line naming it, with exit status 2; anything else is a bug and
keeps its traceback.
"""
import argparse
import importlib
import sys
from typing import Optional, Sequence

from ..models._pretrained import NoPretrainedWeightsError

__all__ = ['main', 'SUBCOMMANDS']

#: Subcommand name -> (module defining ``add_arguments(parser)`` and ``run(args) -> int``, one-line help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'models': ('timm_ignore.cli.models', 'list the registered models (the zoo table)'),
    'prepare-cifar': ('timm_ignore.cli.prepare_cifar', "CIFAR archive -> ImageFolder tree with the paper's split"),
    'train': ('timm_ignore.cli.train', "train a recipe YAML on this machine with timm's library"),
    'train-queue': ('timm_ignore.cli.train_queue', 'train many (model, seed) runs on one GPU, data held on it'),
    'compare': ('timm_ignore.cli.compare', 'train models side by side over seeds: results table and loss plot'),
    'plot-loss': ('timm_ignore.cli.plot_loss', "plot validation loss per epoch from summary.csv files (Figure 1)"),
    'grad-cam': ('timm_ignore.cli.grad_cam', 'Grad-CAM maps of several models side by side (Figure 2)'),
    'publish': ('timm_ignore.cli.publish', 'training run -> Hub model folder (safetensors, config, card)'),
    'publish-zoo': ('timm_ignore.cli.publish_zoo', "a finished queue's best seed per model -> weights/ and its cards"),
    'validate': ('timm_ignore.cli.validate', 'evaluate a checkpoint or pretrained model on an ImageFolder split'),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that report a user's mistake: the tools raise them with a message naming the input."""
    return ValueError, OSError, NoPretrainedWeightsError


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``timm-ignore`` console script."""
    parser = argparse.ArgumentParser(prog='timm-ignore', description='Learning to ignore (BMVC 2021) on timm.')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, (_, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage and exits for a missing or unknown command
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    prog = f'timm-ignore {argv[0]}'
    sub = argparse.ArgumentParser(prog=prog, description=SUBCOMMANDS[argv[0]][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except _user_errors() as e:
        message = str(e) if not isinstance(e, OSError) or not e.filename else f'{e.filename}: {e.strerror}'
        print(f'{prog}: error: {message}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
