"""timm-ignore: "Learning to ignore: rethinking attention in CNNs" (BMVC 2021) as a timm plugin.

Importing this package registers every model of the paper in timm's model registry::

    import timm
    import timm_ignore  # noqa: F401  (registers the models)

    model = timm.create_model('resnet50_se_ign3')
"""
from .layers import GATE_NAMES, IgnoreCbam, IgnoreGate, IgnoreMmtm, IgnoreSqueezeExcite, ignore_gate
from .models import MODELS, CifarDenseNet, CifarResNet, IgnoreResNet
from .version import __version__

__all__ = [
    'GATE_NAMES', 'IgnoreCbam', 'IgnoreGate', 'IgnoreMmtm', 'IgnoreSqueezeExcite', 'ignore_gate',
    'MODELS', 'CifarDenseNet', 'CifarResNet', 'IgnoreResNet', '__version__',
]
