"""``timm-ignore compare``: train models side by side over seeds, print the results table, plot the validation loss.

Without ``--data-dir`` it runs the DEMO: a synthetic dataset generated on the fly and a shrunk CIFAR recipe, so it
needs no download and finishes in minutes on a CPU. Its numbers demonstrate the pipeline, not the paper.
With ``--runs DIR`` it trains nothing: it reports the finished runs of a folder (a ``train-queue`` output).
The runs are one matrix (``timm_ignore.runs.run_matrix``) trained by timm's library (``--trainer timm``, the default)
or by the in-memory engine (``--trainer engine``, an engine recipe such as ``cifar10_authors.yaml``; what
``train-queue`` runs), with the same checks, resume, progress lines and ``--time-limit``.
"""
import argparse
import logging
import pathlib
from datetime import datetime
from typing import Optional, Sequence

import torch

from ..checkpoint import check_model_name, read_checkpoint
from ..data.demo import make_demo_dataset
from ..dataset_tags import paper_dataset_for_classes
from ..figures.loss_curves import plot_loss_curves
from ..models.zoo import data_copy
from ..paper import read_paper_tables
from ..runs import (
    RunRecord, check_matrix_folder, collect_finished_runs, figure1_panels, format_runs, format_table, hold_folder,
    read_record, read_run_args, run_matrix, run_record_of, score_run, summarize, write_results)
from ..train.compare import plan_runs
from ..train.demo import DEMO_MODELS, DEMO_RECIPE, DEMO_SEEDS, SIGN_SYMMETRY_NOTE
from .options import (
    UsageError, add_device_option, add_model_options, add_time_limit_option, recipe_settings, resolve_device,
    setup_logging, time_limit_seconds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--runs', metavar='DIR',
                        help='report only: the finished runs of this folder (a train-queue output, or train.py run '
                             'folders), nothing trained; results in --output (default results/DATASET)')
    parser.add_argument('--data-dir', help='dataset root with train/, validation/ and test/ (default: the DEMO '
                                           'dataset, generated on the fly); with --runs, where runs that recorded no '
                                           'test error are tested (default: the data each trained on)')
    parser.add_argument('-c', '--config', metavar='RECIPE', help='recipe YAML; required with --data-dir')
    parser.add_argument('--models', nargs='+', default=list(DEMO_MODELS), help='models to compare')
    parser.add_argument('--seeds', nargs='+', type=int, default=list(DEMO_SEEDS), help='one run per model and seed')
    parser.add_argument('--output', help='folder for the runs, results and plot (default output/compare/DATE-TIME)')
    parser.add_argument('--epochs', type=int, help='override the recipe epochs')
    parser.add_argument('--trainer', choices=('timm', 'engine'), default='timm',
                        help="timm: timm's loaders and train.py's recipe keys (default); engine: the in-memory engine "
                             'and its recipes (train_scripts/cifar10_authors.yaml), as train-queue')
    add_time_limit_option(parser)
    add_device_option(parser)
    add_model_options(parser, name=False)
    recipe_settings(parser)
    parser.add_argument('--paper-tables', metavar='CSV',
                        help="the paper's tables for the paper column (default: the copy shipped in the package)")
    parser.add_argument('--paper-dataset', choices=('cifar10', 'cifar100', 'imagenet1k'),
                        help='dataset of the paper column (default: from the recipe num_classes)')
    parser.add_argument('--test-split', default='test', help='split tested at the best validation epoch')
    parser.add_argument('--demo-per-class', nargs=3, type=int, default=(48, 16, 16), metavar=('TRAIN', 'VAL', 'TEST'),
                        help='DEMO only: generated images per class in each split')


def _paper_dataset(args: argparse.Namespace, num_classes, demo: bool = False) -> str:
    if args.paper_dataset or demo:
        return args.paper_dataset
    return paper_dataset_for_classes(num_classes)


def _quiet_library_logs() -> None:
    """The console shows one line per epoch (``train.compare``), not each step nor timm's checkpoint list."""
    for name in ('timm_ignore.train', 'timm.utils.checkpoint_saver', 'timm.models._builder', 'timm.data.config'):
        logging.getLogger(name).setLevel(logging.WARNING)


def _data_name(run_dir: pathlib.Path, fallback: str) -> tuple[str, str]:
    """The name of the data a run trained on, and what it means when it is a known copy (the zoo's table)."""
    copy = data_copy((read_record(run_dir) or {}).get('dataset'))
    return (copy.display_name, f'{copy.display_name}: {copy.meaning}') if copy else (fallback, '')


