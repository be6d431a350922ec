"""``timm-ignore publish``: turn a training run into a Hub model folder, and optionally upload it."""
import argparse

from .options import (
    add_allow_untrained_option, add_checkpoint_options, add_device_option, add_model_options, resolve_device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', help='run folder (model_best.pth.tar / last.pth.tar) or checkpoint file')
    parser.add_argument('--out', required=True, help='model folder to create')
    parser.add_argument('--data', required=True, help='dataset root holding the evaluation split folder')
    parser.add_argument('--repo-id', required=True, help='Hub repository ORG/NAME the folder is for')
    parser.add_argument('--paper-tables', metavar='CSV',
                        help="the paper's tables (default: the copy shipped in the package)")
    parser.add_argument('--run-record', metavar='YAML',
                        help='card fields the run folder lacks: dataset, recipe, hardware, wall_time_s, seed, ...')
    add_model_options(parser, help="NAME.TAG to publish (default: the run's model, tag by its class count)")
    add_checkpoint_options(parser)
    parser.add_argument('--split', default='test', help='evaluation split folder (default: test)')
    parser.add_argument('--dtype', choices=('float32', 'float16'), default='float32',
                        help='storage dtype of model.safetensors; float16 halves the file and is checked against the '
                             'float32 checkpoint on the split (refused if top-1 error moves by more than 0.05 points)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing folder / Hub weights')
    add_allow_untrained_option(parser)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--workers', type=int, default=0)
    add_device_option(parser)
    parser.add_argument('--push', action='store_true', help='upload the folder to --repo-id (needs a token)')
    parser.add_argument('--dry-run', action='store_true', help='with --push: list what would be uploaded, no upload')
    parser.add_argument('--revision', help='Hub branch to push to (default: main)')
    parser.add_argument('--private', action='store_true', help='create the Hub repository as private')


def run(args: argparse.Namespace) -> int:
    from ..hub.publish import publish_folder, read_run_record  # loaded when the command runs: --help stays fast
    from ..hub.push import plan_push, push_folder, require_token

    if args.push and not args.dry_run:
        require_token()  # before the evaluation, not after it
    folder = publish_folder(
        args.checkpoint, args.out, data_root=args.data, repo_id=args.repo_id, paper_tables=args.paper_tables,
        model_name=args.model, split=args.split, which=args.which, ema=args.ema, model_kwargs=args.model_kwargs,
        num_classes=args.num_classes, run_record=read_run_record(args.run_record) if args.run_record else None,
        dtype=args.dtype, allow_untrained=args.allow_untrained, overwrite=args.overwrite, batch_size=args.batch_size,
        workers=args.workers, device=resolve_device(args.device))
    r = folder.result
    print(f'{folder.model_name}: top-1 err {r.top1_err:.2f}%, top-5 err {r.top5_err:.2f}%, loss {r.loss:.4f} '
          f'on {r.num_images} images of {r.split_dir}')
    if folder.storage is not None:
        s = folder.storage
        print(f'{s.dtype} copy: top-1 err {s.stored_top1_err:.2f}% vs {s.checkpoint_top1_err:.2f}% (float32 '
              f'checkpoint), largest logit difference {s.max_abs_logit_diff:.3g}')
    print(f'wrote {folder.path}')
    if not args.push:
        return 0
    plan = plan_push(folder.path, args.repo_id, args.revision)
    print(f'{"would upload" if args.dry_run else "uploading"} to hf-hub:{plan.repo_id}@{plan.revision or "main"}:')
    for name in plan.files:
        print(f'  {name}')
    if not args.dry_run:
        print(push_folder(plan, private=args.private, overwrite=args.overwrite))
    return 0
