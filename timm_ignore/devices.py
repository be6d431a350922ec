"""The device a command runs on: ``--device`` when given, else CUDA when available, else the CPU."""
from typing import Union

import torch

__all__ = ['resolve_device']


def resolve_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """``device``, or CUDA when available, else the CPU.

    Raises:
        ValueError: Not a device name, or a CUDA device on a machine without one (naming ``--device``).
    """
    if device is None or device == '':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f'--device {device!r} is not a device; use cpu, cuda or cuda:N.') from None
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: this machine has no CUDA device; use --device cpu.')
    return resolved
