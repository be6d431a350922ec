"""What may become a model card: a run that trained its recipe's epochs (timm's count) and is above chance level;
and no address the project does not have in any card, template or document."""
import json
import pathlib
import re

import pytest
import yaml

from timm_ignore.runs import CHANCE_MARGIN, chance_error, schedule_epochs, untrained_problems
from timm_ignore.version import PROJECT_URL

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('args, epochs', [
    (yaml.safe_load((REPO / 'train_scripts' / 'cifar10_short.yaml').read_text()), 16),  # 15 + the warm-up prefix
    (yaml.safe_load((REPO / 'train_scripts' / 'cifar10_authors.yaml').read_text()), 200),
    ({'epochs': 29, 'sched': 'poly', 'warmup_epochs': 1, 'warmup_prefix': False}, 29),  # warm-up inside the 29
    ({'epochs': 10, 'sched': 'cosine', 'warmup_epochs': 3, 'warmup_prefix': True, 'cooldown_epochs': 2}, 15),
    ({'epochs': 7}, 7), ({'sched': 'cosine'}, None),
])
def test_the_recipes_epochs_are_timms_count(args, epochs):
    assert schedule_epochs(args) == epochs


def _run(root: pathlib.Path, trained: int, record: dict = None, val_accuracy: float = 70.0) -> pathlib.Path:
    root.mkdir()
    rows = ''.join(f'{e},2.0,1.5,{val_accuracy - trained + e + 1},90.0,0.1\n' for e in range(trained))
    (root / 'summary.csv').write_text('epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n' + rows)
    if record is not None:
        (root / 'run.json').write_text(json.dumps(record))
    return root


ARGS = {'epochs': 3, 'sched': 'multistep', 'decay_milestones': [2]}


def test_chance_level_is_guessing_less_the_margin_on_the_test_error_first(tmp_path):
    assert chance_error(10) == pytest.approx(90.0) and chance_error(100) == pytest.approx(99.0)
    line = chance_error(10) - CHANCE_MARGIN
    assert untrained_problems(_run(tmp_path / 'a', 3, {'epochs': 3, 'test_top1_err': line - 0.01}), ARGS, 10) == []
    problems = untrained_problems(_run(tmp_path / 'b', 3, {'epochs': 3, 'test_top1_err': line}), ARGS, 10)
    assert problems == ['its test top-1 error 85.00% is at chance level (>= 85%: 90% for 10 classes, less 5 points)']
    # the same error is fine for 100 classes (chance 99%), and the validation error counts without a test error
    assert untrained_problems(_run(tmp_path / 'c', 3, {'epochs': 3, 'test_top1_err': 85.0}), ARGS, 100) == []
    assert 'its validation top-1 error 96.00%' in untrained_problems(
        _run(tmp_path / 'd', 3, {'epochs': 3, 'val_top1_err': 96.0}), ARGS, 100)[0]
    # a train.py run: the best validation accuracy of summary.csv (70% -> 30% error)
    assert untrained_problems(_run(tmp_path / 'e', 3), ARGS, 10) == []
    assert 'validation top-1 error 88.00%' in untrained_problems(_run(tmp_path / 'f', 3, val_accuracy=12.0),
                                                                   ARGS, 10)[0]


def test_a_run_short_of_its_recipes_epochs_is_named(tmp_path):
    assert untrained_problems(_run(tmp_path / 'a', 2), ARGS, 10) == ['it trained 2 of the 3 epochs of its recipe']
    short = {'epochs': 29, 'sched': 'poly', 'warmup_epochs': 1, 'warmup_prefix': True}
    assert untrained_problems(_run(tmp_path / 'b', 29), short, 10) == ['it trained 29 of the 30 epochs of its recipe']
    assert untrained_problems(_run(tmp_path / 'c', 30), short, 10) == []
    (tmp_path / 'bare').mkdir()
    assert untrained_problems(tmp_path / 'bare', ARGS, 10) == [
        'no summary.csv or run.json says how many epochs it trained']


#: Every address the project's documents, cards and code may link to: each exists.
REAL_ADDRESSES = {
    'https://arxiv.org/abs/2111.05684',  # the paper
    'https://github.com/firasl/inverse_attention',  # the authors' code
    'https://github.com/huggingface/pytorch-image-models',  # timm
    'https://download.pytorch.org/whl/cpu',  # PyTorch's CPU wheels
}


def test_no_document_card_or_template_links_to_an_address_that_does_not_exist():
    """The project has no public address yet: cards say so (``version.PROJECT_URL`` is None) instead of linking."""
    assert PROJECT_URL is None
    files = [REPO / 'README.md', REPO / 'pyproject.toml', *(REPO / 'docs').glob('*.md'),
             *(REPO / 'weights_cards').glob('*.md'), *(REPO / 'timm_ignore').rglob('*.py')]
    if (REPO / 'weights').is_dir():
        files += list((REPO / 'weights').glob('*/README.md'))
    found = {url.rstrip('.,') for f in files for url in re.findall(r'https?://[^\s)>\]`\'"]+', f.read_text())}
    assert found <= REAL_ADDRESSES, sorted(found - REAL_ADDRESSES)
