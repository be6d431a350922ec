"""``timm-ignore publish``: a training run becomes a Hub model folder whose card reports measured metrics."""
import datetime
import json
import pathlib
import shutil

import numpy as np
import pytest
import timm
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file

from timm_ignore.cli import main
from timm_ignore.hub import push
from timm_ignore.hub.publish import publish_folder

from _weights_fixtures import MODEL, TAG, trained_model, write_run, write_split


@pytest.fixture(scope='module')
def published(shared_data, tmp_path_factory):
    """A run of the tiny model, its evaluation split and the folder ``publish`` made of it."""
    root = tmp_path_factory.mktemp('publish')
    images = write_split(shared_data, root / 'data')
    model = trained_model()
    run = write_run(root / 'run', model, MODEL, ema=True)
    out = main(['publish', str(run), '--out', str(root / 'out'), '--data', str(root / 'data'), '--repo-id',
                'org/name', '--no-ema'])
    assert out == 0
    return dict(root=root, run=run, folder=root / 'out', model=model, images=images)


def reference_metrics(model: torch.nn.Module, images: np.ndarray, shared_data: pathlib.Path) -> tuple[float, float]:
    """Top-1 error and loss computed directly from the arrays, without timm's data pipeline."""
    with np.load(shared_data / 'cifar10' / 'test_partial.npz') as z:
        labels = torch.from_numpy(z['labels'][:len(images)].astype(np.int64))
    mean, std = torch.tensor((0.4914, 0.4822, 0.4465)), torch.tensor((0.2470, 0.2435, 0.2616))
    x = (torch.from_numpy(images).float() / 255 - mean) / std
    with torch.no_grad():
        logits = model.eval()(x.permute(0, 3, 1, 2))
    top1_err = 100 * (logits.argmax(1) != labels).float().mean().item()
    return top1_err, torch.nn.functional.cross_entropy(logits, labels).item()


def test_folder_holds_safetensors_config_card_and_args(published):
    folder = published['folder']
    assert sorted(p.name for p in folder.iterdir()) == ['README.md', 'args.yaml', 'config.json', 'model.safetensors']
    config = json.loads((folder / 'config.json').read_text())
    assert config['architecture'] == MODEL and config['num_classes'] == 10
    assert config['label_names'][:2] == ['airplane', 'automobile'] and config['model_args']['depth'] == 8
    weights = load_file(folder / 'model.safetensors')
    assert all(torch.equal(weights[k], v) for k, v in published['model'].state_dict().items())  # not the EMA
    assert (folder / 'args.yaml').read_text() == (published['run'] / 'args.yaml').read_text()


def test_card_reports_measured_metrics_next_to_the_paper(published, shared_data):
    card = ModelCard.load(published['folder'] / 'README.md')
    assert card.data.library_name == 'timm' and card.data.license == 'apache-2.0'
    assert card.data.datasets == ['uoft-cs/cifar10'] and 'timm' in card.data.tags
    _, results = model_index_to_eval_results(card.data.to_dict()['model-index'])
    measured = {r.metric_type: r.metric_value for r in results if r.dataset_split == 'test'}
    assert [r.metric_value for r in results if r.dataset_split == 'validation'] == [38.0]  # summary.csv, epoch 1
    top1_err, loss = reference_metrics(published['model'], published['images'], shared_data)
    assert measured['top1_error'] == pytest.approx(top1_err, abs=1e-3)
    assert measured['loss'] == pytest.approx(loss, rel=1e-4)
    assert '7.28 ± 0.17 (Table 1)' in card.text  # the paper's CIFAR-10 SE-Ign3 top-1 error
    assert card.data.timm_ignore['hf_hub_id'] == 'org/name' and card.data.timm_ignore['tag'] == TAG
    assert 'Seed: 42; epochs: 2' in card.text and 'SHA-256' in card.text
    assert '@inproceedings{laakom2021learning' in card.text
    assert 'SE attention, ign3 gate' in card.text and 'validation top-1 error 38.00%' in card.text  # summary.csv
    assert '(https://github.com/firasl/inverse_attention)' in card.text and 'timm-ignore](' not in card.text
    assert 'the project has no public address yet, so this card links to none' in ' '.join(card.text.split())


