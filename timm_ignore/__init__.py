"""timm-ignore: "Learning to ignore: rethinking attention in CNNs" (BMVC 2021) as a timm plugin.

Importing this package registers every model of the paper in timm's model registry::

    import timm
    import timm_ignore  # noqa: F401  (registers the models)

    model = timm.create_model('resnet50_se_ign3')

``convert_gates`` (flip the attention gates of any timm model, :mod:`timm_ignore.convert`) is loaded on first use.
"""
import importlib

from .layers import GATE_NAMES, IgnoreCbam, IgnoreGate, IgnoreMmtm, IgnoreSqueezeExcite, ignore_gate
from .models import MODELS, CifarDenseNet, CifarResNet, IgnoreResNet
from .version import __version__

__all__ = [
    'GATE_NAMES', 'IgnoreCbam', 'IgnoreGate', 'IgnoreMmtm', 'IgnoreSqueezeExcite', 'ignore_gate',
    'MODELS', 'CifarDenseNet', 'CifarResNet', 'IgnoreResNet', '__version__', 'convert_gates',
]

_LAZY = {'convert_gates': 'convert'}


def __getattr__(name: str):  # PEP 562: the conversion tools load on first use, not on import
    if name in _LAZY:
        return getattr(importlib.import_module(f'.{_LAZY[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
