"""The paper's model families, registered in timm's model registry on import."""
from . import cifar_densenet, cifar_resnet, resnet
from .cifar_densenet import CifarDenseNet
from .cifar_resnet import CifarResNet
from .resnet import IgnoreResNet
from .zoo import DATASETS, FAMILIES, GATES, MODELS, ModelSpec, get_model_spec

__all__ = [
    'CifarDenseNet', 'CifarResNet', 'IgnoreResNet', 'DATASETS', 'FAMILIES', 'GATES', 'MODELS', 'ModelSpec',
    'get_model_spec',
]
