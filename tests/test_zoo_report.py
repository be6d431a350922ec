"""From a finished queue: ``timm-ignore compare --runs`` (the report, no training) and ``timm-ignore publish-zoo``
(the best seed per model into the repository's weights layout)."""
import csv
import json
import shutil
import statistics
import sys

import pytest
from huggingface_hub import ModelCard

from _weights_fixtures import MODEL as TRAIN_PY_MODEL
from _weights_fixtures import trained_model, write_run
from _zoo_fixtures import cifar10_slice, train_short_queue
from timm_ignore.checkpoint import load_model
from timm_ignore.cli import main
from timm_ignore.evaluate import evaluate_split
from timm_ignore.hub.zoo_table import published_records, zoo_table_markers
from timm_ignore.models._weights import read_weights_cards

RUNS = [('cifar_resnet50', 0), ('cifar_resnet50', 1), ('cifar_resnet50_se', 0), ('cifar_resnet50_se', 1)]
PAPER = {'cifar_resnet50': (8.27, 0.54), 'cifar_resnet50_se': (7.63, 0.37)}  # Table 1, CIFAR-10


@pytest.fixture(scope='module')
def queue(shared_data, tmp_path_factory):
    """Two models x two seeds of the engine, a finished train.py-style run and a cut-off engine run."""
    root = tmp_path_factory.mktemp('report')
    data = cifar10_slice(shared_data, root / 'data')
    queue = train_short_queue(data, root / 'queue', RUNS)
    write_run(queue / f'{TRAIN_PY_MODEL}-seed42', trained_model(), TRAIN_PY_MODEL)
    cut = shutil.copytree(queue / 'cifar_resnet50-seed1', queue / 'cifar_resnet50-seed2')
    (cut / 'run.json').unlink()  # killed before its record: the queue would finish it, the report leaves it out
    return dict(root=root, data=data, queue=queue)


def _csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_report_has_every_run_and_the_table_per_paper_row(queue, capsys):
    out = queue['root'] / 'results'
    assert main(['compare', '--runs', str(queue['queue']), '--output', str(out), '--data-dir', str(queue['data']),
                 '--device', 'cpu']) == 0
    runs = _csv(out / 'runs.csv')
    assert [(r['model'], r['seed']) for r in runs] == [
        ('cifar_resnet50', '0'), ('cifar_resnet50', '1'), ('cifar_resnet50_se', '0'), ('cifar_resnet50_se', '1'),
        (TRAIN_PY_MODEL, '42')]  # zoo-table order, then seed; the cut-off run left out
    records = {(m, str(s)): json.loads((queue['queue'] / f'{m}-seed{s}' / 'run.json').read_text()) for m, s in RUNS}
    for row in runs[:4]:
        record = records[row['model'], row['seed']]
        assert float(row['test_top1_err']) == record['test_top1_err']
        assert float(row['val_top1_err']) == record['val_top1_err'] and int(row['best_epoch']) == record['best_epoch']
        assert float(row['wall_time_s']) == record['wall_time_s'] and row['device'] == record['device']
        assert row['precision'] == 'float32'  # the short authors' recipe with amp off, from the run's args.yaml
    model, _ = load_model(queue['queue'] / f'{TRAIN_PY_MODEL}-seed42')  # tested here, on --data-dir's test split
    assert float(runs[4]['test_top1_err']) == pytest.approx(evaluate_split(model, queue['data'] / 'test').top1_err)
    assert float(runs[4]['val_top1_err']) == pytest.approx(38.0) and runs[4]['wall_time_s'] == ''  # summary.csv
    assert runs[4]['precision'] == ''  # its args.yaml names no amp

    results = {r['model']: r for r in _csv(out / 'results.csv')}
    for model, (paper, paper_std) in PAPER.items():
        errors = [records[model, s]['test_top1_err'] for s in ('0', '1')]
        row = results[model]
        assert int(row['runs']) == 2
        assert float(row['top1_err']) == pytest.approx(statistics.fmean(errors))
        assert float(row['top1_std']) == pytest.approx(statistics.stdev(errors))
        assert (float(row['paper_top1']), float(row['paper_top1_std'])) == (paper, paper_std)
        assert row['epochs'] == '3' and row['top1_diff'] == ''  # 3-epoch runs: no difference to 200-epoch numbers
    text = (out / 'results.md').read_text()
    mean = statistics.fmean(records['cifar_resnet50', s]['test_top1_err'] for s in ('0', '1'))
    assert f'| cifar_resnet50 | 2 | 3 | {mean:.2f} ± ' in text
    assert '| 8.27 ± 0.54 | — | — (3 vs 200 epochs) |' in text
    assert "The paper's numbers are after 200 epochs" in text and 'per-pixel-mean recipe' in text
    assert 'data: CIFAR-10 (JPEG copy)' in text and 'mean absolute difference 5.8/255' in text
    assert 'Not finished, left out: cifar_resnet50-seed2' in text
    assert text in capsys.readouterr().out


