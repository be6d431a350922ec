"""Settings of the DEMO comparison: the paper's CIFAR recipe shrunk to minutes on a laptop CPU.

Same optimiser family and step schedule shape as ``train_scripts/cifar10.yaml`` (SGD with momentum, lr divided by 5
at fixed epochs, no warm-up, flip-and-translate augmentation), on the synthetic demo dataset with a depth-8 network.
Its numbers demonstrate the pipeline only.
"""
from ..data.demo import DEMO_CLASSES, DEMO_MEAN, DEMO_STD

__all__ = ['DEMO_MODELS', 'DEMO_SEEDS', 'DEMO_RECIPE', 'SIGN_SYMMETRY_NOTE']

#: Plain network, explicit SE, SE-Ign3 (the paper's headline rows, Table 1) and SE-Ign1 with alpha 0.5, a flip that
#: changes the function (its mask stays in (0.5, 1)); on the CIFAR ResNet.
DEMO_MODELS = ('cifar_resnet50', 'cifar_resnet50_se', 'cifar_resnet50_se_ign3', 'cifar_resnet50_se_ign1_a05')
DEMO_SEEDS = (0, 1)
#: Printed with the demo's results: why two of its curves coincide.
SIGN_SYMMETRY_NOTE = (
    "SE and SE-Ign3 nearly coincide, as they should: Ign3's gate sigmoid(-z) is SE's with its last layer negated, "
    'and that layer starts from N(0, 0.01) in both, so with the same seed both start with gates of about 0.5 and '
    'train alike; Ign1 (alpha 0.5) computes another function.')

DEMO_RECIPE = {
    'device_modules': ['timm_ignore'],
    # The paper's BatchNorm keeps running statistics with momentum 0.01 (Keras 0.99): right for 200 epochs of 313
    # steps, far too slow for the demo's 48 steps, whose validation would see barely updated statistics.
    'model_kwargs': {'depth': 8, 'bn_momentum': 0.1},
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
