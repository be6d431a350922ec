"""The side-by-side comparison table, test-at-best-epoch evaluation, the Figure 1 plot and the demo dataset."""
import csv
import json
import pathlib

import pytest
from PIL import Image

from timm_ignore.checkpoint import load_model
from timm_ignore.cli import main
from timm_ignore.evaluate import evaluate_split
from timm_ignore.data.demo import DEMO_CLASSES, make_demo_dataset
from timm_ignore.figures.loss_curves import plot_loss_curves, read_curve
from timm_ignore.paper import read_paper_tables
from timm_ignore.runs import RunRecord, figure1_panels, format_table, summarize

def _record(model: str, seed: int, top1: float, top5: float, epochs: int = 200) -> RunRecord:
    return RunRecord(model, seed, pathlib.Path(f'runs/{model}-seed{seed}'), 3, top1, top5, epochs=epochs)


def test_summary_is_mean_and_sample_std_with_paper_numbers():
    records = [_record('cifar_resnet50_se_ign3', 0, 30.0, 10.0), _record('cifar_resnet50_se_ign3', 1, 32.0, 11.0),
               _record('cifar_resnet50', 0, 35.0, 12.0)]
    rows = summarize(records, 'cifar100', read_paper_tables())
    ign3, plain = rows
    assert (ign3.model, ign3.runs, ign3.top1_err, ign3.top5_err) == ('cifar_resnet50_se_ign3', 2, 31.0, 10.5)
    assert ign3.top1_std == pytest.approx(2 ** 0.5)  # sample std of 30, 32
    assert ign3.paper_top1 == 30.95  # spec section 7 headline
    assert plain.top1_std is None and plain.paper_top1 == 34.06 and plain.paper_top1_std == 1.02
    table = format_table(rows, 'title')
    assert '| cifar_resnet50_se_ign3 | 2 | 200 | 31.00 ± 1.41 | 10.50 ± 0.71 | 30.95' in table
    assert '| cifar_resnet50 | 1 | 200 | 35.00 | 12.00 | 34.06 ± 1.02 | 10.97 ± 0.54 | +0.94 |' in table


def test_runs_shorter_than_the_papers_get_no_difference_and_say_so():
    records = [_record('cifar_resnet50', 0, 92.0, 60.0, epochs=1), _record('cifar_resnet50_se', 0, 8.0, 1.0)]
    short, full = summarize(records, 'cifar10', read_paper_tables())
    assert short.epochs == '1' and short.paper_top1 is not None and short.top1_diff is None
    assert full.epochs == '200' and full.top1_diff == pytest.approx(8.0 - full.paper_top1)
    table = format_table([short, full], 't')
    assert '| cifar_resnet50 | 1 | 1 | 92.00 | 60.00 |' in table and '— (1 vs 200 epochs) |' in table
    assert "The paper's numbers are after 200 epochs; rows of runs with 1 epochs" in table


def test_each_row_is_compared_with_its_twin_measured_and_in_the_paper():
    """The paper's claims are differences: an ignore variant against its explicit twin, explicit attention against
    the plain network. They are reported among runs of one recipe, at any number of epochs."""
    records = [_record('cifar_resnet50', 0, 15.0, 1.0, epochs=16),
               _record('cifar_resnet50_se', 0, 14.0, 1.0, epochs=16),
               _record('cifar_resnet50_se_ign1', 0, 14.5, 1.0, epochs=16),
               _record('cifar_resnet50_cbam_ign3', 0, 13.0, 1.0, epochs=16)]
    plain, se, ign1, cbam_ign3 = summarize(records, 'cifar10', read_paper_tables())
    assert plain.twin == '' and plain.twin_diff is None
    assert (se.twin, se.twin_diff) == ('cifar_resnet50', pytest.approx(-1.0))
    assert se.paper_twin_diff == pytest.approx(7.63 - 8.27)
    assert (ign1.twin, ign1.twin_diff) == ('cifar_resnet50_se', pytest.approx(0.5))
    assert ign1.paper_twin_diff == pytest.approx(7.42 - 7.63)
    assert cbam_ign3.twin == 'cifar_resnet50_cbam' and cbam_ign3.twin_diff is None  # no run of the twin
    assert cbam_ign3.paper_twin_diff is not None
    table = format_table([plain, se, ign1, cbam_ign3], 't')
    assert '| — (16 vs 200 epochs) | +0.50 (paper -0.21) vs cifar_resnet50_se |' in table
    assert '| -1.00 (paper -0.64) vs cifar_resnet50 |' in table
    assert f'| — (paper {cbam_ign3.paper_twin_diff:+.2f}) vs cifar_resnet50_cbam |' in table
    assert "top-1 − twin: the row's mean minus" in table