def test_report_draws_figure1_for_an_explicit_model_and_its_ignore_variants(queue, tmp_path, capsys):
    """A copy of the queue with an Ign3 run (the SE run's record under the variant's name): one panel, SE's."""
    runs = shutil.copytree(queue['queue'], tmp_path / 'queue')
    variant = shutil.copytree(runs / 'cifar_resnet50_se-seed0', runs / 'cifar_resnet50_se_ign3-seed0')
    record = json.loads((variant / 'run.json').read_text())
    (variant / 'run.json').write_text(json.dumps({**record, 'model': 'cifar_resnet50_se_ign3'}))
    out = tmp_path / 'results'
    assert main(['compare', '--runs', str(runs), '--output', str(out), '--data-dir', str(queue['data']),
                 '--device', 'cpu']) == 0
    assert sorted(p.name for p in out.glob('*.png')) == ['val_loss_cifar_resnet50_se.png']
    assert f'Figure 1: {out / "val_loss_cifar_resnet50_se.png"}' in capsys.readouterr().out


def test_report_without_matplotlib_is_written_and_says_why_figure1_is_not(queue, tmp_path, capsys, monkeypatch):
    """The report needs no figures extra: without matplotlib it is written, and one line says why Figure 1 is not."""
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # import matplotlib raises ImportError
    out = tmp_path / 'results'
    assert main(['compare', '--runs', str(queue['queue']), '--output', str(out), '--data-dir', str(queue['data']),
                 '--device', 'cpu']) == 0
    assert (out / 'results.md').is_file() and not list(out.glob('*.png'))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith('Figure 1 not drawn: it needs matplotlib (') and last.endswith(
        'pip install "timm-ignore[figures]".')


def test_one_test_error_per_run_from_every_entry_point(queue, tmp_path, capsys):
    """The engine's record, compare --runs, validate and publish measure the same checkpoint on the same split alike."""
    from timm_ignore.hub.publish import publish_folder
    run = queue['queue'] / 'cifar_resnet50_se-seed1'
    record = json.loads((run / 'run.json').read_text())
    assert main(['validate', str(queue['data']), '--checkpoint', str(run), '--json', '--device', 'cpu',
                 '--flip-tta']) == 0
    validated = json.loads(capsys.readouterr().out)
    assert round(validated['top1_err'], 4) == record['test_top1_err']
    assert round(validated['top1_err_flip'], 4) == record['test_top1_err_flip']
    assert round(validated['top5_err'], 4) == record['test_top5_err']
    out = tmp_path / 'report'
    assert main(['compare', '--runs', str(queue['queue']), '--output', str(out), '--data-dir', str(queue['data']),
                 '--device', 'cpu']) == 0
    row = next(r for r in _csv(out / 'runs.csv') if r['run_dir'] == str(run))
    assert float(row['test_top1_err']) == record['test_top1_err']
    assert float(row['test_top1_err_flip']) == record['test_top1_err_flip'] is not None
    published = publish_folder(run, tmp_path / 'published', data_root=queue['data'], repo_id='org/x',
                               allow_untrained=True)
    assert round(published.result.top1_err, 4) == record['test_top1_err']
    assert record['test_top1_err_pixel_mean'] is not None  # the authors' recipe: its own normalisation, named


def test_a_folder_without_finished_runs_fails_in_one_line(queue, tmp_path, capsys):
    empty = tmp_path / 'queue'
    shutil.copytree(queue['queue'] / 'cifar_resnet50-seed2', empty / 'cifar_resnet50-seed2')
    for folder, problem in ((empty, 'no finished runs'), (tmp_path / 'missing', 'no such folder of runs')):
        assert main(['compare', '--runs', str(folder), '--output', str(tmp_path / 'out')]) == 2
        err = capsys.readouterr().err
        assert problem in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'out').exists()
    assert main(['compare', '--runs', str(queue['queue']), '-c', 'x.yaml']) == 2
    assert 'trains nothing: drop -c/--config' in capsys.readouterr().err


