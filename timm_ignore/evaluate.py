"""Evaluate a classifier: the one core (:func:`evaluate`, errors in %) and the report on an ImageFolder split.

:func:`evaluate` measures any loader; the training loop reports its per-epoch validation from it, and
:func:`evaluate_split` wraps it for ``validate``, ``publish`` and ``compare``: one split folder
(``<root>/<split>/<class>/<image>``) read with timm's data pipeline and the model's data config
(``timm.data.resolve_data_config``, as timm's ``validate.py`` does), plus what the numbers were measured on.
"""
import contextlib
import hashlib
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ContextManager, Optional, Union

import torch
from torch import nn
from timm.data import create_dataset, create_loader, resolve_data_config
from torch.nn import functional as F

__all__ = ['EvalResult', 'Metrics', 'evaluate', 'evaluate_split', 'find_split', 'hardware_description',
           'split_checksum']


@dataclass(frozen=True)
class Metrics:
    """Top-1/top-5 error in % (top-5 is top-k with k = the class count when there are fewer than 5 classes), mean
    cross-entropy loss, and the number of images measured; with flip test-time augmentation also the top-1 error of
    the mean softmax of each image and its horizontal mirror (``top1_err_flip``; the single view stays the headline)."""
    top1_err: float
    top5_err: float
    loss: float
    num_images: int
    top1_err_flip: Optional[float] = None


@dataclass(frozen=True)
class EvalResult(Metrics):
    """:class:`Metrics` of one split folder and what they were measured on."""
    split_dir: str = ''
    split_sha256: str = ''
    class_names: tuple[str, ...] = ()
    data_config: Optional[dict[str, Any]] = None
    hardware: str = ''
    seconds: float = 0.

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate(
        model: nn.Module,
        loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
        device: Union[str, torch.device] = 'cpu',
        amp_autocast: Callable[[], ContextManager] = contextlib.nullcontext,
        loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
        on_logits: Optional[Callable[[torch.Tensor], None]] = None,
        flip_tta: bool = False,
) -> Metrics:
    """Errors and mean loss of ``model`` (put in eval mode) over every batch of ``loader``.

    Args:
        model: Classifier.
        loader: ``(images, targets)`` batches.
        device: Where to evaluate.
        amp_autocast: Context of the forward pass (e.g. ``torch.autocast``).
        loss_fn: Mean loss of a batch (default: cross-entropy), weighted by the batch size over the loader.
        on_logits: Called with every batch's float32 logits, in loader order (e.g. to compare two models' outputs).
        flip_tta: Also measure ``top1_err_flip``: the class of the mean of the softmax of each image and of its
            horizontal mirror (probabilities rather than logits, so a confident view is not outvoted by its scale).

    Raises:
        ValueError: The loader yields no images.
    """
    model.eval()
    loss_sum, top1, top5, count, top1_flip = 0., 0, 0, 0, 0
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        with amp_autocast():
            logits = model(images)
        logits = logits.float()
        if on_logits is not None:
            on_logits(logits)
        loss_sum += (loss_fn or F.cross_entropy)(logits, targets).item() * targets.numel()
        hits = logits.topk(min(5, logits.shape[-1]), dim=1).indices.eq(targets[:, None])
        top1 += hits[:, 0].sum().item()
        top5 += hits.any(dim=1).sum().item()
        count += targets.numel()
        if flip_tta:
            with amp_autocast():
                mirrored = model(images.flip(-1)).float()
            probs = logits.softmax(dim=1) + mirrored.softmax(dim=1)
            top1_flip += probs.argmax(dim=1).eq(targets).sum().item()
    if not count:
        raise ValueError('no images to evaluate.')
    return Metrics(top1_err=100. * (count - top1) / count, top5_err=100. * (count - top5) / count,
                   loss=loss_sum / count, num_images=count,
                   top1_err_flip=100. * (count - top1_flip) / count if flip_tta else None)


