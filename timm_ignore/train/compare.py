"""Side-by-side comparison: several models x several seeds with one recipe, tested at the best validation epoch.

Reports mean ± std (sample std over seeds, as the paper's "3 runs") of top-1/top-5 error on the test split, next to
the paper's number for the row (from ``paper_tables.csv``) when the dataset and model are the paper's. The runs are
trained here (:func:`run_comparison`) or found finished in a folder (:func:`collect_finished_runs`: the runs of a
``timm-ignore train-queue`` folder, or train.py-style run folders), and reported the same way.
"""
import csv
import datetime
import os
import pathlib
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch

from ..checkpoint import load_model, read_checkpoint
from ..devices import resolve_device
from ..evaluate import EvalResult, evaluate_split, find_split
from ..paper import PaperTables
from .config import TrainConfig
from .runner import build_model, check_inputs, train

__all__ = ['RunRecord', 'ResultRow', 'collect_finished_runs', 'plan_runs', 'run_comparison', 'summarize',
           'format_runs', 'format_table', 'score_run', 'write_results']

@dataclass(frozen=True)
class RunRecord:
    """One finished run: where it is, its test errors (%) at the best validation epoch, that epoch's validation
    error, and (when the run recorded them) its training wall time and device."""
    model: str
    seed: int
    run_dir: pathlib.Path
    best_epoch: Optional[int]
    top1_err: float
    top5_err: float
    val_top1_err: Optional[float] = None
    wall_time_s: Optional[float] = None
    device: Optional[str] = None


@dataclass(frozen=True)
class ResultRow:
    """One line of the results table; ``*_std`` is None for a single seed, ``paper_*`` None without a paper number,
    ``top1_diff`` the measured mean minus the paper's."""
    model: str
    runs: int
    top1_err: float
    top1_std: Optional[float]
    top5_err: float
    top5_std: Optional[float]
    paper_top1: Optional[float] = None
    paper_top1_std: Optional[float] = None
    paper_top5: Optional[float] = None
    paper_top5_std: Optional[float] = None
    top1_diff: Optional[float] = None


def _finished_epochs(run_dir: pathlib.Path) -> int:
    """Epochs the run's summary.csv records (0 without one)."""
    summary = run_dir / 'summary.csv'
    if not summary.is_file():
        return 0
    with open(summary, newline='') as f:
        return len(list(csv.DictReader(f)))


def plan_runs(
        models: Sequence[str],
        seeds: Sequence[int],
        recipe: Union[str, os.PathLike, None],
        overrides: Mapping[str, Any],
        output: Union[str, os.PathLike],
        test_split: str = 'test',
) -> list[tuple[TrainConfig, bool]]:
    """The settings of every run, checked before any training, and whether it is already done.

    A run folder ``output/{model}-seed{seed}`` that finished (all epochs in summary.csv, a best checkpoint) is kept as
    it is; one cut off is continued from its ``last.pth.tar``; one without a checkpoint starts again.

    Raises:
        ConfigError, FileNotFoundError, FileExistsError, ValueError: A bad recipe, model, model args, data folder
            (the training, validation or ``test_split`` folder) or run folder.
    """
    output = pathlib.Path(output)
    plan = []
    for model in models:
        for seed in seeds:
            run_dir = output / f'{model}-seed{seed}'
            config = TrainConfig.from_recipe(recipe, {
                **overrides, 'model': model, 'seed': seed, 'output': str(output), 'experiment': run_dir.name})
            done = _finished_epochs(run_dir) >= config.epochs and (run_dir / 'model_best.pth.tar').is_file()
            if (run_dir / 'last.pth.tar').is_file():
                config.resume = str(run_dir / 'last.pth.tar')  # continued, or (done) kept and only checked
            elif not done:
                config.overwrite = True  # a run cut off before its first checkpoint: nothing to keep
            check_inputs(config)
            if seed == seeds[0]:
                build_model(config)  # the model args (e.g. an alpha for a gate that has none), once per model
            plan.append((config, done))
    find_split(plan[0][0].data_dir, test_split, flag='--data-dir')
    return plan


class _Progress:
    """One console line per epoch: the run, its epoch and validation numbers, and the time left (ETA)."""

    def __init__(self, plan: Sequence[tuple[TrainConfig, bool]]):
        self.total = sum(config.epochs for config, done in plan if not done)
        self.done_epochs, self.start = 0, time.monotonic()
        self.runs = len(plan)

    def __call__(self, index: int, config: TrainConfig) -> Callable[[int, int, dict[str, float]], None]:
        def report(epoch: int, num_epochs: int, metrics: dict[str, float]) -> None:
            self.done_epochs += 1
            per_epoch = (time.monotonic() - self.start) / self.done_epochs
            left = per_epoch * max(self.total - self.done_epochs, 0)
            print(f'[run {index + 1}/{self.runs}] {config.model} seed {config.seed}: epoch {epoch}/{num_epochs - 1}  '
                  f'val loss {metrics["loss"]:.4f}  val top-1 err {100 - metrics.get("top1", 100):.2f}%  '
                  f'ETA {datetime.timedelta(seconds=round(left))}', flush=True)
        return report


