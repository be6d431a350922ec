"""The report over finished runs: one row per run, mean ± std per model next to the paper's row.

Reports mean ± std (sample std over seeds, as the paper's "3 runs") of top-1/top-5 error on the test split, next to
the paper's number for the row (from ``paper_tables.csv``) when the dataset and model are the paper's. A run that
wrote its record (``run.json``) is reported from it; a finished timm train.py folder is tested here with
:func:`score_run`, the one evaluation of a run (:mod:`timm_ignore.runs.scoring`).

The paper's numbers are after 200 CIFAR epochs (90 on ImageNet, ``PAPER_EPOCHS``). A model whose runs trained another
number of epochs keeps the paper's column for reference but gets no difference, and its row says how many epochs it
trained: a 1-epoch smoke run is never shown as "+58 points from the paper".
"""
import csv
import os
import pathlib
import statistics
from dataclasses import dataclass, fields, replace
from typing import Optional, Sequence, Union

import torch

from ..models.zoo import MODELS
from ..paper import PAPER_EPOCHS, PaperTables
from .layout import ARGS_FILE, LAST_CHECKPOINT
from .record import is_finished, read_record, read_run_args, run_precision
from .scoring import score_run

__all__ = ['RunRecord', 'ResultRow', 'collect_finished_runs', 'summarize', 'format_runs', 'format_table',
           'write_results', 'run_record_of', 'figure1_panels']


@dataclass(frozen=True)
class RunRecord:
    """One finished run: where it is, its test errors (%) at the best validation epoch, that epoch's validation
    error, its epochs, and (when the run recorded them) its flip-TTA test error, training wall time, device and
    precision (:func:`~.record.run_precision` of its ``args.yaml``)."""
    model: str
    seed: int
    run_dir: pathlib.Path
    best_epoch: Optional[int]
    top1_err: float
    top5_err: float
    val_top1_err: Optional[float] = None
    wall_time_s: Optional[float] = None
    device: Optional[str] = None
    epochs: Optional[int] = None
    top1_err_flip: Optional[float] = None
    precision: Optional[str] = None


@dataclass(frozen=True)
class ResultRow:
    """One line of the results table; ``*_std`` is None for a single seed, ``paper_*`` None without a paper number,
    ``top1_diff`` the measured mean minus the paper's (None when the runs trained other epochs than the paper's),
    ``epochs`` the epochs of the runs (``1`` or ``1/200`` when they differ).

    ``twin`` is the model the paper's claim for this row is about (``ModelSpec.twin``: an ignore variant's explicit
    twin, explicit attention's plain network); ``twin_diff`` this row's mean minus the twin's among the same runs
    (None without finished twin runs), ``paper_twin_diff`` the same difference in the paper's table. Unlike
    ``top1_diff`` they compare runs of one recipe with each other, so they hold whatever the epochs."""
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
    epochs: str = ''
    paper_epochs: Optional[int] = None
    twin: str = ''
    twin_diff: Optional[float] = None
    paper_twin_diff: Optional[float] = None


def run_record_of(record: dict, run_dir: pathlib.Path) -> RunRecord:
    """The report's row of a run record (``run.json``) in ``run_dir``, with the precision of its ``args.yaml``."""
    return RunRecord(
        record['model'], int(record['seed']), run_dir, record.get('best_epoch'), record['test_top1_err'],
        record['test_top5_err'], val_top1_err=record.get('val_top1_err'), wall_time_s=record.get('wall_time_s'),
        device=record.get('device'), epochs=record.get('epochs'), top1_err_flip=record.get('test_top1_err_flip'),
        precision=run_precision(read_run_args(run_dir)))


def _scored(run_dir: pathlib.Path, test_split: str, data_dir, device) -> RunRecord:
    return run_record_of(score_run(run_dir, test_split, data_dir=data_dir, device=device), run_dir)


