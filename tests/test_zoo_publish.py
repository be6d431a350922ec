"""Publishing a short CPU-trained engine run as the zoo does: float16 storage checked against float32, the card, the
weights kept in the repository's layout and loaded offline by the registered tag."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import timm
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file

from _zoo_fixtures import cifar10_slice, train_short_queue
from timm_ignore.checkpoint import load_model
from timm_ignore.cli import main
from timm_ignore.evaluate import evaluate_split
from timm_ignore.hub import publish as publish_module
from timm_ignore.hub.publish import publish_folder
from timm_ignore.hub.registry import register_card
from timm_ignore.hub.storage import StorageError, storage_copy
from timm_ignore.models._weights import read_weights_cards
from timm_ignore.models.zoo import AUTHORS_CODE_URL, DATA_COPIES

MODEL = 'cifar_resnet50_se'


@pytest.fixture(scope='module')
def engine_run(shared_data, tmp_path_factory):
    """A finished engine run of the depth-8 SE ResNet (3 epochs on 256 JPEG-copy images) and its data folder."""
    root = tmp_path_factory.mktemp('zoo')
    data = cifar10_slice(shared_data, root / 'data')
    queue = train_short_queue(data, root / 'queue', [(MODEL, 0)])
    return dict(root=root, data=data, run=queue / f'{MODEL}-seed0')


@pytest.fixture(scope='module')
def published16(engine_run):
    out = engine_run['root'] / 'fp16'
    assert main(['publish', str(engine_run['run']), '--out', str(out), '--data', str(engine_run['data']),
                 '--repo-id', 'org/zoo', '--dtype', 'float16', '--allow-untrained']) == 0  # a smoke run
    return out


def test_float16_file_keeps_integer_buffers_and_halves_the_size(engine_run, published16, tmp_path):
    weights = load_file(published16 / 'model.safetensors')
    assert {t.dtype for k, t in weights.items() if not k.endswith('num_batches_tracked')} == {torch.float16}
    assert {t.dtype for k, t in weights.items() if k.endswith('num_batches_tracked')} == {torch.int64}
    model, _ = load_model(engine_run['run'])
    reference = model.state_dict()
    assert weights.keys() == reference.keys()
    for key, tensor in weights.items():  # each value is the float32 one rounded to float16 (counters exact)
        assert torch.equal(tensor, reference[key].to(tensor.dtype)), key
    publish_folder(engine_run['run'], tmp_path / 'fp32', data_root=engine_run['data'], repo_id='org/zoo',
                   allow_untrained=True)
    size16, size32 = ((f / 'model.safetensors').stat().st_size for f in (published16, tmp_path / 'fp32'))
    assert 0.49 < size16 / size32 < 0.53


def test_timm_loads_the_float16_copy_into_float32_and_the_card_states_the_check(engine_run, published16):
    loaded = timm.create_model(f'local-dir:{published16}', pretrained=True).eval()
    assert {p.dtype for p in loaded.state_dict().values() if p.is_floating_point()} == {torch.float32}
    stored = load_file(published16 / 'model.safetensors')
    assert all(torch.equal(v, stored[k].float() if stored[k].is_floating_point() else stored[k])
               for k, v in loaded.state_dict().items())  # BatchNorm statistics included
    # the check, measured here independently on the published split
    model, _ = load_model(engine_run['run'])
    logits32, logits16 = [], []
    result32 = evaluate_split(model, engine_run['data'] / 'test', on_logits=logits32.append)
    result16 = evaluate_split(loaded, engine_run['data'] / 'test', data_config=result32.data_config,
                              on_logits=logits16.append)
    diff = (torch.cat(logits16) - torch.cat(logits32)).abs().max().item()
    assert 0 < diff < 0.05 and abs(result16.top1_err - result32.top1_err) <= 0.05
    card = ModelCard.load(published16 / 'README.md')
    assert (f'the stored copy has top-1 error {result16.top1_err:.2f}% and the float32 checkpoint '
            f'{result32.top1_err:.2f}%' in ' '.join(card.text.split()))
    assert f'largest absolute difference between their logits is {diff:.3g}' in ' '.join(card.text.split())
    assert 'stored in float16 and loaded by timm into the float32 model' in ' '.join(card.text.split())


def test_publish_refuses_a_copy_whose_error_moves(engine_run, monkeypatch, tmp_path, capsys):
    """A stored copy that predicts differently (here: its classifier bias made to favour one class) is refused."""
    def biased_copy(model, dtype):
        copy = storage_copy(model, dtype)
        with torch.no_grad():
            copy.fc.bias.copy_(torch.arange(10, dtype=copy.fc.bias.dtype) * 100)
        return copy
    monkeypatch.setattr(publish_module, 'storage_copy', biased_copy)
    out = tmp_path / 'refused'
    assert main(['publish', str(engine_run['run']), '--out', str(out), '--data', str(engine_run['data']),
                 '--repo-id', 'org/zoo', '--dtype', 'float16', '--allow-untrained']) == 2
    err = capsys.readouterr().err
    assert 'the float16 copy has test top-1 error' in err and 'publish with --dtype float32' in err
    assert len(err.strip().splitlines()) == 1 and not out.exists() and not list(tmp_path.iterdir())


def test_values_beyond_float16_are_refused_by_name(engine_run):
    model, _ = load_model(engine_run['run'])
    name = next(k for k in model.state_dict() if k.endswith('running_var'))
    model.state_dict()[name][0] = 1e6
    with pytest.raises(StorageError, match=f'{name}: values beyond float16 range'):
        storage_copy(model, 'float16')
    assert storage_copy(model, 'float32') is model


def test_card_of_the_engine_run_states_what_the_zoo_needs(engine_run, published16):
    record = json.loads((engine_run['run'] / 'run.json').read_text())
    card = ModelCard.load(published16 / 'README.md')
    text = ' '.join(card.text.split())
    expected = [
        'Data: CIFAR-10 (JPEG copy): the 60 000 CIFAR-10 images from a public copy stored as JPEG',
        "labels, order and the paper's 40k / 10k / test split are exact", 'mean absolute difference 5.8/255',
        'not digit-for-digit with the paper', '(train 256, validation 128, test 128)',
        "the `test` split of CIFAR-10 (JPEG copy)",
        'Recipe: `cifar10_authors.yaml` (`train_scripts/cifar10_authors.yaml` in the timm-ignore source); 3 epochs, '
        'batch 64, optimizer `momentum` (momentum 0.9), peak lr 0.1, `multistep` schedule —',
        "the authors' recipe as [their code](https://github.com/firasl/inverse_attention)",
        'Seed: 0; epochs: 3',
        f'epoch {record["best_epoch"]} (0-based',
        f'validation top-1 error {record["val_top1_err"]:.2f}%',
        f"the run's own test top-1 error {record['test_top1_err']:.2f}%",
        f'Trained on: {record["device"]}; wall time {record["wall_time_s"] / 3600:.2f} h',
        f'Trained with: {record["code_version"]}',
        '| Top-1 error (%) |', '| 7.63 ± 0.37 (Table 1) |',  # the paper's CIFAR-10 SE row beside the measured one
        'per-pixel mean image',
    ]
    for line in expected:
        assert line in text, line
    _, results = model_index_to_eval_results(card.data.to_dict()['model-index'])
    assert {r.dataset_name for r in results} == {'CIFAR-10 (JPEG copy)'}
    assert [r.metric_value for r in results if r.dataset_split == 'validation'] == [record['val_top1_err']]


_LOAD_OFFLINE = """
import sys, torch, timm, timm_ignore
from safetensors.torch import load_file
torch.manual_seed(0)
x = torch.randn(4, 3, 32, 32)
tag = timm.create_model('{name}', pretrained=True, depth=8).eval()
direct = timm.create_model('{name}', depth=8).eval()
direct.load_state_dict({{k: v.float() if v.is_floating_point() else v for k, v in load_file(sys.argv[1]).items()}})
with torch.no_grad():
    torch.save(dict(file=tag.pretrained_cfg.get('file'), tag=tag(x), direct=direct(x)), sys.argv[2])