def test_publish_zoo_publishes_the_best_validation_seed_of_every_model(queue, tmp_path, capsys):
    weights, cards = tmp_path / 'weights', tmp_path / 'weights_cards'
    argv = ['publish-zoo', str(queue['queue']), '--data', str(queue['data']), '--hub-org', 'org', '--weights-dir',
            str(weights), '--cards-dir', str(cards), '--models', 'cifar_resnet50', 'cifar_resnet50_se',
            '--allow-untrained']  # smoke runs
    assert main(argv) == 0
    registry = read_weights_cards({f'{m}.cifar10': 10 for m in PAPER}, cards)
    for model in PAPER:
        name = f'{model}.cifar10'
        records = {s: json.loads((queue['queue'] / f'{model}-seed{s}' / 'run.json').read_text()) for s in (0, 1)}
        best = min(records, key=lambda s: (records[s]['val_top1_err'], s))
        folder = weights / name
        assert sorted(p.name for p in folder.iterdir()) == ['README.md', 'args.yaml', 'config.json',
                                                            'model.safetensors']
        card = (folder / 'README.md').read_text()
        assert f'Seed: {best}; epochs: 3' in card and 'stored in float16' in card and f'org/{name}' in card
        assert registry[name].local_file == (folder / 'model.safetensors').resolve()
        assert registry[name].hf_hub_id == f'org/{name}'
    assert sorted(p.name for p in weights.iterdir()) == [f'{m}.cifar10' for m in PAPER]
    capsys.readouterr()

    before = {m: (weights / f'{m}.cifar10' / 'model.safetensors').stat().st_mtime_ns for m in PAPER}
    for extra in ([], ['--overwrite']):  # the same runs again: kept as they are, with or without --overwrite
        assert main(argv + extra) == 0
        out = capsys.readouterr().out
        assert 'publishing 0 models' in out and 'keeping 2 published' in out
        assert all(f'{m}.cifar10: already published from seed' in out and 'the same run record), kept' in out
                   for m in PAPER)
        assert {m: (weights / f'{m}.cifar10' / 'model.safetensors').stat().st_mtime_ns for m in PAPER} == before
    assert not [p for p in weights.iterdir() if p.name.startswith('.')]  # no staging folder left


