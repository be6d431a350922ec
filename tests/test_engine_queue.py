"""The engine on a slice of the real CIFAR-10 (JPEG copy): outputs, resume after a kill, bad input, the CLI."""
import csv
import json
import math
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import timm
import torch
import yaml

from _engine_fixtures import write_cifar10_slice
from timm_ignore.cli import main
from timm_ignore.engine import EngineRecipe, EngineTrainer, QueueError, RunSpec, check_queue, run_queue
from timm_ignore.engine.data import load_image_folder
from timm_ignore.runs import finished_epochs

AUTHORS_RECIPE = pathlib.Path(__file__).resolve().parents[1] / 'train_scripts' / 'cifar10_authors.yaml'
#: The authors' recipe shortened for tests: 3 epochs of 4 steps, a depth-8 CIFAR ResNet.
SMALL = {'epochs': 3, 'batch_size': 64, 'validation_batch_size': 64, 'model_kwargs': {'depth': 8},
         'decay_milestones': [2], 'amp': False}
RUNS = [RunSpec('cifar_resnet50_se', 0), RunSpec('cifar_resnet50_cbam_ign3', 1)]


@pytest.fixture(scope='module')
def data_dir(shared_data, tmp_path_factory):
    return write_cifar10_slice(shared_data, tmp_path_factory.mktemp('cifar10'), 256, 128, 128)


@pytest.fixture(scope='module')
def recipe_file(tmp_path_factory):
    values = yaml.safe_load(AUTHORS_RECIPE.read_text())
    values.update(SMALL)
    path = tmp_path_factory.mktemp('recipe') / 'small.yaml'
    path.write_text(yaml.safe_dump(values))
    return path


def _queue_script(recipe_file, data_dir, output) -> list[str]:
    code = (
        'import pathlib, sys, torch\n'
        'from timm_ignore.engine import EngineRecipe, RunSpec, run_queue\n'
        'torch.set_num_threads(1)\n'
        f'recipe = EngineRecipe.from_yaml({str(recipe_file)!r})\n'
        f'runs = [RunSpec(m, s) for m, s in {[(r.model, r.seed) for r in RUNS]!r}]\n'
        f'run_queue(runs, recipe, pathlib.Path({str(data_dir)!r}), pathlib.Path({str(output)!r}), torch.device("cpu"),'
        ' recipe_name="small.yaml", log=lambda line: print(line, flush=True))\n')
    return [sys.executable, '-c', code]


def _run_to_end(recipe_file, data_dir, output) -> str:
    done = subprocess.run(_queue_script(recipe_file, data_dir, output), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope='module')
def reference(recipe_file, data_dir, tmp_path_factory):
    """The queue trained without interruption (in a subprocess, as the killed one)."""
    output = tmp_path_factory.mktemp('reference')
    _run_to_end(recipe_file, data_dir, output)
    return output


def test_run_folder_has_train_py_layout_and_a_record(reference, data_dir):
    run_dir = reference / RUNS[0].name
    assert {'args.yaml', 'summary.csv', 'last.pth.tar', 'model_best.pth.tar', 'run.json'} <= set(os.listdir(run_dir))
    with open(run_dir / 'summary.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [int(r['epoch']) for r in rows] == [0, 1, 2]
    assert set(rows[0]) == {'epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', 'lr'}
    assert [float(r['lr']) for r in rows] == pytest.approx([0.1, 0.02, 0.02])  # milestone 2: from epoch index 1
    record = json.loads((run_dir / 'run.json').read_text())
    best = max(range(3), key=lambda i: float(rows[i]['eval_top1']))
    assert record['best_epoch'] == best
    assert record['val_top1_err'] == pytest.approx(100 - float(rows[best]['eval_top1']), abs=1e-3)
    assert 0 <= record['test_top1_err'] <= 100 and record['images'] == {'train': 256, 'validation': 128, 'test': 128}
    assert record['recipe'] == 'small.yaml' and record['train_images_per_s'] > 0 and record['wall_time_s'] > 0
    assert 'JPEG copy' in record['dataset']['source']  # the data folder's cifar_split.json
    for key in ('device', 'code_version', 'torch', 'timm', 'recipe_fingerprint'):
        assert record[key]
    args = yaml.safe_load((run_dir / 'args.yaml').read_text())
    assert args['model'] == RUNS[0].model and args['model_kwargs'] == {'depth': 8} and args['num_classes'] == 10
    best_checkpoint = torch.load(run_dir / 'model_best.pth.tar', weights_only=True)
    assert best_checkpoint['epoch'] == best and best_checkpoint['arch'] == RUNS[0].model


def test_run_folder_is_read_by_the_project_checkpoint_tools(reference):
    from timm_ignore.checkpoint import load_model
    model, _ = load_model(reference / RUNS[1].name)
    assert model.pretrained_cfg['tag'] == 'cifar10'  # the run's class count picks the tag
    best = torch.load(reference / RUNS[1].name / 'model_best.pth.tar', weights_only=True)['state_dict']
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())


