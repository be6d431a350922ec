"""The settings the in-memory CIFAR engine implements, read from a recipe YAML.

Keys that mean the same as in timm's train.py have train.py's names (``opt``, ``lr``, ``sched``, ``decay_milestones``,
``hflip``, ``smoothing``, ...) and are handed to timm's optimizer and scheduler factories. Some keys are the engine's
own, because train.py has no way to say them: ``shift`` and ``shift_mode`` (random translation, real-valued as the
authors' Keras code or by whole pixels), ``input_norm`` (per-pixel mean subtraction), ``weight_decay_policy``
(per-tensor decay as the authors' Keras code), ``zero_init_last`` and ``channels_last``. A key the engine does not
implement is refused, never ignored, so a recipe cannot train differently from what it says.
"""
import argparse
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import yaml

from ..runs import run_precision
from ..settings import setting_type_error
from .augment import SHIFT_MODES

__all__ = ['EngineRecipe', 'RecipeError', 'ENGINE_KEYS', 'EXECUTION_KEYS', 'INPUT_NORMS', 'SCHEDULES',
           'WEIGHT_DECAY_POLICIES']

#: ``pixel_mean``: x / 255 minus the per-pixel mean image of the training split (the authors' code);
#: ``channel``: (x / 255 - mean) / std per channel with the recipe's ``mean`` and ``std`` (timm's convention).
INPUT_NORMS = ('pixel_mean', 'channel')
#: ``authors``: per-tensor decay of the authors' Keras L2 terms (see ``weight_decay.py``); ``uniform``: ``weight_decay``
#: on every tensor; ``timm``: ``weight_decay`` except biases and norms (timm's optimizer factory default).
WEIGHT_DECAY_POLICIES = ('authors', 'uniform', 'timm')
_EVAL_METRICS = ('top1', 'loss')
#: timm schedules whose lr is a function of the epoch alone (so a resumed run recomputes it); not ``plateau``.
SCHEDULES = ('multistep', 'step', 'cosine', 'tanh', 'poly')


class RecipeError(ValueError):
    """A recipe the engine cannot follow as written."""


