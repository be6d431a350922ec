"""The paper's model families and the Ign3 twins of timm's attention models, registered in timm on import."""
from . import attention_twins, cifar_densenet, cifar_resnet, resnet
from .cifar_densenet import CifarDenseNet
from .cifar_resnet import CifarResNet
from .resnet import IgnoreResNet
from .zoo import DATASETS, FAMILIES, GATES, MODELS, TWINS, ModelSpec, get_model_spec

__all__ = [
    'CifarDenseNet', 'CifarResNet', 'IgnoreResNet', 'DATASETS', 'FAMILIES', 'GATES', 'MODELS', 'TWINS', 'ModelSpec',
    'get_model_spec',
]
