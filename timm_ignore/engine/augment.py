"""CIFAR augmentation and input normalisation, batched on the training device.

Two shifts, both with a horizontal flip of probability ``hflip`` before them:

- ``bilinear``, the authors' code: Keras' ``ImageDataGenerator(width_shift_range=0.125, height_shift_range=0.125,
  fill_mode='nearest', horizontal_flip=True)``: a real-valued shift drawn uniformly in ``[-shift, shift]`` pixels per
  axis, resampled bilinearly, with the edge pixels repeated outside the image (:func:`augment_batch`, on normalised
  floats);
- ``pad_crop``, the usual CIFAR augmentation (torchvision's ``RandomCrop(32, padding=4)``): a whole-pixel shift drawn
  uniformly from ``{-shift, ..., shift}`` per axis, black pixels where the image moved away, no resampling
  (:func:`pad_and_crop`, on the stored uint8 images).

The random numbers are drawn on the CPU from the run's own generator (:func:`draw_augmentation`) so a run sees
the same augmentation stream on every device and resumes it exactly; the pixels are transformed where the images live,
a whole batch at once.
"""
from typing import Optional

import torch
from torch.nn import functional as F

__all__ = ['SHIFT_MODES', 'draw_augmentation', 'normalize', 'augment_batch', 'pad_and_crop']

#: ``bilinear``: real-valued shift, edge repeated (the authors' Keras code); ``pad_crop``: whole pixels, black fill.
SHIFT_MODES = ('bilinear', 'pad_crop')


def draw_augmentation(
        generator: torch.Generator,
        count: int,
        shift: float,
        hflip: float,
        whole_pixels: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the shifts and flips of ``count`` images.

    Args:
        generator: The run's data generator; the draws advance it by the same amount in both modes.
        count: Number of images.
        shift: Largest shift in pixels; a whole number when ``whole_pixels``.
        hflip: Flip probability.
        whole_pixels: Draw whole-pixel shifts, uniform on ``{-shift, ..., shift}`` (``pad_crop``).

    Returns:
        ``(shifts, flips)``: float32 ``(count, 2)`` shifts in pixels (x then y), uniform in ``[-shift, shift]`` (or on
        its whole numbers), and a bool ``(count,)`` flip mask, true with probability ``hflip``.
    """
    uniform = torch.rand(count, 2, generator=generator)
    if whole_pixels:
        shifts = (uniform * (2 * shift + 1)).floor_() - shift
    else:
        shifts = (uniform * 2.0 - 1.0) * shift
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


def pad_and_crop(images: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip and shift stored uint8 images ``(B, H, W, C)`` by whole pixels, black where the content moved away.

    The same as padding every image with ``shift`` black pixels and cropping the original size at the shifted place
    (torchvision's ``RandomCrop(size, padding)`` after ``RandomHorizontalFlip``), for the whole batch in one gather
    and without a host-device synchronisation. A shift of ``(tx, ty)`` moves the content ``tx`` pixels right and ``ty``
    down, as in :func:`augment_batch`.

    Args:
        images: uint8 images, channels last, as the engine stores them.
        shifts: ``(B, 2)`` whole-pixel shifts (x then y) from :func:`draw_augmentation` with ``whole_pixels``.
        flips: ``(B,)`` bool flip mask.
    """
    batch, height, width, _ = images.shape
    images = torch.where(flips.view(-1, 1, 1, 1), images.flip(2), images)
    shifts = shifts.long()
    # output pixel (i, j) is input pixel (i - ty, j - tx), black where that falls outside the image
    rows = torch.arange(height, device=images.device) - shifts[:, 1:]
    cols = torch.arange(width, device=images.device) - shifts[:, :1]
    inside = ((rows >= 0) & (rows < height)).unsqueeze(2) & ((cols >= 0) & (cols < width)).unsqueeze(1)
    index = torch.arange(batch, device=images.device).view(-1, 1, 1)
    out = images[index, rows.clamp(0, height - 1).unsqueeze(2), cols.clamp(0, width - 1).unsqueeze(1)]
    return out.mul_(inside.unsqueeze(3))
