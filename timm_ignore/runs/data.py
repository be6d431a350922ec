"""What a data folder says it is: its description (``cifar_split.json``, written by ``prepare-cifar`` and the CIFAR-10
JPEG copy's ``make_imagefolder.py``), read in one place for the engine's record, the report and the cards."""
import json
import pathlib
from typing import Any, Optional, Union

from ..data.cifar import MARKER
from ..models.zoo import DataCopySpec, data_copy

__all__ = ['check_class_count', 'described_copy', 'read_data_description']


def read_data_description(data_root: Union[str, pathlib.Path]) -> dict[str, Any]:
    """A data folder's description, or {} when it has none or it is not a JSON mapping."""
    try:
        description = json.loads((pathlib.Path(data_root) / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return description if isinstance(description, dict) else {}


def described_copy(data_root: Union[str, pathlib.Path]) -> Optional[DataCopySpec]:
    """The known copy of a dataset that a data folder holds (e.g. CIFAR-10 (JPEG copy)), None for official files."""
    return data_copy(read_data_description(data_root))


def check_class_count(data_dir: Union[str, pathlib.Path], num_classes: int, flag: str = '--data-dir') -> None:
    """Refuse a data folder whose ``train/`` has another number of class folders than the recipe trains, before any
    work (both trainers; otherwise a whole run trains and fails only when tested).

    Raises:
        ValueError: The counts differ (a missing ``train/`` is left to the trainers' own folder checks).
    """
    train = pathlib.Path(data_dir) / 'train'
    if not train.is_dir():
        return
    found = sum(1 for p in train.iterdir() if p.is_dir())
    if found != num_classes:
        raise ValueError(f'{flag} has {found} classes but the recipe trains num_classes: {num_classes}; give the '
                         f'recipe of this dataset, or the data folder of this recipe.')
