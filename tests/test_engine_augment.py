"""The engine's augmentation: shift distributions, bilinear resampling with edge fill, pad-and-crop, flips, normalisation."""
import math

import pytest
import torch

from timm_ignore.engine import augment_batch, draw_augmentation, normalize, pad_and_crop


def _image(height: int = 8, width: int = 8) -> torch.Tensor:
    """A (1, 1, H, W) float64 ramp with distinct values, x varying fastest."""
    return torch.arange(height * width, dtype=torch.float64).view(1, 1, height, width)


def _shift(x: torch.Tensor, tx: float, ty: float) -> torch.Tensor:
    shifts = torch.tensor([[tx, ty]], dtype=x.dtype).expand(x.shape[0], 2)
    return augment_batch(x, shifts, torch.zeros(x.shape[0], dtype=torch.bool))


def test_shift_distribution_is_uniform_in_the_range():
    shifts, flips = draw_augmentation(torch.Generator().manual_seed(0), 200_000, 4.0, 0.5)
    assert shifts.shape == (200_000, 2) and flips.dtype == torch.bool
    assert shifts.min() >= -4.0 and shifts.max() <= 4.0
    assert shifts.min() < -3.99 and shifts.max() > 3.99  # the whole range is used
    # uniform on [-4, 4]: mean 0, variance 64 / 12; the two axes independent; real-valued, not integer
    n = shifts.shape[0]
    assert shifts.mean(0).abs().max() < 4 * math.sqrt(64 / 12 / n)
    assert torch.allclose(shifts.var(0), torch.full((2,), 64 / 12), rtol=0.02)
    assert abs(torch.corrcoef(shifts.T)[0, 1]) < 0.01
    assert (shifts != shifts.round()).float().mean() > 0.99
    # each eighth of the range holds an eighth of the draws
    counts = torch.histc(shifts[:, 0], bins=8, min=-4, max=4)
    assert torch.allclose(counts / n, torch.full((8,), 1 / 8), atol=0.005)
    assert abs(flips.float().mean() - 0.5) < 0.005