def test_a_run_without_a_record_gets_its_test_errors_measured_by_the_one_evaluator(published, capsys):
    """A train.py run records no test error: publish measures it (single view and flip TTA) as validate does."""
    assert main(['validate', str(published['root'] / 'data'), '--checkpoint', str(published['run']), '--no-ema',
                 '--json', '--flip-tta', '--device', 'cpu']) == 0
    validated = json.loads(capsys.readouterr().out)
    text = ' '.join(ModelCard.load(published['folder'] / 'README.md').text.split())
    assert (f"the run's own test top-1 error {validated['top1_err']:.2f}% (timm's data config; with flip test-time "
            f"augmentation {validated['top1_err_flip']:.2f}%)") in text


def test_local_dir_loads_the_published_model(published):
    x = torch.randn(2, 3, 32, 32)
    loaded = timm.create_model(f'local-dir:{published["folder"]}', pretrained=True).eval()
    assert torch.equal(loaded(x), published['model'].eval()(x))
    assert loaded.pretrained_cfg['label_names'][-1] == 'truck'


def test_ema_weights_are_published_by_default_when_the_run_has_them(published, tmp_path):
    """The weights train.py validated (and compare and validate score): EMA when the checkpoint holds it."""
    for name, ema in (('default', None), ('ema', True)):
        publish_folder(published['run'], tmp_path / name, data_root=published['root'] / 'data', repo_id='org/name',
                       ema=ema)
        weights = load_file(tmp_path / name / 'model.safetensors')
        assert torch.equal(weights['conv1.weight'], published['model'].conv1.weight + 1)


def test_existing_folder_is_kept_unless_overwrite(published, capsys):
    args = ['publish', str(published['run']), '--out', str(published['folder']), '--data',
            str(published['root'] / 'data'), '--repo-id', 'org/name']
    before = (published['folder'] / 'model.safetensors').stat().st_mtime_ns
    assert main(args) == 2
    assert 'already exists' in capsys.readouterr().err
    assert (published['folder'] / 'model.safetensors').stat().st_mtime_ns == before
    assert main(args + ['--overwrite']) == 0
    assert not list(published['folder'].parent.glob('.out.*'))  # no staging folder left behind


def bad_run(root: pathlib.Path, kind: str) -> pathlib.Path:
    if kind == 'another architecture':
        return write_run(root / kind, timm.create_model('densenet', depth=7, num_classes=10), 'densenet')
    if kind == 'unnamed architecture':
        path = root / 'densenet.pth'
        torch.save(timm.create_model('densenet', depth=7, num_classes=10).state_dict(), path)
        return path
    if kind == 'class count':
        return write_run(root / kind, trained_model(num_classes=100), MODEL)
    run = write_run(root / kind, trained_model(), MODEL)
    checkpoint = run / 'model_best.pth.tar'
    if kind == 'truncated':
        checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    elif kind == 'corrupt':
        checkpoint.write_bytes(b'\0' * 5000)
    elif kind == 'random bytes':
        checkpoint.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == 'foreign pickle':
        torch.save({'state_dict': trained_model().state_dict(), 'saved': datetime.datetime(2021, 11, 22)}, checkpoint)
    elif kind == 'missing':
        checkpoint.unlink()
    return run


@pytest.mark.parametrize('kind, problem, file', [
    ('another architecture', 'a checkpoint of densenet, not of cifar_resnet50_se_ign3', 'model_best.pth.tar'),
    ('unnamed architecture', 'not weights of cifar_resnet50_se_ign3', 'densenet.pth'),
    ('class count', 'fc.weight has 100 classes but the model has 10', 'model_best.pth.tar'),
    ('truncated', 'not a PyTorch checkpoint .truncated, corrupt', 'model_best.pth.tar'),
    ('corrupt', 'not a PyTorch checkpoint .truncated, corrupt', 'model_best.pth.tar'),
    ('random bytes', 'not a PyTorch checkpoint .truncated, corrupt', 'model_best.pth.tar'),
    ('foreign pickle', r'not a checkpoint this tool can load: it stores Python objects \(datetime',
     'model_best.pth.tar'),
    ('missing', 'missing; is .* the folder of a finished training run', 'model_best.pth.tar'),
])
def test_bad_checkpoint_is_named_with_its_problem(published, tmp_path, kind, problem, file):
    source = bad_run(tmp_path, kind)
    with pytest.raises((ValueError, FileNotFoundError), match=problem) as error:
        publish_folder(source, tmp_path / 'out', data_root=published['root'] / 'data', repo_id='org/name',
                       model_name=f'{MODEL}.{TAG}')
    assert file in str(error.value) and 'weights_only' not in str(error.value)
    assert not (tmp_path / 'out').exists()


