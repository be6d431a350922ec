"""The training settings ``timm-ignore train`` understands.

A subset of timm train.py's, with the same names and defaults.

A recipe YAML is written once and read by both trainers, so every key here means what it means to train.py (see its
``--help``). A key train.py knows but this runner does not implement is refused rather than ignored, so a recipe never
trains differently from what it says.
"""
import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import yaml

from ..settings import setting_type_error

__all__ = ['TrainConfig', 'SUPPORTED_KEYS', 'ConfigError']


class ConfigError(ValueError):
    """A recipe or override that the runner cannot follow as written."""


@dataclass
class TrainConfig:
    """Training settings; field names and defaults are those of timm's train.py.

    Two exceptions: ``device`` defaults to ``''`` (CUDA when available, else CPU) instead of ``cuda``, and
    ``overwrite`` (runner only) allows reusing a non-empty output folder.
    """
    # data
    data_dir: str = ''
    dataset: str = ''
    train_split: str = 'train'
    val_split: str = 'validation'
    class_map: str = ''
    dataset_download: bool = False
    # model
    model: str = 'resnet50'
    pretrained: bool = False
    num_classes: Optional[int] = None
    model_kwargs: dict = field(default_factory=dict)
    input_size: Optional[list] = None
    img_size: Optional[int] = None
    crop_pct: Optional[float] = None
    mean: Optional[list] = None
    std: Optional[list] = None
    interpolation: str = ''
    drop: float = 0.0
    drop_path: Optional[float] = None
    device_modules: Optional[list] = None
    # batch, device, precision
    batch_size: int = 128
    validation_batch_size: Optional[int] = None
    device: str = ''
    amp: bool = False
    amp_dtype: str = 'float16'
    workers: int = 4
    pin_mem: bool = False
    # optimizer
    opt: str = 'sgd'
    momentum: float = 0.9
    weight_decay: float = 2e-5
    clip_grad: Optional[float] = None
    clip_mode: str = 'norm'
    # learning rate schedule
    lr: Optional[float] = None
    lr_base: float = 0.1
    lr_base_size: int = 256
    lr_base_scale: str = ''
    sched: str = 'cosine'
    sched_on_updates: bool = False
    epochs: int = 300
    start_epoch: Optional[int] = None
    decay_milestones: list = field(default_factory=lambda: [90, 180, 270])
    decay_epochs: float = 90
    decay_rate: float = 0.1
    warmup_epochs: int = 5
    warmup_lr: float = 1e-5
    warmup_prefix: bool = False
    cooldown_epochs: int = 0
    patience_epochs: int = 10
    min_lr: float = 0.0
    # augmentation and loss
    no_aug: bool = False
    train_crop_mode: Optional[str] = None
    scale: list = field(default_factory=lambda: [0.08, 1.0])
    ratio: list = field(default_factory=lambda: [3. / 4., 4. / 3.])
    hflip: float = 0.5
    vflip: float = 0.0
    color_jitter: float = 0.4
    aa: Optional[str] = None
    reprob: float = 0.0
    remode: str = 'pixel'
    recount: int = 1
    smoothing: float = 0.1
    train_interpolation: str = 'random'
    # EMA
    model_ema: bool = False
    model_ema_decay: float = 0.9998
    model_ema_warmup: bool = False
    # bookkeeping
    seed: int = 42
    log_interval: int = 50
    checkpoint_hist: int = 10
    output: str = ''
    experiment: str = ''
    eval_metric: str = 'top1'
    resume: str = ''
    no_resume_opt: bool = False
    overwrite: bool = False

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'TrainConfig':
        """Build a config from recipe keys (``-`` or ``_`` spelling), checking names and value types.

        Raises:
            ConfigError: An unsupported key (the message lists the supported ones) or a value of the wrong type.
        """
        values = {k.replace('-', '_'): v for k, v in values.items()}
        unknown = sorted(set(values) - set(SUPPORTED_KEYS))
        if unknown:
            raise ConfigError(
                f'timm-ignore train does not support {", ".join(unknown)}. Supported keys: '
                f'{", ".join(SUPPORTED_KEYS)}. For anything else use timm\'s train.py with the same recipe.')
        for key, value in values.items():
            _check_type(key, value)
        return cls(**values)

    @classmethod
    def from_recipe(
            cls,
            path: Union[str, os.PathLike, None],
            overrides: Optional[Mapping[str, Any]] = None,
    ) -> 'TrainConfig':
        """Read a recipe YAML (None: defaults only) and apply overrides on top."""
        values = {}
        if path:
            try:
                with open(path, encoding='utf-8') as f:
                    values = yaml.safe_load(f) or {}
            except FileNotFoundError:
                raise ConfigError(f'{path}: no such recipe (-c/--config); the recipes are in train_scripts/.') from None
            except IsADirectoryError:
                raise ConfigError(f'{path}: a folder; -c/--config takes a recipe YAML file.') from None
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                mark = getattr(e, 'problem_mark', None)
                where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
                problem = getattr(e, 'problem', None) or type(e).__name__
                raise ConfigError(f'{path}: not a valid YAML recipe (-c/--config): {problem}{where}.') from None
            if not isinstance(values, dict):
                raise ConfigError(f'{path}: a recipe must be a YAML mapping of train.py keys to values (-c/--config).')
        values.update(overrides or {})
        return cls.from_dict(values)

    def resolve_lr(self, global_batch_size: Optional[int] = None) -> float:
        """The learning rate train.py would use: ``lr``, else ``lr_base`` scaled by ``global batch / lr_base_size``.

        Scaling is linear, or square-root for adaptive optimizers when ``lr_base_scale`` is empty (train.py's rule).
        """
        if self.lr is not None:
            return self.lr
        ratio = (global_batch_size or self.batch_size) / self.lr_base_size
        scale = self.lr_base_scale or ('sqrt' if any(o in self.opt.lower() for o in ('ada', 'lamb')) else 'linear')
        if scale not in ('linear', 'sqrt'):
            raise ConfigError(f'lr_base_scale must be "linear" or "sqrt", got {self.lr_base_scale!r}.')
        return self.lr_base * (ratio ** 0.5 if scale == 'sqrt' else ratio)

    def to_namespace(self) -> argparse.Namespace:
        """The settings as train.py's ``args``: what checkpoints store and timm's ``*_kwargs`` helpers read."""
        return argparse.Namespace(**dataclasses.asdict(self))


#: Every key a recipe may hold for ``timm-ignore train``.
SUPPORTED_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
_DEFAULTS = TrainConfig()


def _check_type(key: str, value: Any) -> None:
    error = setting_type_error(key, value, getattr(_DEFAULTS, key))
    if error:
        raise ConfigError(f'{error}.')
