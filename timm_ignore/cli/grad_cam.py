"""``timm-ignore grad-cam``: the paper's Figure 2, Grad-CAM maps of several models side by side, one row per image."""
import argparse
import pathlib
import sys

from ..checkpoint import create_model
from ..figures.grad_cam import folder_class_names, load_images, plot_grad_cam
from .options import UsageError, add_checkpoint_options, add_device_option, add_model_options, resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('images', nargs='+', metavar='IMAGE',
                        help='image files (PNG/JPEG) or ImageFolder splits (e.g. data/cifar10/test)')
    parser.add_argument('--models', nargs='+', required=True, metavar='NAME', help='NAME[.TAG], one column each')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--checkpoint', action='append', metavar='PATH',
                         help='run folder or checkpoint file; repeat once per model, in --models order')
    weights.add_argument('--pretrained', action='store_true', help="the models' published weights")
    add_checkpoint_options(parser)
    add_model_options(parser)
    parser.add_argument('--target-layer', help="module to explain (default: each model's last feature_info module)")
    parser.add_argument('--target-class', type=int, help="class to explain (default: each model's prediction)")
    parser.add_argument('--max-images', type=int, default=8, help='images taken from each ImageFolder split')
    parser.add_argument('-o', '--output', default='grad_cam.png', help='PNG to write')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    add_device_option(parser)


def _check_output(path: pathlib.Path, overwrite: bool) -> None:
    if path.is_dir():
        raise UsageError(f'{path}: is a folder; -o/--output names the PNG file to write.')
    if path.exists() and not overwrite:
        raise UsageError(f'{path}: exists; pass --overwrite to replace it.')


def run(args: argparse.Namespace) -> int:
    if args.model:
        raise UsageError('grad-cam takes its models as --models NAME ...; --model is not used here.')
    checkpoints = args.checkpoint or [None] * len(args.models)
    if len(checkpoints) != len(args.models):
        raise UsageError(f'{len(checkpoints)} --checkpoint for {len(args.models)} --models; give one per model.')
    _check_output(pathlib.Path(args.output), args.overwrite)
    device = resolve_device(args.device)
    images = load_images(args.images, max_images=args.max_images)
    splits = [path for path in args.images if pathlib.Path(path).is_dir()]
    class_names = folder_class_names(splits[0]) if len(splits) == 1 else None
    if not args.checkpoint and not args.pretrained:
        print('timm-ignore grad-cam: note: no --checkpoint or --pretrained, the models are randomly initialised.',
              file=sys.stderr)
    models = {}
    for index, (name, checkpoint) in enumerate(zip(args.models, checkpoints)):
        label = name if args.models.count(name) == 1 else f'{name} #{index + 1}'
        model = create_model(name, checkpoint, pretrained=args.pretrained, which=args.which, ema=args.ema,
                             model_kwargs=args.model_kwargs, num_classes=args.num_classes)
        if class_names is not None and len(class_names) != model.num_classes:
            raise UsageError(f'{splits[0]} has {len(class_names)} class folders but {label} has {model.num_classes} '
                             f'classes; give the model of this dataset (its tag, or --num-classes).')
        models[label] = model.to(device)
    print(plot_grad_cam(models, images, args.output, target_layer=args.target_layer, target_class=args.target_class,
                        class_names=class_names, overwrite=args.overwrite))
    return 0
