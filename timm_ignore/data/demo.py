"""A DEMO dataset generated on the fly: noisy stripes (2 orientations x 2 frequencies = 4 classes), as an ImageFolder.

It exists so the side-by-side comparison runs on a machine with nothing but this repository. It says nothing about
CIFAR or ImageNet; numbers trained on it are not comparable with the paper's.
"""
import json
import logging
import os
import pathlib
from typing import Union

import numpy as np
from PIL import Image

from ..staging import staged_directory

__all__ = ['DEMO_CLASSES', 'DEMO_MEAN', 'DEMO_STD', 'make_demo_dataset']

_logger = logging.getLogger(__name__)
#: Normalisation for the demo images (their pixel values are centred on mid-grey).
DEMO_MEAN = (0.5, 0.5, 0.5)
DEMO_STD = (0.25, 0.25, 0.25)
_MARKER = 'demo_dataset.json'
#: Class name -> (stripe angle in radians, frequency range in cycles per image). Horizontal flips and small shifts
#: keep every image in its class, so the CIFAR augmentation applies unchanged.
DEMO_CLASSES = {
    'horizontal_wide': (np.pi / 2, (1.5, 3.0)),
    'horizontal_narrow': (np.pi / 2, (3.0, 5.0)),
    'vertical_wide': (0.0, (1.5, 3.0)),
    'vertical_narrow': (0.0, (3.0, 5.0)),
}
#: Pixel noise (std, on a 0..1 scale) over stripes of amplitude 0.35 at most: hard enough that a depth-8 network
#: still errs after the demo's 8 epochs, so the models' curves and errors differ.
NOISE = 0.5


def _stripes(rng: np.random.Generator, angle: float, frequencies: tuple[float, float], size: int) -> np.ndarray:
    """One RGB uint8 image: a grating at ``angle`` with random frequency, phase and tint, plus pixel noise."""
    y, x = np.mgrid[0:size, 0:size] / size
    frequency, phase = rng.uniform(*frequencies), rng.uniform(0, 2 * np.pi)
    wave = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase)
    tint = rng.uniform(0.3, 1.0, size=3)
    image = 0.5 + 0.35 * wave[..., None] * tint + rng.normal(0, NOISE, size=(size, size, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def make_demo_dataset(
        root: Union[str, os.PathLike],
        per_class: tuple[int, int, int] = (48, 16, 16),
        size: int = 32,
        seed: int = 0,
) -> pathlib.Path:
    """Write (or reuse) the demo tree ``root/{train,validation,test}/{class}/{i:04d}.png`` (classes: ``DEMO_CLASSES``).

    The same arguments always give the same files; a
    ``root`` that already holds them is reused, and a ``root`` holding anything else is refused.

    Args:
        root: Folder to create.
        per_class: Images per class in train, validation and test.
        size: Image side in pixels.
        seed: Seed of the generator.

    Raises:
        FileExistsError: ``root`` exists and is not this demo dataset.
    """
    root = pathlib.Path(root)
    description = {'classes': list(DEMO_CLASSES), 'per_class': list(per_class), 'size': size, 'seed': seed}
    if root.exists():
        marker = root / _MARKER
        if marker.is_file() and json.loads(marker.read_text()) == description:
            return root
        raise FileExistsError(f'{root} exists and is not this demo dataset; choose another folder.')
    _logger.info(f'Generating the DEMO dataset (synthetic stripes, {len(DEMO_CLASSES)} classes) in {root}')
    rng = np.random.default_rng(seed)
    with staged_directory(root) as staging:
        for split, count in zip(('train', 'validation', 'test'), per_class):
            for name, (angle, frequencies) in DEMO_CLASSES.items():
                folder = staging / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    Image.fromarray(_stripes(rng, angle, frequencies, size)).save(folder / f'{i:04d}.png')
        (staging / _MARKER).write_text(json.dumps(description) + '\n')
    return root