def run_comparison(
        plan: Sequence[tuple[TrainConfig, bool]],
        test_split: str = 'test',
) -> list[RunRecord]:
    """Train the runs of :func:`plan_runs` that are not done, and test each best checkpoint on ``test_split``."""
    progress = _Progress(plan)
    records = []
    for index, (config, done) in enumerate(plan):
        run_dir = pathlib.Path(config.output) / config.experiment
        if done:
            print(f'[run {index + 1}/{len(plan)}] {config.model} seed {config.seed}: finished earlier, kept',
                  flush=True)
        else:
            train(config, on_epoch=progress(index, config))
        records.append(_scored_record(config.model, config.seed, run_dir, test_split, None, config.device or None))
    return records


def _scored_record(
        model: str,
        seed: int,
        run_dir: pathlib.Path,
        test_split: str,
        data_dir: Union[str, os.PathLike, None],
        device: Union[str, torch.device, None],
) -> RunRecord:
    """A run without a recorded test error, tested here at its best checkpoint (its validation error: summary.csv)."""
    from ..hub.publish import summary_val_error
    tested, best_epoch = score_run(run_dir, test_split, data_dir=data_dir, device=device)
    return RunRecord(model, seed, run_dir, best_epoch, tested.top1_err, tested.top5_err,
                     val_top1_err=summary_val_error(run_dir, best_epoch))


def _engine_record(run_dir: pathlib.Path) -> Optional[RunRecord]:
    """The record of a finished engine run (its ``run.json``), None when it holds no test error."""
    from ..engine.run import read_record
    record = read_record(run_dir)
    if record is None or record.get('test_top1_err') is None:
        return None
    return RunRecord(record['model'], int(record['seed']), run_dir, record.get('best_epoch'), record['test_top1_err'],
                     record['test_top5_err'], val_top1_err=record.get('val_top1_err'),
                     wall_time_s=record.get('wall_time_s'), device=record.get('device'))


def _train_py_finished(run_dir: pathlib.Path) -> Optional[tuple[str, int]]:
    """``(model, seed)`` of a train.py-style run folder that trained all its epochs and kept a best checkpoint."""
    from ..checkpoint import CHECKPOINT_FILES
    if not (run_dir / CHECKPOINT_FILES['best']).is_file():
        return None
    args = read_checkpoint(run_dir).args
    if args.get('trainer') == 'timm_ignore.engine':  # an engine run is finished when it has written run.json
        return None
    epochs = args.get('epochs')
    if not args.get('model') or epochs is None or _finished_epochs(run_dir) < epochs:
        return None
    return str(args['model']), int(args.get('seed') or 0)


def collect_finished_runs(
        folder: Union[str, os.PathLike],
        test_split: str = 'test',
        data_dir: Union[str, os.PathLike, None] = None,
        device: Union[str, torch.device, None] = None,
) -> tuple[list[RunRecord], list[pathlib.Path]]:
    """The finished runs among the subfolders of ``folder`` (a ``train-queue`` output, or train.py run folders).

    An engine run (``run.json``) is reported from its record; a train.py-style run (``args.yaml``, every epoch in
    ``summary.csv``, ``model_best.pth.tar``), or an engine run that had no test split, is tested here on
    ``test_split`` of ``data_dir`` (default: the data it trained on).

    Returns:
        The finished runs in zoo-table order (then seed), and the run folders not finished.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: It holds no finished run.
    """
    from ..models.zoo import MODELS
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: no such folder of runs (--runs).')
    records, unfinished = [], []
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith('.')):
        record = _engine_record(run_dir)
        if record is None:
            finished = _train_py_finished(run_dir)
            if finished is None:
                if (run_dir / 'args.yaml').is_file() or (run_dir / 'last.pth.tar').is_file():
                    unfinished.append(run_dir)
                continue
            record = _scored_record(*finished, run_dir, test_split, data_dir, device)
        records.append(record)
    if not records:
        raise ValueError(f'{folder}: no finished runs (a finished run folder holds run.json, or model_best.pth.tar '
                         f'and every epoch in summary.csv); train them first with `timm-ignore train-queue`.')
    order = {name: i for i, name in enumerate(MODELS)}
    records.sort(key=lambda r: (order.get(r.model, len(order)), r.model, r.seed))
    return records, unfinished


