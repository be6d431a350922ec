"""The authors' CIFAR augmentation and input normalisation, batched on the training device.

Keras' ``ImageDataGenerator(width_shift_range=0.125, height_shift_range=0.125, fill_mode='nearest',
horizontal_flip=True)`` as the authors' code uses it: a real-valued shift drawn uniformly in ``[-shift, shift]`` pixels
per axis, resampled bilinearly, with the edge pixels repeated outside the image, and a horizontal flip with
probability ``hflip``. The random numbers are drawn on the CPU from the run's own generator (:func:`draw_augmentation`)
so a run sees the same augmentation stream on every device and resumes it exactly; the pixels are transformed where
the images live (:func:`augment_batch`), in one ``grid_sample`` per batch.
"""
from typing import Optional

import torch
from torch.nn import functional as F

__all__ = ['draw_augmentation', 'normalize', 'augment_batch']


def draw_augmentation(
        generator: torch.Generator,
        count: int,
        shift: float,
        hflip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the shifts and flips of ``count`` images.

    Returns:
        ``(shifts, flips)``: float32 ``(count, 2)`` shifts in pixels (x then y), uniform in ``[-shift, shift]``, and a
        bool ``(count,)`` flip mask, true with probability ``hflip``.
    """
    shifts = (torch.rand(count, 2, generator=generator) * 2.0 - 1.0) * shift
    flips = torch.rand(count, generator=generator) < hflip
    return shifts, flips


def normalize(images: torch.Tensor, offset: torch.Tensor, scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """uint8 ``(B, H, W, C)`` images -> float32 ``(B, C, H, W)`` as ``(x / 255 - offset) / scale``.

    Args:
        images: Images as stored, channels last, uint8.
        offset: ``(C, H, W)`` per-pixel mean image, or ``(C, 1, 1)`` per-channel mean, in [0, 1] units.
        scale: ``(C, 1, 1)`` per-channel std; None divides by nothing (the authors' code).
    """
    x = images.permute(0, 3, 1, 2).float().mul_(1.0 / 255.0).sub_(offset)
    return x if scale is None else x.div_(scale)


def augment_batch(x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip and shift a normalised float batch ``(B, C, H, W)``; ``shifts``/``flips`` from :func:`draw_augmentation`.

    A shift of ``(tx, ty)`` moves the content ``tx`` pixels right and ``ty`` down: output pixel ``(i, j)`` is the input
    sampled at ``(i - ty, j - tx)`` with bilinear interpolation, coordinates clamped to the image (edge repeated).
    """
    x = torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)
    batch, _, height, width = x.shape
    theta = torch.zeros(batch, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # affine_grid works in [-1, 1] coordinates with align_corners=False: one pixel is 2 / size.
    theta[:, 0, 2] = shifts[:, 0] * (-2.0 / width)
    theta[:, 1, 2] = shifts[:, 1] * (-2.0 / height)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
