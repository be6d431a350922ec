"""The one test of a run: its best validation checkpoint on a split folder, through timm's data pipeline.

The engine's record, ``compare --runs``, ``publish`` and ``validate`` all measure a run with
:func:`~timm_ignore.evaluate.evaluate_split` on the model :func:`~timm_ignore.checkpoint.load_model` builds (its data
config from ``args.yaml``), so they report the same test error on the same split. A recipe that subtracts the
per-pixel mean image (the authors' CIFAR recipe) cannot say that in timm's data config, whose mean/std are per
channel: ``args.yaml`` holds the mean image's channel means and std 1, and this test uses them. The engine also
records its own exact-normalisation number as ``test_top1_err_pixel_mean`` beside it, named as such everywhere.
"""
import os
import pathlib
from typing import Any, Union

import torch

from ..checkpoint import load_model
from ..devices import resolve_device
from ..evaluate import EvalResult, evaluate_split, find_split
from .summary import summary_val_error

__all__ = ['score_run', 'test_run']


def test_run(
        run_dir: Union[str, os.PathLike],
        split: str = 'test',
        data_dir: Union[str, os.PathLike, None] = None,
        device: Union[str, torch.device, None] = None,
        flip_tta: bool = True,
) -> tuple[EvalResult, Any]:
    """Evaluate a finished run as the paper does: its best validation checkpoint on ``split`` of its dataset.

    Args:
        run_dir: Run folder (either trainer of this package, or timm's train.py).
        split: Split folder to evaluate (the paper: the official test set).
        data_dir: Dataset root; None for the one the run trained on.
        device: None for CUDA when available, else CPU.
        flip_tta: Also measure the flip test-time augmentation error.

    Returns:
        The evaluation and the checkpoint read (its ``epoch`` is the best epoch, 0-based as in summary.csv).
    """
    model, checkpoint = load_model(run_dir)
    root = data_dir or checkpoint.args.get('data_dir') or ''
    batch_size = checkpoint.args.get('validation_batch_size') or checkpoint.args.get('batch_size') or 128
    result = evaluate_split(model, find_split(root, split, flag='--data-dir'), batch_size=batch_size,
                            workers=checkpoint.args.get('workers') or 0, device=resolve_device(device),
                            flip_tta=flip_tta)
    return result, checkpoint


def score_run(
        run_dir: Union[str, os.PathLike],
        split: str = 'test',
        data_dir: Union[str, os.PathLike, None] = None,
        device: Union[str, torch.device, None] = None,
        flip_tta: bool = True,
) -> dict[str, Any]:
    """The record fields of a run's test (:func:`test_run`): model, seed, epochs, best epoch, its validation error
    (from summary.csv), test top-1/top-5 error, test loss and the flip-TTA test top-1 error (%, rounded)."""
    result, checkpoint = test_run(run_dir, split, data_dir, device, flip_tta)
    args = checkpoint.args
    val = summary_val_error(pathlib.Path(run_dir), checkpoint.epoch)
    return dict(
        model=str(args.get('model') or checkpoint.arch), seed=int(args.get('seed') or 0), epochs=args.get('epochs'),
        best_epoch=checkpoint.epoch, val_top1_err=None if val is None else round(val, 4),
        test_top1_err=round(result.top1_err, 4), test_top5_err=round(result.top5_err, 4),
        test_loss=round(result.loss, 6),
        test_top1_err_flip=None if result.top1_err_flip is None else round(result.top1_err_flip, 4))
