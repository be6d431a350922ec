"""The zoo tag of a model trained on a class count, and the paper dataset of a class count: one rule, the zoo table.

Below the checkpoint loader (which names an untagged run's model by its class count) and the ``runs`` layer (the
report's paper column, ``publish-zoo``'s folder names), so both use this one definition.
"""
from typing import Optional

from .models.zoo import DATASETS, MODELS

__all__ = ['tag_for_classes', 'paper_dataset_for_classes']


def tag_for_classes(model: str, num_classes: Optional[int]) -> Optional[str]:
    """The pretrained tag of the zoo model ``model`` (its name, a tag ignored) whose dataset has ``num_classes``
    classes; None for a model outside the zoo or a class count none of its tags has."""
    spec = MODELS.get(model.split('.', 1)[0])
    if spec is None or num_classes is None:
        return None
    return next((t for t in spec.family.datasets if DATASETS[t].num_classes == num_classes), None)


def paper_dataset_for_classes(num_classes: Optional[int]) -> Optional[str]:
    """The paper's dataset with ``num_classes`` classes (e.g. 10 -> ``cifar10``), None when the paper has none."""
    return next((d.paper_dataset for d in DATASETS.values() if d.num_classes == num_classes), None)