def collect_finished_runs(
        folder: Union[str, os.PathLike],
        test_split: str = 'test',
        data_dir: Union[str, os.PathLike, None] = None,
        device: Union[str, torch.device, None] = None,
) -> tuple[list[RunRecord], list[pathlib.Path]]:
    """The finished runs (:func:`~.record.is_finished`) among the subfolders of ``folder``.

    A run with a record holding a test error is reported from it; any other finished run (a timm train.py folder,
    or a run trained without a test split) is tested here on ``test_split`` of ``data_dir`` (default: the data it
    trained on).

    Returns:
        The finished runs in zoo-table order (then seed), and the run folders not finished.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: It holds no finished run.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: no such folder of runs (--runs).')
    records, unfinished = [], []
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith('.')):
        if not is_finished(run_dir):
            if (run_dir / ARGS_FILE).is_file() or (run_dir / LAST_CHECKPOINT).is_file():
                unfinished.append(run_dir)
            continue
        record = read_record(run_dir)
        tested = record is not None and record.get('test_top1_err') is not None
        records.append(run_record_of(record, run_dir) if tested else _scored(run_dir, test_split, data_dir, device))
    if not records:
        raise ValueError(f'{folder}: no finished runs (a finished run folder holds run.json, or model_best.pth.tar '
                         f'and every epoch in summary.csv); train them first with `timm-ignore train-queue`.')
    order = {name: i for i, name in enumerate(MODELS)}
    records.sort(key=lambda r: (order.get(r.model, len(order)), r.model, r.seed))
    return records, unfinished


def _mean_std(values: Sequence[float]) -> tuple[float, Optional[float]]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize(
        records: Sequence[RunRecord],
        paper_dataset: Optional[str] = None,
        paper_tables: Optional[PaperTables] = None,
) -> list[ResultRow]:
    """One row per model, in first-seen order; paper numbers only when ``paper_dataset`` and tables are given, the
    difference to them only when every run of the row trained the paper's epochs (or recorded no epochs)."""
    rows = []
    paper_epochs = PAPER_EPOCHS.get(paper_dataset or '')
    for model in dict.fromkeys(r.model for r in records):
        own = [r for r in records if r.model == model]
        top1, top1_std = _mean_std([r.top1_err for r in own])
        top5, top5_std = _mean_std([r.top5_err for r in own])
        epochs = sorted({r.epochs for r in own if r.epochs is not None})
        paper = {}
        spec = MODELS.get(model.split('.', 1)[0])
        if paper_dataset and paper_tables and spec is not None:
            for metric, result in paper_tables.for_model(spec, paper_dataset).items():
                if metric in ('top1_err', 'top5_err'):
                    paper[f'paper_{metric[:4]}'], paper[f'paper_{metric[:4]}_std'] = result.value, result.std
        comparable = paper_epochs is None or all(e == paper_epochs for e in epochs)
        diff = top1 - paper['paper_top1'] if paper.get('paper_top1') is not None and comparable else None
        rows.append(ResultRow(model, len(own), top1, top1_std, top5, top5_std, **paper, top1_diff=diff,
                              epochs='/'.join(map(str, epochs)), paper_epochs=paper_epochs if paper else None))
    return [_with_twin(row, rows, paper_dataset, paper_tables) for row in rows]


def _with_twin(row: ResultRow, rows: Sequence[ResultRow], paper_dataset: Optional[str],
               paper_tables: Optional[PaperTables]) -> ResultRow:
    """``row`` with its twin's name and the differences to it, measured and in the paper."""
    base, _, tag = row.model.partition('.')
    spec = MODELS.get(base)
    twin_spec = spec.twin if spec is not None else None
    if twin_spec is None:
        return row
    twin = twin_spec.name + (f'.{tag}' if tag else '')
    measured = next((r for r in rows if r.model == twin), None)
    twin_diff = None if measured is None else row.top1_err - measured.top1_err
    paper_twin_diff = None
    if paper_dataset and paper_tables and row.paper_top1 is not None:
        twin_paper = paper_tables.for_model(twin_spec, paper_dataset).get('top1_err')
        paper_twin_diff = None if twin_paper is None else row.paper_top1 - twin_paper.value
    return replace(row, twin=twin, twin_diff=twin_diff, paper_twin_diff=paper_twin_diff)


def figure1_panels(models: Sequence[str]) -> dict[str, list[str]]:
    """Figure 1's panels among ``models`` (``NAME[.TAG]``): each explicit-attention model that is there, with those
    of its ignore variants that are there, in the order given; a panel needs the explicit model and one variant."""
    panels: dict[str, list[str]] = {}
    for model in models:
        base, _, tag = model.partition('.')
        spec = MODELS.get(base)
        if spec is None or spec.attn is None or spec.gate.name == 'explicit':
            continue
        explicit = spec.twin.name + (f'.{tag}' if tag else '')
        if explicit in models:
            panels.setdefault(explicit, [explicit]).append(model)
    return panels


def _pm(value: Optional[float], std: Optional[float]) -> str:
    if value is None:
        return '—'
    return f'{value:.2f}' if std is None else f'{value:.2f} ± {std:.2f}'