def test_push_dry_run_lists_the_upload_without_network(published, capsys):
    assert main(['publish', str(published['run']), '--out', str(published['root'] / 'dry'), '--data',
                 str(published['root'] / 'data'), '--repo-id', 'org/name', '--push', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert 'would upload to hf-hub:org/name@main' in out
    assert all(f'  {name}\n' in out for name in ('README.md', 'args.yaml', 'config.json', 'model.safetensors'))


def test_push_refuses_without_a_token(published, tmp_path, monkeypatch):
    for name in ('HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_OIDC_RESOURCE'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr('huggingface_hub.constants.HF_TOKEN_PATH', str(tmp_path / 'token'))
    monkeypatch.setattr('huggingface_hub.constants.HF_STORED_TOKENS_PATH', str(tmp_path / 'stored_tokens'))
    plan = push.plan_push(published['folder'], 'org/name')
    with pytest.raises(PermissionError, match='No Hugging Face token'):
        push.push_folder(plan)
    assert main(['publish', str(published['run']), '--out', str(tmp_path / 'never'), '--data',
                 str(published['root'] / 'data'), '--repo-id', 'org/name', '--push']) == 2
    assert not (tmp_path / 'never').exists()  # refused before the evaluation


def test_push_plan_refuses_an_incomplete_folder(published, tmp_path):
    shutil.copytree(published['folder'], tmp_path / 'partial')
    (tmp_path / 'partial' / 'model.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='lacks model.safetensors'):
        push.plan_push(tmp_path / 'partial', 'org/name')


def test_push_with_a_token_goes_to_huggingface_hub_and_never_shows_it(published, monkeypatch, capsys):
    """Offline, huggingface_hub refuses the first request: the upload path is reached, the token stays hidden."""
    monkeypatch.setenv('HF_TOKEN', 'hf_NotARealTokenForTests')
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_OFFLINE', True)
    with pytest.raises(Exception) as error:
        push.push_folder(push.plan_push(published['folder'], 'org/name'))
    assert 'offline' in str(error.value).lower()
    assert 'hf_NotARealTokenForTests' not in str(error.value) + str(capsys.readouterr())


def test_card_states_the_run_record(published, tmp_path):
    """The engine's run.json and a --run-record file give the card what the run folder lacks (issue 8's fields)."""
    run = shutil.copytree(published['run'], tmp_path / 'run')
    (run / 'run.json').write_text(json.dumps({
        'model': MODEL, 'seed': 3, 'epochs': 200, 'best_epoch': 1, 'val_top1_err': 6.5, 'wall_time_s': 5400.0,
        'device': 'NVIDIA H100 80GB HBM3', 'code_version': 'timm-ignore 0.1.0, git abc', 'train_images_per_s': 1e4,
        'dataset': {'dataset': 'cifar10', 'source': 'cifar10-jpeg (JPEG copy)', 'md5': {'a': 'b'},
                    'counts': {'train': 40000, 'validation': 10000, 'test': 10000}}}))
    engine_only = tmp_path / 'engine-only'
    assert main(['publish', str(run), '--out', str(engine_only), '--data', str(published['root'] / 'data'),
                 '--repo-id', 'org/name']) == 0
    engine_card = ModelCard.load(engine_only / 'README.md').text
    assert 'Data: CIFAR-10 (JPEG copy): the 60 000 CIFAR-10 images from a public copy stored as JPEG' in engine_card
    assert 'mean absolute difference 5.8/255' in engine_card  # the zoo's table, not the run's own words
    assert '(train 40000, validation 10000, test 10000)' in engine_card
    record = tmp_path / 'record.yaml'
    record.write_text('dataset: "CIFAR-10 (JPEG copy): the official images stored as JPEG, quality 95"\n'
                      'recipe: "the authors\' CIFAR recipe (train_scripts/cifar10.yaml)"\n')
    assert main(['publish', str(run), '--out', str(tmp_path / 'out'), '--data', str(published['root'] / 'data'),
                 '--repo-id', 'org/name', '--run-record', str(record)]) == 0
    card = ModelCard.load(tmp_path / 'out' / 'README.md')
    for text in ('Data: CIFAR-10 (JPEG copy): the official images stored as JPEG, quality 95',
                 "Recipe: the authors' CIFAR recipe (train_scripts/cifar10.yaml)", 'Seed: 3; epochs: 200',
                 'validation top-1 error 6.50%', 'Trained on: NVIDIA H100 80GB HBM3; wall time 1.50 h',
                 'Trained with: timm-ignore 0.1.0, git abc'):
        assert text in card.text, text
    _, results = model_index_to_eval_results(card.data.to_dict()['model-index'])
    assert [r.metric_value for r in results if r.dataset_split == 'validation'] == [6.5]
