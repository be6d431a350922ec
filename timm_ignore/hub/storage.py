"""How published weights are stored: float32 as trained, or float16 (half the bytes), checked against the checkpoint.

timm loads a stored copy into the float32 model it builds (``nn.Module.load_state_dict`` copies each tensor into the
model's own, casting it), so a float16 file costs nothing at load time and gives a float32 model. The stored copy is
measured before it is published: :func:`check_stored_copy` compares its test error and logits with those of the
float32 checkpoint on the same images, and refuses a copy whose top-1 error differs by more than
:data:`MAX_ERROR_CHANGE` points.
"""
import copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

__all__ = ['MAX_ERROR_CHANGE', 'STORAGE_DTYPES', 'StorageError', 'StoredCopyCheck', 'check_stored_copy',
           'storage_copy']

#: Storage dtypes by their command-line name.
STORAGE_DTYPES = {'float32': torch.float32, 'float16': torch.float16}
#: The largest change of the test top-1 error (in points) a stored copy may make.
MAX_ERROR_CHANGE = 0.05


class StorageError(ValueError):
    """A stored copy that is not faithful to the checkpoint (out of range, or another test error)."""


@dataclass(frozen=True)
class StoredCopyCheck:
    """The stored copy measured against the float32 checkpoint on the same images.

    Attributes:
        dtype: Storage dtype name (``float16``).
        checkpoint_top1_err: Test top-1 error (%) of the float32 checkpoint.
        stored_top1_err: Test top-1 error (%) of the stored copy loaded into the float32 model.
        max_abs_logit_diff: Largest absolute difference between the two models' logits over every image and class.
        num_images: Images compared.
    """
    dtype: str
    checkpoint_top1_err: float
    stored_top1_err: float
    max_abs_logit_diff: float
    num_images: int

    @property
    def error_change(self) -> float:
        return self.stored_top1_err - self.checkpoint_top1_err


def storage_copy(model: nn.Module, dtype: str) -> nn.Module:
    """A copy of ``model`` whose floating-point parameters and buffers (BatchNorm statistics included) are ``dtype``;
    integer buffers (``num_batches_tracked``) are kept as they are. For float32, ``model`` itself.

    Raises:
        StorageError: An unknown dtype, or a value of the model that ``dtype`` cannot represent (it would be stored as
            infinity); the error names the tensors.
    """
    if dtype not in STORAGE_DTYPES:
        raise StorageError(f'unknown storage dtype {dtype!r} (--dtype); allowed: {", ".join(STORAGE_DTYPES)}.')
    target = STORAGE_DTYPES[dtype]
    limit = torch.finfo(target).max
    too_large = [name for name, t in model.state_dict().items()
                 if t.is_floating_point() and t.numel() and t.detach().abs().max().item() > limit]
    if too_large:
        raise StorageError(f'{", ".join(too_large[:5])}: values beyond {dtype} range ({limit:g}); publish with '
                           f'--dtype float32.')
    return copy.deepcopy(model).to(dtype=target) if target != torch.float32 else model


def check_stored_copy(
        dtype: str,
        checkpoint_top1_err: float,
        checkpoint_logits: Sequence[torch.Tensor],
        stored_top1_err: float,
        stored_logits: Sequence[torch.Tensor],
        max_error_change: float = MAX_ERROR_CHANGE,
) -> StoredCopyCheck:
    """Compare the stored copy's evaluation with the checkpoint's (logits batch by batch, in the same order).

    Raises:
        StorageError: The errors differ by more than ``max_error_change`` points.
    """
    reference, stored = torch.cat(list(checkpoint_logits)), torch.cat(list(stored_logits))
    if reference.shape != stored.shape:
        raise ValueError(f'the two evaluations saw other images: logits {tuple(reference.shape)} and '
                         f'{tuple(stored.shape)}.')
    check = StoredCopyCheck(
        dtype=dtype, checkpoint_top1_err=checkpoint_top1_err, stored_top1_err=stored_top1_err,
        max_abs_logit_diff=(stored - reference).abs().max().item(), num_images=reference.shape[0])
    if not abs(check.error_change) <= max_error_change:  # NaN logits fail too
        raise StorageError(
            f'the {dtype} copy has test top-1 error {stored_top1_err:.2f}% but the float32 checkpoint '
            f'{checkpoint_top1_err:.2f}% (more than {max_error_change} points apart; largest logit difference '
            f'{check.max_abs_logit_diff:.4g}); publish with --dtype float32.')
    return check
