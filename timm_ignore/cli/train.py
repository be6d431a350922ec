"""``timm-ignore train``: run a recipe YAML with timm's library on this machine (no timm checkout needed)."""
import argparse
import sys
from typing import Any


def _key_value(text: str) -> tuple[str, Any]:
    import yaml
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    return key.replace('-', '_'), yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('-c', '--config', metavar='RECIPE', default=None,
                        help="recipe YAML with timm train.py keys (e.g. train_scripts/cifar100.yaml)")
    parser.add_argument('--data-dir', help='dataset root (for ImageFolder: the folder holding train/ and validation/)')
    parser.add_argument('--model', help='model name, e.g. cifar_resnet50_se_ign3')
    parser.add_argument('--model-kwargs', nargs='*', default=[], type=_key_value, metavar='KEY=VALUE',
                        help='extra model arguments, e.g. depth=8')
    parser.add_argument('--epochs', type=int)
    parser.add_argument('--seed', type=int)
    parser.add_argument('--device', help='cuda, cuda:1, cpu, ... (default: cuda when available, else cpu)')
    parser.add_argument('--amp', action='store_true', default=None, help='mixed precision (autocast)')
    parser.add_argument('--model-ema', action='store_true', default=None, help='keep and validate an EMA of weights')
    parser.add_argument('--output', help='parent folder of runs (default ./output/train)')
    parser.add_argument('--experiment', help='run folder name (default: date-model-size, as train.py)')
    parser.add_argument('--resume', metavar='CHECKPOINT', help='continue from a checkpoint, e.g. RUN/last.pth.tar')
    parser.add_argument('--overwrite', action='store_true', default=None, help='write over an existing run folder')
    parser.add_argument('--set', nargs='*', default=[], type=_key_value, metavar='KEY=VALUE', dest='settings',
                        help='any other recipe key (values in YAML syntax), e.g. batch_size=64 decay_rate=0.2')


def run(args: argparse.Namespace) -> int:
    from timm.utils import setup_default_logging

    from ..train import ConfigError, TrainConfig, train
    setup_default_logging()
    overrides = dict(args.settings)
    flags = ('data_dir', 'model', 'epochs', 'seed', 'device', 'amp', 'model_ema', 'output', 'experiment', 'resume',
             'overwrite')
    overrides.update({k: getattr(args, k) for k in flags if getattr(args, k) is not None})
    if args.model_kwargs:
        overrides['model_kwargs'] = dict(args.model_kwargs)
    try:
        config = TrainConfig.from_recipe(args.config, overrides)
        result = train(config)
    except (ConfigError, FileExistsError) as e:
        print(f'timm-ignore train: error: {e}', file=sys.stderr)
        return 2
    print(result.output_dir)
    return 0