@dataclass(frozen=True)
class EngineRecipe:
    """Training settings of one engine run. Defaults are the authors' CIFAR recipe (spec section 6a)."""
    num_classes: int = 10
    model_kwargs: dict = field(default_factory=dict)
    device_modules: list = field(default_factory=lambda: ['timm_ignore'])
    # optimisation
    epochs: int = 200
    batch_size: int = 128
    validation_batch_size: int = 1000
    opt: str = 'momentum'
    momentum: float = 0.9
    lr: float = 0.1
    weight_decay: float = 0.0
    weight_decay_policy: str = 'authors'
    sched: str = 'multistep'
    decay_milestones: list = field(default_factory=lambda: [62, 122, 162])
    decay_epochs: float = 30
    decay_rate: float = 0.2
    warmup_epochs: int = 0
    warmup_lr: float = 1e-5
    warmup_prefix: bool = False
    sched_on_updates: bool = False
    min_lr: float = 0.0
    smoothing: float = 0.0
    # Zero the scale of the last BatchNorm of every residual branch at the start (timm's blocks' ``zero_init_last``, on
    # by default in timm's ImageNet ResNets): each block starts as the identity. Models without residual blocks
    # (DenseNet) are unchanged, so one recipe serves both families. Initialisation only: the state dict is the same.
    zero_init_last: bool = False
    # data
    shift: float = 4.0
    shift_mode: str = 'bilinear'
    hflip: float = 0.5
    input_norm: str = 'pixel_mean'
    mean: Optional[list] = None
    std: Optional[list] = None
    # speed
    amp: bool = False
    amp_dtype: str = 'bfloat16'
    channels_last: bool = True
    torchcompile: Optional[str] = None
    compile_mode: Optional[str] = None
    # bookkeeping
    eval_metric: str = 'top1'

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f'epochs must be at least 1, got {self.epochs}')
        if self.batch_size < 1 or self.validation_batch_size < 1:
            problems.append('batch_size and validation_batch_size must be at least 1')
        if self.input_norm not in INPUT_NORMS:
            problems.append(f'input_norm must be one of {", ".join(INPUT_NORMS)}, got {self.input_norm!r}')
        if self.input_norm == 'channel' and (self.mean is None or self.std is None):
            problems.append('input_norm: channel needs mean and std (three values each)')
        if self.weight_decay_policy not in WEIGHT_DECAY_POLICIES:
            problems.append(
                f'weight_decay_policy must be one of {", ".join(WEIGHT_DECAY_POLICIES)}, '
                f'got {self.weight_decay_policy!r}')
        if self.weight_decay_policy == 'authors' and self.weight_decay:
            problems.append('weight_decay is fixed per tensor by weight_decay_policy: authors; leave it at 0')
        if not 0.0 <= self.hflip <= 1.0:
            problems.append(f'hflip is a probability in [0, 1], got {self.hflip}')
        if self.shift < 0:
            problems.append(f'shift is a distance in pixels (>= 0), got {self.shift}')
        if self.shift_mode not in SHIFT_MODES:
            problems.append(f'shift_mode must be one of {", ".join(SHIFT_MODES)}, got {self.shift_mode!r}')
        if self.shift_mode == 'pad_crop' and self.shift != int(self.shift):
            problems.append(
                f'shift_mode pad_crop shifts by whole pixels: shift must be a whole number, got {self.shift}')
        if self.amp_dtype not in ('bfloat16', 'float16'):
            problems.append(f'amp_dtype must be bfloat16 or float16, got {self.amp_dtype!r}')
        if self.sched not in SCHEDULES:
            problems.append(f'sched must be one of {", ".join(SCHEDULES)} (timm\'s names), got {self.sched!r}')
        if self.eval_metric not in _EVAL_METRICS:
            problems.append(f'eval_metric must be one of {", ".join(_EVAL_METRICS)}, got {self.eval_metric!r}')
        if problems:
            raise RecipeError('; '.join(problems) + '.')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = 'recipe') -> 'EngineRecipe':
        """Build a recipe from YAML keys (``-`` or ``_`` spelling), checking names and value types.

        Raises:
            RecipeError: A key the engine does not implement, a value of the wrong type or out of range.
        """
        values = {str(k).replace('-', '_'): v for k, v in values.items()}
        unknown = sorted(set(values) - set(ENGINE_KEYS))
        if unknown:
            raise RecipeError(
                f'{source}: the engine does not implement {", ".join(unknown)}; its keys are {", ".join(ENGINE_KEYS)}.')
        for key, value in values.items():
            _check_type(key, value, source)
        return cls(**values)

    @classmethod
    def from_yaml(
            cls,
            path: Union[str, os.PathLike],
            overrides: Optional[Mapping[str, Any]] = None,
    ) -> 'EngineRecipe':
        """Read a recipe YAML and apply overrides on top.

        Raises:
            RecipeError: Missing or unreadable file, not a mapping, or any problem :meth:`from_dict` finds.
        """
        try:
            with open(path) as f:
                values = yaml.safe_load(f) or {}
        except OSError as e:
            raise RecipeError(f'cannot read recipe {path}: {e.strerror}.') from None
        except yaml.YAMLError as e:
            raise RecipeError(f'recipe {path} is not valid YAML ({str(e).splitlines()[0]}).') from None
        if not isinstance(values, dict):
            raise RecipeError(f'recipe {path} must be a YAML mapping of keys to values.')
        values.update(overrides or {})
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def precision(self) -> str:
        """The dtype the autocast regions compute in (``amp_dtype`` under autocast, else ``float32``), by the rule
        that reads it from a run's ``args.yaml``."""
        return run_precision(self.to_dict())

    def training_settings(self) -> dict[str, Any]:
        """Every setting but the :data:`EXECUTION_KEYS`: what a run learns from and how."""
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION_KEYS}

    def fingerprint(self) -> str:
        """A short hash of the :meth:`training_settings`: runs of one queue folder must share it."""
        text = json.dumps(self.training_settings(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_namespace(self) -> argparse.Namespace:
        """The settings as train.py's ``args``, for timm's ``optimizer_kwargs`` and ``scheduler_kwargs``."""
        return argparse.Namespace(**self.to_dict())


#: The settings that say how the arithmetic is carried out, not what is computed: the autocast precision, the memory
#: layout and compilation. Each run records them (its ``args.yaml``; its record's ``amp``, ``channels_last``,
#: ``torchcompile``; its card's recipe table), but they are not part of a recipe's fingerprint, so one campaign may
#: train in bfloat16 autocast on a CPU with bfloat16 hardware and in float32 on one without (docs/training.md, "Float32
#: instead of bfloat16").
EXECUTION_KEYS: tuple[str, ...] = ('amp', 'amp_dtype', 'channels_last', 'torchcompile', 'compile_mode')
#: Every key an engine recipe may hold.
ENGINE_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EngineRecipe))
_DEFAULTS = EngineRecipe().to_dict()


def _check_type(key: str, value: Any, source: str) -> None:
    default = _DEFAULTS[key]
    error = None if value is None and default is None else setting_type_error(key, value, default)
    if error:
        raise RecipeError(f'{source}: {error}.')
