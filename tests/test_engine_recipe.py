"""The authors' recipe as the engine runs it: schedule, weight decay per tensor, recipe validation."""
import json
import pathlib

import pytest
import timm
import torch
from timm.scheduler import create_scheduler_v2, scheduler_kwargs

from timm_ignore.engine import EngineRecipe, RecipeError, authors_param_groups
from timm_ignore.engine.recipe import ENGINE_KEYS, EXECUTION_KEYS
from timm_ignore.engine.weight_decay import ATTENTION_DECAY, DENSENET_DECAY, RESNET_DECAY
from timm_ignore.models.zoo import DATASETS

RECIPES = pathlib.Path(__file__).resolve().parents[1] / 'train_scripts'
AUTHORS_RECIPE = RECIPES / 'cifar10_authors.yaml'
SHORT_RECIPE = RECIPES / 'cifar10_short.yaml'


def test_authors_recipe_file_is_the_dataclass_default():
    """The YAML and the dataclass defaults both state spec 6a; the speed keys are the only difference."""
    recipe = EngineRecipe.from_yaml(AUTHORS_RECIPE)
    assert recipe.to_dict() == dict(EngineRecipe().to_dict(), amp=True)


@pytest.mark.parametrize('epoch, lr', [
    (0, 0.1), (60, 0.1), (61, 0.02), (120, 0.02), (121, 0.004), (160, 0.004), (161, 0.0008), (199, 0.0008)])
def test_keras_schedule_at_the_boundaries(epoch, lr):
    """lr 0.1; 0.02 when the Keras epoch index > 60; 0.004 when > 120; 0.0008 when > 160 (through timm's factory)."""
    recipe = EngineRecipe.from_yaml(AUTHORS_RECIPE)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
    scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(recipe.to_namespace()), updates_per_epoch=312)
    assert num_epochs == 200
    scheduler.step(epoch)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(lr, rel=1e-12)


def _decay_by_name(model: torch.nn.Module) -> dict[str, float]:
    by_param = {id(p): group['weight_decay'] for group in authors_param_groups(model) for p in group['params']}
    return {name: by_param[id(p)] for name, p in model.named_parameters()}


def test_authors_weight_decay_cifar_resnet():
    model = timm.create_model('cifar_resnet50_cbam_ign1')
    decay = _decay_by_name(model)
    assert len(decay) == len(list(model.parameters()))  # every tensor in exactly one group
    for name, value in decay.items():
        if '.se.' in name:  # attention: SE/CBAM MLP kernels and biases, CBAM spatial conv
            expected = ATTENTION_DECAY
        elif '.bn' in name or name.startswith('bn1'):
            expected = 0.0
        else:  # stem, block and shortcut convolutions (kernels and biases) and the classifier
            expected = RESNET_DECAY
        assert value == expected, name
    assert decay['layer2.0.downsample.bias'] == RESNET_DECAY and decay['fc.bias'] == RESNET_DECAY
    assert decay['layer1.0.se.conv.weight'] == ATTENTION_DECAY


def test_authors_weight_decay_densenet():
    model = timm.create_model('densenet_se_ign3')
    decay = _decay_by_name(model)
    assert len(decay) == len(list(model.parameters()))
    expected = {
        'stem.weight': DENSENET_DECAY,
        'stages.0.layers.3.conv1.weight': DENSENET_DECAY,  # bottleneck 1x1
        'stages.0.layers.3.conv2.weight': 0.0,  # 3x3 of a dense layer: no L2 in the authors' code
        'stages.1.transition.1.weight': DENSENET_DECAY,  # transition 1x1
        'stages.0.layers.3.norm1.weight': 0.0,
        'norm.bias': 0.0,
        'fc.weight': 0.0,
        'fc.bias': 0.0,
        'stages.2.attn.fc1.weight': ATTENTION_DECAY,
        'stages.1.transition_attn.fc2.bias': ATTENTION_DECAY,
    }
    assert {name: decay[name] for name in expected} == expected
    convs_3x3 = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs_3x3) == 1 + 36  # the stem and one per dense layer
    assert all(decay[f'{n}.weight'] == (DENSENET_DECAY if n == 'stem' else 0.0) for n in convs_3x3)


def test_authors_weight_decay_refuses_other_models():
    with pytest.raises(ValueError, match='CIFAR ResNet and DenseNet only'):
        authors_param_groups(timm.create_model('resnet18'))


@pytest.mark.parametrize('values, message', [
    ({'train_crop_mode': 'rkrr'}, 'does not implement train_crop_mode'),
    ({'epochs': 'ten'}, 'epochs must be a int'),
    ({'epochs': 0}, 'epochs must be at least 1'),
    ({'lr': True}, 'lr must be a float'),
    ({'sched': 'plateau'}, 'sched must be one of'),
    ({'input_norm': 'channel'}, 'needs mean and std'),
    ({'weight_decay': 1e-4}, 'leave it at 0'),
    ({'hflip': 1.5}, 'probability'),
    ({'shift_mode': 'nearest'}, 'shift_mode must be one of bilinear, pad_crop'),
    ({'shift_mode': 'pad_crop', 'shift': 2.5}, 'shift must be a whole number, got 2.5'),
    ({'zero_init_last': 'yes'}, 'zero_init_last must be a bool'),
])
def test_recipe_errors(values, message):
    with pytest.raises(RecipeError, match=message):
        EngineRecipe.from_dict(values)