def score_run(
        run_dir: Union[str, os.PathLike],
        split: str = 'test',
        data_dir: Union[str, os.PathLike, None] = None,
        device: Union[str, torch.device, None] = None,
) -> tuple[EvalResult, Optional[int]]:
    """Test a finished run as the paper does: its best validation checkpoint on ``split`` of its dataset.

    Args:
        run_dir: Run folder (``timm-ignore train`` or timm's train.py).
        split: Split folder to evaluate (the paper: the official test set).
        data_dir: Dataset root; None for the one the run trained on.
        device: None for CUDA when available, else CPU.

    Returns:
        The evaluation, and the epoch of the best checkpoint (0-based, as in summary.csv).
    """
    model, checkpoint = load_model(run_dir)
    root = data_dir or checkpoint.args.get('data_dir') or ''
    device = resolve_device(device)
    batch_size = checkpoint.args.get('validation_batch_size') or checkpoint.args.get('batch_size') or 128
    result = evaluate_split(model, find_split(root, split, flag='--data-dir'), batch_size=batch_size,
                            workers=checkpoint.args.get('workers') or 0, device=device)
    return result, checkpoint.epoch


def _mean_std(values: Sequence[float]) -> tuple[float, Optional[float]]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize(
        records: Sequence[RunRecord],
        paper_dataset: Optional[str] = None,
        paper_tables: Optional[PaperTables] = None,
) -> list[ResultRow]:
    """One row per model, in first-seen order; paper numbers only when ``paper_dataset`` and tables are given."""
    from ..models.zoo import MODELS
    rows = []
    for model in dict.fromkeys(r.model for r in records):
        own = [r for r in records if r.model == model]
        top1, top1_std = _mean_std([r.top1_err for r in own])
        top5, top5_std = _mean_std([r.top5_err for r in own])
        paper = {}
        spec = MODELS.get(model.split('.', 1)[0])
        if paper_dataset and paper_tables and spec is not None:
            for metric, result in paper_tables.for_model(spec, paper_dataset).items():
                if metric in ('top1_err', 'top5_err'):
                    paper[f'paper_{metric[:4]}'], paper[f'paper_{metric[:4]}_std'] = result.value, result.std
        diff = top1 - paper['paper_top1'] if paper.get('paper_top1') is not None else None
        rows.append(ResultRow(model, len(own), top1, top1_std, top5, top5_std, **paper, top1_diff=diff))
    return rows


def _pm(value: Optional[float], std: Optional[float]) -> str:
    if value is None:
        return '—'
    return f'{value:.2f}' if std is None else f'{value:.2f} ± {std:.2f}'


def _shown(value: Optional[float], fmt: str = '{:.2f}') -> str:
    return '—' if value is None else fmt.format(value)


def format_table(rows: Sequence[ResultRow], title: str) -> str:
    """The results as a Markdown table: one line per model (the paper's row), ``runs`` the seeds done."""
    lines = [f'**{title}**', '',
             '| model | runs | top-1 err (%) | top-5 err (%) | paper top-1 err (%) | paper top-5 err (%) | '
             'top-1 − paper |',
             '|---|---:|---:|---:|---:|---:|---:|']
    lines += [f'| {r.model} | {r.runs} | {_pm(r.top1_err, r.top1_std)} | {_pm(r.top5_err, r.top5_std)} | '
              f'{_pm(r.paper_top1, r.paper_top1_std)} | {_pm(r.paper_top5, r.paper_top5_std)} | '
              f'{_shown(r.top1_diff, "{:+.2f}")} |' for r in rows]
    return '\n'.join(lines) + '\n'


def format_runs(records: Sequence[RunRecord]) -> str:
    """Every run as a Markdown table: best epoch, validation and test error, wall time and device."""
    lines = ['| model | seed | best epoch | val top-1 err (%) | test top-1 err (%) | test top-5 err (%) | '
             'wall time (h) | device |', '|---|---:|---:|---:|---:|---:|---:|---|']
    for r in records:
        hours = None if r.wall_time_s is None else r.wall_time_s / 3600
        lines.append(f'| {r.model} | {r.seed} | {_shown(r.best_epoch, "{}")} | {_shown(r.val_top1_err)} | '
                     f'{r.top1_err:.2f} | {r.top5_err:.2f} | {_shown(hours)} | {r.device or "—"} |')
    return '\n'.join(lines) + '\n'


def write_results(records: Sequence[RunRecord], rows: Sequence[ResultRow], table: str, output: pathlib.Path) -> None:
    """``runs.csv`` (one line per run), ``results.csv`` (one per model) and ``results.md`` in ``output``."""
    with open(output / 'runs.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'seed', 'run_dir', 'best_epoch', 'test_top1_err', 'test_top5_err', 'val_top1_err',
                         'wall_time_s', 'device'])
        writer.writerows([r.model, r.seed, r.run_dir, r.best_epoch, r.top1_err, r.top5_err, r.val_top1_err,
                          r.wall_time_s, r.device] for r in records)
    with open(output / 'results.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(list(ResultRow.__dataclass_fields__))
        writer.writerows([getattr(r, k) for k in ResultRow.__dataclass_fields__] for r in rows)
    (output / 'results.md').write_text(table)