@pytest.mark.slow
def test_killed_queue_resumes_to_the_uninterrupted_result(reference, recipe_file, data_dir, tmp_path):
    """Killed (SIGKILL) in the middle of the first run, then started again: bit-identical runs, each trained once."""
    output = tmp_path / 'queue'
    process = subprocess.Popen(_queue_script(recipe_file, data_dir, output), stdout=subprocess.PIPE, text=True)
    first_epoch = output / RUNS[0].name / 'last.pth.tar'
    deadline = time.monotonic() + 300
    while not first_epoch.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert alive, f'the queue ended (exit code {process.returncode}) before it could be killed'
    assert first_epoch.is_file(), 'killed before the first run wrote last.pth.tar: nothing to resume from'
    assert not (output / RUNS[0].name / 'run.json').exists(), 'killed too late to test a resume'
    killed_at = torch.load(first_epoch, weights_only=True)['epoch']  # the last epoch the killed child finished
    assert 0 <= killed_at < SMALL['epochs']
    log = _run_to_end(recipe_file, data_dir, output)
    assert '0 of 2 runs already finished' in log
    assert f'{RUNS[0].model} seed {RUNS[0].seed}: resuming from its last checkpoint at epoch {killed_at + 1}/' in log
    for run in RUNS:
        ours, theirs = output / run.name, reference / run.name
        assert (ours / 'summary.csv').read_text() == (theirs / 'summary.csv').read_text()
        for name in ('last.pth.tar', 'model_best.pth.tar'):
            a = torch.load(ours / name, weights_only=True)['state_dict']
            b = torch.load(theirs / name, weights_only=True)['state_dict']
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (run.name, name)
        ours_record, their_record = (json.loads((d / 'run.json').read_text()) for d in (ours, theirs))
        for key in ('best_epoch', 'val_top1_err', 'test_top1_err', 'test_loss'):
            assert ours_record[key] == their_record[key]
    # a finished queue is not trained again
    stamps = {run: (output / run.name / 'run.json').stat().st_mtime_ns for run in RUNS}
    log = _run_to_end(recipe_file, data_dir, output)
    assert '2 of 2 runs already finished' in log
    assert stamps == {run: (output / run.name / 'run.json').stat().st_mtime_ns for run in RUNS}


class _Stop(Exception):
    pass


def test_record_names_the_code_of_every_piece_that_trained_the_run(recipe_file, data_dir, tmp_path, monkeypatch):
    """The code version is the one each training process started with, not the checkout's when the run ends: a run
    cut after one epoch and resumed by newer code names both, in order."""
    import timm_ignore.engine.run as engine_run
    from timm_ignore.engine import train_run

    def stop_after_first_epoch(report):
        raise _Stop

    recipe = EngineRecipe.from_yaml(recipe_file, {'epochs': 2})
    data, run_dir = load_image_folder(data_dir), tmp_path / 'run'
    monkeypatch.setattr(engine_run, 'code_version', lambda: 'code A')
    with pytest.raises(_Stop):
        train_run(RUNS[0], recipe, data, run_dir, on_epoch=stop_after_first_epoch)
    monkeypatch.setattr(engine_run, 'code_version', lambda: 'code B')
    assert train_run(RUNS[0], recipe, data, run_dir)['code_version'] == 'code A; then code B'
    assert json.loads((run_dir / 'run.json').read_text())['code_version'] == 'code A; then code B'


