"""Side-by-side comparison: several models x several seeds with one recipe, tested at the best validation epoch.

Reports mean ± std (sample std over seeds, as the paper's "3 runs") of top-1/top-5 error on the test split, next to
the paper's number for the row (from ``paper_tables.csv``) when the dataset and model are the paper's.
"""
import csv
import logging
import os
import pathlib
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import torch

from ..checkpoint import load_model
from ..evaluate import EvalResult, evaluate_split, find_split
from ..paper import PaperTables
from .config import TrainConfig
from .runner import train

__all__ = ['RunRecord', 'ResultRow', 'run_comparison', 'summarize', 'format_table', 'score_run', 'write_results']

_logger = logging.getLogger(__name__)


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


def run_comparison(
        models: Sequence[str],
        seeds: Sequence[int],
        recipe: Union[str, os.PathLike, None],
        overrides: Mapping[str, Any],
        output: Union[str, os.PathLike],
        test_split: str = 'test',
) -> list[RunRecord]:
    """Train every model with every seed (run folders ``output/{model}-seed{seed}``) and test each best checkpoint."""
    records = []
    for model in models:
        for seed in seeds:
            _logger.info(f'=== {model}, seed {seed} ===')
            config = TrainConfig.from_recipe(recipe, {
                **overrides, 'model': model, 'seed': seed, 'output': str(output), 'experiment': f'{model}-seed{seed}'})
            result = train(config)
            tested = score_run(result.output_dir, test_split, device=config.device or None)
            records.append(RunRecord(
                model, seed, result.output_dir, result.best_epoch, tested.top1_err, tested.top5_err))
    return records


def score_run(
        run_dir: Union[str, os.PathLike],
        split: str = 'test',
        data_dir: Union[str, os.PathLike, None] = None,
        device: Union[str, torch.device, None] = None,
) -> EvalResult:
    """Test a finished run as the paper does: its best validation checkpoint on ``split`` of its dataset.

    Args:
        run_dir: Run folder (``timm-ignore train`` or timm's train.py).
        split: Split folder to evaluate (the paper: the official test set).
        data_dir: Dataset root; None for the one the run trained on.
        device: None for CUDA when available, else CPU.
    """
    model, checkpoint = load_model(run_dir)
    root = data_dir or checkpoint.args.get('data_dir') or ''
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    batch_size = checkpoint.args.get('validation_batch_size') or checkpoint.args.get('batch_size') or 128
    return evaluate_split(model, find_split(root, split, flag='--data-dir'), batch_size=batch_size,
                          workers=checkpoint.args.get('workers') or 0, device=device)


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
