"""``timm-ignore train``: run a recipe YAML with timm's library on this machine (no timm checkout needed)."""
import argparse

from .options import add_device_option, add_model_options, recipe_settings, setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('-c', '--config', metavar='RECIPE', default=None,
                        help="recipe YAML with timm train.py keys (e.g. train_scripts/cifar100.yaml)")
    parser.add_argument('--data-dir', help='dataset root (for ImageFolder: the folder holding train/ and validation/)')
    add_model_options(parser, help='model name, e.g. cifar_resnet50_se_ign3')
    parser.add_argument('--epochs', type=int)
    parser.add_argument('--seed', type=int)
    add_device_option(parser)
    parser.add_argument('--amp', action='store_true', default=None, help='mixed precision (autocast)')
    parser.add_argument('--model-ema', action='store_true', default=None, help='keep and validate an EMA of weights')
    parser.add_argument('--output', help='parent folder of runs (default ./output/train)')
    parser.add_argument('--experiment', help='run folder name (default: date-model-size, as train.py)')
    parser.add_argument('--resume', metavar='CHECKPOINT', help='continue from a checkpoint, e.g. RUN/last.pth.tar')
    parser.add_argument('--overwrite', action='store_true', default=None, help='write over an existing run folder')
    recipe_settings(parser)


#: Command-line options that set the recipe key of the same name.
RECIPE_FLAGS = ('data_dir', 'model', 'num_classes', 'epochs', 'seed', 'device', 'amp', 'model_ema', 'output',
                'experiment', 'resume', 'overwrite')


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train  # loaded when the command runs: --help and usage errors stay fast

    setup_logging()
    overrides = dict(args.settings)
    overrides.update({k: getattr(args, k) for k in RECIPE_FLAGS if getattr(args, k) is not None})
    if args.model_kwargs:
        overrides['model_kwargs'] = dict(args.model_kwargs)
    result = train(TrainConfig.from_recipe(args.config, overrides))
    print(result.output_dir)
    return 0
