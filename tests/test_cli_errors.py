"""Every ordinary mistake of a new user ends in one line naming it and exit status 2: no traceback, no work done.

Each case runs the real command line (``timm_ignore.cli.main``) as a user would type it.
"""
import datetime
import logging
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch

from _weights_fixtures import MODEL, TAG, trained_model, write_run, write_split
from conftest import REPO_ROOT
from timm_ignore.cli import main

RECIPE = REPO_ROOT / 'train_scripts' / 'cifar10.yaml'


@pytest.fixture(autouse=True)
def fresh_logging():
    """The commands attach a log handler to the stderr of the moment; pytest closes each test's captured stderr."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


@pytest.fixture(scope='module')
def setup(shared_data, tmp_path_factory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp('mistakes')
    write_split(shared_data, root / 'data', 'train', count=60)
    write_split(shared_data, root / 'data', 'validation', count=60)
    write_split(shared_data, root / 'data', 'test', count=60)
    write_split(shared_data, root / 'flat', 'images', count=60)  # one folder of class folders, no split folders
    run = write_run(root / 'run', trained_model(), MODEL)
    other = write_run(root / 'other-run', timm.create_model('densenet', depth=7, num_classes=10), 'densenet')
    checkpoint = run / 'last.pth.tar'
    (root / 'truncated.pth.tar').write_bytes(checkpoint.read_bytes()[:4000])
    (root / 'random.pth.tar').write_bytes(np.random.default_rng(0).bytes(4000))
    torch.save({'state_dict': trained_model().state_dict(), 'when': datetime.date(2021, 1, 1)},
               root / 'foreign.pth.tar')
    (root / 'bad.yaml').write_text('epochs: [1, 2\n')
    (root / 'list.yaml').write_text('- epochs\n')
    (root / 'not_json.json').write_text('{md5: ')
    (root / 'a_file').write_text('mine')
    (root / 'notes.png').write_text('not an image')
    return dict(root=root, data=root / 'data', run=run, other=other / 'last.pth.tar')


def _train(setup, *extra: str) -> list[str]:
    return ['train', '-c', str(RECIPE), '--data-dir', str(setup['data']), '--model', MODEL, '--model-kwargs',
            'depth=8', '--epochs', '1', '--device', 'cpu', '--output', str(setup['root'] / 'out'), '--set',
            'workers=0', 'batch_size=20', *extra]


def _mistakes(s: dict[str, pathlib.Path]) -> dict[str, tuple[list[str], str]]:
    """Mistake -> (command line, what the one line must say)."""
    data, root = str(s['data']), s['root']
    return {
        'missing recipe': (['train', '-c', str(root / 'nope.yaml'), '--data-dir', data, '--model', MODEL],
                           r'nope.yaml: no such recipe \(-c/--config\)'),
        'invalid recipe YAML': (['train', '-c', str(root / 'bad.yaml'), '--data-dir', data],
                                r'bad.yaml: not a valid YAML recipe \(-c/--config\).*line 2'),
        'recipe not a mapping': (['train', '-c', str(root / 'list.yaml'), '--data-dir', data],
                                 'must be a YAML mapping'),
        'unknown model': (_train(s, '--model', 'cifar_resnet50_se_ign4'),
                          r"unknown model 'cifar_resnet50_se_ign4' \(--model\); did you mean cifar_resnet50_se_ign"),
        'missing data folder': (_train(s, '--data-dir', str(root / 'nowhere')), r'nowhere: no such data folder'),
        'data folder without splits': (_train(s, '--data-dir', str(root / 'flat')),
                                       r"no 'train' split in .*flat \(its folders: images\)"),
        'zero epochs': (_train(s, '--epochs', '0'), '--epochs must be at least 1, got 0'),
        'resume missing': (_train(s, '--resume', str(root / 'gone.pth.tar')),
                           '--resume: .*gone.pth.tar: no such checkpoint'),
        'resume truncated': (_train(s, '--resume', str(root / 'truncated.pth.tar')), 'not a PyTorch checkpoint'),
        'resume random bytes': (_train(s, '--resume', str(root / 'random.pth.tar')), 'not a PyTorch checkpoint'),
        'resume foreign pickle': (_train(s, '--resume', str(root / 'foreign.pth.tar')),
                                  'not a checkpoint this tool can load'),
        'resume other architecture': (_train(s, '--resume', str(s['other'])),
                                      r'\(--resume\): these are not weights of cifar_resnet50_se_ign3'),
        'wrong alpha for the gate': (_train(s, '--model', 'cifar_resnet50_se_ign1', '--model-kwargs', 'depth=8',
                                            'alpha=1.5'), r'--model-kwargs .*alpha'),
        'alpha for a gate without one': (_train(s, '--model-kwargs', 'depth=8', 'alpha=0.5'),
                                         r"--model-kwargs .*'ign3' takes no alpha"),
        'model kwarg without =': (_train(s, '--model-kwargs', 'depth8'), 'expected KEY=VALUE'),
        'missing checksums': (['prepare-cifar', str(root / 'cifar-10-python.tar.gz'), str(root / 'c'), '--checksums',
                               str(root / 'nope.json')], r'does not exist|no such checksum table \(--checksums\)'),
        'malformed checksums': (['prepare-cifar', str(root / 'a_file'), str(root / 'c'), '--dataset', 'cifar10',
                                 '--checksums', str(root / 'not_json.json')],
                                r'not_json.json: not a JSON checksum table \(--checksums\)'),
        'publish --overwrite onto a file': (['publish', str(s['run']), '--out', str(root / 'a_file'), '--data', data,
                                             '--repo-id', 'org/name', '--overwrite'], 'a_file: is a file'),
        'grad-cam on a non-image': (['grad-cam', str(root / 'notes.png'), '--models', f'{MODEL}.{TAG}',
                                     '--model-kwargs', 'depth=8', '-o', str(root / 'g.png'), '--device', 'cpu'],
                                    r'notes.png: not an image file'),
        'grad-cam class count not the folder': (
            ['grad-cam', str(s['data'] / 'test'), '--models', f'{MODEL}.cifar100', '--model-kwargs', 'depth=8', '-o',
             str(root / 'g.png'), '--device', 'cpu'], '10 class folders but .* has 100 classes'),
        'grad-cam output is a folder': (['grad-cam', str(s['data'] / 'test'), '--models', MODEL, '-o', data],
                                        '-o/--output names the PNG'),
        'validate without split': (['validate', str(root / 'flat'), '--checkpoint', str(s['run'])],
                                   r"no 'test' split in .*flat"),
        'validate wrong device': (['validate', data, '--checkpoint', str(s['run']), '--device', 'gpu0'],
                                  "--device 'gpu0' is not a device"),
        'models pattern matching nothing': (['models', 'nonexist*'],
                                            r"no model matches 'nonexist\*'.*'timm-ignore models' lists them all"),
        'models table pattern matching nothing': (['models', 'seresnet*', '--markdown'],
                                                  r"no model of the table .*matches 'seresnet\*'"),
        'compare unknown model': (['compare', '--models', 'cifar_resnet50', 'resnet_51', '--output',
                                   str(root / 'cmp'), '--epochs', '1'], r"unknown model 'resnet_51' \(--models\)"),
        'compare missing paper tables': (['compare', '--paper-tables', str(root / 'p.csv'), '--output',
                                          str(root / 'cmp2')], r'p.csv: paper tables file not found'),
        'compare data without splits': (['compare', '--data-dir', str(root / 'flat'), '-c', str(RECIPE), '--output',
                                         str(root / 'cmp3'), '--models', MODEL], "no 'train' split"),
    }


CASES = list(_mistakes({k: pathlib.Path('x') for k in ('root', 'data', 'run', 'other')}))


@pytest.mark.parametrize('mistake', CASES)
def test_mistake_is_one_line_and_exit_2(setup, mistake, capsys):
    argv, expected = _mistakes(setup)[mistake]
    before = sorted(p.name for p in setup['root'].iterdir())
    with pytest.raises(SystemExit) if 'KEY=VALUE' in expected else _no_exit() as exited:
        status = main(argv)
    if exited is not None:
        status = exited.value.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert 'Traceback' not in err and 'weights_only' not in err
    last = err.strip().splitlines()[-1]
    assert re.search(expected, last), last
    assert last.startswith('timm-ignore ') or 'usage:' in err
    after = sorted(p.name for p in setup['root'].iterdir())
    assert after == before or set(after) - set(before) <= {'out'}  # nothing written (an empty run parent at most)


class _no_exit:
    value = None

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_compare_checks_every_input_before_training(setup, capsys):
    """A typo in the last model is found before the first model trains (no run folder is written)."""
    output = setup['root'] / 'cmp-typo'
    assert main(['compare', '--models', 'cifar_resnet50', 'cifar_resnet50_se_ign33', '--output', str(output),
                 '--epochs', '1', '--device', 'cpu', '--demo-per-class', '4', '2', '2']) == 2
    assert 'did you mean' in capsys.readouterr().err
    assert not (output / 'runs').exists() or not any((output / 'runs').iterdir())


def test_compare_without_matplotlib_stops_before_training(setup, capsys, monkeypatch):
    """Figure 1 needs the ``figures`` extra: its absence is said before the first epoch, not after the matrix."""
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # import matplotlib raises ImportError
    output = setup['root'] / 'cmp-no-matplotlib'
    assert main(['compare', '--models', 'cifar_resnet50', '--output', str(output), '--epochs', '1', '--device', 'cpu',
                 '--demo-per-class', '4', '2', '2']) == 2
    assert 'pip install "timm-ignore[figures]"' in capsys.readouterr().err.strip().splitlines()[-1]
    assert not output.exists()


def _modes(folder: pathlib.Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob('*')]}


def test_folders_the_tools_create_have_normal_permissions(setup, tmp_path):
    """A published folder is readable as any file the user writes: safetensors' private 0o600 file included."""
    previous = os.umask(0o022)
    try:
        assert main(['publish', str(setup['run']), '--out', str(tmp_path / 'pub'), '--data', str(setup['data']),
                     '--repo-id', 'org/name']) == 0
    finally:
        os.umask(previous)
    modes = _modes(tmp_path / 'pub')
    assert {'model.safetensors', 'config.json', 'README.md', 'args.yaml'} <= set(modes)
    assert modes == {name: 0o755 if name == '.' else 0o644 for name in modes}


