"""``timm-ignore grad-cam``: the paper's Figure 2, Grad-CAM maps of several models side by side, one row per image."""
import argparse
import sys

from timm.utils import ParseKwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('images', nargs='+', metavar='IMAGE',
                        help='image files (PNG/JPEG) or ImageFolder splits (e.g. data/cifar10/test)')
    parser.add_argument('--models', nargs='+', required=True, metavar='NAME', help='NAME[.TAG], one column each')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--checkpoint', action='append', metavar='PATH',
                         help='timm training checkpoint; repeat once per model, in --models order')
    weights.add_argument('--pretrained', action='store_true', help="the models' published weights")
    parser.add_argument('--num-classes', type=int, help='class count of the checkpoints, if not the tag\'s')
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs, help='extra model args k=v')
    parser.add_argument('--target-layer', help="module to explain (default: each model's last feature_info module)")
    parser.add_argument('--target-class', type=int, help="class to explain (default: each model's prediction)")
    parser.add_argument('--max-images', type=int, default=8, help='images taken from each ImageFolder split')
    parser.add_argument('-o', '--output', default='grad_cam.png', help='PNG to write')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    parser.add_argument('--device', default='cpu')


def run(args: argparse.Namespace) -> int:
    import pathlib

    from ..figures.grad_cam import folder_class_names, load_images, load_model, plot_grad_cam
    checkpoints = args.checkpoint or [None] * len(args.models)
    if len(checkpoints) != len(args.models):
        print(f'timm-ignore grad-cam: error: {len(checkpoints)} --checkpoint for {len(args.models)} models; '
              'give one per model.', file=sys.stderr)
        return 2
    if not args.checkpoint and not args.pretrained:
        print('timm-ignore grad-cam: note: no --checkpoint or --pretrained, the models are randomly initialised.',
              file=sys.stderr)
    try:
        models = {}
        for index, (name, checkpoint) in enumerate(zip(args.models, checkpoints)):
            label = name if args.models.count(name) == 1 else f'{name} #{index + 1}'
            models[label] = load_model(
                name, checkpoint=checkpoint, pretrained=args.pretrained, num_classes=args.num_classes,
                **args.model_kwargs).to(args.device)
        images = load_images(args.images, max_images=args.max_images)
        splits = [path for path in args.images if pathlib.Path(path).is_dir()]
        class_names = folder_class_names(splits[0]) if len(splits) == 1 else None
        print(plot_grad_cam(models, images, args.output, target_layer=args.target_layer,
                            target_class=args.target_class, class_names=class_names, overwrite=args.overwrite))
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        print(f'timm-ignore grad-cam: error: {e}', file=sys.stderr)
        return 2
    return 0