def test_run_stopped_by_keep_going_resumes_to_the_uninterrupted_result(recipe_file, data_dir, tmp_path):
    """A time limit's split run: asked before every epoch after the first, stopped after epoch 1 with its checkpoint
    and no record, then resumed by a later call to the same weights and record as one uninterrupted call."""
    from timm_ignore.engine import train_run

    recipe = EngineRecipe.from_yaml(recipe_file)
    data = load_image_folder(data_dir)
    asked = []

    def keep_going():
        asked.append(len(asked))
        return len(asked) < 2  # yes before epoch 1, no before epoch 2

    split, whole = tmp_path / 'split', tmp_path / 'whole'
    assert train_run(RUNS[0], recipe, data, split, keep_going=keep_going) is None
    assert asked == [0, 1]  # not asked before epoch 0, the first this call trained
    assert torch.load(split / 'last.pth.tar', weights_only=True)['epoch'] == 1
    assert not (split / 'run.json').exists()
    resumed = train_run(RUNS[0], recipe, data, split, keep_going=lambda: True)
    uninterrupted = train_run(RUNS[0], recipe, data, whole)
    assert (split / 'summary.csv').read_text() == (whole / 'summary.csv').read_text()
    a = torch.load(split / 'last.pth.tar', weights_only=True)['state_dict']
    b = torch.load(whole / 'last.pth.tar', weights_only=True)['state_dict']
    assert all(torch.equal(a[k], b[k]) for k in b)
    for key in ('best_epoch', 'val_top1_err', 'test_top1_err', 'test_loss'):
        assert resumed[key] == uninterrupted[key]


def test_runs_landed_in_a_records_folder_are_not_trained_again(reference, recipe_file, data_dir, tmp_path):
    """A fresh clone: the run folders are gone, the records publish-zoo landed are there. The landed run is kept with
    its landed record, the other one trains; the same records folder refuses a queue of another recipe."""
    from timm_ignore.runs import copy_run_records

    records_dir = tmp_path / 'results'
    copy_run_records(reference, records_dir, models={RUNS[0].model})
    lines, fresh = [], tmp_path / 'fresh'
    recipe = EngineRecipe.from_yaml(recipe_file)
    records = run_queue(RUNS, recipe, data_dir, fresh, torch.device('cpu'), recipe_name='small.yaml',
                        log=lines.append, landed=records_dir)
    assert records[0] == json.loads((reference / RUNS[0].name / 'run.json').read_text())
    assert not (fresh / RUNS[0].name).exists()  # not trained again
    assert records[1]['model'] == RUNS[1].model and (fresh / RUNS[1].name / 'run.json').is_file()
    assert lines[0] == f'1 of 2 runs already finished (1 landed in {records_dir}); 1 to train on cpu (1 at a time).'
    assert any(f'finished earlier, its record landed in {records_dir}; not trained again' in line for line in lines)
    with pytest.raises(QueueError, match='landed from a run of another recipe; leave out --records-dir'):
        _check(recipe=EngineRecipe.from_yaml(recipe_file, {'epochs': 4}), data_dir=data_dir, output=tmp_path / 'q',
               landed=records_dir)
    with pytest.raises(QueueError, match='no such folder of landed records'):
        _check(recipe=recipe, data_dir=data_dir, output=tmp_path / 'q', landed=tmp_path / 'nothing')
    assert not (tmp_path / 'q').exists()


def test_a_landed_run_of_fewer_epochs_does_not_count_as_finished(reference, tmp_path):
    """A landed record of fewer epochs than the queue's (a smoke run) leaves its run to train, and is not returned
    as the run's record."""
    from timm_ignore.runs import copy_run_records, matrix_records, plan_matrix

    records_dir = tmp_path / 'results'
    copy_run_records(reference, records_dir)
    planned = plan_matrix(RUNS, tmp_path / 'fresh', lambda spec: 4, records_dir)
    assert [(p.finished, p.landed) for p in planned] == [(False, False), (False, False)]
    assert matrix_records(planned, records_dir) == [None, None]
    planned = plan_matrix(RUNS, tmp_path / 'fresh', lambda spec: 3, records_dir)  # the reference's 3 epochs
    assert [(p.finished, p.landed) for p in planned] == [(True, True), (True, True)]
    assert [r['model'] for r in matrix_records(planned, records_dir)] == [r.model for r in RUNS]