def test_recipe_file_errors(tmp_path):
    with pytest.raises(RecipeError, match='cannot read recipe'):
        EngineRecipe.from_yaml(tmp_path / 'missing.yaml')
    (tmp_path / 'list.yaml').write_text('- 1\n- 2\n')
    with pytest.raises(RecipeError, match='must be a YAML mapping'):
        EngineRecipe.from_yaml(tmp_path / 'list.yaml')
    (tmp_path / 'broken.yaml').write_text('epochs: [1\n')
    with pytest.raises(RecipeError, match='not valid YAML'):
        EngineRecipe.from_yaml(tmp_path / 'broken.yaml')


def test_fingerprint_tells_recipes_apart():
    assert EngineRecipe().fingerprint() == EngineRecipe().fingerprint()
    assert EngineRecipe().fingerprint() != EngineRecipe(epochs=199).fingerprint()
    assert EngineRecipe().fingerprint() != EngineRecipe(model_kwargs={'bn_momentum': 0.1}).fingerprint()


@pytest.mark.parametrize('key, value', [
    ('amp', True), ('amp_dtype', 'float16'), ('channels_last', False), ('torchcompile', 'inductor'),
    ('compile_mode', 'max-autotune')])
def test_fingerprint_leaves_out_how_the_arithmetic_is_done(key, value):
    """Precision, memory layout and compilation are recorded per run, not part of the recipe: a float32 run on a CPU
    without bfloat16 hardware belongs to the queue of a recipe that says bfloat16 autocast."""
    assert key in EXECUTION_KEYS and getattr(EngineRecipe(), key) != value
    changed = EngineRecipe(**{key: value})
    assert changed.fingerprint() == EngineRecipe().fingerprint()
    assert key not in changed.training_settings() and set(changed.training_settings()) == set(ENGINE_KEYS) - set(
        EXECUTION_KEYS)


def test_landed_zoo_records_are_of_the_frozen_short_recipe():
    """Every landed zoo run (bfloat16 or float32) carries the fingerprint of cifar10_short.yaml as it is now, so a
    campaign resumed from a fresh clone counts them as finished instead of refusing its records folder."""
    records = sorted((RECIPES.parent / 'results' / 'zoo-cifar10').glob('*/run.json'))
    assert records, 'no landed zoo record found'
    expected = EngineRecipe.from_yaml(SHORT_RECIPE).fingerprint()
    assert {r.parent.name: json.loads(r.read_text())['recipe_fingerprint'] for r in records} == {
        r.parent.name: expected for r in records}


def test_per_update_warmup_then_linear_to_zero():
    """sched_on_updates + poly(power 1) + warmup_prefix: a linear ramp from warmup_lr, then a straight line to 0.

    The lr is set before every optimizer update (timm's ``step_update``), so it never jumps at an epoch boundary.
    With ``warmup_prefix`` timm adds the warm-up to ``epochs``: the run lasts ``warmup_epochs + epochs``.
    """
    steps, epochs, warmup, peak = 10, 5, 1, 0.2
    recipe = EngineRecipe(epochs=epochs, lr=peak, sched='poly', decay_rate=1.0, sched_on_updates=True,
                          warmup_epochs=warmup, warmup_lr=0.0, warmup_prefix=True, min_lr=0.0)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
    scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(recipe.to_namespace()), updates_per_epoch=steps)
    assert num_epochs == warmup + epochs
    total, ramp = (warmup + epochs) * steps, warmup * steps
    for update in range(total):
        scheduler.step_update(num_updates=update)
        expected = peak * update / ramp if update < ramp else peak * (1 - (update - ramp) / (total - ramp))
        assert optimizer.param_groups[0]['lr'] == pytest.approx(expected, abs=1e-12), update


def test_short_recipe_normalises_as_the_tags_data_config():
    """Weights trained with the short recipe see at test time, through timm's data config, what they trained on."""
    recipe = EngineRecipe.from_yaml(SHORT_RECIPE)
    cfg = timm.create_model('cifar_resnet50_se.cifar10').pretrained_cfg
    assert recipe.input_norm == 'channel' and recipe.num_classes == DATASETS['cifar10'].num_classes
    assert tuple(recipe.mean) == tuple(cfg['mean']) == DATASETS['cifar10'].mean
    assert tuple(recipe.std) == tuple(cfg['std']) == DATASETS['cifar10'].std


def test_short_recipe_trains_its_warmup_and_epochs():
    """The queue counts a run's epochs as timm's scheduler does: the short recipe's 1 warm-up + 15 epochs is 16."""
    from timm_ignore.engine import EngineTrainer, RunSpec
    recipe = EngineRecipe.from_yaml(SHORT_RECIPE)
    trainer = EngineTrainer(recipe, SHORT_RECIPE.name, pathlib.Path('unused'), torch.device('cpu'))
    assert (recipe.epochs, recipe.warmup_epochs, trainer.epochs(RunSpec('densenet', 0))) == (15, 1, 16)
