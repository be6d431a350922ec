"""Small ImageFolder slices of the real CIFAR-10 (JPEG copy in ``../shared/data/cifar10-jpeg``) for engine tests."""
import json
import pathlib

import numpy as np


def write_cifar10_slice(shared_data: pathlib.Path, root: pathlib.Path, num_train: int, num_val: int,
                        num_test: int) -> pathlib.Path:
    """Write ``root/{train,validation,test}/CLASS/INDEX.jpg`` from the first images of the paper's three splits.

    The JPEG files are the stored bytes, unchanged: train takes official training images 0.., validation 40000..,
    test the official test images 0... A ``cifar_split.json`` says so, as ``make_imagefolder.py`` writes one.
    """
    with np.load(shared_data / 'cifar10-jpeg' / 'cifar10_jpeg.npz') as z:
        classes = z['classes'].tolist()
        parts = {
            'train': (z['train_jpeg'], z['train_offsets'], z['train_labels'], range(num_train)),
            'validation': (z['train_jpeg'], z['train_offsets'], z['train_labels'], range(40_000, 40_000 + num_val)),
            'test': (z['test_jpeg'], z['test_offsets'], z['test_labels'], range(num_test)),
        }
        for split, (jpeg, offsets, labels, indices) in parts.items():
            for name in classes:
                (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in indices:
                path = root / split / classes[labels[i]] / f'{i}.jpg'
                path.write_bytes(jpeg[offsets[i]:offsets[i + 1]].tobytes())
    marker = {'dataset': 'cifar10', 'source': 'cifar10-jpeg (JPEG copy, official order), first images of each split',
              'num_train': num_train, 'num_validation': num_val, 'num_test': num_test}
    (root / 'cifar_split.json').write_text(json.dumps(marker))
    return root
