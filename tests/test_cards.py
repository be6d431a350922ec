"""The weights cards are the registry of published weights: reading them, their errors, and the shipped folder."""
import os
import pathlib
import re
import subprocess
import sys

import pytest
import timm

from timm_ignore.models import zoo
from timm_ignore.models._weights import CARDS_DIR_ENV, WeightsCardWarning, read_front_matter, read_weights_cards

from conftest import REPO_ROOT

EXPECTED = {f'{name}.{tag}': zoo.DATASETS[tag].num_classes
            for name, spec in zoo.MODELS.items() for tag in spec.family.datasets}


def card_text(model: str = 'cifar_resnet50_se_ign3', tag: str = 'cifar100', num_classes: int = 100,
              hf_hub_id: str = 'org/name') -> str:
    return f"""---
library_name: timm
timm_ignore:
  model: {model}
  tag: {tag}
  hf_hub_id: {hf_hub_id}
  num_classes: {num_classes}
  data_config: {{input_size: [3, 32, 32], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], crop_pct: 1.0}}
---

# {model}.{tag}
"""


def write_card(folder: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = folder / name
    path.write_text(text)
    return path


def test_card_gives_the_tag_its_weights_and_data_config(tmp_path):
    write_card(tmp_path, 'cifar_resnet50_se_ign3.cifar100.md', card_text())
    write_card(tmp_path, 'README.md', 'not a card')
    cards = read_weights_cards(EXPECTED, tmp_path)
    assert list(cards) == ['cifar_resnet50_se_ign3.cifar100']
    cfg = cards['cifar_resnet50_se_ign3.cifar100'].pretrained_cfg()
    assert cfg['hf_hub_id'] == 'org/name' and cfg['hf_hub_filename'] == 'model.safetensors'
    assert cfg['input_size'] == (3, 32, 32) and cfg['std'] == (0.25, 0.25, 0.25) and cfg['num_classes'] == 100


@pytest.mark.parametrize('name, text, problem', [
    ('cifar_resnet50_se_ign3.cifar100.md', '# no front matter\n', 'must start with YAML front matter'),
    ('cifar_resnet50_se_ign3.cifar100.md', '---\nlibrary_name: timm\n', 'not closed'),
    ('cifar_resnet50_se_ign3.cifar100.md', '---\nlibrary_name: [timm\n---\n', 'invalid YAML'),
    ('cifar_resnet50_se_ign3.cifar100.md', '---\nlibrary_name: timm\n---\n', 'no "timm_ignore" section'),
    ('cifar_resnet50_se.cifar100.md', card_text(), 'must be named cifar_resnet50_se_ign3.cifar100.md'),
    ('cifar_resnet50_se_ign3.in1k.md', card_text(tag='in1k'), 'not a pretrained tag'),
    ('cifar_resnet50_se_ign3.cifar100.md', card_text(num_classes=10), 'has 100 classes, the card says 10'),
    ('cifar_resnet50_se_ign3.cifar100.md', card_text(hf_hub_id='name'), 'hf_hub_id must be "ORG/NAME"'),
])
def test_malformed_card_is_named_with_its_problem(tmp_path, name, text, problem):
    path = write_card(tmp_path, name, text)
    with pytest.raises(ValueError, match=problem) as error:
        read_weights_cards(EXPECTED, tmp_path)
    assert str(path) in str(error.value)


def test_missing_cards_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nowhere')):
        read_weights_cards(EXPECTED, tmp_path / 'nowhere')


def test_a_card_for_every_tag_is_read(tmp_path):
    for name in EXPECTED:
        model, tag = name.split('.')
        write_card(tmp_path, f'{name}.md', card_text(model, tag, EXPECTED[name]) + 'body line\n' * 200)
    cards = read_weights_cards(EXPECTED, tmp_path)
    assert list(cards) == sorted(EXPECTED)
    assert all(card.num_classes == EXPECTED[name] for name, card in cards.items())


def test_lenient_reading_skips_a_bad_card_with_a_warning(tmp_path):
    write_card(tmp_path, 'cifar_resnet50_se_ign3.cifar100.md', card_text())
    bad = write_card(tmp_path, 'cifar_resnet50_se.cifar100.md', card_text('cifar_resnet50_se', num_classes=10))
    with pytest.warns(WeightsCardWarning, match=f'{bad}.*has 100 classes, the card says 10.*skipped'):
        cards = read_weights_cards(EXPECTED, tmp_path, strict=False)
    assert list(cards) == ['cifar_resnet50_se_ign3.cifar100']
    with pytest.warns(WeightsCardWarning, match='folder not found'):
        assert read_weights_cards(EXPECTED, tmp_path / 'nowhere', strict=False) == {}


@pytest.mark.parametrize('folder', ['missing', 'bad card'])
def test_a_broken_cards_folder_never_breaks_the_import(tmp_path, folder):
    if folder == 'bad card':
        write_card(tmp_path, 'cifar_resnet50_se_ign3.cifar100.md', '---\nlibrary_name: [timm\n---\n')
    cards_dir = tmp_path if folder == 'bad card' else tmp_path / 'nowhere'
    probe = ('import warnings, timm, timm_ignore; from timm_ignore.models import zoo; '
             'print(len(timm.list_models("cifar_resnet50*")), zoo.published_tags())')
    env = {**os.environ, CARDS_DIR_ENV: str(cards_dir), 'PYTHONPATH': str(REPO_ROOT)}
    done = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['13', '[]']
    assert 'WeightsCardWarning' in done.stderr and str(cards_dir) in done.stderr


def test_shipped_cards_folder_is_the_registry():
    """The package reads the top-level weights_cards/ (through its link) and every card there is valid."""
    assert (REPO_ROOT / 'timm_ignore' / 'weights_cards').resolve() == (REPO_ROOT / 'weights_cards').resolve()
    cards = read_weights_cards(EXPECTED, REPO_ROOT / 'weights_cards')
    assert cards.keys() == zoo.PUBLISHED_WEIGHTS.keys()
    for name in EXPECTED:
        cfg = timm.models.get_pretrained_cfg(name)
        assert (cfg.hf_hub_id is not None) == (name in cards), name
        if name in cards:
            assert cfg.hf_hub_id == cards[name].hf_hub_id
            assert read_front_matter(cards[name].path)['library_name'] == 'timm'


def test_pretrained_without_weights_names_the_tags_that_have_some():
    """The error names the model's own tags with weights, else every published tag (or says there are none)."""
    published = zoo.published_tags()
    tag = next(f'cifar_resnet50_se.{t}' for t in ('cifar10', 'cifar100') if f'cifar_resnet50_se.{t}' not in published)
    with pytest.raises(RuntimeError, match=rf'{re.escape(tag)} has no pretrained weights') as error:
        timm.create_model(tag, pretrained=True, depth=8)
    own = zoo.published_tags('cifar_resnet50_se')
    if own:
        assert f'tags with weights: {", ".join(own)}' in str(error.value)
    elif published:
        assert f'published: {", ".join(published)}' in str(error.value)
    else:
        assert 'no timm-ignore weights' in str(error.value)


def test_card_recipe_table_shows_the_engine_keys_and_only_what_the_schedule_reads():
    from timm_ignore.hub.card import RECIPE_ARGS, _args_table
    args = {'sched': 'poly', 'decay_milestones': [62], 'decay_epochs': 30, 'decay_rate': 1.0, 'shift_mode': 'pad_crop',
            'zero_init_last': True}
    table = _args_table(args, RECIPE_ARGS)
    assert '| `shift_mode` | `pad_crop` |' in table and '| `zero_init_last` | `True` |' in table
    assert 'decay_milestones' not in table and 'decay_epochs' not in table and '| `decay_rate` | `1.0` |' in table
    assert '| `decay_milestones` | `[62]` |' in _args_table(dict(args, sched='multistep'), RECIPE_ARGS)
    bf16 = _args_table(dict(args, amp=True, amp_dtype='bfloat16'), RECIPE_ARGS)
    assert '| `amp` | `True` |' in bf16 and '| `amp_dtype` | `bfloat16` |' in bf16
    fp32 = _args_table(dict(args, amp=False, amp_dtype='bfloat16'), RECIPE_ARGS)  # a float32 run of a bf16 recipe
    assert '| `amp` | `False` |' in fp32 and 'amp_dtype' not in fp32