def test_publish_zoo_writes_the_readme_zoo_table_from_the_cards(queue, tmp_path, capsys):
    """--update-readme: the tag's table is the cards' numbers, each row against its twin next to the paper's gap; a
    README without the tag's markers is refused before anything is published."""
    start, end = zoo_table_markers('cifar10')
    readme, weights = tmp_path / 'README.md', tmp_path / 'weights'
    readme.write_text('# zoo\n')
    argv = ['publish-zoo', str(queue['queue']), '--data', str(queue['data']), '--hub-org', 'org', '--weights-dir',
            str(weights), '--cards-dir', str(tmp_path / 'cards'), '--models', 'cifar_resnet50', 'cifar_resnet50_se',
            '--allow-untrained', '--update-readme', str(readme)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'has no zoo table of cifar10' in err and start in err
    assert not weights.exists() and readme.read_text() == '# zoo\n'

    readme.write_text(f'# zoo\n{start}\nstale\n{end}\nafter\n')
    assert main(argv) == 0
    assert 'updated the zoo table of cifar10' in capsys.readouterr().out
    text = readme.read_text()
    assert text.startswith(f'# zoo\n{start}\n| model |') and text.endswith(f'\n{end}\nafter\n') and 'stale' not in text
    test = {}
    for model in PAPER:
        card = ModelCard.load(weights / f'{model}.cifar10' / 'README.md')
        test[model] = {r.metric_type: r.metric_value for r in card.data.eval_results if r.dataset_split == 'test'}
    plain, se = test['cifar_resnet50'], test['cifar_resnet50_se']
    gap = f'{se["top1_error"] - plain["top1_error"]:+.2f}'.replace('-', '−')
    assert [line for line in text.splitlines() if line.startswith('| `')] == [
        f'| `cifar_resnet50` | {plain["top1_error"]:.2f} | {plain["top1_error_flip_tta"]:.2f} | 8.27 ± 0.54 | — | '
        'float32 |',
        f'| `cifar_resnet50_se` | {se["top1_error"]:.2f} | {se["top1_error_flip_tta"]:.2f} | 7.63 ± 0.37 | '
        f'{gap} vs `cifar_resnet50` (paper −0.64) | float32 |']


def test_a_weights_folder_not_written_by_publish_is_named(tmp_path):
    folder = tmp_path / 'cifar_resnet50.cifar10'
    folder.mkdir()
    (folder / 'README.md').write_text('---\nlicense: mit\n---\n# written by hand\n')
    (folder / 'args.yaml').write_text('seed: 0\n')
    with pytest.raises(ValueError, match=r'cifar_resnet50\.cifar10: not a folder written by publish'):
        published_records(tmp_path, 'cifar10')


def _queue_copy(queue, root, runs):
    """A copy of the queue folder (its queue.json lists every run of RUNS) holding only ``runs``."""
    copy = root / 'queue'
    copy.mkdir(parents=True)
    shutil.copyfile(queue['queue'] / 'queue.json', copy / 'queue.json')
    for name in runs:
        shutil.copytree(queue['queue'] / name, copy / name)
    return copy


def test_publish_zoo_adds_finished_models_keeps_published_ones_and_lists_waiting_ones(queue, tmp_path, capsys):
    """The campaign's flow: publish what finished, run again as more finishes; a changed best seed needs --overwrite."""
    q = _queue_copy(queue, tmp_path, ['cifar_resnet50-seed0', 'cifar_resnet50_se-seed0'])
    (q / 'cifar_resnet50_se-seed0' / 'run.json').rename(tmp_path / 'se-run.json')  # still training
    weights, cards = tmp_path / 'weights', tmp_path / 'weights_cards'
    argv = ['publish-zoo', str(q), '--data', str(queue['data']), '--hub-org', 'org', '--weights-dir', str(weights),
            '--cards-dir', str(cards), '--allow-untrained']
    plain = weights / 'cifar_resnet50.cifar10'

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert 'publishing 1 models' in out and 'cifar_resnet50.cifar10: seed 0 of [0]' in out
    assert 'waiting for a finished run: cifar_resnet50_se' in out  # its run folder, and queue.json's seed 1
    assert sorted(p.name for p in weights.iterdir()) == ['cifar_resnet50.cifar10']
    first = (plain / 'model.safetensors').stat().st_mtime_ns

    (tmp_path / 'se-run.json').rename(q / 'cifar_resnet50_se-seed0' / 'run.json')  # it finished
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert 'cifar_resnet50.cifar10: already published from seed 0 (the same run record), kept' in out
    assert 'cifar_resnet50_se.cifar10: seed 0 of [0]' in out and 'waiting for' not in out
    assert (plain / 'model.safetensors').stat().st_mtime_ns == first
    assert sorted(p.name for p in cards.iterdir()) == ['cifar_resnet50.cifar10.md', 'cifar_resnet50_se.cifar10.md']

    seed1 = shutil.copytree(queue['queue'] / 'cifar_resnet50-seed1', q / 'cifar_resnet50-seed1')
    record = json.loads((seed1 / 'run.json').read_text())
    seed0 = json.loads((q / 'cifar_resnet50-seed0' / 'run.json').read_text())
    record['val_top1_err'] = seed0['val_top1_err'] - 1.0  # seed 1 is now the best: the published seed changed
    (seed1 / 'run.json').write_text(json.dumps(record))
    assert main(argv) == 2  # refused before any evaluation, naming what would be replaced
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'already published from another run' in err
    assert str(plain) in err and 'cifar_resnet50_se' not in err and 'pass --overwrite' in err
    assert (plain / 'model.safetensors').stat().st_mtime_ns == first and 'Seed: 0;' in (plain / 'README.md').read_text()
    assert main(argv + ['--overwrite']) == 0
    out = capsys.readouterr().out
    assert 'cifar_resnet50.cifar10: seed 1 of [0, 1]' in out and 'cifar_resnet50_se.cifar10: already published' in out
    assert 'Seed: 1;' in (plain / 'README.md').read_text()
    registry = read_weights_cards({f'{m}.cifar10': 10 for m in PAPER}, cards)
    assert registry['cifar_resnet50.cifar10'].local_file == (plain / 'model.safetensors').resolve()


def test_publish_zoo_refuses_untrained_runs_unless_allowed(queue, tmp_path, capsys):
    q = _queue_copy(queue, tmp_path, ['cifar_resnet50-seed0', 'cifar_resnet50_se-seed0'])
    for name, error in (('cifar_resnet50-seed0', 89.5), ('cifar_resnet50_se-seed0', 40.0)):
        record = json.loads((q / name / 'run.json').read_text())
        (q / name / 'run.json').write_text(json.dumps({**record, 'test_top1_err': error}))
    argv = ['publish-zoo', str(q), '--data', str(queue['data']), '--hub-org', 'org', '--weights-dir',
            str(tmp_path / 'w'), '--cards-dir', str(tmp_path / 'c')]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and '--allow-untrained' in err
    assert 'cifar_resnet50.cifar10 (seed 0: its test top-1 error 89.50% is at chance level (>= 85%' in err
    assert 'cifar_resnet50_se' not in err and not (tmp_path / 'w').exists()  # nothing published, nothing evaluated
    assert main(argv + ['--allow-untrained']) == 0
    assert 'Not a trained model.' in (tmp_path / 'w' / 'cifar_resnet50.cifar10' / 'README.md').read_text()
    assert 'Not a trained model.' not in (tmp_path / 'w' / 'cifar_resnet50_se.cifar10' / 'README.md').read_text()


def test_publish_zoo_refuses_bad_input_in_one_line(queue, tmp_path, capsys):
    base = ['publish-zoo', str(queue['queue']), '--data', str(queue['data']), '--weights-dir', str(tmp_path / 'w'),
            '--cards-dir', str(tmp_path / 'c')]
    for extra, problem in ((['--hub-org', 'a/b'], 'must be a Hub user or organisation'),
                           (['--hub-org', 'org', '--models', 'densenet'], 'no finished run of densenet')):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert problem in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'w').exists()


