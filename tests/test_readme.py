"""README.md stays true: its model table is the registry's, its zoo table the published cards', and its quick start
runs."""
import re

import pytest

from timm_ignore.hub.zoo_table import zoo_table, zoo_table_markers
from timm_ignore.models.summary import TABLE_END, TABLE_START, markdown_table, model_rows

from conftest import REPO_ROOT

README = (REPO_ROOT / 'README.md').read_text()


def test_model_table_is_generated_from_the_registry():
    table = README[README.index(TABLE_START) + len(TABLE_START):README.index(TABLE_END)].strip()
    assert table == markdown_table(model_rows()), 'run: timm-ignore models --update-readme README.md'



def test_zoo_table_is_generated_from_the_published_cards():
    start, end = zoo_table_markers('cifar10')
    table = README[README.index(start) + len(start):README.index(end)].strip()
    assert table == zoo_table(REPO_ROOT / 'weights', 'cifar10'), \
        'run: timm-ignore publish-zoo QUEUE --data DATA --hub-org ORG --update-readme README.md'

def test_quick_start_runs():
    section = README[README.index('## Quick start'):]
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, 'README.md quick start', 'exec'), namespace)
    assert namespace['logits'].shape == (1, 1000)
    assert namespace['cifar'].num_classes == 10
    assert namespace['explore'].layer1[0].se.gate.alpha == 0.3
    for name in ('seresnet', 'resnet'):
        gates = [m for m in namespace[name].modules() if type(m).__name__ == 'IgnoreGate']
        assert len(gates) == 16 and all(g.name == 'ign3' for g in gates)


def test_test_command_is_the_one_ci_runs():
    ci = (REPO_ROOT / '.ci' / 'run').read_text()
    assert "grep -m1 '^python -m venv'" in ci
    tests_section = README[README.index('## Tests'):]
    command = next(line for line in tests_section.splitlines() if line.startswith('python -m venv'))
    assert 'constraints.txt' in command and 'python -m pytest' in command
    if 'pytest' not in command.split('&&')[-1]:
        pytest.fail('the README test command must end by running pytest')