def find_split(root: Union[str, Path], split: str, flag: str = '--data') -> Path:
    """Return ``root/split``, a folder of class folders.

    Args:
        root: Dataset root.
        split: Split folder name.
        flag: The command-line option that gave ``root``, named in errors.

    Raises:
        FileNotFoundError: ``root`` or its ``split`` folder does not exist (the error lists the folders there).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'{root}: no such data folder ({flag}).')
    split_dir = root / split
    if not split_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(
            f'{split_dir}: no {split!r} split in {root} (its folders: {", ".join(found) or "none"}); a dataset root '
            f'holds one folder per split, e.g. train/, validation/ and test/ as `timm-ignore prepare-cifar` writes.')
    return split_dir


def split_checksum(split_dir: Union[str, Path]) -> str:
    """SHA-256 over the relative path and content of every file of a split, in sorted path order."""
    split_dir = Path(split_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in split_dir.rglob('*') if p.is_file()):
        digest.update(path.relative_to(split_dir).as_posix().encode() + b'\0')
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def hardware_description(device: Union[str, torch.device]) -> str:
    """One line naming the accelerator (or CPU), the platform and the torch version."""
    device = torch.device(device)
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = f'CPU ({platform.processor() or platform.machine()})'
    return f'{name}, {platform.system()} {platform.release()}, torch {torch.__version__}'


def _check_classes(model: nn.Module, split_dir: Path, class_names: list[str]) -> None:
    if len(class_names) != model.num_classes:
        raise ValueError(
            f'{split_dir}: {len(class_names)} class folders but the model has {model.num_classes} classes; '
            f'give the model of this dataset (its tag, or --num-classes).')
    label_names = (getattr(model, 'pretrained_cfg', None) or {}).get('label_names')
    if label_names and list(label_names) != class_names:
        raise ValueError(
            f'{split_dir}: its class folders are not the label names of the model in order '
            f'(first folders {class_names[:3]}, first labels {list(label_names)[:3]}).')


def evaluate_split(
        model: nn.Module,
        split_dir: Union[str, Path],
        batch_size: int = 128,
        workers: int = 0,
        device: Union[str, torch.device] = 'cpu',
        data_config: Optional[dict[str, Any]] = None,
        on_logits: Optional[Callable[[torch.Tensor], None]] = None,
        flip_tta: bool = False,
) -> EvalResult:
    """Top-1/top-5 error and mean loss of ``model`` on every image of a split folder, with their provenance.

    Args:
        model: Classifier; its ``pretrained_cfg`` gives the preprocessing unless ``data_config`` is given.
        split_dir: Folder of class folders; classes are indexed in timm's (natural) sort order of the folder names.
        batch_size: Evaluation batch size.
        workers: Data loader worker processes.
        device: Device to evaluate on.
        data_config: Overrides of the resolved data config (``input_size``, ``mean``, ``std``, ``crop_pct``...).
        on_logits, flip_tta: See :func:`evaluate`.

    Raises:
        ValueError: The split has another number of classes than the model, or other label names, or no images.
    """
    split_dir = Path(split_dir)
    start = time.perf_counter()
    dataset = create_dataset('', root=str(split_dir))
    class_names = list(dataset.reader.class_to_idx)
    if not len(dataset):
        raise ValueError(f'{split_dir}: no images found.')
    _check_classes(model, split_dir, class_names)
    config = resolve_data_config(args=data_config or {}, model=model)
    loader = create_loader(
        dataset, input_size=config['input_size'], batch_size=batch_size, is_training=False, use_prefetcher=False,
        interpolation=config['interpolation'], mean=config['mean'], std=config['std'], crop_pct=config['crop_pct'],
        crop_mode=config.get('crop_mode'), num_workers=workers, device=torch.device(device))
    metrics = evaluate(model.to(device), loader, device, on_logits=on_logits, flip_tta=flip_tta)
    return EvalResult(
        **asdict(metrics), split_dir=str(split_dir), split_sha256=split_checksum(split_dir),
        class_names=tuple(class_names), data_config=dict(config), hardware=hardware_description(device),
        seconds=time.perf_counter() - start)
