"""``timm-ignore validate``: evaluate a model (a checkpoint or pretrained weights) on an ImageFolder split."""
import argparse
import json

import timm

from ..checkpoint import load_model
from ..evaluate import evaluate_split, find_split
from .options import UsageError, add_checkpoint_options, add_device_option, add_model_options, resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('data', help='dataset root holding the split folder, e.g. the output of prepare-cifar')
    add_model_options(parser, help="NAME[.TAG], hf-hub:ORG/NAME or local-dir:DIR (default: the run's model)")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument('--checkpoint', help='run folder or checkpoint file to evaluate')
    weights.add_argument('--pretrained', action='store_true', help="the model's published weights")
    add_checkpoint_options(parser)
    parser.add_argument('--split', default='test', help='split folder (default: test)')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--workers', type=int, default=0)
    add_device_option(parser)
    parser.add_argument('--flip-tta', action='store_true',
                        help='also the top-1 error with flip test-time augmentation (mean softmax of each image and '
                             'its mirror); the single-view error stays the headline')
    parser.add_argument('--json', action='store_true', help='print the result as JSON')


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    split_dir = find_split(args.data, args.split, flag='DATA')
    if args.pretrained:
        if not args.model:
            raise UsageError('--pretrained needs --model.')
        model = timm.create_model(args.model, pretrained=True, num_classes=args.num_classes, **args.model_kwargs)
    else:
        model, _ = load_model(args.checkpoint, args.model, which=args.which, ema=args.ema,
                              model_kwargs=args.model_kwargs, num_classes=args.num_classes)
    result = evaluate_split(model, split_dir, batch_size=args.batch_size, workers=args.workers, device=device,
                            flip_tta=args.flip_tta)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f'{args.model or model.pretrained_cfg["architecture"]}: top-1 err {result.top1_err:.2f}%, top-5 err '
              f'{result.top5_err:.2f}%, loss {result.loss:.4f} on {result.num_images} images of {result.split_dir}'
              + ('' if result.top1_err_flip is None else f'; flip TTA top-1 err {result.top1_err_flip:.2f}%'))
    return 0
