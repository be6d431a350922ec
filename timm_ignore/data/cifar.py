"""CIFAR-10/100 python archives -> ImageFolder trees with the paper's 40k / 10k / test split.

The paper trains on the first 40 000 images of the official training set, selects the epoch on the last 10 000 and
reports the official test set. :func:`prepare_cifar` writes those three splits as ``train/``, ``validation/`` and
``test/`` folders of PNG files that timm's ``create_dataset('', root, split=...)`` reads directly.

The archives are pickles, so every member is checked against a known md5 before it is unpickled. The default
checksums are the official ones (the values torchvision checks); :func:`read_checksums` loads a replacement table for
a re-packed archive or a test fixture, which a caller has to pass on purpose.
"""
import hashlib
import json
import logging
import os
import pathlib
import pickle
import re
import tarfile
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from ..staging import staged_directory

__all__ = [
    'CifarFormat', 'CIFAR_FORMATS', 'PAPER_NUM_VAL', 'SPLITS', 'CifarArchiveError', 'detect_format', 'prepare_cifar',
    'read_checksums',
]

_logger = logging.getLogger(__name__)

#: The paper's validation split: the last 10 000 images of the official training set.
PAPER_NUM_VAL = 10_000
#: Output folders, in the names timm's dataset factory looks for.
SPLITS = ('train', 'validation', 'test')
#: Marker written into a finished tree; its content identifies what the tree was built from.
MARKER = 'cifar_split.json'
_PROGRESS_EVERY = 5_000


@dataclass(frozen=True)
class CifarFormat:
    """Layout of one official CIFAR python archive.

    Attributes:
        name: ``cifar10`` or ``cifar100``.
        folder: Folder of the pickles inside the archive.
        train_files: Training pickles, in order; their concatenation is the official training set.
        test_files: Test pickles.
        meta_file: Pickle holding the class names.
        names_key: Key of the class names in ``meta_file``.
        labels_key: Key of the labels in a data pickle (CIFAR-100: the fine labels).
        md5: Official md5 of every member above, as published with the datasets (and checked by torchvision).
        num_train: Images in the official training set.
        num_test: Images in the official test set.
    """
    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    names_key: str
    labels_key: str
    md5: Mapping[str, str]
    num_train: int = 50_000
    num_test: int = 10_000


CIFAR_FORMATS = {f.name: f for f in (
    CifarFormat(
        'cifar10', 'cifar-10-batches-py', tuple(f'data_batch_{i}' for i in range(1, 6)), ('test_batch',),
        'batches.meta', 'label_names', 'labels', {
            'data_batch_1': 'c99cafc152244af753f735de768cd75f',
            'data_batch_2': 'd4bba439e000b95fd0a9bffe97cbabec',
            'data_batch_3': '54ebc095f3ab1f0389bbae665268c751',
            'data_batch_4': '634d18415352ddfa80567beed471001a',
            'data_batch_5': '482c414d41f54cd18b22e5b47cb7c3cb',
            'test_batch': '40351d587109b95175f43aff81a1287e',
            'batches.meta': '5ff9c542aee3614f3951f8cda6e48888',
        }),
    CifarFormat(
        'cifar100', 'cifar-100-python', ('train',), ('test',), 'meta', 'fine_label_names', 'fine_labels', {
            'train': '16019d7e3df5f24257cddd939b257f8d',
            'test': 'f0ef6b0ae62326f3e7ffdfab6717acfc',
            'meta': '7973b15100ade9c7d40fb424638fde48',
        }),
)}


class CifarArchiveError(ValueError):
    """The source is not a complete, intact CIFAR python archive (or the output cannot be written)."""


def read_checksums(path: Union[str, os.PathLike]) -> dict[str, str]:
    """Read a replacement checksum table: a JSON object mapping member file names to md5 hex digests.

    Only for archives that are not the official ones (test fixtures, re-packed mirrors); it must name every member.
    """
    try:
        with open(path, encoding='utf-8') as f:
            table = json.load(f)
    except FileNotFoundError:
        raise CifarArchiveError(f'{path}: no such checksum table (--checksums).') from None
    except (OSError, ValueError) as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CifarArchiveError(f'{path}: not a JSON checksum table (--checksums): {e}.') from None
    md5 = re.compile(r'[0-9a-f]{32}')
    if not isinstance(table, dict) or not table or not all(isinstance(v, str) and md5.fullmatch(v)
                                                           for v in table.values()):
        raise CifarArchiveError(f'{path}: a checksum table (--checksums) is a JSON object of "member file name": '
                                f'"32-digit md5 hex" pairs.')
    return table


