"""``timm-ignore publish-zoo``: the best seed of every model of a finished queue, published into the repository."""
import argparse
import pathlib

from ..evaluate import find_split
from ..hub.registry import CARDS_DIR, WEIGHTS_DIR
from ..runs import RECORD_FILES, copy_run_records
from .options import add_allow_untrained_option, add_device_option, resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('queue', help='a train-queue output folder (or train.py run folders) with finished runs')
    parser.add_argument('--data', required=True, help='dataset root holding the test split the cards report')
    parser.add_argument('--hub-org', required=True, metavar='ORG',
                        help='Hub user or organisation the folders are for: each is ORG/{model}.{tag}')
    parser.add_argument('--weights-dir', default=str(WEIGHTS_DIR),
                        help=f'where the published folders go (default: {WEIGHTS_DIR}/, the repository\'s)')
    parser.add_argument('--cards-dir', default=str(CARDS_DIR),
                        help=f'the registry the cards are linked from (default: {CARDS_DIR}/)')
    parser.add_argument('--models', nargs='+', metavar='NAME', help='only these models (default: every one)')
    parser.add_argument('--dtype', choices=('float16', 'float32'), default='float16',
                        help='storage dtype (default float16, checked against the float32 checkpoint)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace published weights and registry entries that come from another run (a model '
                             'whose best seed changed); models published from the same run are kept either way')
    parser.add_argument('--records-dir', metavar='DIR',
                        help=f'also copy every finished run\'s {", ".join(RECORD_FILES)} (a few KB, no checkpoint) '
                             'into DIR/{run}/, e.g. results/zoo-cifar10, for the repository (only --models\' runs '
                             'when given): compare --runs DIR then reports them from a clone; --overwrite replaces '
                             'records that differ')
    parser.add_argument('--update-readme', metavar='README', type=pathlib.Path,
                        help='then rewrite, in this file, the zoo table of each tag published or kept, from every card '
                             'in --weights-dir, between the lines <!-- zoo-table TAG:start ... --> and <!-- zoo-table '
                             'TAG:end -->')
    add_allow_untrained_option(parser)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--workers', type=int, default=0)
    add_device_option(parser)


def run(args: argparse.Namespace) -> int:
    from ..hub.zoo_publish import plan_zoo, publish_zoo  # loaded when the command runs: --help stays fast
    from ..hub.zoo_table import check_zoo_table_markers, update_zoo_table  # import time, as above

    find_split(args.data, 'test')
    device = resolve_device(args.device)
    if args.records_dir:  # a conflict is refused before any evaluation
        copy_run_records(args.queue, args.records_dir, overwrite=args.overwrite, dry_run=True, models=args.models)
    plan = plan_zoo(args.queue, args.data, args.weights_dir, args.cards_dir, args.hub_org, args.models, args.overwrite,
                    device, allow_untrained=args.allow_untrained)
    tags = list(dict.fromkeys(e.name.split('.', 1)[1] for e in plan.publish + plan.kept))
    if args.update_readme:
        check_zoo_table_markers(args.update_readme, tags)
    print(f'publishing {len(plan.publish)} models into {args.weights_dir}/ (registered in {args.cards_dir}/), '
          f'keeping {len(plan.kept)} published, {len(plan.waiting)} waiting', flush=True)
    publish_zoo(plan, args.data, args.cards_dir, dtype=args.dtype, overwrite=args.overwrite,
                device=device, batch_size=args.batch_size, workers=args.workers,
                allow_untrained=args.allow_untrained, log=lambda line: print(line, flush=True))
    if args.records_dir:
        copied, unchanged = copy_run_records(args.queue, args.records_dir, overwrite=args.overwrite, models=args.models)
        print(f'records: {len(copied)} runs copied into {args.records_dir}/, {len(unchanged)} already there',
              flush=True)
    if args.update_readme:
        for tag in tags:
            update_zoo_table(args.update_readme, args.weights_dir, tag)
        print(f'updated the zoo table of {", ".join(tags)} in {args.update_readme}', flush=True)
    return 0