def test_staged_folder_takes_the_umask_whatever_wrote_its_files(tmp_path):
    from timm_ignore.staging import staged_directory
    previous = os.umask(0o027)
    try:
        with staged_directory(tmp_path / 'out') as staging:
            (staging / 'sub').mkdir(mode=0o700)
            for name, mode in (('private', 0o600), ('sub/open', 0o666), ('tool', 0o700)):
                (staging / name).write_text(name)
                (staging / name).chmod(mode)
    finally:
        os.umask(previous)
    assert _modes(tmp_path / 'out') == {'.': 0o750, 'sub': 0o750, 'private': 0o640, 'sub/open': 0o640, 'tool': 0o750}


def test_shared_options_are_parsed_alike_in_every_command():
    """--model-kwargs as timm's train.py parses it (timm.utils.ParseKwargs), --device and --num-classes everywhere."""
    import argparse
    import importlib

    from timm.utils import ParseKwargs

    from timm_ignore.cli import SUBCOMMANDS
    items = ['depth=8', 'alpha=0.5', 'gate=ign1', 'flag=True']
    reference = argparse.ArgumentParser()
    reference.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs)
    expected = reference.parse_args(['--model-kwargs', *items]).model_kwargs
    assert expected == {'depth': 8, 'alpha': 0.5, 'gate': 'ign1', 'flag': True}
    commands = {'train': [], 'compare': [], 'validate': ['data', '--pretrained'], 'publish': ['run', '--out', 'o',
                '--data', 'd', '--repo-id', 'a/b'], 'grad-cam': ['image.png', '--models', 'm']}
    for command, required in commands.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(SUBCOMMANDS[command][0]).add_arguments(parser)
        args = parser.parse_args([*required, '--num-classes', '7', '--model-kwargs', *items])
        assert args.model_kwargs == expected and args.num_classes == 7 and args.device is None, command


def test_commands_run_in_one_process_log_to_the_current_stderr(capsys):
    """Logging set up by one command must not write to a stream captured (and closed) before the next one runs."""
    import logging

    from timm_ignore.cli.options import setup_logging
    setup_logging()
    setup_logging()
    logging.getLogger('timm_ignore.test').info('first')
    assert 'first' in capsys.readouterr().err
    ours = [h for h in logging.root.handlers if type(h).__name__ == '_StderrHandler']
    assert len(ours) == 1


def test_module_entry_point_is_the_console_script(tmp_path):
    """``python -m timm_ignore.cli`` runs the same ``main``: its mistakes end in one line and exit status 2 too."""
    command, env = [sys.executable, '-m', 'timm_ignore.cli'], {**os.environ, 'OMP_NUM_THREADS': '1'}
    listed = subprocess.run([*command, 'models'], capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    assert 'cifar_resnet50_cbam_ign1' in listed.stdout
    missing = subprocess.run(
        [*command, 'validate', str(tmp_path / 'no-such-folder'), '--model', 'cifar_resnet50.cifar10', '--pretrained'],
        capture_output=True, text=True, env=env)
    assert missing.returncode == 2
    assert 'Traceback' not in missing.stderr and 'no-such-folder' in missing.stderr
