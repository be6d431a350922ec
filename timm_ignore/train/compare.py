"""Side-by-side comparison: several models x several seeds with one recipe, tested at the best validation epoch.

Reports mean ± std (sample std over seeds, as the paper's "3 runs") of top-1/top-5 error on the test split, next to
the paper's number for the row (from ``paper_tables.csv``) when the dataset and model are the paper's.
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

from ..checkpoint import load_model
from ..devices import resolve_device
from ..evaluate import EvalResult, evaluate_split, find_split
from ..paper import PaperTables
from .config import TrainConfig
from .runner import build_model, check_inputs, train

__all__ = ['RunRecord', 'ResultRow', 'plan_runs', 'run_comparison', 'summarize', 'format_table', 'score_run',
           'write_results']

@dataclass(frozen=True)
class RunRecord:
    """One finished run: where it is, and its test errors (%) at the best validation epoch."""
    model: str
    seed: int
    run_dir: pathlib.Path
    best_epoch: Optional[int]
    top1_err: float
    top5_err: float


@dataclass(frozen=True)
class ResultRow:
    """One line of the results table; ``*_std`` is None for a single seed, ``paper_*`` None without a paper number."""
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
        tested, best_epoch = score_run(run_dir, test_split, device=config.device or None)
        records.append(RunRecord(config.model, config.seed, run_dir, best_epoch, tested.top1_err, tested.top5_err))
    return records


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
        rows.append(ResultRow(model, len(own), top1, top1_std, top5, top5_std, **paper))
    return rows


def _pm(value: Optional[float], std: Optional[float]) -> str:
    if value is None:
        return '—'
    return f'{value:.2f}' if std is None else f'{value:.2f} ± {std:.2f}'


def format_table(rows: Sequence[ResultRow], title: str) -> str:
    """The results as a Markdown table."""
    lines = [f'**{title}**', '',
             '| model | runs | top-1 err (%) | top-5 err (%) | paper top-1 err (%) | paper top-5 err (%) |',
             '|---|---:|---:|---:|---:|---:|']
    lines += [f'| {r.model} | {r.runs} | {_pm(r.top1_err, r.top1_std)} | {_pm(r.top5_err, r.top5_std)} | '
              f'{_pm(r.paper_top1, r.paper_top1_std)} | {_pm(r.paper_top5, r.paper_top5_std)} |' for r in rows]
    return '\n'.join(lines) + '\n'


def write_results(records: Sequence[RunRecord], rows: Sequence[ResultRow], table: str, output: pathlib.Path) -> None:
    """``runs.csv`` (one line per run), ``results.csv`` (one per model) and ``results.md`` in ``output``."""
    with open(output / 'runs.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'seed', 'run_dir', 'best_epoch', 'test_top1_err', 'test_top5_err'])
        writer.writerows([r.model, r.seed, r.run_dir, r.best_epoch, r.top1_err, r.top5_err] for r in records)
    with open(output / 'results.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(list(ResultRow.__dataclass_fields__))
        writer.writerows([getattr(r, k) for k in ResultRow.__dataclass_fields__] for r in rows)
    (output / 'results.md').write_text(table)
