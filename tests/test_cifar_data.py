"""``prepare_cifar`` / ``timm-ignore prepare-cifar`` on archives in the official format holding real CIFAR images."""
import json
import pathlib
import tarfile

import numpy as np
import pytest
from PIL import Image
from timm.data import create_dataset

from _train_fixtures import load_partial, make_cifar100_archive, make_cifar10_archive
from timm_ignore.cli import main
from timm_ignore.data.cifar import CIFAR_FORMATS, CifarArchiveError, prepare_cifar

PER_BATCH = 30  # 150 training images, 30 test images


@pytest.fixture(scope='module')
def cifar10_archive(shared_data, tmp_path_factory) -> tuple[pathlib.Path, dict]:
    return make_cifar10_archive(shared_data, tmp_path_factory.mktemp('archive'), PER_BATCH)


@pytest.fixture(scope='module')
def cifar10_tree(cifar10_archive, tmp_path_factory) -> pathlib.Path:
    archive, checksums = cifar10_archive
    return prepare_cifar(archive, tmp_path_factory.mktemp('out') / 'cifar10', num_val=PER_BATCH, checksums=checksums)


def _files(tree: pathlib.Path, split: str) -> dict[int, tuple[str, pathlib.Path]]:
    return {int(p.stem): (p.parent.name, p) for p in (tree / split).glob('*/*.png')}


def test_paper_split_is_first_images_for_train_last_for_validation(cifar10_tree, shared_data):
    train, val, test = (_files(cifar10_tree, s) for s in ('train', 'validation', 'test'))
    # The fixture's training set is batches 1-5 of PER_BATCH images each; the last PER_BATCH (batch 5) validate.
    assert sorted(train) == list(range(4 * PER_BATCH))
    assert sorted(val) == list(range(4 * PER_BATCH, 5 * PER_BATCH))
    assert sorted(test) == list(range(PER_BATCH))

    partial = load_partial(shared_data, 'cifar10', 'train')
    classes = [str(c) for c in partial['classes']]
    batch5_rows = np.flatnonzero(partial['index'] // 10_000 == 4)[:PER_BATCH]
    for k, row in enumerate(batch5_rows):
        class_name, path = val[4 * PER_BATCH + k]
        assert class_name == classes[partial['labels_full'][partial['index'][row]]]
        np.testing.assert_array_equal(np.asarray(Image.open(path)), partial['images'][row])


def test_timm_reads_tree_with_official_label_order(cifar10_tree, shared_data):
    test_partial = load_partial(shared_data, 'cifar10', 'test')
    dataset = create_dataset('', root=str(cifar10_tree), split='test')
    assert len(dataset) == PER_BATCH
    targets = {int(pathlib.Path(p).stem): t for p, t in dataset.reader.samples}
    assert [targets[i] for i in range(PER_BATCH)] == test_partial['labels_full'][:PER_BATCH].tolist()
    class_map = (cifar10_tree / 'class_map.txt').read_text().split()
    assert class_map == [str(c) for c in test_partial['classes']]


def test_second_run_is_a_no_op(cifar10_archive, cifar10_tree):
    archive, checksums = cifar10_archive
    before = {p: p.stat().st_mtime_ns for p in cifar10_tree.rglob('*')}
    prepare_cifar(archive, cifar10_tree, num_val=PER_BATCH, checksums=checksums)
    assert {p: p.stat().st_mtime_ns for p in cifar10_tree.rglob('*')} == before


def test_existing_folder_is_kept_unless_overwrite(cifar10_archive, tmp_path):
    archive, checksums = cifar10_archive
    output = tmp_path / 'mine'
    output.mkdir()
    (output / 'notes.txt').write_text('user data')
    with pytest.raises(CifarArchiveError, match='already exists'):
        prepare_cifar(archive, output, num_val=PER_BATCH, checksums=checksums)
    assert (output / 'notes.txt').read_text() == 'user data'
    prepare_cifar(archive, output, num_val=PER_BATCH, checksums=checksums, overwrite=True)
    assert not (output / 'notes.txt').exists()
    assert len(_files(output, 'train')) == 4 * PER_BATCH


def test_extracted_folder_gives_the_same_tree(cifar10_archive, cifar10_tree, tmp_path):
    archive, checksums = cifar10_archive
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter='data')
    tree = prepare_cifar(tmp_path / 'cifar-10-batches-py', tmp_path / 'out', num_val=PER_BATCH, checksums=checksums)
    for split in ('train', 'validation', 'test'):
        ours, reference = _files(tree, split), _files(cifar10_tree, split)
        assert ours.keys() == reference.keys()
        assert all(ours[i][1].read_bytes() == reference[i][1].read_bytes() for i in ours)


