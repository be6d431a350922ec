"""Settings of the DEMO comparison: the paper's CIFAR recipe shrunk to minutes on a laptop CPU.

Same optimiser family and step schedule shape as ``train_scripts/cifar10.yaml`` (SGD with momentum, lr divided by 5
at fixed epochs, no warm-up, flip-and-translate augmentation), on the synthetic demo dataset with a depth-8 network.
Its numbers demonstrate the pipeline only.
"""
from ..data.demo import DEMO_CLASSES, DEMO_MEAN, DEMO_STD

__all__ = ['DEMO_MODELS', 'DEMO_SEEDS', 'DEMO_RECIPE']

#: Plain network, explicit SE and SE-Ign3: the paper's headline comparison (Table 1), on the CIFAR ResNet.
DEMO_MODELS = ('cifar_resnet50', 'cifar_resnet50_se', 'cifar_resnet50_se_ign3')
DEMO_SEEDS = (0, 1)

DEMO_RECIPE = {
    'device_modules': ['timm_ignore'],
    'model_kwargs': {'depth': 8},
    'num_classes': len(DEMO_CLASSES),
    'input_size': [3, 32, 32],
    'mean': list(DEMO_MEAN),
    'std': list(DEMO_STD),
    'crop_pct': 1.0,
    'interpolation': 'bilinear',
    'opt': 'momentum',
    'momentum': 0.9,
    'weight_decay': 1e-4,
    'batch_size': 32,
    'lr': 0.05,
    'sched': 'multistep',
    'decay_milestones': [6, 8],  # timm convention: the lr drops from epoch index 5 and 7
    'decay_rate': 0.2,
    'epochs': 8,
    'warmup_epochs': 0,
    'train_crop_mode': 'rkrr',
    'scale': [0.64, 1.0],
    'ratio': [1.0, 1.0],
    'hflip': 0.5,
    'color_jitter': 0.0,
    'train_interpolation': 'bilinear',
    'smoothing': 0.0,
    'workers': 0,
    'log_interval': 10,
    'eval_metric': 'top1',
}
