"""The one checkpoint loader of the tools: a training run (folder or file) -> the model it trained, with its weights.

``validate``, ``publish``, ``compare`` and ``grad-cam`` all load through :func:`load_model`, so a run is scored on the
same weights everywhere:

* a run folder (timm's ``train.py`` or ``timm-ignore train``) holds ``args.yaml``, ``summary.csv``,
  ``model_best.pth.tar`` and ``last.pth.tar``; a file is any of those checkpoints, or a ``.safetensors`` state dict;
* checkpoints are read with ``torch.load(weights_only=True)`` (plus ``argparse.Namespace`` for train.py's ``args``):
  a pickle that needs anything else is refused as not a checkpoint of this kind, never executed;
* EMA weights: when the checkpoint holds ``state_dict_ema`` they are used unless ``ema=False``. That is the model
  train.py and ``timm-ignore train`` validated to pick ``model_best.pth.tar``, and timm's ``load_checkpoint`` default;
* the model is built as the run built it: its ``model_kwargs``, class count, ``device_modules`` and data config
  (``input_size``, ``mean``, ``std``, ``crop_pct``, ``interpolation``) from ``args.yaml`` (or the checkpoint's
  ``args``), arguments given here on top.
"""
import argparse
import difflib
import importlib
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import timm
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.data import resolve_data_config
from timm.models import clean_state_dict
from torch import nn

from .dataset_tags import tag_for_classes
from .models._state_dict_check import check_state_dict, classifier_keys

__all__ = ['ARGS_FILE', 'CHECKPOINT_FILES', 'DATA_CONFIG_ARGS', 'TrainingCheckpoint', 'find_checkpoint', 'load_into',
           'load_model', 'read_checkpoint', 'check_model_name', 'create_model']

#: The run's settings in a run folder (train.py's name); with :data:`CHECKPOINT_FILES`, the part of a run folder's
#: layout this loader reads. :mod:`timm_ignore.runs.layout` is the whole layout and re-exports these names.
ARGS_FILE = 'args.yaml'
#: Checkpoint of a run folder by choice: the best evaluated epoch or the last one.
CHECKPOINT_FILES = {'best': 'model_best.pth.tar', 'last': 'last.pth.tar'}
#: Run args that set the data config the model was trained and validated with.
DATA_CONFIG_ARGS = ('input_size', 'img_size', 'mean', 'std', 'crop_pct', 'interpolation')
_BLOCKED_GLOBAL = re.compile(r'Unsupported global: GLOBAL (\S+)')


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
        """The run's class count (its ``num_classes`` arg), None when it recorded none."""
        return self.args.get('num_classes')

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def data_config(self) -> dict[str, Any]:
        """The data settings the run gave (``DATA_CONFIG_ARGS`` it recorded, not None)."""
        return {k: self.args[k] for k in DATA_CONFIG_ARGS if self.args.get(k) is not None}


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
    except pickle.UnpicklingError as e:
        blocked = _BLOCKED_GLOBAL.search(str(e))
        if blocked:
            raise ValueError(
                f'{path}: not a checkpoint this tool can load: it stores Python objects ({blocked.group(1)}) besides '
                f'tensors and train.py\'s args. Save the weights with torch.save(model.state_dict()) or as '
                f'.safetensors.') from None
        raise ValueError(f'{path}: not a PyTorch checkpoint (truncated, corrupt or another kind of file).') from None
    except (RuntimeError, OSError, EOFError, KeyError, zipfile.BadZipFile, ValueError, UnicodeDecodeError):
        raise ValueError(f'{path}: not a PyTorch checkpoint (truncated, corrupt or another kind of file).') from None


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as e:
        raise ValueError(f'{path}: truncated or corrupt safetensors file ({e}).') from None


def _run_args(path: Path, checkpoint: Any) -> tuple[dict[str, Any], Optional[Path]]:
    """The run's args: ``args.yaml`` beside the checkpoint, else the checkpoint's own ``args``."""
    args_file = path.parent / ARGS_FILE
    if args_file.is_file():
        try:
            args = yaml.safe_load(args_file.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f'{args_file}: invalid YAML: {e}') from None
        if isinstance(args, dict):
            return args, args_file
        raise ValueError(f'{args_file}: not the args of a training run (a YAML mapping of train.py args).')
    args = checkpoint.get('args')
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    return dict(args) if isinstance(args, dict) else {}, None


