"""Small CIFAR archives in the official python format, built from the exact partial arrays in ``../shared/data``.

The pickles have the official keys and layout; only the number of images per file is smaller, so their md5 differ from
the official ones and each builder returns the checksum table a test must pass explicitly.
"""
import hashlib
import io
import os
import pathlib
import pickle
import tarfile

import numpy as np
import pytest


def _pickle_batch(images: np.ndarray, labels_key: str, labels: np.ndarray, batch_label: str) -> bytes:
    batch = {
        b'batch_label': batch_label.encode(),
        labels_key.encode(): [int(v) for v in labels],
        # The official layout: one row per image, channel-major (R plane, G plane, B plane).
        b'data': np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1)),
        b'filenames': [f'image_{i}.png'.encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def _write_tar_gz(path: pathlib.Path, folder: str, members: dict[str, bytes]) -> dict[str, str]:
    with tarfile.open(path, 'w:gz') as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f'{folder}/{name}')
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {name: hashlib.md5(data).hexdigest() for name, data in members.items()}


def make_cifar10_archive(shared_data: pathlib.Path, out_dir: pathlib.Path, per_batch: int) -> tuple[pathlib.Path, dict]:
    """``cifar-10-python.tar.gz`` with the first ``per_batch`` real images of each of the six official batches.

    Returns:
        The archive path and its checksum table.
    """
    with np.load(shared_data / 'cifar10' / 'train_partial.npz') as z:
        train_images, train_labels, train_index = z['images'], z['labels'], z['index']
        classes = [str(c) for c in z['classes']]
    with np.load(shared_data / 'cifar10' / 'test_partial.npz') as z:
        test_images, test_labels = z['images'][:per_batch], z['labels'][:per_batch]
    members = {}
    for batch in range(1, 6):
        rows = np.flatnonzero(train_index // 10_000 == batch - 1)[:per_batch]
        members[f'data_batch_{batch}'] = _pickle_batch(
            train_images[rows], 'labels', train_labels[rows], f'training batch {batch} of 5')
    members['test_batch'] = _pickle_batch(test_images, 'labels', test_labels, 'testing batch 1 of 1')
    members['batches.meta'] = pickle.dumps(
        {b'label_names': [c.encode() for c in classes], b'num_cases_per_batch': per_batch, b'num_vis': 3072})
    path = out_dir / 'cifar-10-python.tar.gz'
    return path, _write_tar_gz(path, 'cifar-10-batches-py', members)


def make_cifar100_archive(shared_data: pathlib.Path, out_dir: pathlib.Path, num_train: int, num_test: int):
    """``cifar-100-python.tar.gz`` with the first real images of the official train and test files."""
    members = {}
    for split, count in (('train', num_train), ('test', num_test)):
        with np.load(shared_data / 'cifar100' / f'{split}_partial.npz') as z:
            batch = {
                b'filenames': [f'image_{i}.png'.encode() for i in range(count)],
                b'batch_label': f'{split}ing batch 1 of 1'.encode(),
                b'fine_labels': [int(v) for v in z['labels'][:count]],
                b'coarse_labels': [int(v) for v in z['coarse_labels'][:count]],
                b'data': np.ascontiguousarray(z['images'][:count].transpose(0, 3, 1, 2).reshape(count, -1)),
            }
            classes, coarse = [str(c) for c in z['classes']], [str(c) for c in z['coarse_classes']]
        members[split] = pickle.dumps(batch, protocol=2)
    members['meta'] = pickle.dumps({
        b'fine_label_names': [c.encode() for c in classes], b'coarse_label_names': [c.encode() for c in coarse]})
    path = out_dir / 'cifar-100-python.tar.gz'
    return path, _write_tar_gz(path, 'cifar-100-python', members)


def load_partial(shared_data: pathlib.Path, dataset: str, split: str) -> dict[str, np.ndarray]:
    """All arrays of one partial npz file."""
    with np.load(shared_data / dataset / f'{split}_partial.npz') as z:
        return {k: z[k] for k in z.files}


def make_cifar10_tree(shared_data: pathlib.Path, out_dir: pathlib.Path, per_batch: int) -> pathlib.Path:
    """A prepared ImageFolder tree (train/validation/test) of real CIFAR-10 images, ``per_batch`` per official file."""
    from timm_ignore.data.cifar import prepare_cifar
    archive, checksums = make_cifar10_archive(shared_data, out_dir, per_batch)
    return prepare_cifar(archive, out_dir / 'cifar10', num_val=per_batch, checksums=checksums, progress=lambda _: None)


def timm_train_py() -> pathlib.Path:
    """timm's train.py from ``TIMM_TRAIN_PY``; skips the test when unset, fails it when the path is no file."""
    path = os.environ.get('TIMM_TRAIN_PY')
    if not path:
        pytest.skip("TIMM_TRAIN_PY is not set: point it at timm's train.py (from a pytorch-image-models checkout; "
                    'it is not in the timm wheel) to run the recipes through it')
    if not pathlib.Path(path).is_file():
        pytest.fail(f'TIMM_TRAIN_PY={path} is not a file')
    return pathlib.Path(path)
