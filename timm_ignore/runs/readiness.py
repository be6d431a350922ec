"""Whether a run can become a model card: it trained every epoch of its recipe and learnt more than chance.

``publish`` and ``publish-zoo`` ask this before any evaluation, from what the run folder already says (``args.yaml``,
``summary.csv``, ``run.json``), so a smoke run or a cut-off run cannot become a card by accident.

- **Epochs**: the epochs the run trained (rows of ``summary.csv``, one per finished epoch; the record's ``epochs``
  for a folder without one) against the epochs its recipe trains. The recipe's count is timm's own, from
  ``args.yaml`` through timm's scheduler factory: ``epochs`` plus a warm-up prefix (``warmup_prefix``) and cooldown,
  as ``train.py`` and both trainers of this package run it.
- **Chance level**: the run's test top-1 error (its record), else its best validation top-1 error (the record's,
  else ``summary.csv``'s), against the error of guessing, ``100 * (1 - 1 / num_classes)``, less
  :data:`CHANCE_MARGIN` points. On CIFAR-10 a run at 85 % error or more is refused: the first epoch of the zoo
  pilot's first try already had 57 % validation error (issue 14), so a trained model is far from the line, while a
  run that has learnt next to nothing (the tests' smoke runs of a few steps, random weights) is on the other side.
"""
import pathlib
import types
from typing import Any, Mapping, Optional

import torch
from timm.scheduler import create_scheduler_v2, scheduler_kwargs

from .record import read_record
from .summary import read_summary

__all__ = ['CHANCE_MARGIN', 'chance_error', 'schedule_epochs', 'untrained_problems']

#: Points below the error of guessing that a run's error must reach to count as trained.
CHANCE_MARGIN = 5.0


def chance_error(num_classes: int) -> float:
    """Top-1 error (%) of guessing uniformly among ``num_classes`` classes."""
    return 100.0 * (1.0 - 1.0 / num_classes)


def schedule_epochs(args: Mapping[str, Any]) -> Optional[int]:
    """The epochs a run with these train.py ``args`` trains, as timm's ``create_scheduler_v2`` counts them (None when
    the args name no ``epochs``); the scheduler is built on a throwaway one-parameter optimizer and discarded."""
    if args.get('epochs') is None:
        return None
    if not args.get('sched'):
        return int(args['epochs'])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=float(args.get('lr') or 0.1))
    _, epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(types.SimpleNamespace(**args)), updates_per_epoch=1)
    return int(epochs)


def _trained_epochs(run_dir: pathlib.Path, record: Optional[Mapping[str, Any]]) -> Optional[int]:
    rows = read_summary(run_dir)
    if rows:
        return len(rows)
    return None if record is None or record.get('epochs') is None else int(record['epochs'])


def _error(run_dir: pathlib.Path, record: Optional[Mapping[str, Any]]) -> Optional[tuple[str, float]]:
    """The run's test top-1 error, else its best validation top-1 error, with its name; None if it recorded neither."""
    record = record or {}
    if record.get('test_top1_err') is not None:
        return 'test', float(record['test_top1_err'])
    if record.get('val_top1_err') is not None:
        return 'validation', float(record['val_top1_err'])
    accuracies = [float(r['eval_top1']) for r in read_summary(run_dir) if r.get('eval_top1')]
    return ('validation', 100.0 - max(accuracies)) if accuracies else None


def untrained_problems(run_dir: pathlib.Path, args: Mapping[str, Any], num_classes: int) -> list[str]:
    """Why the run in ``run_dir`` is not a trained model, one phrase each; [] for a run that can become a card.

    Args:
        run_dir: The run folder.
        args: The run's train.py arguments (``args.yaml``, or the checkpoint's).
        num_classes: The model's class count (for the chance level).
    """
    run_dir = pathlib.Path(run_dir)
    record = read_record(run_dir)
    problems = []
    planned, trained = schedule_epochs(args), _trained_epochs(run_dir, record)
    if trained is None:
        problems.append('no summary.csv or run.json says how many epochs it trained')
    elif planned is not None and trained < planned:
        problems.append(f'it trained {trained} of the {planned} epochs of its recipe')
    error = _error(run_dir, record)
    line = chance_error(num_classes) - CHANCE_MARGIN
    if error is not None and error[1] >= line:
        problems.append(f'its {error[0]} top-1 error {error[1]:.2f}% is at chance level (>= {line:.0f}%: '
                        f'{chance_error(num_classes):.0f}% for {num_classes} classes, less {CHANCE_MARGIN:g} points)')
    return problems
