"""Read the checkpoint of a training run (timm's ``train.py`` or ``timm-ignore train``) and load it into a model.

A run folder holds ``args.yaml``, ``summary.csv``, ``model_best.pth.tar``, ``last.pth.tar`` and
``checkpoint-N.pth.tar``; a checkpoint is a dict with ``state_dict``, optionally ``state_dict_ema``, ``arch``, ``epoch``
and ``args``. These are local files the user points at, so they are read with ``torch.load(weights_only=True)`` (plus
``argparse.Namespace`` for the ``args`` entry); a ``.safetensors`` file is read as a plain state dict.
"""
import argparse
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models import clean_state_dict
from torch import nn

from ..models._state_dict_check import check_state_dict, classifier_keys

__all__ = ['CHECKPOINT_FILES', 'TrainingCheckpoint', 'find_checkpoint', 'load_into', 'read_checkpoint']

#: Checkpoint of a run folder by choice: the best evaluated epoch or the last one.
CHECKPOINT_FILES = {'best': 'model_best.pth.tar', 'last': 'last.pth.tar'}


@dataclass(frozen=True)
class TrainingCheckpoint:
    """The weights of a training checkpoint and what the run recorded about them."""
    path: Path
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    ema: bool
    arch: Optional[str] = None
    epoch: Optional[int] = None
    args: dict[str, Any] = field(default_factory=dict, repr=False)
    args_file: Optional[Path] = None

    @property
    def num_classes(self) -> Optional[int]:
        return self.args.get('num_classes')


def find_checkpoint(path: Union[str, Path], which: str = 'best') -> Path:
    """The checkpoint file of a run folder (``which``: ``best`` or ``last``), or ``path`` itself if it is a file.

    Raises:
        FileNotFoundError: The path, or the run folder's checkpoint, does not exist.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f'{path}: no such checkpoint file or run folder.')
    if which not in CHECKPOINT_FILES:
        raise ValueError(f'which must be one of {", ".join(CHECKPOINT_FILES)}, got {which!r}.')
    found = path / CHECKPOINT_FILES[which]
    if not found.is_file():
        raise FileNotFoundError(f'{found}: missing; is {path} the folder of a finished training run?')
    return found


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise ValueError(f'{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {e}') from e


def _run_args(path: Path, checkpoint: Any) -> tuple[dict[str, Any], Optional[Path]]:
    args_file = path.parent / 'args.yaml'
    if args_file.is_file():
        try:
            return dict(yaml.safe_load(args_file.read_text()) or {}), args_file
        except yaml.YAMLError as e:
            raise ValueError(f'{args_file}: invalid YAML: {e}') from e
    args = checkpoint.get('args') if isinstance(checkpoint, dict) else None
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    return dict(args or {}), None


def read_checkpoint(path: Union[str, Path], which: str = 'best', ema: bool = False) -> TrainingCheckpoint:
    """Read the weights and run metadata of a checkpoint file or run folder.

    Args:
        path: A ``.pth.tar``/``.pth``/``.safetensors`` file, or a run folder.
        which: In a run folder, ``best`` (``model_best.pth.tar``) or ``last`` (``last.pth.tar``).
        ema: Take the EMA weights (``state_dict_ema``) instead of the trained ones.

    Raises:
        FileNotFoundError: Missing file or run checkpoint.
        ValueError: A truncated or corrupt file, no (EMA) state dict in it.
    """
    path = find_checkpoint(path, which)
    if path.suffix == '.safetensors':
        if ema:
            raise ValueError(f'{path}: a safetensors file holds one state dict; EMA weights cannot be chosen.')
        try:
            checkpoint: Any = load_file(path)
        except SafetensorError as e:
            raise ValueError(f'{path}: truncated or corrupt safetensors file ({e}).') from e
    else:
        checkpoint = _torch_load(path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: holds a {type(checkpoint).__name__}, not a checkpoint dict or state dict.')
    key = 'state_dict_ema' if ema else 'state_dict'
    if ema and checkpoint.get(key) is None:
        raise ValueError(f'{path}: has no EMA weights (state_dict_ema); was the run trained with --model-ema?')
    state_dict = checkpoint.get(key, checkpoint if not ema else None)
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{path}: has no state dict of tensors (keys: {", ".join(map(str, checkpoint))}).')
    args, args_file = _run_args(path, checkpoint)
    arch = checkpoint.get('arch') if 'state_dict' in checkpoint else None
    return TrainingCheckpoint(
        path=path, state_dict=clean_state_dict(state_dict), ema=ema, arch=arch, epoch=checkpoint.get('epoch'),
        args=args, args_file=args_file)


def load_into(model: nn.Module, checkpoint: TrainingCheckpoint, new_head: bool = False) -> None:
    """Load checkpoint weights into ``model`` strictly, or all but the classifier when ``new_head`` is set.

    Raises:
        ValueError: The checkpoint is of another architecture, or (without ``new_head``) another class count.
    """
    check_state_dict(checkpoint.state_dict, model, str(checkpoint.path), new_head=new_head)
    state_dict = checkpoint.state_dict
    if new_head:
        state_dict = {k: v for k, v in state_dict.items() if k not in classifier_keys(model)}
    model.load_state_dict(state_dict, strict=not new_head)


def create_from_checkpoint(
        model_name: str,
        checkpoint: TrainingCheckpoint,
        model_kwargs: Optional[dict[str, Any]] = None,
        num_classes: Optional[int] = None,
        new_head: bool = False,
) -> nn.Module:
    """Create ``model_name`` (``name`` or ``name.tag``) as the run trained it and load the checkpoint into it.

    Args:
        model_name: Registered model, with an optional pretrained tag giving its class count and data config.
        checkpoint: The weights.
        model_kwargs: Model args updating the run's ``model_kwargs`` (``--model-kwargs`` of ``train.py``).
        num_classes: Class count of the model, if not the tag's.
        new_head: Give the model a new, untrained classifier instead of the checkpoint's (to fine-tune).

    Raises:
        ValueError: The run trained another architecture, or the checkpoint does not fit the model.
    """
    import timm  # the model registry; imported here so that importing this module stays light

    trained = (checkpoint.arch or '').split('.', 1)[0]
    if trained and trained != model_name.split('.', 1)[0]:
        raise ValueError(f'{checkpoint.path}: a checkpoint of {checkpoint.arch}, not of {model_name}.')
    kwargs = dict(checkpoint.args.get('model_kwargs') or {}, **(model_kwargs or {}))
    model = timm.create_model(model_name, num_classes=num_classes, **kwargs)
    load_into(model, checkpoint, new_head=new_head)
    return model