def detect_format(source: Union[str, os.PathLike]) -> CifarFormat:
    """Tell CIFAR-10 from CIFAR-100 by the archive's or folder's name.

    Raises:
        CifarArchiveError: The name matches neither official archive or folder.
    """
    name = pathlib.Path(source).name
    for prefix, dataset in (('cifar-100-', 'cifar100'), ('cifar-10-', 'cifar10')):
        if name.startswith(prefix):
            return CIFAR_FORMATS[dataset]
    raise CifarArchiveError(
        f'Cannot tell which CIFAR {source} is: expected cifar-10-python.tar.gz, cifar-100-python.tar.gz or an '
        f'extracted cifar-10-batches-py / cifar-100-python folder; pass --dataset cifar10 or --dataset cifar100.')


def _read_members(source: pathlib.Path, fmt: CifarFormat) -> dict[str, bytes]:
    """Bytes of every member the format needs, from a .tar.gz or an extracted folder."""
    wanted = (*fmt.train_files, *fmt.test_files, fmt.meta_file)
    members = {}
    if source.is_dir():
        folder = source / fmt.folder if (source / fmt.folder).is_dir() else source
        for name in wanted:
            path = folder / name
            if not path.is_file():
                raise CifarArchiveError(f'{folder} has no {name}; a {fmt.name} folder needs {", ".join(wanted)}.')
            members[name] = path.read_bytes()
        return members
    try:
        with tarfile.open(source, 'r:gz') as tar:
            for info in tar:
                name = pathlib.PurePosixPath(info.name)
                if info.isfile() and name.parent.name == fmt.folder and name.name in wanted:
                    members[name.name] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise CifarArchiveError(f'{source} is corrupt or truncated ({e}); download the archive again.') from e
    missing = [n for n in wanted if n not in members]
    if missing:
        raise CifarArchiveError(f'{source} lacks {fmt.folder}/{", ".join(missing)}; it is not a full {fmt.name} '
                                f'archive (truncated download?).')
    return members


def _verify(members: Mapping[str, bytes], checksums: Mapping[str, str], source: pathlib.Path) -> None:
    for name, data in members.items():
        if name not in checksums:
            raise CifarArchiveError(
                f'The checksum table (--checksums) has no entry for {name}; it must name every member.')
        digest = hashlib.md5(data).hexdigest()
        if digest != checksums[name]:
            raise CifarArchiveError(
                f'{source}: {name} has md5 {digest}, expected {checksums[name]}; the archive is corrupt, truncated or '
                f'not the official one. Download it again (or, for a deliberate re-pack, pass its checksum table).')