def test_figure1_has_a_panel_per_explicit_attention_model_with_an_ignore_variant():
    models = ['cifar_resnet50', 'cifar_resnet50_se', 'cifar_resnet50_se_ign1', 'cifar_resnet50_se_ign3',
              'cifar_resnet50_cbam_ign2', 'densenet_cbam.cifar10', 'densenet_cbam_ign1.cifar10', 'densenet_se_ign2']
    assert figure1_panels(models) == {
        'cifar_resnet50_se': ['cifar_resnet50_se', 'cifar_resnet50_se_ign1', 'cifar_resnet50_se_ign3'],
        'densenet_cbam.cifar10': ['densenet_cbam.cifar10', 'densenet_cbam_ign1.cifar10'],
    }  # no panel for a variant whose explicit twin is missing, nor for an explicit model alone
    assert figure1_panels(['cifar_resnet50', 'cifar_resnet50_se']) == {}


def test_no_paper_number_for_unknown_rows():
    rows = summarize([_record('not_a_zoo_model', 0, 5.0, 1.0)], 'cifar100', read_paper_tables())
    assert rows[0].paper_top1 is None
    assert '| not_a_zoo_model | 1 | 200 | 5.00 | 1.00 | — | — |' in format_table(rows, 't')


def _write_summary(path: pathlib.Path, losses: list[float]) -> pathlib.Path:
    path.mkdir(parents=True)
    with open(path / 'summary.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', 'lr'])
        writer.writerows([i, 2.0, loss, 50.0, 90.0, 0.1] for i, loss in enumerate(losses))
    return path


def test_loss_plot_reads_summaries_and_writes_png(tmp_path):
    a = _write_summary(tmp_path / 'a', [2.0, 1.5, 1.2])
    b = _write_summary(tmp_path / 'b', [2.1, 1.4, 1.0])
    assert read_curve(a) == ([0, 1, 2], [2.0, 1.5, 1.2])
    assert read_curve(b / 'summary.csv', 'eval_top1') == ([0, 1, 2], [50.0, 50.0, 50.0])
    png = plot_loss_curves({'SE': [a, b], 'plain': [a]}, tmp_path / 'fig' / 'loss.png')
    with Image.open(png) as image:
        assert image.format == 'PNG' and image.size[0] > 300
    with pytest.raises(ValueError, match="no 'val_loss' column; its columns: epoch, train_loss, eval_loss"):
        read_curve(a, 'val_loss')


def test_plot_loss_cli(tmp_path, capsys):
    a = _write_summary(tmp_path / 'a', [2.0, 1.5])
    assert main(['plot-loss', f'SE={a}', str(a / 'summary.csv'), '-o', str(tmp_path / 'f.png')]) == 0
    assert (tmp_path / 'f.png').is_file()
    assert main(['plot-loss', str(a), '--metric', 'nope', '-o', str(tmp_path / 'g.png')]) == 2
    assert "no 'nope' column" in capsys.readouterr().err


def test_demo_dataset_is_deterministic_and_refuses_foreign_folder(tmp_path):
    first = make_demo_dataset(tmp_path / 'a', per_class=(3, 2, 1))
    second = make_demo_dataset(tmp_path / 'b', per_class=(3, 2, 1))
    files = sorted(p.relative_to(first) for p in first.rglob('*.png'))
    assert len(files) == len(DEMO_CLASSES) * 6
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert make_demo_dataset(first, per_class=(3, 2, 1)) == first  # reused as is
    with pytest.raises(FileExistsError, match='not this demo dataset'):
        make_demo_dataset(first, per_class=(4, 2, 1))