def test_data_is_decoded_in_timm_class_order(data_dir):
    data = load_image_folder(data_dir)
    assert data.classes[0] == 'airplane' and len(data.classes) == 10
    assert data.train.images.shape == (256, 32, 32, 3) and data.train.images.dtype == torch.uint8
    assert data.mean_image.shape == (3, 32, 32)
    assert torch.allclose(data.mean_image.double(),
                          data.train.images.double().mean(0).permute(2, 0, 1) / 255, atol=1e-6)


def _check(recipe=None, runs=RUNS, data_dir=None, output=None, device='cpu', parallel=1, landed=None):
    check_queue(runs, recipe or EngineRecipe(), data_dir, output, torch.device(device), parallel, landed)


def test_bad_input_is_refused_before_any_work(data_dir, reference, recipe_file, tmp_path):
    with pytest.raises(QueueError, match='unknown model cifar_resnet51'):
        _check(runs=[RunSpec('cifar_resnet51', 0)], data_dir=data_dir, output=tmp_path / 'q')
    with pytest.raises(QueueError, match='does not exist'):
        _check(data_dir=tmp_path / 'nothing', output=tmp_path / 'q')
    (tmp_path / 'flat' / 'train' / 'cat').mkdir(parents=True)
    with pytest.raises(QueueError, match='has no validation/'):
        _check(data_dir=tmp_path / 'flat', output=tmp_path / 'q')
    with pytest.raises(QueueError, match='has 10 classes but the recipe trains num_classes: 100'):
        _check(recipe=EngineRecipe(num_classes=100), data_dir=data_dir, output=tmp_path / 'q')
    with pytest.raises(QueueError, match='holds runs of another recipe') as refused:
        _check(recipe=EngineRecipe.from_yaml(recipe_file, {'epochs': 4}), data_dir=data_dir, output=reference)
    assert 'epochs: 3 -> 4' in str(refused.value) and 'start anew' in str(refused.value)  # what differs, and how out
    _check(recipe=EngineRecipe.from_yaml(recipe_file, {'channels_last': False, 'amp_dtype': 'float16'}),
           data_dir=data_dir, output=reference)  # how the arithmetic is done is not the recipe: accepted
    moved = tmp_path / 'moved' / RUNS[0].name  # a finished run's folder, without the queue.json that held it
    moved.mkdir(parents=True)
    (moved / 'run.json').write_bytes((reference / RUNS[0].name / 'run.json').read_bytes())
    with pytest.raises(QueueError, match='was trained with another recipe; give another --output'):
        _check(recipe=EngineRecipe.from_yaml(recipe_file, {'epochs': 4}), data_dir=data_dir, output=moved.parent)
    cut_off = tmp_path / 'cut' / RUNS[0].name  # trained in float32 up to its last checkpoint, then cut off
    shutil.copytree(reference / RUNS[0].name, cut_off)
    (cut_off / 'run.json').unlink()
    with pytest.raises(QueueError, match='started in float32 and would resume in bfloat16') as refused:
        _check(recipe=EngineRecipe.from_yaml(recipe_file, {'amp': True}), data_dir=data_dir, output=cut_off.parent)
    assert 'Resume it with --set amp=false' in str(refused.value)
    _check(recipe=EngineRecipe.from_yaml(recipe_file), data_dir=data_dir, output=cut_off.parent)  # same precision
    if not torch.cuda.is_available():
        with pytest.raises(QueueError, match='no CUDA GPU'):
            _check(data_dir=data_dir, output=tmp_path / 'q', device='cuda')
    assert not (tmp_path / 'q').exists()  # nothing was created


