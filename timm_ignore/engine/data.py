"""A small-image dataset decoded once and held as uint8 tensors, on the CPU or the training GPU.

The source is the ImageFolder tree that ``timm-ignore prepare-cifar`` (or ``make_imagefolder.py`` of the CIFAR-10 JPEG
copy) writes: ``train/``, ``validation/`` and ``test/``, one folder per class. Images and class indices are listed
exactly as timm's ImageFolder reader lists them (same class order), so a model trained here is evaluated by timm's
tools on the same labels. CIFAR-10 needs 180 MB as uint8; held on the GPU, a training step reads its batch without
the CPU or a data loader.
"""
import os
import pathlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from timm.data.readers.reader_image_folder import find_images_and_targets

from ..runs import read_data_description

__all__ = ['DataError', 'SplitTensors', 'ImageData', 'check_image_folder', 'load_image_folder', 'REQUIRED_SPLITS']

#: Splits a data folder must hold; ``test`` is optional (without it the run has no test error).
REQUIRED_SPLITS = ('train', 'validation')
_OPTIONAL_SPLITS = ('test',)
_DECODE_THREADS = min(16, os.cpu_count() or 1)


class DataError(ValueError):
    """The data folder is missing or not an ImageFolder tree of same-sized images with the expected splits."""


@dataclass(frozen=True)
class SplitTensors:
    """One split: ``images`` uint8 ``(N, H, W, C)``, ``labels`` int64 ``(N,)``."""
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(frozen=True)
class ImageData:
    """The splits of one dataset, the class names and the training split's per-pixel mean image.

    Attributes:
        train: Training split.
        validation: Validation split (picks the best epoch).
        test: Test split, or None.
        classes: Class names in label order.
        mean_image: float32 ``(C, H, W)`` mean of the training images in [0, 1] units (exact sums).
        source: The folder the data came from.
        description: What the folder's ``cifar_split.json`` (written by ``prepare-cifar`` and ``make_imagefolder.py``)
            says the data is, e.g. its source and split sizes; empty without one.
    """
    train: SplitTensors
    validation: SplitTensors
    test: Optional[SplitTensors]
    classes: tuple[str, ...]
    mean_image: torch.Tensor
    source: str
    description: dict = field(default_factory=dict)

    def to(self, device: torch.device) -> 'ImageData':
        """The same data on ``device`` (the images stay uint8)."""
        def move(split: Optional[SplitTensors]) -> Optional[SplitTensors]:
            return None if split is None else SplitTensors(split.images.to(device), split.labels.to(device))
        return replace(
            self, train=move(self.train), validation=move(self.validation), test=move(self.test),
            mean_image=self.mean_image.to(device))

    def share_memory_(self) -> 'ImageData':
        """Move the tensors to shared memory so worker processes receive them without copies."""
        for split in (self.train, self.validation, self.test):
            if split is not None:
                split.images.share_memory_()
                split.labels.share_memory_()
        self.mean_image.share_memory_()
        return self


def _class_folders(split_dir: pathlib.Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir())


def check_image_folder(root: Union[str, os.PathLike]) -> tuple[str, ...]:
    """Check that ``root`` holds the split folders with the same class folders; cheap (no image is opened).

    Returns:
        The splits present, in the order train, validation[, test].

    Raises:
        DataError: What is missing, and the layout expected.
    """
    root = pathlib.Path(root)
    layout = ('expected an ImageFolder tree with train/, validation/ and optionally test/, one folder per class '
              '(timm-ignore prepare-cifar, or make_imagefolder.py of the CIFAR-10 JPEG copy, writes one)')
    if not root.is_dir():
        raise DataError(f'data folder {root} does not exist; {layout}.')
    missing = [s for s in REQUIRED_SPLITS if not (root / s).is_dir()]
    if missing:
        raise DataError(f'data folder {root} has no {" or ".join(s + "/" for s in missing)}; {layout}.')
    splits = REQUIRED_SPLITS + tuple(s for s in _OPTIONAL_SPLITS if (root / s).is_dir())
    classes = _class_folders(root / 'train')
    if not classes:
        raise DataError(f'{root / "train"} has no class folders; {layout}.')
    for split in splits[1:]:
        if _class_folders(root / split) != classes:
            raise DataError(f'{root / split} does not have the same class folders as {root / "train"}.')
    return splits


def _read_image(path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'))
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f'cannot read image {path}: {e}') from None


def _load_split(split_dir: pathlib.Path) -> tuple[SplitTensors, tuple[str, ...]]:
    samples, class_to_idx = find_images_and_targets(str(split_dir))
    if not samples:
        raise DataError(f'{split_dir} holds no images.')
    with ThreadPoolExecutor(_DECODE_THREADS) as pool:
        arrays = list(pool.map(_read_image, [path for path, _ in samples], chunksize=256))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f'{split_dir}: images must all have one size, found {sorted(shapes)[:3]}.')
    images = torch.from_numpy(np.stack(arrays))
    labels = torch.tensor([target for _, target in samples], dtype=torch.int64)
    classes = tuple(sorted(class_to_idx, key=class_to_idx.get))
    return SplitTensors(images, labels), classes


def load_image_folder(root: Union[str, os.PathLike]) -> ImageData:
    """Decode every image of the data folder into uint8 tensors (on the CPU).

    Raises:
        DataError: The folder's layout is wrong (see :func:`check_image_folder`), an image cannot be read, or the
            splits' image sizes differ.
    """
    root = pathlib.Path(root)
    splits = check_image_folder(root)
    loaded = {split: _load_split(root / split) for split in splits}
    train, classes = loaded['train']
    sizes = {tuple(tensors.images.shape[1:]) for tensors, _ in loaded.values()}
    if len(sizes) != 1:
        raise DataError(f'{root}: the splits hold images of different sizes {sorted(sizes)}.')
    pixel_sums = train.images.sum(0, dtype=torch.int64)  # exact
    mean_image = (pixel_sums.double() / (255.0 * len(train))).permute(2, 0, 1).float().contiguous()
    test = loaded['test'][0] if 'test' in loaded else None
    return ImageData(train, loaded['validation'][0], test, classes, mean_image, str(root.resolve()),
                     read_data_description(root))