def _shown(value: Optional[float], fmt: str = '{:.2f}') -> str:
    return '—' if value is None else fmt.format(value)


def _diff(row: ResultRow) -> str:
    if row.top1_diff is not None or row.paper_top1 is None:
        return _shown(row.top1_diff, '{:+.2f}')
    return f'— ({row.epochs} vs {row.paper_epochs} epochs)'


def _twin(row: ResultRow) -> str:
    if not row.twin:
        return '—'
    paper = '' if row.paper_twin_diff is None else f' (paper {row.paper_twin_diff:+.2f})'
    return f'{_shown(row.twin_diff, "{:+.2f}")}{paper} vs {row.twin}'


def format_table(rows: Sequence[ResultRow], title: str) -> str:
    """The results as a Markdown table: one line per model (the paper's row), ``runs`` the seeds done, ``epochs``
    the epochs they trained; no difference to the paper for runs of another length than the paper's; the difference
    to the row's twin (its explicit or plain counterpart), measured and in the paper, whatever the epochs."""
    lines = [f'**{title}**', '',
             '| model | runs | epochs | top-1 err (%) | top-5 err (%) | paper top-1 err (%) | paper top-5 err (%) | '
             'top-1 − paper | top-1 − twin (paper) |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---|']
    lines += [f'| {r.model} | {r.runs} | {r.epochs or "—"} | {_pm(r.top1_err, r.top1_std)} | '
              f'{_pm(r.top5_err, r.top5_std)} | {_pm(r.paper_top1, r.paper_top1_std)} | '
              f'{_pm(r.paper_top5, r.paper_top5_std)} | {_diff(r)} | {_twin(r)} |' for r in rows]
    short = sorted({r.epochs for r in rows if r.paper_top1 is not None and r.top1_diff is None})
    if short:
        lines += ['', f'The paper\'s numbers are after {rows[0].paper_epochs or "its"} epochs; rows of runs with '
                      f'{", ".join(short)} epochs show them for reference only, without a difference.']
    if any(r.twin for r in rows):
        lines += ['', 'top-1 − twin: the row\'s mean minus that of the model the paper\'s claim compares it with (an '
                      'ignore variant\'s explicit-attention twin; explicit attention\'s plain network), among these '
                      'runs, and the same difference in the paper (negative: the row is better). Runs of one recipe '
                      'compare with each other at any number of epochs.']
    return '\n'.join(lines) + '\n'


def format_runs(records: Sequence[RunRecord]) -> str:
    """Every run as a Markdown table: epochs, best epoch, validation and test error (single view, and with
    horizontal-flip TTA when recorded), wall time, device and precision."""
    lines = ['| model | seed | epochs | best epoch | val top-1 err (%) | test top-1 err (%) | test top-1 err, flip TTA '
             '(%) | test top-5 err (%) | wall time (h) | device | precision |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|']
    for r in records:
        hours = None if r.wall_time_s is None else r.wall_time_s / 3600
        lines.append(f'| {r.model} | {r.seed} | {_shown(r.epochs, "{}")} | {_shown(r.best_epoch, "{}")} | '
                     f'{_shown(r.val_top1_err)} | {r.top1_err:.2f} | {_shown(r.top1_err_flip)} | {r.top5_err:.2f} | '
                     f'{_shown(hours)} | {r.device or "—"} | {r.precision or "—"} |')
    return '\n'.join(lines) + '\n'


_RUN_COLUMNS = {'model': 'model', 'seed': 'seed', 'run_dir': 'run_dir', 'epochs': 'epochs', 'best_epoch': 'best_epoch',
                'top1_err': 'test_top1_err', 'top5_err': 'test_top5_err', 'top1_err_flip': 'test_top1_err_flip',
                'val_top1_err': 'val_top1_err', 'wall_time_s': 'wall_time_s', 'device': 'device',
                'precision': 'precision'}


def write_results(records: Sequence[RunRecord], rows: Sequence[ResultRow], table: str, output: pathlib.Path) -> None:
    """``runs.csv`` (one line per run), ``results.csv`` (one per model) and ``results.md`` in ``output``."""
    with open(output / 'runs.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(list(_RUN_COLUMNS.values()))
        writer.writerows([getattr(r, k) for k in _RUN_COLUMNS] for r in records)
    with open(output / 'results.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow([f.name for f in fields(ResultRow)])
        writer.writerows([getattr(r, f.name) for f in fields(ResultRow)] for r in rows)
    (output / 'results.md').write_text(table)
