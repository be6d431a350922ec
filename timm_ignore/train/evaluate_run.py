"""Test a finished run as the paper does: the checkpoint of the best validation epoch on the test split.

Works on run folders of ``timm-ignore train`` and of timm's train.py alike: both write ``args.yaml`` and
``model_best.pth.tar``.
"""
import os
import pathlib
from typing import Optional, Union

import torch
from timm.data import resolve_data_config
from timm.models import load_checkpoint
from torch import nn

from .config import TrainConfig
from .loop import evaluate
from .runner import build_loader, build_model

__all__ = ['load_run_config', 'evaluate_best_checkpoint']

#: Settings of a run that describe the model and the data, as opposed to how it was trained or where it was saved.
_MODEL_AND_DATA_KEYS = (
    'data_dir', 'dataset', 'class_map', 'model', 'num_classes', 'model_kwargs', 'input_size', 'img_size', 'crop_pct',
    'mean', 'std', 'interpolation', 'device_modules', 'validation_batch_size', 'batch_size', 'workers')


def load_run_config(run_dir: Union[str, os.PathLike]) -> TrainConfig:
    """The model and data settings of a run, from its ``args.yaml`` (written by either trainer)."""
    import yaml
    with open(pathlib.Path(run_dir) / 'args.yaml') as f:
        args = yaml.safe_load(f)
    return TrainConfig.from_dict({k: args[k] for k in _MODEL_AND_DATA_KEYS if k in args and args[k] is not None})


def evaluate_best_checkpoint(
        run_dir: Union[str, os.PathLike],
        split: str = 'test',
        data_dir: Optional[str] = None,
        device: Optional[torch.device] = None,
) -> dict[str, float]:
    """Loss and top-1/top-5 accuracy (%) of ``run_dir/model_best.pth.tar`` on ``split``.

    Args:
        run_dir: Run folder.
        split: Split to evaluate (the paper: the official test set).
        data_dir: Dataset root; None for the one the run trained on.
        device: None for CUDA when available, else CPU.

    Raises:
        FileNotFoundError: The run has no ``model_best.pth.tar`` (it never validated).
    """
    run_dir = pathlib.Path(run_dir)
    checkpoint = run_dir / 'model_best.pth.tar'
    if not checkpoint.is_file():
        raise FileNotFoundError(f'{checkpoint} not found: the run has no best-validation checkpoint to test.')
    config = load_run_config(run_dir)
    if data_dir is not None:
        config.data_dir = data_dir
    device = device or torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_model(config)
    load_checkpoint(model, str(checkpoint))
    data_config = resolve_data_config(vars(config.to_namespace()), model=model)
    loader = build_loader(config, data_config, split, is_training=False, device=device)
    return evaluate(model.to(device), loader, nn.CrossEntropyLoss(), device, log_suffix=f' ({split}, best epoch)')
