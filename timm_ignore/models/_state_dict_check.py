"""Whether a state dict fits a model, checked before loading so that errors name the file and the problem.

``nn.Module.load_state_dict`` reports mismatches without saying which file they came from, and a bare size mismatch
does not tell a checkpoint of another architecture from one with another class count.
"""
from collections.abc import Collection, Mapping
from typing import Optional

import torch
from torch import nn

__all__ = ['classifier_keys', 'check_state_dict']

_SHOWN = 4  # keys listed per kind of mismatch


def classifier_keys(model: nn.Module) -> set[str]:
    """The state dict keys of the classifier(s) named by the model's pretrained cfg."""
    names = (getattr(model, 'pretrained_cfg', None) or {}).get('classifier') or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return {f'{name}.{param}' for name in names for param in ('weight', 'bias')}


def _listing(keys: Collection[str]) -> str:
    keys = sorted(keys)
    more = f', ... ({len(keys)} in all)' if len(keys) > _SHOWN else ''
    return ', '.join(keys[:_SHOWN]) + more


def check_state_dict(
        state_dict: Mapping[str, torch.Tensor],
        model: nn.Module,
        location: str,
        *,
        new_head: bool = False,
        claimed_classes: Optional[int] = None,
        unchecked_shapes: Collection[str] = (),
) -> None:
    """Check that ``state_dict`` holds weights of ``model``'s architecture and class count.

    Args:
        state_dict: Weights to load.
        model: Model they are for (with timm's ``pretrained_cfg`` naming its classifier).
        location: The file (or Hub file) the weights come from, for error messages.
        new_head: The classifier is replaced rather than loaded, so its class count may differ from the model's.
        claimed_classes: Class count the weights' own config claims; their classifier must agree with it.
        unchecked_shapes: Keys whose shape is adapted by the loader (e.g. the first convolution for ``in_chans``).

    Raises:
        ValueError: Keys or shapes of another architecture, or a classifier with another class count.
    """
    model_state = model.state_dict()
    head = classifier_keys(model)
    missing = set(model_state) - set(state_dict) - (head if new_head else set())
    unexpected = set(state_dict) - set(model_state) - head
    reshaped = {
        k for k in set(state_dict) & set(model_state) - head - set(unchecked_shapes)
        if tuple(state_dict[k].shape) != tuple(model_state[k].shape)}
    if missing or unexpected or reshaped:
        problems = [f'{len(missing)} missing keys ({_listing(missing)})' if missing else '',
                    f'{len(unexpected)} unexpected keys ({_listing(unexpected)})' if unexpected else '',
                    f'{len(reshaped)} tensors of another shape ({_listing(reshaped)})' if reshaped else '']
        arch = (getattr(model, 'pretrained_cfg', None) or {}).get('architecture') or type(model).__name__
        raise ValueError(
            f'{location}: these are not weights of {arch} with these model args (another architecture?): '
            f'{"; ".join(p for p in problems if p)}.')
    for key in sorted(k for k in head if k.endswith('.weight') and k in state_dict):
        classes = state_dict[key].shape[0]
        if claimed_classes is not None and classes != claimed_classes:
            raise ValueError(
                f'{location}: classifier {key} has {classes} classes but the config of these weights says '
                f'{claimed_classes}; the weights and the config do not belong together.')
        model_classes = model_state[key].shape[0] if key in model_state else 0
        if not new_head and classes != model_classes:
            raise ValueError(
                f'{location}: classifier {key} has {classes} classes but the model has {model_classes}; '
                f'create the model with num_classes={classes}, or ask for a new head to fine-tune.')
