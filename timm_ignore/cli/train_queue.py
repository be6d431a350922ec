"""``timm-ignore train-queue``: train (model, seed) runs with the in-memory engine on one device, resumably.

The engine's entry to the run matrix (``timm_ignore.runs.run_matrix``), with the zoo's model selection (``--zoo``,
patterns); ``compare --trainer engine`` runs the same matrix and reports it.
"""
import argparse
import fnmatch
import pathlib
import sys

import torch

from ..models.zoo import DATASETS, MODELS
from .options import UsageError, add_time_limit_option, recipe_settings, time_limit_seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('-c', '--config', metavar='RECIPE', required=True, type=pathlib.Path,
                        help='engine recipe YAML, e.g. train_scripts/cifar10_authors.yaml')
    parser.add_argument('--data-dir', required=True, type=pathlib.Path,
                        help='ImageFolder tree with train/, validation/ and test/ (e.g. from prepare-cifar)')
    models = parser.add_mutually_exclusive_group(required=True)
    models.add_argument('--models', nargs='+', metavar='MODEL',
                        help="model names; shell patterns match the zoo's models (e.g. 'densenet_se*')")
    models.add_argument('--zoo', metavar='TAG', choices=sorted(DATASETS),
                        help="every zoo model with this pretrained tag, e.g. cifar10: the paper's 26 CIFAR-10 rows")
    parser.add_argument('--seeds', nargs='+', type=int, default=[0], help='seeds per model (default: 0)')
    parser.add_argument('--output', required=True, type=pathlib.Path,
                        help='queue folder: one run folder per model and seed; re-run the command to resume')
    parser.add_argument('--records-dir', metavar='DIR', type=pathlib.Path,
                        help='records folder that publish-zoo --records-dir fills (e.g. results/zoo-cifar10): a run '
                             'whose record landed there with this recipe is finished and not trained again, so a '
                             'fresh clone continues the campaign where it landed')
    parser.add_argument('--device', help='cuda, cuda:1, cpu (default: cuda when available, else cpu)')
    parser.add_argument('--parallel', type=int, default=1, help='runs trained at once on the device (processes)')
    parser.add_argument('--epochs', type=int, help="override the recipe's epochs (e.g. a short smoke run)")
    add_time_limit_option(parser)
    recipe_settings(parser)


def _model_names(args: argparse.Namespace) -> list[str]:
    if args.zoo:
        return [name for name, spec in MODELS.items() if args.zoo in spec.family.datasets]
    names = []
    for pattern in args.models:
        matches = fnmatch.filter(MODELS, pattern) if any(c in pattern for c in '*?[') else [pattern]
        if not matches:
            raise ValueError(f'--models {pattern!r} matches no zoo model; `timm-ignore models` lists them.')
        names += [m for m in matches if m not in names]
    return names


def run(args: argparse.Namespace) -> int:
    # loaded when the command runs: --help and usage errors stay fast
    from ..engine import EngineRecipe, QueueError, RecipeError, RunSpec, run_queue

    try:
        overrides = {} if args.epochs is None else {'epochs': args.epochs}
        recipe = EngineRecipe.from_yaml(args.config, {**overrides, **dict(args.settings)})
        runs = [RunSpec(model, seed) for model in _model_names(args) for seed in args.seeds]
        device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        records = run_queue(runs, recipe, args.data_dir, args.output, device, args.parallel,
                            recipe_name=args.config.name, log=lambda line: print(line, flush=True),
                            time_limit_s=time_limit_seconds(args), split_runs=args.split_runs,
                            landed=args.records_dir)
    except (RecipeError, QueueError, UsageError, ValueError) as e:
        print(f'timm-ignore train-queue: error: {e}', file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f'timm-ignore train-queue: {e}', file=sys.stderr)
        return 1
    finished = sum(r is not None for r in records)
    landed = f' or landed in {args.records_dir}' if args.records_dir else ''
    print(f'{finished} of {len(records)} runs finished in {args.output}{landed}')
    return 0