def read_checkpoint(path: Union[str, Path], which: str = 'best', ema: Optional[bool] = None) -> TrainingCheckpoint:
    """Read the weights and run metadata of a checkpoint file or run folder.

    Args:
        path: A ``.pth.tar``/``.pth``/``.safetensors`` file, or a run folder.
        which: In a run folder, ``best`` (``model_best.pth.tar``) or ``last`` (``last.pth.tar``).
        ema: EMA weights (``state_dict_ema``): None takes them when the checkpoint has them, True requires them,
            False takes the trained weights.

    Raises:
        FileNotFoundError: Missing file or run checkpoint.
        ValueError: A truncated, corrupt or foreign file, no (EMA) state dict in it.
    """
    path = find_checkpoint(path, which)
    checkpoint = _safetensors_load(path) if path.suffix == '.safetensors' else _torch_load(path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: holds a {type(checkpoint).__name__}, not a checkpoint or state dict.')
    has_ema = isinstance(checkpoint.get('state_dict_ema'), dict)
    if ema and not has_ema:
        raise ValueError(f'{path}: has no EMA weights (state_dict_ema); the run was trained without --model-ema.')
    use_ema = has_ema if ema is None else ema
    state_dict = checkpoint.get('state_dict_ema' if use_ema else 'state_dict', checkpoint)
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{path}: holds no state dict of tensors (keys: {", ".join(map(str, checkpoint))}).')
    args, args_file = _run_args(path, checkpoint)
    arch = checkpoint.get('arch') if 'state_dict' in checkpoint else None
    return TrainingCheckpoint(
        path=path, state_dict=clean_state_dict(state_dict), ema=use_ema, arch=arch or args.get('model'),
        epoch=checkpoint.get('epoch'), args=args, args_file=args_file)


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


def _model_name(name: Optional[str], checkpoint: TrainingCheckpoint, num_classes: Optional[int]) -> str:
    """``name`` or the run's model; a zoo model without a tag gets the tag of the run's class count."""
    trained = (checkpoint.arch or '').split('.', 1)[0]
    trained = trained if timm.is_model(trained) else ''  # timm's saver writes the class name without run args
    if name is None:
        if not trained:
            raise ValueError(f'{checkpoint.path}: records no model; name it (--model).')
        name = checkpoint.arch
    elif trained and trained != name.split('.', 1)[0]:
        raise ValueError(f'{checkpoint.path}: a checkpoint of {checkpoint.arch}, not of {name} (--model).')
    base, _, tag = name.partition('.')
    if not tag:
        tag = tag_for_classes(base, num_classes or checkpoint.num_classes) or ''
    return f'{base}.{tag}' if tag else base


def load_model(
        source: Union[str, Path, TrainingCheckpoint],
        model_name: Optional[str] = None,
        *,
        which: str = 'best',
        ema: Optional[bool] = None,
        model_kwargs: Optional[dict[str, Any]] = None,
        num_classes: Optional[int] = None,
        new_head: bool = False,
) -> tuple[nn.Module, TrainingCheckpoint]:
    """Build the model a run trained and load its checkpoint into it (eval mode, on the CPU).

    Args:
        source: Run folder, checkpoint file, or a checkpoint already read.
        model_name: ``NAME[.TAG]``; default the run's model. A zoo model without a tag gets the tag whose class count
            is the run's, so its data config (and the paper row) is that dataset's.
        which: In a run folder, ``best`` or ``last``.
        ema: See :func:`read_checkpoint`.
        model_kwargs: Model args on top of the run's ``model_kwargs``.
        num_classes: Class count; default the tag's, else the run's.
        new_head: Give the model a new, untrained classifier instead of the checkpoint's (to fine-tune).

    Returns:
        The model, its ``pretrained_cfg`` updated with the run's data config, and the checkpoint.

    Raises:
        FileNotFoundError: Missing file or run checkpoint.
        ValueError: Unknown model, a checkpoint of another model, weights that do not fit, an unreadable file.
    """
    checkpoint = source if isinstance(source, TrainingCheckpoint) else read_checkpoint(source, which, ema)
    for module in checkpoint.args.get('device_modules') or ():
        importlib.import_module(module)
    name = _model_name(model_name, checkpoint, num_classes)
    check_model_name(name)
    if num_classes is None and '.' not in name:
        num_classes = checkpoint.num_classes
    kwargs = {**(checkpoint.args.get('model_kwargs') or {}), **(model_kwargs or {})}
    model = _create(name, False, num_classes, kwargs, f'{checkpoint.path}: ')
    load_into(model, checkpoint, new_head=new_head)
    if checkpoint.data_config():
        data_config = resolve_data_config(checkpoint.data_config(), model=model)
        model.pretrained_cfg = {**model.pretrained_cfg, **data_config}
    return model.eval(), checkpoint


def check_model_name(name: str, flag: str = '--model') -> None:
    """Refuse a name timm does not know (``hf-hub:``/``local-dir:`` sources pass), suggesting close ones.

    Args:
        name: Model name, with an optional ``.tag``.
        flag: The command-line option that gave it, named in the error.

    Raises:
        ValueError: Unknown model.
    """
    if ':' in name or timm.is_model(name):
        return
    close = difflib.get_close_matches(name.split('.', 1)[0], timm.list_models(), n=3)
    hint = f'did you mean {", ".join(close)}?' if close else '`timm-ignore models` lists this package\'s models.'
    raise ValueError(f'unknown model {name!r} ({flag}); {hint}')


def _create(name: str, pretrained: bool, num_classes: Optional[int], kwargs: dict[str, Any], where: str) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except TypeError as e:  # an argument the model does not take
        raise ValueError(f'{where}{name} does not take the model args {kwargs} (--model-kwargs): {e}') from None


def create_model(
        name: Optional[str],
        checkpoint: Union[str, Path, None] = None,
        *,
        pretrained: bool = False,
        which: str = 'best',
        ema: Optional[bool] = None,
        model_kwargs: Optional[dict[str, Any]] = None,
        num_classes: Optional[int] = None,
) -> nn.Module:
    """A model in eval mode with the weights of a run (``checkpoint``), its published ones, or random ones.

    Args:
        name: ``NAME[.TAG]``, ``hf-hub:ORG/NAME`` or ``local-dir:DIR``; with a checkpoint, None for the run's model.
        checkpoint: Run folder or checkpoint file, loaded with :func:`load_model`.
        pretrained: The published weights of ``name``.
        which, ema, model_kwargs, num_classes: As for :func:`load_model`.

    Raises:
        ValueError: Unknown model, both weight sources, or weights that do not fit.
        FileNotFoundError: No such checkpoint.
    """
    if checkpoint is not None and pretrained:
        raise ValueError(f'{name}: give a checkpoint or pretrained weights, not both.')
    if checkpoint is not None:
        return load_model(checkpoint, name, which=which, ema=ema, model_kwargs=model_kwargs,
                          num_classes=num_classes)[0]
    if not name:
        raise ValueError('name the model (--model).')
    check_model_name(name)
    return _create(name, pretrained, num_classes, dict(model_kwargs or {}), '').eval()