@pytest.mark.parametrize('argv, message', [
    (['--models', 'densenet_se*', '--config', 'missing.yaml'], 'cannot read recipe'),
    (['--models', 'no_such_model_*'], "matches no zoo model"),
    (['--models', 'cifar_resnet50', '--epochs', '0'], 'epochs must be at least 1'),
    (['--models', 'cifar_resnet50', '--records-dir', 'no/such/records'],
     '--records-dir no/such/records: no such folder of landed records.'),
])
def test_cli_errors_are_one_line(argv, message, data_dir, tmp_path, capsys):
    base = ['train-queue', '--config', str(AUTHORS_RECIPE), '--data-dir', str(data_dir), '--output', str(tmp_path)]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and '\n' not in err and 'Traceback' not in err


def test_cli_zoo_tag_is_the_papers_cifar10_rows():
    from timm_ignore.cli.train_queue import _model_names

    class Args:
        zoo, models = 'cifar10', None
    names = _model_names(Args)
    assert len(names) == 26 and len({n.split('_')[0] for n in names}) == 2


@pytest.mark.slow
def test_parallel_workers_train_every_run_once(recipe_file, data_dir, tmp_path):
    lines = []
    recipe = EngineRecipe.from_yaml(recipe_file, {'epochs': 1})
    records = run_queue(RUNS, recipe, data_dir, tmp_path, torch.device('cpu'), parallel=2, log=lines.append)
    assert [(r['model'], r['seed']) for r in records] == [(r.model, r.seed) for r in RUNS]
    assert sum(line.startswith('done ') for line in lines) == 2
    assert any('queue' in line and 'ETA' in line for line in lines)


def _book_speeds(output, recipe, data_dir, parallel, epoch_times):
    """Write ``speed.json`` as if each model had trained five epochs of ``epoch_times[model]`` seconds here, ``parallel``
    runs at once; returns that section's key."""
    key = EngineTrainer(recipe, 'small.yaml', data_dir, torch.device('cpu'), parallel=parallel).speed_key
    entries = {model: dict(epochs=5, epoch_time_s=t, images_per_s=1.0, epoch_times_s=[t] * 5,
                           epoch_images_per_s=[1.0] * 5) for model, t in epoch_times.items()}
    output.mkdir(parents=True, exist_ok=True)
    (output / 'speed.json').write_text(json.dumps({key: entries}))
    return key


@pytest.mark.slow
def test_parallel_workers_get_runs_in_order_while_they_fit(recipe_file, data_dir, tmp_path):
    """A time limit with workers: the first run that does not fit stops the handing out, the runs after it too."""
    lines, fast, slow = [], 'cifar_resnet50_se', 'cifar_resnet50_cbam_ign3'
    recipe = EngineRecipe.from_yaml(recipe_file, {'epochs': 1})
    key = _book_speeds(tmp_path, recipe, data_dir, 2, {fast: 0.001, slow: 1e6})
    runs = [RunSpec(fast, 0), RunSpec(slow, 0), RunSpec(fast, 1)]
    records = run_queue(runs, recipe, data_dir, tmp_path, torch.device('cpu'), parallel=2, log=lines.append,
                        time_limit_s=3600.0)
    assert records[0]['model'] == fast and records[1:] == [None, None]
    assert not runs[1].folder(tmp_path).exists() and not runs[2].folder(tmp_path).exists()
    assert key.endswith('float32, 2 runs at once')
    assert json.loads((tmp_path / 'speed.json').read_text())[key][fast]['epochs'] == 6  # its epoch, in its section
    assert lines[-1].startswith(f'time limit: stopping; 2 runs left ({runs[1].name}, {runs[2].name}), estimated ')