def test_draws_are_reproducible_from_the_generator_state():
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    first = draw_augmentation(g, 100, 4.0, 0.5)
    g.set_state(state)
    again = draw_augmentation(g, 100, 4.0, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_integer_shift_moves_content_and_repeats_the_edge():
    x = _image()
    out = _shift(x, 2.0, 0.0)  # content moves 2 px right
    assert torch.allclose(out[..., 2:], x[..., :-2], atol=1e-12)
    # fill_mode 'nearest': the two new columns repeat the left edge column
    assert torch.allclose(out[..., :2], x[..., :1].expand(-1, -1, -1, 2), atol=1e-12)
    out = _shift(x, 0.0, -3.0)  # content moves 3 px up; bottom rows repeat the last row
    assert torch.allclose(out[..., :-3, :], x[..., 3:, :], atol=1e-12)
    assert torch.allclose(out[..., -3:, :], x[..., -1:, :].expand(-1, -1, 3, -1), atol=1e-12)


def test_fractional_shift_is_bilinear():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    out = _shift(x, 0.25, 0.5)
    # sample point (i - 0.5, j - 0.25), clamped to the image: bilinear weights of the four neighbours
    xp = torch.cat([x[..., :1, :], x], 2)  # row above repeats the edge
    xp = torch.cat([xp[..., :1], xp], 3)  # column left repeats the edge
    top, bottom = xp[..., :-1, :], xp[..., 1:, :]
    rows = 0.5 * top + 0.5 * bottom
    expected = 0.25 * rows[..., :-1] + 0.75 * rows[..., 1:]
    assert torch.allclose(out, expected, atol=1e-12)


def test_flip_is_horizontal_and_per_sample():
    x = torch.rand(4, 3, 5, 6, dtype=torch.float64)
    flips = torch.tensor([True, False, True, False])
    out = augment_batch(x, torch.zeros(4, 2, dtype=x.dtype), flips)
    assert torch.allclose(out[flips], x[flips].flip(3), atol=1e-12)
    assert torch.allclose(out[~flips], x[~flips], atol=1e-12)


def test_normalize_subtracts_the_mean_image():
    images = torch.randint(0, 256, (3, 4, 5, 3), dtype=torch.uint8)
    mean_image = torch.rand(3, 4, 5)
    out = normalize(images, mean_image)
    assert out.shape == (3, 3, 4, 5) and out.dtype == torch.float32
    expected = images.permute(0, 3, 1, 2).double() / 255 - mean_image.double()
    assert torch.allclose(out.double(), expected, atol=1e-6)
    mean, std = torch.rand(3, 1, 1), torch.rand(3, 1, 1) + 0.5
    assert torch.allclose(normalize(images, mean, std).double(),
                          (images.permute(0, 3, 1, 2).double() / 255 - mean.double()) / std.double(), atol=1e-6)


@pytest.mark.parametrize('shift', [0.0, 4.0])
def test_zero_shift_without_flip_is_identity(shift):
    x = torch.rand(8, 3, 32, 32, dtype=torch.float64)
    shifts, _ = draw_augmentation(torch.Generator().manual_seed(1), 8, shift, 0.0)
    out = augment_batch(x, shifts, torch.zeros(8, dtype=torch.bool))
    assert torch.allclose(out, x, atol=1e-12) == (shift == 0.0)


def _pad_and_crop_reference(images: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """torchvision's recipe one image at a time: flip, pad with black on every side, crop at the shifted place."""
    pad = int(shifts.abs().max())
    out = []
    for image, (tx, ty), flip in zip(images, shifts.long().tolist(), flips.tolist()):
        image = image.flip(1) if flip else image
        padded = torch.nn.functional.pad(image.permute(2, 0, 1), (pad, pad, pad, pad)).permute(1, 2, 0)
        top, left = pad - ty, pad - tx
        out.append(padded[top:top + image.shape[0], left:left + image.shape[1]])
    return torch.stack(out)


def test_whole_pixel_shifts_are_uniform_on_the_integers():
    shifts, flips = draw_augmentation(torch.Generator().manual_seed(0), 180_000, 4.0, 0.5, whole_pixels=True)
    assert torch.equal(shifts, shifts.round()) and shifts.min() == -4 and shifts.max() == 4
    for axis in range(2):
        counts = torch.bincount((shifts[:, axis] + 4).long(), minlength=9)
        assert torch.allclose(counts / 180_000, torch.full((9,), 1 / 9), atol=0.004)
    assert abs(torch.corrcoef(shifts.T)[0, 1]) < 0.01
    assert abs(flips.float().mean() - 0.5) < 0.005


def test_both_shift_modes_advance_the_generator_alike():
    """A recipe's shift mode does not change the data order or the flips that follow the shifts in the stream."""
    real, whole = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    _, real_flips = draw_augmentation(real, 64, 4.0, 0.5)
    _, whole_flips = draw_augmentation(whole, 64, 4.0, 0.5, whole_pixels=True)
    assert torch.equal(real_flips, whole_flips) and torch.equal(real.get_state(), whole.get_state())


def test_pad_and_crop_is_torchvisions_pad_then_crop():
    images = torch.randint(1, 256, (64, 32, 32, 3), dtype=torch.uint8)  # no black pixel of its own
    shifts, flips = draw_augmentation(torch.Generator().manual_seed(2), 64, 4.0, 0.5, whole_pixels=True)
    out = pad_and_crop(images, shifts, flips)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, _pad_and_crop_reference(images, shifts, flips))
    # black exactly where the content moved away: |tx| columns and |ty| rows
    black = (out == 0).all(3).sum((1, 2))
    tx, ty = shifts[:, 0].abs().long(), shifts[:, 1].abs().long()
    assert torch.equal(black, 32 * tx + 32 * ty - tx * ty)


def test_pad_and_crop_moves_content_right_and_down():
    images = torch.arange(1, 65, dtype=torch.uint8).view(1, 8, 8, 1)
    out = pad_and_crop(images, torch.tensor([[2.0, -1.0]]), torch.tensor([False]))
    assert torch.equal(out[0, :-1, 2:], images[0, 1:, :-2])  # 2 px right, 1 px up
    assert (out[0, :, :2] == 0).all() and (out[0, -1] == 0).all()
    assert torch.equal(pad_and_crop(images, torch.zeros(1, 2), torch.tensor([True])), images.flip(2))