def test_compare_end_to_end_on_tiny_demo(tmp_path, capsys):
    argv = ['compare', '--output', str(tmp_path), '--models', 'cifar_resnet50', 'cifar_resnet50_se_ign3',
            '--seeds', '0', '1', '--epochs', '1', '--device', 'cpu', '--demo-per-class', '8', '4', '4']
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert 'DEMO dataset' in out and '| cifar_resnet50_se_ign3 | 2 |' in out
    with open(tmp_path / 'runs.csv', newline='') as f:
        runs = list(csv.DictReader(f))
    assert [(r['model'], r['seed']) for r in runs] == [
        ('cifar_resnet50', '0'), ('cifar_resnet50', '1'), ('cifar_resnet50_se_ign3', '0'),
        ('cifar_resnet50_se_ign3', '1')]
    for run in runs:  # tested at the best validation epoch: model_best.pth.tar, the epoch of the best eval_top1
        run_dir = pathlib.Path(run['run_dir'])
        with open(run_dir / 'summary.csv', newline='') as f:
            summary = list(csv.DictReader(f))
        best = max(summary, key=lambda row: float(row['eval_top1']))
        assert run['best_epoch'] == best['epoch']
        model, checkpoint = load_model(run_dir)
        assert checkpoint.epoch == int(best['epoch'])
        direct = evaluate_split(model, tmp_path / 'demo-data' / 'test')
        assert float(run['test_top1_err']) == pytest.approx(direct.top1_err)
        assert float(run['test_top5_err']) == pytest.approx(direct.top5_err)
    assert (tmp_path / 'results.md').read_text() in out
    assert (tmp_path / 'val_loss.png').is_file()


def test_compare_needs_a_recipe_for_real_data(tmp_path, capsys):
    assert main(['compare', '--data-dir', str(tmp_path), '--output', str(tmp_path / 'o')]) == 2
    assert '--data-dir needs a recipe' in capsys.readouterr().err


def test_compare_rerun_keeps_finished_runs_and_continues_cut_off_ones(tmp_path, capsys):
    argv = ['compare', '--output', str(tmp_path), '--models', 'cifar_resnet50', '--seeds', '0', '1', '--device', 'cpu',
            '--demo-per-class', '8', '4', '4', '--epochs', '1']
    assert main(argv) == 0
    runs = tmp_path / 'runs'
    finished = {p: p.stat().st_mtime_ns for p in runs.rglob('*.pth.tar')}
    assert main(argv) == 0  # the same command again: nothing is trained
    assert 'finished earlier, kept' in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in runs.rglob('*.pth.tar')} == finished
    epoch0 = (runs / 'cifar_resnet50-seed1' / 'summary.csv').read_text()
    piece1 = json.loads((runs / 'cifar_resnet50-seed1' / 'epoch_times.json').read_text())
    assert main(argv[:-1] + ['2']) == 0  # two epochs asked: each run continues from its last.pth.tar
    out = capsys.readouterr().out
    assert 'seed 0: epoch 1/1' in out and 'epoch 0/1' not in out and 'ETA' in out
    summary = (runs / 'cifar_resnet50-seed1' / 'summary.csv').read_text()
    assert summary.startswith(epoch0) and summary.count('\n') == epoch0.count('\n') + 1
    # the record's times are both pieces': epoch 0 from the first command, epoch 1 from the second
    times = json.loads((runs / 'cifar_resnet50-seed1' / 'epoch_times.json').read_text())
    assert times['0'] == piece1['0'] and list(times) == ['0', '1']
    record = json.loads((runs / 'cifar_resnet50-seed1' / 'run.json').read_text())
    assert record['wall_time_s'] == round(times['0']['wall_s'] + times['1']['wall_s'], 1)
    assert record['train_time_s'] == round(times['0']['train_s'] + times['1']['train_s'], 1)