@pytest.mark.slow
def test_parallel_split_runs_stop_before_an_epoch_that_would_not_fit(recipe_file, data_dir, tmp_path):
    """Each worker asks before every epoch after its first; the runs stop with their checkpoints kept.

    The booked epoch time leaves one epoch 2 s of slack when the runs are handed out (within a second of the start)
    and none after the first epoch (a worker process takes longer than that to start and train it).
    """
    lines, model, limit = [], 'cifar_resnet50_se', 100.0
    recipe = EngineRecipe.from_yaml(recipe_file)  # 3 epochs
    _book_speeds(tmp_path, recipe, data_dir, 2, {model: limit - 2.0})
    runs = [RunSpec(model, 0), RunSpec(model, 1), RunSpec(model, 2)]
    records = run_queue(runs, recipe, data_dir, tmp_path, torch.device('cpu'), parallel=2, log=lines.append,
                        time_limit_s=limit, split_runs=True)
    assert records == [None, None, None]
    for spec in runs[:2]:
        assert finished_epochs(spec.folder(tmp_path)) == 1 and (spec.folder(tmp_path) / 'last.pth.tar').is_file()
        assert f'{spec.name}: time limit: stopped after epoch 1 of 3; its last checkpoint is kept and the next piece ' \
               f'resumes it.' in lines
    assert not runs[2].folder(tmp_path).exists()  # not handed out after a split run stopped
    assert lines[-1].startswith(f'time limit: stopping; 3 runs left ({", ".join(r.name for r in runs)}), estimated ')


def test_speed_probe_estimates_an_epoch_of_the_run(recipe_file, data_dir, tmp_path):
    """A few timed steps and one validation batch, scaled to an epoch, against a real epoch of the same run."""
    from timm_ignore.engine import measure_epoch_time, train_run
    recipe = EngineRecipe.from_yaml(recipe_file, {'epochs': 1})
    data = load_image_folder(data_dir)  # 4 steps of 64 and two validation batches of 64 per epoch
    epochs = []
    # a first probe compiles what the model compiles (CBAM's CPU loops), so that the epoch and the probe compared
    # below both see warm kernels and the epoch's time holds no one-off compilation
    measure_epoch_time(RUNS[1], recipe, data, steps=1, warmup_steps=1)
    train_run(RUNS[1], recipe, data, tmp_path / RUNS[1].name, on_epoch=epochs.append)
    probe = measure_epoch_time(RUNS[1], recipe, data, steps=2, warmup_steps=1)
    assert list(tmp_path.iterdir()) == [tmp_path / RUNS[1].name]  # the probe writes nothing
    assert 0.4 < probe / epochs[0].epoch_time_s < 2.5, (probe, epochs[0].epoch_time_s)


def test_a_time_limited_queue_says_it_is_probing_before_it_probes(recipe_file, data_dir, tmp_path):
    """The probe of a first run decodes the data and trains a few steps: minutes on a slow machine, said up front."""
    lines = []
    recipe = EngineRecipe.from_yaml(recipe_file, {'epochs': 1})
    run_queue(RUNS[:1], recipe, data_dir, tmp_path, torch.device('cpu'), time_limit_s=3600.0, log=lines.append)
    said = [i for i, line in enumerate(lines) if line == (
        f'{RUNS[0].name}: no speed measured here for {RUNS[0].model}: timing a few training steps, after decoding '
        f'the images of {data_dir}.')]
    probed = [i for i, line in enumerate(lines) if 'speed probe on this machine' in line]
    assert len(said) == 1 and len(probed) == 1 and said[0] < probed[0], lines


def test_speed_probe_fits_in_a_short_epoch(recipe_file, data_dir):
    """Fewer steps in an epoch than the probe's default: it times the ones there are; one step: no estimate."""
    from timm_ignore.engine import measure_epoch_time
    data = load_image_folder(data_dir)  # 256 training images
    four_steps = EngineRecipe.from_yaml(recipe_file, {'epochs': 1, 'batch_size': 64})
    assert measure_epoch_time(RUNS[0], four_steps, data) > 0  # default: 3 warm-up and 8 timed steps
    assert measure_epoch_time(RUNS[0], EngineRecipe.from_yaml(recipe_file, {'epochs': 1, 'batch_size': 256}),
                              data) is None