def _load_split(members: Mapping[str, bytes], files: Sequence[str], labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated HWC uint8 images and int labels of some data pickles."""
    images, labels = [], []
    for name in files:
        batch = pickle.loads(members[name], encoding='bytes')
        images.append(np.asarray(batch[b'data'], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[labels_key.encode()], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _write_split(
        folder: pathlib.Path,
        images: np.ndarray,
        labels: np.ndarray,
        first_index: int,
        class_names: Sequence[str],
        progress: Callable[[str], None],
) -> None:
    for name in class_names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        # The file name is the image's index in the official split, so any image can be traced back.
        Image.fromarray(image).save(folder / class_names[label] / f'{first_index + i:05d}.png')
        if (i + 1) % _PROGRESS_EVERY == 0 or i + 1 == len(images):
            progress(f'{folder.name}: {i + 1}/{len(images)} images')


def _describe(fmt: CifarFormat, checksums: Mapping[str, str], num_val: int, counts: Mapping[str, int]) -> dict:
    return {'dataset': fmt.name, 'num_val': num_val, 'md5': dict(sorted(checksums.items())), 'counts': dict(counts)}


def prepare_cifar(
        source: Union[str, os.PathLike],
        output: Union[str, os.PathLike],
        dataset: Optional[str] = None,
        num_val: int = PAPER_NUM_VAL,
        checksums: Optional[Mapping[str, str]] = None,
        overwrite: bool = False,
        progress: Callable[[str], None] = _logger.info,
) -> pathlib.Path:
    """Verify a CIFAR python archive and write the paper's split as an ImageFolder tree.

    The first ``N - num_val`` official training images go to ``train/``, the last ``num_val`` to ``validation/``,
    the official test set to ``test/``; images are ``{class}/{index in the official split:05d}.png``, and
    ``class_map.txt`` lists the classes in label order (timm's ``--class-map``). The tree is built beside ``output``
    and renamed into place at the end, so an interrupted run leaves no partial tree.

    Args:
        source: ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` or its extracted folder.
        output: Folder to create.
        dataset: ``cifar10`` or ``cifar100``; None detects it from the source's name.
        num_val: Validation images taken from the end of the training set (the paper: 10 000). Anything else is
            not the paper's split; it exists for small test fixtures.
        checksums: md5 of every member; None for the official ones. Give a table only for a known re-pack.
        overwrite: Replace an existing ``output`` that was not built from the same archive with the same split.
        progress: Called with one line of progress now and then.

    Returns:
        ``output``. If it already holds the same split of the same archive, nothing is rewritten.

    Raises:
        CifarArchiveError: Unknown dataset, missing/corrupt/truncated archive, checksum mismatch, a split that does
            not fit, or an existing ``output`` without ``overwrite``.
    """
    source, output = pathlib.Path(source), pathlib.Path(output)
    if not source.exists():
        raise CifarArchiveError(f'{source} does not exist.')
    if dataset is not None and dataset not in CIFAR_FORMATS:
        raise CifarArchiveError(f'Unknown dataset {dataset!r}; choose one of {", ".join(CIFAR_FORMATS)}.')
    fmt = CIFAR_FORMATS[dataset] if dataset else detect_format(source)
    checksums = dict(fmt.md5 if checksums is None else checksums)

    progress(f'reading and verifying {source}')
    members = _read_members(source, fmt)
    _verify(members, checksums, source)
    class_names = [n.decode() for n in pickle.loads(members[fmt.meta_file], encoding='bytes')[fmt.names_key.encode()]]
    train_images, train_labels = _load_split(members, fmt.train_files, fmt.labels_key)
    test_images, test_labels = _load_split(members, fmt.test_files, fmt.labels_key)
    if not 0 < num_val < len(train_images):
        raise CifarArchiveError(
            f'--num-val {num_val} does not fit a training set of {len(train_images)} images; it must be in '
            f'1..{len(train_images) - 1} (the paper uses {PAPER_NUM_VAL} of {fmt.num_train}).')

    counts = {'train': len(train_images) - num_val, 'validation': num_val, 'test': len(test_images)}
    description = _describe(fmt, checksums, num_val, counts)
    if output.exists():
        marker = output / MARKER
        if marker.is_file() and json.loads(marker.read_text()) == description:
            progress(f'{output} already holds this split; nothing to do')
            return output
        if not overwrite:
            raise CifarArchiveError(
                f'{output} already exists and was not built from this archive with this split; choose another '
                f'folder or pass --overwrite to replace it.')
        if not output.is_dir():
            raise CifarArchiveError(f'{output}: is a file, not a folder; it is never replaced, choose another output.')

    with staged_directory(output) as staging:
        split_at = counts['train']
        _write_split(staging / 'train', train_images[:split_at], train_labels[:split_at], 0, class_names, progress)
        _write_split(
            staging / 'validation', train_images[split_at:], train_labels[split_at:], split_at, class_names, progress)
        _write_split(staging / 'test', test_images, test_labels, 0, class_names, progress)
        (staging / 'class_map.txt').write_text(''.join(f'{n}\n' for n in class_names))
        (staging / MARKER).write_text(json.dumps(description, indent=2) + '\n')
    progress(f'wrote {output}: ' + ', '.join(f'{k} {v}' for k, v in counts.items()))
    return output
