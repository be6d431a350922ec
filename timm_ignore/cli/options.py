"""Options shared by the ``timm-ignore`` commands, defined and parsed in one place.

``--model-kwargs`` is parsed by timm's own ``ParseKwargs`` (as timm's train.py parses it: ``KEY=VALUE`` with Python
literals, else strings), ``--device`` defaults to CUDA when available (:func:`~timm_ignore.devices.resolve_device`),
and :class:`UsageError` is the mistake a user
can fix, which ``timm_ignore.cli.main`` prints as one line.
"""
import argparse
import logging
import sys
from typing import Any, Optional

import yaml
from timm.utils import FormatterNoInfo, ParseKwargs

from ..devices import resolve_device

__all__ = ['UsageError', 'KeyValueKwargs', 'add_checkpoint_options', 'add_device_option', 'add_model_options',
           'add_time_limit_option', 'recipe_settings', 'resolve_device', 'setup_logging', 'time_limit_seconds']


class _StderrHandler(logging.StreamHandler):
    """A console handler writing to whatever ``sys.stderr`` is when a record is emitted, not when it was made."""

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """timm's console logging (``setup_default_logging``'s format), installed once however often a command runs.

    timm's own helper adds a handler bound to the current ``sys.stderr`` on every call, so commands run in one
    process (tests, notebooks) pile up handlers that write to streams since closed.
    """
    if not any(isinstance(h, _StderrHandler) for h in logging.root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(FormatterNoInfo())
        logging.root.addHandler(handler)
    logging.root.setLevel(level)


class UsageError(ValueError):
    """A command-line mistake; the message names the option and what is allowed."""


class KeyValueKwargs(ParseKwargs):
    """timm's ``ParseKwargs`` (train.py's ``--model-kwargs``), refusing an item without ``=`` with a usage error."""

    def __call__(self, parser, namespace, values, option_string=None):
        bad = [v for v in values if v and ('=' not in v or v.startswith('='))]
        if bad:
            parser.error(f'{option_string}: expected KEY=VALUE items, got {" ".join(bad)}')
        super().__call__(parser, namespace, values, option_string)


def add_model_options(
        parser: argparse.ArgumentParser,
        required: bool = False,
        help: Optional[str] = None,
        name: bool = True,
) -> None:
    """``--model`` (unless ``name`` is False: the command names its models otherwise), ``--model-kwargs`` and
    ``--num-classes``."""
    if name:
        parser.add_argument('--model', required=required, metavar='NAME',
                            help=help or 'NAME[.TAG] (`timm-ignore models` lists them)')
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=KeyValueKwargs, metavar='KEY=VALUE',
                        help='extra model arguments as timm\'s train.py takes them, e.g. depth=8 alpha=0.5')
    parser.add_argument('--num-classes', type=int, metavar='N', help='class count, if not the tag\'s or the run\'s')


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--device', help='cuda, cuda:1, cpu, ... (default: cuda when available, else cpu)')


def add_allow_untrained_option(parser: argparse.ArgumentParser) -> None:
    """``--allow-untrained`` of ``publish`` and ``publish-zoo`` (see ``timm_ignore.runs.readiness``)."""
    parser.add_argument('--allow-untrained', action='store_true',
                        help="publish a run that did not train its recipe's epochs or whose error is at chance level "
                             '(a smoke run); its card says so at the top. Without it such a run is refused')


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    """``--which`` (a run folder's checkpoint) and ``--ema``/``--no-ema``."""
    parser.add_argument('--which', choices=('best', 'last'), default='best',
                        help='checkpoint of a run folder: model_best.pth.tar or last.pth.tar (default: best)')
    parser.add_argument('--ema', action=argparse.BooleanOptionalAction, default=None,
                        help='the EMA weights (default: when the checkpoint has them, as train.py validated them)')


def _yaml_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    try:
        return key.replace('-', '_'), yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f'{text!r}: the value is not YAML') from None


def recipe_settings(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE ...``: any other recipe key, its value in the recipe's YAML syntax."""
    parser.add_argument('--set', nargs='*', default=[], type=_yaml_value, metavar='KEY=VALUE', dest='settings',
                        help='any other recipe key (values in YAML syntax), e.g. batch_size=64 workers=8')


def add_time_limit_option(parser: argparse.ArgumentParser) -> None:
    """``--time-limit DURATION`` and ``--split-runs`` of a run matrix (parsed by :func:`time_limit_seconds`)."""
    parser.add_argument('--time-limit', metavar='DURATION',
                        help='e.g. 2h30m, 90m, 45s: start a run only when its estimated time (from the speed measured '
                             'in this output folder) fits in what is left, then stop cleanly; run again to continue')
    parser.add_argument('--split-runs', action='store_true',
                        help='with --time-limit: a run that does not fit trains the epochs that do and stops after '
                             'the last of them, its checkpoint kept; the next run of the command resumes it')


def time_limit_seconds(args: argparse.Namespace) -> Optional[float]:
    """Seconds of ``--time-limit``, None without one.

    Raises:
        UsageError: Not a positive duration, or ``--split-runs`` without a time limit (one line, before any work).
    """
    from ..runs import TimeLimitError, parse_duration  # loaded when a matrix runs: the other commands stay fast
    if args.time_limit is None:
        if args.split_runs:
            raise UsageError('--split-runs needs --time-limit (it splits runs at the time limit).')
        return None
    try:
        return parse_duration(args.time_limit)
    except TimeLimitError as e:
        raise UsageError(str(e)) from None