#: How the report names its test numbers when a run's recipe normalised by the per-pixel mean image.
_PIXEL_MEAN_NOTE = ('Test errors are measured as `validate` and `publish` measure them, through timm\'s data config; '
                    'runs of a per-pixel-mean recipe (the authors\') are tested there with the mean image\'s channel '
                    'means and std 1, and their record also holds the error with the exact mean image '
                    '(`test_top1_err_pixel_mean` in run.json).')


def _run_args(run_dir: pathlib.Path) -> dict:
    """A finished run's args: its ``args.yaml`` (all a records-only copy has), else its checkpoint's."""
    return read_run_args(run_dir) or read_checkpoint(run_dir).args


def report(args: argparse.Namespace) -> int:
    """``--runs``: the report of a folder of finished runs, nothing trained."""
    if args.config:
        raise UsageError('--runs reports runs that finished and trains nothing: drop -c/--config.')
    paper_tables = read_paper_tables(args.paper_tables)
    device = resolve_device(args.device)
    records, unfinished = collect_finished_runs(args.runs, args.test_split, args.data_dir, device)
    first_args = _run_args(records[0].run_dir)
    paper_dataset = _paper_dataset(args, first_args.get('num_classes'))
    output = pathlib.Path(args.output or pathlib.Path('results', paper_dataset or 'report'))
    name, meaning = _data_name(records[0].run_dir, str(first_args.get('data_dir') or 'not recorded'))
    seeds = sorted({r.seed for r in records})
    title = (f'{args.test_split} top-1/top-5 error at the best validation epoch, mean ± std over the seeds done '
             f'(seeds {", ".join(map(str, seeds))}); data: {name}')
    rows = summarize(records, paper_dataset, paper_tables)
    table = format_table(rows, title)
    pixel_mean = any(_run_args(r.run_dir).get('input_norm') == 'pixel_mean' for r in records)
    text = table + (f'\n{meaning}\n' if meaning else '') + (f'\n{_PIXEL_MEAN_NOTE}\n' if pixel_mean else '') + \
        '\n**Runs**\n\n' + format_runs(records)
    if unfinished:
        text += '\nNot finished, left out: ' + ', '.join(p.name for p in unfinished) + '\n'
    output.mkdir(parents=True, exist_ok=True)
    write_results(records, rows, text, output)
    print(text)
    print(f'results: {output / "results.md"}, {output / "results.csv"}, {output / "runs.csv"}')
    _draw_figure1(records, output)
    return 0


def _figures_missing() -> Optional[str]:
    """Why Figure 1 cannot be drawn (matplotlib, the ``figures`` extra, is not installed), or None when it can."""
    try:
        import matplotlib  # noqa: F401 (optional dependency, the figures extra)
    except ImportError as e:
        return f'it needs matplotlib ({e}); pip install "timm-ignore[figures]"'
    return None


def _draw_figure1(records: Sequence[RunRecord], output: pathlib.Path) -> None:
    """Figure 1 of the report: one validation-loss panel per explicit attention model and its ignore variants."""
    panels = figure1_panels(list(dict.fromkeys(r.model for r in records)))
    if not panels:
        print('Figure 1: no explicit attention model with an ignore variant among the runs yet.')
        return
    missing = _figures_missing()
    if missing:
        print(f'Figure 1 not drawn: {missing}.')
        return
    for explicit, models in panels.items():
        figure = plot_loss_curves(
            {m: [r.run_dir for r in records if r.model == m] for m in models}, output / f'val_loss_{explicit}.png',
            title=f'Validation loss: {explicit} and its ignore variants')
        print(f'Figure 1: {figure}')


def _engine_records(args: argparse.Namespace, runs_dir: pathlib.Path, time_limit: float) -> tuple[list, str]:
    """``--trainer engine``: the matrix on the in-memory engine (``train-queue``'s), with the engine's checks."""
    from ..engine import EngineRecipe, RunSpec, run_queue  # loaded for --trainer engine only: the default stays light

    overrides = {} if args.epochs is None else {'epochs': args.epochs}
    recipe = EngineRecipe.from_yaml(args.config, {**overrides, **dict(args.settings)})
    specs = [RunSpec(m, s) for m in args.models for s in args.seeds]
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    records = run_queue(specs, recipe, pathlib.Path(args.data_dir), runs_dir, device,
                        recipe_name=pathlib.Path(args.config).name, log=lambda line: print(line, flush=True),
                        time_limit_s=time_limit, split_runs=args.split_runs)
    left = 'stopped by the time limit' if any(r is None for r in records) else ''  # run_queue raises on a failure
    return list(zip(specs, records)), left


