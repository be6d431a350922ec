"""``timm-ignore validate``: evaluate a model (a checkpoint or pretrained weights) on an ImageFolder split."""
import argparse
import json
import sys

import timm
from timm.utils import ParseKwargs

from ..evaluate import evaluate, find_split
from ..hub.checkpoint import create_from_checkpoint, read_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('data', help='ImageFolder tree, e.g. the output of prepare-cifar')
    parser.add_argument('--model', required=True, help='NAME[.TAG], hf-hub:ORG/NAME or local-dir:DIR')
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument('--checkpoint', help='run folder or checkpoint file to evaluate')
    weights.add_argument('--pretrained', action='store_true', help="the model's published weights")
    parser.add_argument('--split', default='test', help='split folder (default: test)')
    parser.add_argument('--which', choices=('best', 'last'), default='best', help='checkpoint of a run folder')
    parser.add_argument('--ema', action='store_true', help='evaluate the EMA weights (state_dict_ema)')
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs, help='extra model args k=v')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--json', action='store_true', help='print the result as JSON')


def run(args: argparse.Namespace) -> int:
    try:
        split_dir = find_split(args.data, args.split)
        if args.pretrained:
            model = timm.create_model(args.model, pretrained=True, **args.model_kwargs)
        else:
            checkpoint = read_checkpoint(args.checkpoint, which=args.which, ema=args.ema)
            model = create_from_checkpoint(args.model, checkpoint, model_kwargs=args.model_kwargs)
        result = evaluate(model, split_dir, batch_size=args.batch_size, workers=args.workers, device=args.device)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f'{args.model}: top-1 err {result.top1_err:.2f}%, top-5 err {result.top5_err:.2f}%, '
              f'loss {result.loss:.4f} on {result.num_images} images of {result.split_dir}')
    return 0
