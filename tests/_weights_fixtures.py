"""Builders shared by the weights tests: ImageFolder splits from the shared CIFAR arrays, training runs, Hub caches."""
import argparse
import hashlib
import pathlib
import shutil
from typing import Any

import numpy as np
import timm
import torch
import yaml
from PIL import Image

#: The tiny model the weights tests publish (depth 8 instead of 50).
MODEL = 'cifar_resnet50_se_ign3'
TAG = 'cifar10'
MODEL_KWARGS = {'depth': 8}


def write_split(shared_data: pathlib.Path, root: pathlib.Path, split: str = 'test', count: int = 120) -> np.ndarray:
    """Write the first ``count`` CIFAR-10 test images as ``root/split/<class>/<n>.png``; returns the images."""
    with np.load(shared_data / 'cifar10' / 'test_partial.npz') as z:
        images, labels, classes = z['images'][:count], z['labels'][:count], z['classes'].tolist()
    assert len(set(labels.tolist())) == len(classes), 'every class needs an image'
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / split / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f'{i}.png')
    return images


def trained_model(name: str = f'{MODEL}.{TAG}', seed: int = 0, **kwargs: Any) -> torch.nn.Module:
    """A model with random non-trivial weights and BN statistics (as if trained)."""
    torch.manual_seed(seed)
    model = timm.create_model(name, **{**MODEL_KWARGS, **kwargs})
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * 0.05).abs_() if tensor.dim() == 1 else None
    return model.eval()


def write_run(run_dir: pathlib.Path, model: torch.nn.Module, arch: str, ema: bool = False) -> pathlib.Path:
    """Write a run folder as timm's ``train.py`` does: args.yaml, summary.csv, model_best/last checkpoints.

    The summary says the run trained its 2 epochs to 38 % validation error (a trained model, as far as ``publish``
    can tell before evaluating it; the weights are random).
    """
    run_dir.mkdir(parents=True)
    args = argparse.Namespace(
        model=arch, model_kwargs=dict(MODEL_KWARGS), epochs=2, batch_size=128, opt='sgd', lr=0.1, momentum=0.9,
        weight_decay=1e-4, sched='multistep', decay_milestones=[60, 120, 160], decay_rate=0.2, seed=42,
        data_dir='data/cifar10', train_split='train', val_split='validation', num_classes=model.num_classes)
    (run_dir / 'args.yaml').write_text(yaml.safe_dump(vars(args)))
    (run_dir / 'summary.csv').write_text(
        'epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n0,2.3,2.2,50.0,90.0,0.1\n1,2.2,2.1,62.0,95.0,0.1\n')
    state = {'epoch': 1, 'arch': arch, 'state_dict': model.state_dict(), 'version': 2, 'args': args, 'metric': 62.0}
    if ema:
        state['state_dict_ema'] = {k: v + 1 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    for name in ('model_best.pth.tar', 'last.pth.tar'):
        torch.save(state, run_dir / name)
    return run_dir


def add_to_hub_cache(cache: pathlib.Path, repo_id: str, folder: pathlib.Path, commit: str = 'a' * 40) -> pathlib.Path:
    """Put a model folder into huggingface_hub's cache layout, as a download of ``repo_id`` at ``commit`` leaves it.

    ``models--ORG--NAME/blobs/<sha256>``, ``snapshots/<commit>/<file>`` linking to its blob, ``refs/main``.
    """
    repo = cache / f'models--{repo_id.replace("/", "--")}'
    snapshot = repo / 'snapshots' / commit
    (repo / 'blobs').mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(commit)
    for path in folder.iterdir():
        blob = repo / 'blobs' / hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, blob)
        (snapshot / path.name).symlink_to(pathlib.Path('..', '..', 'blobs', blob.name))
    return snapshot