def test_speed_probe_ignores_one_stalled_step(recipe_file, data_dir, monkeypatch):
    """A process paused during one timed step (another job, a SIGSTOP) must not multiply that pause by an epoch."""
    from timm_ignore.engine import measure_epoch_time
    from timm_ignore.engine import run as engine_run
    recipe = EngineRecipe.from_yaml(recipe_file, {'epochs': 1})
    data = load_image_folder(data_dir)  # 4 steps per epoch
    train_epoch = engine_run._train_epoch

    def stall_second_timed_step(*args: Any) -> Any:
        on_step = args[-1]

        def stalled(step: int, *rest: Any) -> None:
            if step == 3:
                time.sleep(3.0)
            on_step(step, *rest)
        return train_epoch(*args[:-1], stalled)

    plain = measure_epoch_time(RUNS[0], recipe, data, steps=3, warmup_steps=1)
    monkeypatch.setattr(engine_run, '_train_epoch', stall_second_timed_step)
    stalled = measure_epoch_time(RUNS[0], recipe, data, steps=3, warmup_steps=1)
    # a mean over the three timed steps would add 3 s / 3 per step, 4 s to the 4-step epoch
    assert stalled - plain < 1.5, (plain, stalled)


def test_engine_reports_progress_within_an_epoch(recipe_file, data_dir, tmp_path):
    from timm_ignore.engine import train_run
    steps = []
    recipe = EngineRecipe.from_yaml(recipe_file, {'epochs': 1})
    record = train_run(RUNS[0], recipe, load_image_folder(data_dir), tmp_path / RUNS[0].name,
                       on_step=lambda *step: steps.append(step))
    per_epoch = 256 // recipe.batch_size
    assert [s[2:4] for s in steps] == [(i, per_epoch) for i in range(1, per_epoch + 1)]  # (step, steps) after each
    assert all(s[0] == RUNS[0] and s[1] == 0 and s[4] > 0 and s[5] > 0 for s in steps)  # run, epoch, img/s, time
    assert record['test_top1_err_flip'] is not None and record['epochs'] == 1


def test_zero_init_last_and_pad_crop_train_through_the_engine(recipe_file, data_dir, tmp_path):
    """At lr 0 the weights stay as initialised: every residual branch's last BN scale is zero, the rest as timm builds.

    The epoch runs through the whole-pixel shift (``pad_crop``), so its data path is the engine's too.
    """
    from timm_ignore.engine import train_run
    recipe = EngineRecipe.from_yaml(recipe_file, {'epochs': 1, 'lr': 0.0, 'zero_init_last': True,
                                                  'shift_mode': 'pad_crop'})
    record = train_run(RUNS[0], recipe, load_image_folder(data_dir), tmp_path / RUNS[0].name)
    assert record['epochs'] == 1 and math.isfinite(record['test_top1_err'])
    trained = torch.load(tmp_path / RUNS[0].name / 'last.pth.tar', weights_only=True)['state_dict']
    torch.manual_seed(RUNS[0].seed)
    built = timm.create_model(RUNS[0].model, num_classes=10, **recipe.model_kwargs).state_dict()
    last_bn = [name for name in built if name.endswith('bn2.weight')]
    assert len(last_bn) == 3 and all((trained[name] == 0).all() for name in last_bn)
    assert (built['layer1.0.bn2.weight'] == 1).all()  # without the recipe's key: unit scale
    for name, tensor in built.items():
        if name not in last_bn and 'running' not in name and 'num_batches' not in name:
            assert torch.equal(trained[name], tensor), name


def test_compare_trains_the_engine_matrix_and_reports_it(recipe_file, data_dir, tmp_path, capsys):
    argv = ['compare', '--trainer', 'engine', '-c', str(recipe_file), '--data-dir', str(data_dir), '--models',
            'cifar_resnet50', '--seeds', '0', '--epochs', '1', '--device', 'cpu', '--output', str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / 'runs' / 'cifar_resnet50-seed0' / 'run.json').read_text())
    assert record['epochs'] == 1 and f"| cifar_resnet50 | 1 | 1 | {record['test_top1_err']:.2f} |" in out
    assert '— (1 vs 200 epochs)' in out and (tmp_path / 'val_loss.png').is_file()
    assert main(argv) == 0  # again: kept, as train-queue keeps it
    assert 'cifar_resnet50 seed 0: finished earlier, kept' in capsys.readouterr().out