def test_official_checksums_refuse_a_non_official_archive(cifar10_archive, tmp_path):
    archive, _ = cifar10_archive
    with pytest.raises(CifarArchiveError, match='data_batch_1 has md5 .* expected c99cafc152244af753f735de768cd75f'):
        prepare_cifar(archive, tmp_path / 'out', num_val=PER_BATCH)
    assert not (tmp_path / 'out').exists()


def test_truncated_archive_is_refused(cifar10_archive, tmp_path):
    archive, checksums = cifar10_archive
    truncated = tmp_path / archive.name
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(CifarArchiveError, match='corrupt or truncated'):
        prepare_cifar(truncated, tmp_path / 'out', num_val=PER_BATCH, checksums=checksums)


def test_corrupt_member_is_refused(cifar10_archive, tmp_path):
    archive, checksums = cifar10_archive
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter='data')
    member = tmp_path / 'cifar-10-batches-py' / 'data_batch_3'
    data = bytearray(member.read_bytes())
    data[-100] ^= 0xFF  # one pixel byte
    member.write_bytes(bytes(data))
    with pytest.raises(CifarArchiveError, match='data_batch_3 has md5'):
        prepare_cifar(member.parent, tmp_path / 'out', num_val=PER_BATCH, checksums=checksums)


def test_checksum_table_must_name_every_member(cifar10_archive, tmp_path):
    archive, checksums = cifar10_archive
    partial_table = {k: v for k, v in checksums.items() if k != 'test_batch'}
    with pytest.raises(CifarArchiveError, match='no entry for test_batch'):
        prepare_cifar(archive, tmp_path / 'out', num_val=PER_BATCH, checksums=partial_table)


def test_split_that_does_not_fit_is_refused(cifar10_archive, tmp_path):
    archive, checksums = cifar10_archive
    with pytest.raises(CifarArchiveError, match='--num-val 10000 does not fit a training set of 150'):
        prepare_cifar(archive, tmp_path / 'out', checksums=checksums)


def test_cifar100(shared_data, tmp_path):
    archive, checksums = make_cifar100_archive(shared_data, tmp_path, num_train=120, num_test=20)
    tree = prepare_cifar(archive, tmp_path / 'cifar100', num_val=20, checksums=checksums)
    assert len(_files(tree, 'train')) == 100 and len(_files(tree, 'validation')) == 20
    assert len(_files(tree, 'test')) == 20
    partial = load_partial(shared_data, 'cifar100', 'train')
    class_map = (tree / 'class_map.txt').read_text().split()
    assert class_map == [str(c) for c in partial['classes']]
    assert all(name == class_map[partial['labels_full'][i]] for i, (name, _) in _files(tree, 'validation').items())


def test_official_checksums_match_torchvision():
    datasets = pytest.importorskip('torchvision.datasets')
    for fmt, cls in ((CIFAR_FORMATS['cifar10'], datasets.CIFAR10), (CIFAR_FORMATS['cifar100'], datasets.CIFAR100)):
        expected = dict(cls.train_list + cls.test_list)
        expected[cls.meta['filename']] = cls.meta['md5']
        assert dict(fmt.md5) == expected
        assert cls.base_folder == fmt.folder


def test_cli(cifar10_archive, tmp_path, capsys):
    archive, checksums = cifar10_archive
    table = tmp_path / 'md5.json'
    table.write_text(json.dumps(checksums))
    assert main(['prepare-cifar', str(archive), str(tmp_path / 'refused')]) == 2
    assert 'expected c99cafc1' in capsys.readouterr().err
    args = ['prepare-cifar', str(archive), str(tmp_path / 'ok'), '--num-val', str(PER_BATCH), '--checksums', str(table)]
    assert main(args) == 0
    assert (tmp_path / 'ok' / 'validation').is_dir()
