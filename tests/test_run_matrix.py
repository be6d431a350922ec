"""The run matrix (``timm_ignore.runs``): the time limit, the speed book, progress lines, checks before any work."""
import json
import math
import pathlib
import types

import pytest
from timm.utils import update_summary

import timm_ignore.runs.budget as budget_module
from timm_ignore.cli import main
from timm_ignore.runs import (
    UNKNOWN_MACHINE, EpochReport, Progress, RunSpec, SpeedBook, TimeBudget, TimeLimitError, finished_epochs,
    parse_duration, read_record, recipe_difference, run_matrix, write_record)

REPO = pathlib.Path(__file__).resolve().parents[1]
#: The fake trainers' machine and precision: their section of speed.json.
MACHINE = 'a test machine, float32'


@pytest.mark.parametrize('text, seconds', [
    ('2h30m', 9000), ('90m', 5400), ('45s', 45), ('1.5h', 5400), ('1h0m30s', 3630), (' 2H ', 7200)])
def test_durations_parse_one_way(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize('text', ['', '2x', '30', 'm', '0m', '1m2h', '-1h', '2 h'])
def test_bad_durations_are_refused_in_one_line(text):
    with pytest.raises(TimeLimitError, match='--time-limit') as refused:
        parse_duration(text)
    assert '\n' not in str(refused.value)


@pytest.mark.parametrize('command', [
    ['train-queue', '-c', str(REPO / 'train_scripts' / 'cifar10_authors.yaml'), '--models', 'cifar_resnet50'],
    ['compare', '-c', str(REPO / 'train_scripts' / 'cifar10.yaml'), '--models', 'cifar_resnet50', '--seeds', '0'],
])
def test_cli_refuses_a_bad_time_limit_before_any_work(command, tmp_path, capsys):
    argv = command + ['--data-dir', str(tmp_path / 'data'), '--output', str(tmp_path / 'out'), '--time-limit', '2x']
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--time-limit: expected a duration such as 2h30m, 90m or 45s, got '2x'" in err and '\n' not in err
    assert not (tmp_path / 'out').exists()


def test_speed_book_estimates_from_the_model_then_its_family(tmp_path):
    book = SpeedBook(tmp_path)
    assert book.estimate('cifar_resnet50', 10) == math.inf  # nothing measured here
    book.add_epoch('cifar_resnet50', 60.0, 600.0)
    book.add_epoch('cifar_resnet50', 80.0, 500.0)
    book.add_epoch('cifar_resnet50_cbam', 90.0, 450.0)
    reread = SpeedBook(tmp_path)  # speed.json in the folder
    assert reread.estimate('cifar_resnet50', 10) == pytest.approx(700.0)  # mean epoch 70 s
    assert reread.estimate('cifar_resnet50_se_ign3', 2) == pytest.approx(180.0)  # the family's slowest: 90 s
    assert reread.estimate('densenet', 2) == math.inf  # no DenseNet measured: cannot estimate


def test_speed_book_takes_no_paused_epoch_for_a_slow_model(tmp_path):
    book = SpeedBook(tmp_path)
    for seconds in (240.0, 250.0, 740.0):  # the last epoch held an 8-minute pause (a landing) of its process
        book.add_epoch('densenet', seconds, 160.0)
    assert SpeedBook(tmp_path).estimate('densenet', 10) == pytest.approx(2500.0)  # the mean would say 4100 s
    assert SpeedBook(tmp_path).estimate('densenet_se', 1) == pytest.approx(250.0)  # nor for its family


def test_speed_book_continues_an_entry_that_holds_only_means(tmp_path):
    (tmp_path / 'speed.json').write_text(json.dumps({MACHINE: dict(
        densenet=dict(epochs=3, epoch_time_s=240.0, images_per_s=180.0))}))  # written before the per-epoch lists
    book = SpeedBook(tmp_path, MACHINE)
    book.add_epoch('densenet', 900.0, 50.0)
    assert book.epoch_time('densenet') == pytest.approx(240.0)  # three epochs of the mean and one paused epoch
    assert book.speeds['densenet']['epochs'] == 4 and book.speeds['densenet']['images_per_s'] == pytest.approx(180.0)


def test_speed_book_keeps_each_machine_and_precision_apart(tmp_path):
    """A campaign whose sessions draw different machines keeps one folder: each estimates from its own epochs."""
    zen5, zen3 = 'AMD EPYC (2 cores), family 26 model 2, bfloat16', 'AMD EPYC (2 cores), family 25 model 1, float32'
    SpeedBook(tmp_path, zen5).add_epoch('densenet', 250.0, 180.0)
    assert SpeedBook(tmp_path, zen3).estimate('densenet', 1) == math.inf  # not the other machine's 250 s
    assert SpeedBook(tmp_path, zen3).estimate('densenet_se', 1) == math.inf  # nor its family guess
    SpeedBook(tmp_path, zen3).add_epoch('densenet', 1000.0, 45.0)
    assert SpeedBook(tmp_path, zen5).estimate('densenet', 2) == pytest.approx(500.0)
    assert SpeedBook(tmp_path, zen3).estimate('densenet', 2) == pytest.approx(2000.0)
    assert set(json.loads((tmp_path / 'speed.json').read_text())) == {zen5, zen3}


def test_speed_book_keeps_a_flat_file_from_before_the_sections_apart(tmp_path):
    flat = dict(densenet=dict(epochs=2, epoch_time_s=240.0, images_per_s=180.0, epoch_times_s=[240.0, 240.0],
                              epoch_images_per_s=[180.0, 180.0]))
    (tmp_path / 'speed.json').write_text(json.dumps(flat))  # its machine was not recorded
    book = SpeedBook(tmp_path, MACHINE)
    assert book.estimate('densenet', 1) == math.inf
    book.add_epoch('densenet', 900.0, 50.0)
    assert json.loads((tmp_path / 'speed.json').read_text())[UNKNOWN_MACHINE] == flat  # kept as it was
    assert SpeedBook(tmp_path, MACHINE).estimate('densenet', 1) == pytest.approx(900.0)


def test_time_budget_admits_a_run_that_fits_or_with_split_runs_one_of_whose_epochs_does(tmp_path):
    book = SpeedBook(tmp_path, MACHINE)
    book.add_epoch('densenet', 100.0, 50.0)
    whole, split = TimeBudget(250.0), TimeBudget(250.0, split_runs=True)
    assert whole.admits(book, 'densenet', 2) and not whole.admits(book, 'densenet', 3)
    assert split.admits(book, 'densenet', 3) and not TimeBudget(90.0, split_runs=True).admits(book, 'densenet', 3)
    assert not split.admits(book, 'cifar_resnet50', 1)  # no speed measured here: unknown, never fits
    assert 249.0 < whole.left_s() <= 250.0 and whole.fits(240.0) and not whole.fits(math.inf)


class _FakeTrainer:
    """Trains nothing: reports ``epochs`` epochs of ``epoch_time_s`` each and writes a record."""
    speed_key = MACHINE

    def __init__(self, epochs: int, epoch_time_s: float):
        self.epochs_, self.epoch_time_s, self.trained = epochs, epoch_time_s, []

    def epochs(self, spec):
        return self.epochs_

    def measure_epoch_time(self, spec):
        return None

    def train(self, spec, run_dir, progress, keep_going=None):
        run_dir.mkdir(parents=True, exist_ok=True)
        for epoch in range(self.epochs_):
            progress.epoch(EpochReport(spec, epoch, self.epochs_, 1.0, 1.0, 50.0, 0.1, 100.0, self.epoch_time_s, 64))
        record = dict(model=spec.model, seed=spec.seed, epochs=self.epochs_, best_epoch=0, val_top1_err=50.0,
                      test_top1_err=50.0, test_top5_err=10.0)
        write_record(run_dir, record)
        self.trained.append(spec)
        return record


def test_time_limit_starts_only_runs_that_fit_and_says_what_is_left(tmp_path):
    specs = [RunSpec('cifar_resnet50', 0), RunSpec('cifar_resnet50_se', 0), RunSpec('densenet', 0)]
    trainer, lines = _FakeTrainer(epochs=3, epoch_time_s=100.0), []
    result = run_matrix(specs, tmp_path, trainer, lines.append, time_limit_s=250.0)
    # the first run has no measured speed: started as the first of the piece; the second, estimated 3 x 100 s from
    # its family, does not fit in what is left of 250 s
    assert trainer.trained == specs[:1]
    assert result.records[0]['model'] == 'cifar_resnet50' and result.records[1:] == [None, None]
    assert result.left == lines[-1]
    assert result.left.startswith('time limit: stopping; 2 runs left (cifar_resnet50_se-seed0, densenet-seed0)')
    assert 'estimated unknown' in result.left  # DenseNet was never measured here
    assert any('no speed measured here' in line for line in lines)

    trainer = _FakeTrainer(epochs=3, epoch_time_s=100.0)  # the next piece: finished runs kept, the rest in order
    result = run_matrix(specs, tmp_path, trainer, lines.append, time_limit_s=350.0)
    assert trainer.trained == specs[1:2] and 'densenet-seed0' in result.left
    assert read_record(tmp_path / 'cifar_resnet50-seed0')['model'] == 'cifar_resnet50'


class _ProbingTrainer(_FakeTrainer):
    """A fake trainer whose probe says what an epoch of each model costs."""

    def __init__(self, epochs: int, epoch_time_s: float, probes: dict):
        super().__init__(epochs, epoch_time_s)
        self.probes, self.probed = probes, []

    def measure_epoch_time(self, spec):
        self.probed.append(spec.model)
        return self.probes[spec.model]


def test_time_limit_probes_a_model_never_trained_here(tmp_path):
    """The probe replaces the family guess: a CBAM row twice as slow as its measured twin is not started."""
    specs = [RunSpec('cifar_resnet50', 0), RunSpec('cifar_resnet50_cbam', 0), RunSpec('cifar_resnet50_se', 0)]
    trainer, lines = _ProbingTrainer(3, 100.0, {'cifar_resnet50': 100.0, 'cifar_resnet50_cbam': 200.0,
                                                'cifar_resnet50_se': 110.0}), []
    result = run_matrix(specs, tmp_path, trainer, lines.append, time_limit_s=500.0)
    # (the fake trains in no time) plain: probed 3 x 100 s fits in 500 s and trains; CBAM: probed 3 x 200 s does not
    # fit, although its family's measured 100 s per epoch would have let it start; SE is not reached (order is kept)
    assert trainer.trained == specs[:1] and trainer.probed == ['cifar_resnet50', 'cifar_resnet50_cbam']
    assert 'cifar_resnet50_cbam-seed0: speed probe on this machine: about 3m20s per epoch.' in lines
    assert result.left.startswith('time limit: stopping; 2 runs left (cifar_resnet50_cbam-seed0')
    book = SpeedBook(tmp_path, MACHINE)
    assert book.epoch_time('cifar_resnet50') == 100.0 and book.speeds['cifar_resnet50']['epochs'] == 3
    assert book.epoch_time('cifar_resnet50_cbam') == 200.0  # kept for the next piece: not probed again
    trainer = _ProbingTrainer(3, 100.0, {'cifar_resnet50_se': 110.0})
    run_matrix(specs, tmp_path, trainer, lines.append, time_limit_s=650.0)
    assert trainer.probed == ['cifar_resnet50_se'] and trainer.trained == specs[1:]


class _SplittableTrainer(_FakeTrainer):
    """A fake trainer whose epochs take ``epoch_time_s`` of a fake clock, one summary.csv row each; it resumes after
    the rows there and asks ``keep_going`` before every epoch after the first it trains in a call."""

    def __init__(self, epochs: int, epoch_time_s: float, clock: list):
        super().__init__(epochs, epoch_time_s)
        self.clock = clock

    def train(self, spec, run_dir, progress, keep_going=None):
        run_dir.mkdir(parents=True, exist_ok=True)
        start = finished_epochs(run_dir)
        for epoch in range(start, self.epochs_):
            if epoch > start and keep_going is not None and not keep_going():
                return None
            self.clock[0] += self.epoch_time_s
            update_summary(epoch, {'loss': 1.0}, {'loss': 1.0, 'top1': 50.0}, str(run_dir / 'summary.csv'))
            progress.epoch(EpochReport(spec, epoch, self.epochs_, 1.0, 1.0, 50.0, 0.1, 100.0, self.epoch_time_s, 64))
        record = dict(model=spec.model, seed=spec.seed, epochs=self.epochs_)
        write_record(run_dir, record)
        return record


def test_split_runs_train_the_epochs_that_fit_and_resume_in_the_next_piece(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(budget_module, 'time', types.SimpleNamespace(time=lambda: clock[0]))  # the time limit's clock
    SpeedBook(tmp_path, MACHINE).add_epoch('densenet', 100.0, 400.0)  # an epoch of DenseNet takes 100 s here
    specs, lines = [RunSpec('densenet', 0), RunSpec('densenet_se', 0)], []
    trainer = _SplittableTrainer(5, 100.0, clock)
    # without --split-runs a 500 s run does not start in a 250 s piece
    assert run_matrix(specs, tmp_path, trainer, lines.append, time_limit_s=250.0).left
    assert not (tmp_path / 'densenet-seed0').exists() and clock == [0.0]

    result = run_matrix(specs, tmp_path, trainer, lines.append, time_limit_s=250.0, split_runs=True)
    # epochs end at 100 s and 200 s; a third would end at 300 s: stopped before it, nothing lost
    assert 'densenet-seed0: estimated 8m20s, more than the 4m10s left: training the epochs that fit, to be resumed ' \
           'by the next piece.' in lines
    assert finished_epochs(tmp_path / 'densenet-seed0') == 2 and result.records == [None, None]
    assert 'densenet-seed0: time limit: stopped after epoch 2 of 5; its last checkpoint is kept and the next piece ' \
           'resumes it.' in lines
    # what is left: 3 DenseNet epochs and 5 of its SE twin (estimated from the family), 8 x 100 s
    assert result.left == lines[-1] and result.left.startswith(
        'time limit: stopping; 2 runs left (densenet-seed0, densenet_se-seed0), estimated about 13m20s')

    clock[0] = 1000.0
    result = run_matrix(specs, tmp_path, trainer, lines.append, time_limit_s=400.0, split_runs=True)
    # the next piece finishes DenseNet (300 s), then starts its twin, which does not fit, for the one epoch that does
    assert result.records[0] is not None and result.records[1] is None
    assert finished_epochs(tmp_path / 'densenet-seed0') == 5 and finished_epochs(tmp_path / 'densenet_se-seed0') == 1
    assert clock == [1400.0]


@pytest.mark.parametrize('command', [
    ['train-queue', '-c', str(REPO / 'train_scripts' / 'cifar10_authors.yaml'), '--models', 'cifar_resnet50'],
    ['compare', '-c', str(REPO / 'train_scripts' / 'cifar10.yaml'), '--models', 'cifar_resnet50', '--seeds', '0'],
])
def test_cli_refuses_split_runs_without_a_time_limit(command, tmp_path, capsys):
    argv = command + ['--data-dir', str(tmp_path / 'data'), '--output', str(tmp_path / 'out'), '--split-runs']
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith('error: --split-runs needs --time-limit (it splits runs at the time limit).')
    assert '\n' not in err and not (tmp_path / 'out').exists()


def test_progress_within_an_epoch_is_throttled(tmp_path):
    spec, lines = RunSpec('cifar_resnet50', 0), []
    quiet = Progress([spec], {spec: 1}, lines.append)  # 45 s between lines: none in a fast epoch
    for step in range(1, 100):
        quiet.step(spec, 0, step, 100, 500.0, step * 0.01)
    assert lines == []
    chatty = Progress([spec], {spec: 1}, lines.append, step_interval_s=0.0)
    chatty.step(spec, 0, 25, 100, 512.0, 10.0)
    assert lines == ['[1/1] cifar_resnet50 seed 0: epoch 0 step 25/100 (25%)  512 img/s  epoch time left 0m30s']


def test_recipe_difference_names_each_key():
    assert recipe_difference({'epochs': 200, 'lr': 0.1}, {'epochs': 1, 'lr': 0.1, 'amp': True}) == [
        'amp: unset -> True', 'epochs: 200 -> 1']


def test_compare_refuses_a_recipe_of_another_class_count_before_any_training(shared_data, tmp_path, capsys):
    """``compare --data-dir <CIFAR-10> -c cifar100.yaml``: refused up front, by either trainer, in the same words."""
    from _engine_fixtures import write_cifar10_slice
    data = write_cifar10_slice(shared_data, tmp_path / 'cifar10', 16, 16, 16)
    common = ['--data-dir', str(data), '--models', 'cifar_resnet50', '--seeds', '0', '--device', 'cpu']
    assert main(['compare', '-c', str(REPO / 'train_scripts' / 'cifar100.yaml'), '--output', str(tmp_path / 'a'),
                 *common]) == 2
    timm_err = capsys.readouterr().err.strip()
    engine_recipe = tmp_path / 'authors100.yaml'
    engine_recipe.write_text((REPO / 'train_scripts' / 'cifar10_authors.yaml').read_text() + '\nnum_classes: 100\n')
    assert main(['compare', '--trainer', 'engine', '-c', str(engine_recipe), '--output', str(tmp_path / 'b'),
                 *common]) == 2
    engine_err = capsys.readouterr().err.strip()
    for err in (timm_err, engine_err):
        assert '--data-dir has 10 classes but the recipe trains num_classes: 100' in err and '\n' not in err
    assert not list((tmp_path / 'a').rglob('*.pth.tar')) and not list((tmp_path / 'b').rglob('*.pth.tar'))