def _timm_records(args: argparse.Namespace, runs_dir: pathlib.Path, demo: bool, time_limit: float):
    """The matrix on timm's library (the default trainer), every input checked before the first epoch."""
    if demo:
        overrides = {**DEMO_RECIPE, 'data_dir': str(runs_dir.parent / 'demo-data')}
    else:
        overrides = {'data_dir': args.data_dir}
    overrides.update(dict(args.settings))
    if args.model_kwargs:
        overrides['model_kwargs'] = dict(args.model_kwargs)
    flags = (('epochs', args.epochs), ('device', args.device), ('num_classes', args.num_classes))
    overrides.update({k: v for k, v in flags if v is not None})
    if demo:
        make_demo_dataset(runs_dir.parent / 'demo-data', per_class=tuple(args.demo_per_class))
    trainer = plan_runs(args.models, args.seeds, args.config, overrides, runs_dir, args.test_split)
    check_matrix_folder(runs_dir, trainer.specs, None, None)
    with hold_folder(runs_dir):
        result = run_matrix(trainer.specs, runs_dir, trainer, log=lambda line: print(line, flush=True),
                            time_limit_s=time_limit, split_runs=args.split_runs)
    return list(zip(trainer.specs, result.records)), result.left, next(iter(trainer.configs.values())).num_classes


def run(args: argparse.Namespace) -> int:
    if args.runs:
        return report(args)

    setup_logging()
    _quiet_library_logs()
    missing = _figures_missing()  # checked before the first epoch, not after the matrix
    if missing:
        raise UsageError(f'compare draws Figure 1: {missing}.')
    output = pathlib.Path(args.output or pathlib.Path('output', 'compare', datetime.now().strftime('%Y%m%d-%H%M%S')))
    demo = args.data_dir is None
    if demo and args.config:
        raise UsageError('a recipe (-c/--config) needs --data-dir; without --data-dir the DEMO runs.')
    if not demo and not args.config:
        raise UsageError('--data-dir needs a recipe (-c train_scripts/cifar100.yaml, ...).')
    if demo and args.trainer == 'engine':
        raise UsageError('--trainer engine needs --data-dir and an engine recipe; the DEMO runs on --trainer timm.')
    time_limit = time_limit_seconds(args)
    # every input is checked before the first epoch: paper tables, recipe, models and their args, data, run folders
    paper_tables = read_paper_tables(args.paper_tables)
    for model in args.models:
        check_model_name(model, flag='--models')
    runs_dir = output / 'runs'
    print(f'runs in {runs_dir}; if interrupted, run the same command with --output {output} to continue.', flush=True)
    if args.trainer == 'engine':
        done, left = _engine_records(args, runs_dir, time_limit)
        num_classes = None
    else:
        done, left, num_classes = _timm_records(args, runs_dir, demo, time_limit)
    if left:
        return 0  # the matrix said what is left; the report waits for every run
    records = [run_record_of(record or score_run(spec.folder(runs_dir), args.test_split, device=args.device),
                             spec.folder(runs_dir)) for spec, record in done]
    if num_classes is None:
        num_classes = read_checkpoint(records[0].run_dir).num_classes
    rows = summarize(records, _paper_dataset(args, num_classes, demo), paper_tables)
    what = 'DEMO dataset (synthetic stripes; not comparable with the paper)' if demo else args.data_dir
    title = f'{args.test_split} error at the best validation epoch, mean ± std over seeds {args.seeds}; data: {what}'
    table = format_table(rows, title)
    write_results(records, rows, table, output)
    figure = plot_loss_curves(
        {m: [r.run_dir for r in records if r.model == m] for m in args.models}, output / 'val_loss.png',
        title='Validation loss (DEMO data)' if demo else 'Validation loss')
    print(table)
    if demo and {'cifar_resnet50_se', 'cifar_resnet50_se_ign3'} <= set(args.models):
        print(SIGN_SYMMETRY_NOTE)
    print(f'results: {output / "results.md"}  runs: {runs_dir}  Figure 1: {figure}')
    return 0
