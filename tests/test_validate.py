"""``timm-ignore validate``: a checkpoint on an ImageFolder split, with errors naming the data."""
import json

import pytest

from _weights_fixtures import MODEL, TAG, trained_model, write_run, write_split
from timm_ignore.cli import main
from timm_ignore.evaluate import evaluate_split


@pytest.fixture(scope='module')
def tree(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp('validate')
    write_split(shared_data, root / 'data', count=60)
    model = trained_model()
    return dict(root=root, model=model, run=write_run(root / 'run', model, MODEL))


def test_validate_a_run_checkpoint(tree, capsys):
    assert main(['validate', str(tree['root'] / 'data'), '--model', f'{MODEL}.{TAG}', '--checkpoint',
                 str(tree['run']), '--json']) == 0
    result = json.loads(capsys.readouterr().out)
    direct = evaluate_split(tree['model'], tree['root'] / 'data' / 'test')
    assert result['num_images'] == 60 and result['top1_err'] == pytest.approx(direct.top1_err)
    assert result['loss'] == pytest.approx(direct.loss) and result['split_sha256'] == direct.split_sha256


def test_missing_split_is_named(tree, capsys):
    assert main(['validate', str(tree['root'] / 'data'), '--model', f'{MODEL}.{TAG}', '--checkpoint',
                 str(tree['run']), '--split', 'validation']) == 2
    assert f"{tree['root'] / 'data' / 'validation'}: no 'validation' split" in capsys.readouterr().err


def test_split_with_another_class_count_is_named(tree):
    model = trained_model(f'{MODEL}.cifar100')
    with pytest.raises(ValueError, match='10 class folders but the model has 100 classes'):
        evaluate_split(model, tree['root'] / 'data' / 'test')
