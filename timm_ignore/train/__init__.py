"""Training on timm's library: the recipe settings, the epoch loop and the single-device runner.

Not imported by ``import timm_ignore``; ``timm-ignore train`` and ``timm-ignore compare`` load it when used.
"""
from .config import SUPPORTED_KEYS, ConfigError, TrainConfig
from .runner import TrainResult, build_loader, build_model, train

__all__ = ['SUPPORTED_KEYS', 'ConfigError', 'TrainConfig', 'TrainResult', 'build_loader', 'build_model', 'train']
