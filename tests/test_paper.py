"""The paper's tables: the copy shipped in the package, the reader's checks, and the lookups by zoo model."""
import pathlib

import pytest

from conftest import REPO_ROOT
from timm_ignore.models.zoo import MODELS
from timm_ignore.paper import COLUMNS, PAPER_TABLES_CSV, read_paper_tables

REFERENCE = REPO_ROOT.parent / 'shared' / 'reference' / 'paper_tables.csv'


def test_shipped_tables_are_the_reference_copy():
    if not REFERENCE.is_file():
        pytest.skip(f'{REFERENCE} not found')
    assert PAPER_TABLES_CSV.read_bytes() == REFERENCE.read_bytes()


def test_lookups_by_zoo_model_give_the_papers_numbers():
    tables = read_paper_tables()
    ign3 = tables.for_model(MODELS['cifar_resnet50_se_ign3'], 'cifar100')
    assert (ign3['top1_err'].value, ign3['top1_err'].std, ign3['top1_err'].table) == (30.95, 0.08, '1')
    assert str(tables.for_model(MODELS['cifar_resnet50'], 'cifar100')['top5_err']) == '10.97 ± 0.54 (Table 1)'
    assert tables.for_model(MODELS['densenet_cbam_ign1_a08'], 'cifar10')['top1_err'].table == '2'
    assert tables.for_model(MODELS['densenet_se'], 'imagenet1k') == {}  # no such row in the paper
    every_cifar_row = [tables.for_model(spec, dataset) for spec in MODELS.values() if spec.family.name != 'resnet50'
                       for dataset in ('cifar10', 'cifar100')]
    assert all('top1_err' in row for row in every_cifar_row)


HEADER = ','.join(COLUMNS)


@pytest.mark.parametrize('text, problem', [
    ('table,dataset,value\n1,cifar10,3\n', 'expected the columns'),
    (f'{HEADER}\n1,cifar10,resnet50,se,top1_err,seven,0.1\n', r':2: value must be a number'),
    (f'{HEADER}\n1,cifar10,resnet50,se,top1_err,107,0.1\n', r':2: value must be a percentage'),
    (f'{HEADER}\n1,cifar10,resnet50,se,top1_err,7,-1\n', r':2: std must be a percentage'),
    (f'{HEADER}\n1,cifar10,resnet50,se,top3_err,7,\n', r':2: unknown metric'),
    (f'{HEADER}\n1,cifar10,resnet50,se,top1_err,7,\n2,cifar10,resnet50,se,top1_err,8,\n', r':3: top1_err .* is 7.0'),
    (f'{HEADER}\n', 'no numbers'),
])
def test_malformed_tables_are_named_with_file_and_line(tmp_path: pathlib.Path, text: str, problem: str):
    path = tmp_path / 'tables.csv'
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as error:
        read_paper_tables(path)
    assert str(path) in str(error.value)


def test_missing_tables_file_names_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match='--paper-tables'):
        read_paper_tables(tmp_path / 'nope.csv')