"""


def _offline_env(tmp_path, cards_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HUGGINGFACE_'))}
    return {**env, 'HF_HUB_OFFLINE': '1', 'HF_HOME': str(tmp_path / 'hf-home'), 'HF_HUB_CACHE': str(tmp_path / 'empty'),
            'TIMM_IGNORE_WEIGHTS_CARDS': str(cards_dir), 'PYTHONPATH': os.pathsep.join(sys.path)}


def test_a_clone_loads_the_registered_tag_offline_from_the_weights_layout(published16, tmp_path):
    """weights/{name}/ with the card linked from weights_cards/: pretrained=True reads the local float16 file."""
    name = f'{MODEL}.cifar10'
    clone = tmp_path / 'clone'
    folder = shutil.copytree(published16, clone / 'weights' / name)
    link = register_card(folder, clone / 'weights_cards')
    assert os.readlink(link) == f'../weights/{name}/README.md'
    out = tmp_path / 'logits.pt'
    done = subprocess.run([sys.executable, '-c', _LOAD_OFFLINE.format(name=name), str(folder / 'model.safetensors'),
                           str(out)], env=_offline_env(tmp_path, clone / 'weights_cards'), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = torch.load(out)
    assert pathlib.Path(result['file']).resolve() == (folder / 'model.safetensors').resolve()
    assert torch.equal(result['tag'], result['direct'])
    assert not (tmp_path / 'empty').exists() or not any((tmp_path / 'empty').iterdir())  # nothing downloaded


def test_a_card_without_weights_beside_it_downloads_from_the_hub(published16, tmp_path):
    """A wheel ships the card only: the tag's cfg names the Hub repository and no local file, and offline it fails
    naming the Hub file."""
    name = f'{MODEL}.cifar10'
    cards = tmp_path / 'cards'
    cards.mkdir()
    shutil.copyfile(published16 / 'README.md', cards / f'{name}.md')
    card = read_weights_cards({name: 10}, cards)[name]
    assert card.local_file is None and 'file' not in card.pretrained_cfg()
    assert card.pretrained_cfg()['hf_hub_id'] == 'org/zoo'
    done = subprocess.run([sys.executable, '-c', _LOAD_OFFLINE.format(name=name), 'unused', str(tmp_path / 'x.pt')],
                          env=_offline_env(tmp_path, cards), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and 'hf-hub:org/zoo/model.safetensors: not found' in done.stderr


def test_registering_keeps_another_entry_unless_asked(published16, tmp_path):
    folder = shutil.copytree(published16, tmp_path / 'weights' / f'{MODEL}.cifar10')
    cards = tmp_path / 'weights_cards'
    link = register_card(folder, cards)
    assert register_card(folder, cards) == link  # the same link again: nothing to do
    link.unlink()
    link.write_text('a card written by hand')
    with pytest.raises(FileExistsError, match='already registers weights; pass --overwrite'):
        register_card(folder, cards)
    assert link.read_text() == 'a card written by hand'
    register_card(folder, cards, overwrite=True)
    assert link.resolve() == (folder / 'README.md').resolve()


def _card_metrics(card: ModelCard) -> dict[str, float]:
    _, results = model_index_to_eval_results(card.data.to_dict()['model-index'])
    return {r.metric_name: r.metric_value for r in results if r.dataset_split == 'test'}


def test_the_card_states_what_a_reader_needs_to_trust_it(engine_run, published16, capsys):
    """Recipe, epochs, seed, best epoch, single-view and flip-TTA error, wall time and machine, the data copy and what
    it means; the headline is the single-view error `validate` reproduces; no invented address."""
    record = json.loads((engine_run['run'] / 'run.json').read_text())
    card = ModelCard.load(published16 / 'README.md')
    text = ' '.join(card.text.split())
    metrics = _card_metrics(card)
    single, flip = metrics['Top-1 error (%)'], metrics['Top-1 error, flip TTA (%)']
    copy = DATA_COPIES['cifar10-jpeg']
    for statement in (
            f'**Top-1 error {single:.2f}%** on the `test` split of {copy.display_name}, single view (the number '
            '`timm-ignore validate` and timm\'s `validate.py` reproduce',
            f'with flip test-time augmentation (the mean softmax of each image and its mirror) {flip:.2f}%',
            f'| Top-1 error (%) | {single:.2f} |', f'| Top-1 error, flip TTA (%) | {flip:.2f} | not reported |',
            '`cifar10_authors.yaml` (`train_scripts/cifar10_authors.yaml` in the timm-ignore source)',
            'Seed: 0; epochs: 3', f'epoch {record["best_epoch"]} (0-based',
            f'with flip test-time augmentation {record["test_top1_err_flip"]:.2f}%',  # the run's own, from its record
            f'Trained on: {record["device"]}; wall time {record["wall_time_s"] / 3600:.2f} h',
            f'Data: {copy.display_name}: {copy.meaning}',
            'the project has no public address yet, so this card links to none'):
        assert statement in text, statement
    links = set(re.findall(r'https?://[^\s)>\]`\'"]+', card.content))
    assert links == {AUTHORS_CODE_URL}, links  # the authors' code; nothing invented for this project
    # the headline is what validate reproduces from the published folder
    assert main(['validate', str(engine_run['data']), '--model', f'local-dir:{published16}', '--pretrained', '--json',
                 '--device', 'cpu', '--flip-tta']) == 0
    validated = json.loads(capsys.readouterr().out)
    assert abs(validated['top1_err'] - single) <= 0.05 and abs(validated['top1_err_flip'] - flip) <= 0.05


def _copy_run(run: pathlib.Path, root: pathlib.Path, **record_changes) -> pathlib.Path:
    copy = shutil.copytree(run, root / run.name)
    record = json.loads((copy / 'run.json').read_text())
    (copy / 'run.json').write_text(json.dumps({**record, **record_changes}))
    return copy


def test_publish_refuses_a_run_at_chance_level_before_any_evaluation(engine_run, tmp_path, monkeypatch, capsys):
    run = _copy_run(engine_run['run'], tmp_path, test_top1_err=86.0)
    argv = ['publish', str(run), '--out', str(tmp_path / 'out'), '--data', str(engine_run['data']), '--repo-id',
            'org/zoo', '--dtype', 'float16']
    with monkeypatch.context() as m:
        m.setattr(publish_module, 'evaluate_split', lambda *a, **k: pytest.fail('evaluated before refusing'))
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'out').exists()
    assert ('its test top-1 error 86.00% is at chance level (>= 85%: 90% for 10 classes, less 5 points)' in err
            and 'a smoke run cannot become a card (pass --allow-untrained' in err)
    assert main(argv + ['--allow-untrained']) == 0
    text = ' '.join(ModelCard.load(tmp_path / 'out' / 'README.md').text.split())
    assert ('> **Not a trained model.** This run was published with `--allow-untrained`: its test top-1 error 86.00% '
            'is at chance level') in text


def test_publish_refuses_a_run_cut_off_before_its_recipes_epochs(engine_run, tmp_path, capsys):
    run = shutil.copytree(engine_run['run'], tmp_path / 'cut')
    (run / 'run.json').unlink()
    lines = (run / 'summary.csv').read_text().splitlines(keepends=True)
    (run / 'summary.csv').write_text(''.join(lines[:-1]))  # killed during its last epoch
    argv = ['publish', str(run), '--out', str(tmp_path / 'out'), '--data', str(engine_run['data']), '--repo-id',
            'org/zoo']
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'it trained 2 of the 3 epochs of its recipe' in err
    assert main(argv + ['--allow-untrained']) == 0
    assert 'it trained 2 of the 3 epochs of its recipe' in (tmp_path / 'out' / 'README.md').read_text()


def test_a_finished_run_above_chance_needs_no_flag(engine_run, tmp_path):
    run = _copy_run(engine_run['run'], tmp_path, test_top1_err=84.99)
    folder = publish_folder(run, tmp_path / 'out', data_root=engine_run['data'], repo_id='org/zoo')
    assert 'Not a trained model' not in (folder.path / 'README.md').read_text()