def test_publish_zoo_lands_the_records_a_clone_reports_from(queue, tmp_path, capsys):
    """--records-dir: the finished runs' record files (no checkpoint) are copied, once; compare --runs reads them."""
    q = _queue_copy(queue, tmp_path, ['cifar_resnet50-seed0', 'cifar_resnet50-seed2', 'cifar_resnet50_se-seed0'])
    records = tmp_path / 'results' / 'zoo-cifar10'
    argv = ['publish-zoo', str(q), '--data', str(queue['data']), '--hub-org', 'org', '--weights-dir',
            str(tmp_path / 'w'), '--cards-dir', str(tmp_path / 'c'), '--allow-untrained', '--records-dir', str(records)]
    assert main(argv) == 0
    assert f'records: 2 runs copied into {records}/, 0 already there' in capsys.readouterr().out
    assert sorted(p.name for p in records.iterdir()) == ['cifar_resnet50-seed0', 'cifar_resnet50_se-seed0']  # not cut
    for run in records.iterdir():
        assert sorted(p.name for p in run.iterdir()) == ['args.yaml', 'run.json', 'summary.csv']
        assert all((run / f.name).read_bytes() == (q / run.name / f.name).read_bytes() for f in run.iterdir())
    assert main(argv) == 0
    assert f'records: 0 runs copied into {records}/, 2 already there' in capsys.readouterr().out
    only_se = tmp_path / 'results' / 'only-se'  # --models limits the records as it limits the weights
    assert main([*argv[:-1], str(only_se), '--models', 'cifar_resnet50_se']) == 0
    assert f'records: 1 runs copied into {only_se}/, 0 already there' in capsys.readouterr().out
    assert [p.name for p in only_se.iterdir()] == ['cifar_resnet50_se-seed0']

    # the report from the records alone equals the report from the runs
    for source, out in ((q, tmp_path / 'from-runs'), (records, tmp_path / 'from-records')):
        assert main(['compare', '--runs', str(source), '--output', str(out)]) == 0
    columns = ('model', 'seed', 'epochs', 'best_epoch', 'val_top1_err', 'test_top1_err', 'test_top1_err_flip')
    rows = [[{k: r[k] for k in columns} for r in _csv(tmp_path / name / 'runs.csv')]
            for name in ('from-runs', 'from-records')]
    assert rows[0] == rows[1] and len(rows[0]) == 2
    capsys.readouterr()

    record = json.loads((q / 'cifar_resnet50-seed0' / 'run.json').read_text())
    (q / 'cifar_resnet50-seed0' / 'run.json').write_text(json.dumps({**record, 'wall_time_s': 1.0}))  # retrained
    published = (tmp_path / 'w' / 'cifar_resnet50.cifar10' / 'model.safetensors').stat().st_mtime_ns
    assert main(argv) == 2  # refused in one line before any evaluation or copy
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'record files differ' in err and '--overwrite' in err
    assert str(records / 'cifar_resnet50-seed0') in err and 'cifar_resnet50_se-seed0' not in err
    assert (tmp_path / 'w' / 'cifar_resnet50.cifar10' / 'model.safetensors').stat().st_mtime_ns == published
    assert json.loads((records / 'cifar_resnet50-seed0' / 'run.json').read_text()) == record
    assert main(argv + ['--overwrite']) == 0
    assert json.loads((records / 'cifar_resnet50-seed0' / 'run.json').read_text())['wall_time_s'] == 1.0
