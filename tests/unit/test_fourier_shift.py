"""Fourier shift theorem: phase ramps, sub-pixel shifts of images and volumes."""

from __future__ import annotations

import pytest
import torch

from cryoglass.fourier import (
    coordinate_grid,
    fftn_centered,
    ifftn_centered,
    phase_ramp,
    phase_shift_fourier,
    rfftn_centered,
    shift_image,
)


def _half(full: torch.Tensor, width: int) -> torch.Tensor:
    """The rfft half grid cut from a centred full grid (Nyquist column is index 0 of full)."""
    half = full[..., width // 2 :]
    return torch.cat([half, full[..., :1]], dim=-1) if width % 2 == 0 else half


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (6, 5)])
def test_integer_shift_equals_roll(shape, generator):
    x = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
    pixel = 1.7
    shift_px = torch.tensor([[3, -2], [-1, 4]])  # (x, y)
    y = shift_image(x, shift_px.double() * pixel, pixel_size_angstrom=pixel)
    for i in range(2):
        expected = torch.roll(x[i], (int(shift_px[i, 1]), int(shift_px[i, 0])), dims=(-2, -1))
        torch.testing.assert_close(y[i], expected)


def test_integer_shift_volume_equals_roll(generator):
    x = torch.randn(6, 5, 8, generator=generator, dtype=torch.float64)
    y = shift_image(x, torch.tensor([2.0, -1.0, 3.0]), pixel_size_angstrom=1.0)
    torch.testing.assert_close(y, torch.roll(x, (3, -1, 2), dims=(-3, -2, -1)))


def test_subpixel_shift_of_gaussian_matches_analytic():
    """A smooth Gaussian shifted by a fraction of a pixel equals the Gaussian sampled off-centre."""
    pixel = 1.5
    r = coordinate_grid((32, 32), dtype=torch.float64) * pixel  # (y, x, 2) in Å, (x, y)
    s = torch.tensor([2.3, -4.1], dtype=torch.float64)
    sigma = 3.0
    g = torch.exp(-r.square().sum(-1) / (2 * sigma**2))
    expected = torch.exp(-(r - s).square().sum(-1) / (2 * sigma**2))
    torch.testing.assert_close(
        shift_image(g, s, pixel_size_angstrom=pixel), expected, atol=1e-8, rtol=0
    )


@pytest.mark.parametrize("shape", [(7, 9), (5, 7, 3)])
def test_subpixel_shift_and_back_is_identity_odd_box(shape, generator):
    x = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
    s = torch.randn(2, len(shape), generator=generator, dtype=torch.float64) * 3.3
    back = shift_image(shift_image(x, s, pixel_size_angstrom=1.2), -s, pixel_size_angstrom=1.2)
    torch.testing.assert_close(back, x)


@pytest.mark.parametrize("shape", [(8, 8), (8, 6), (7, 8), (6, 8, 4)])
def test_rfft_shift_equals_full_shift(shape, generator):
    ndim = len(shape)
    x = torch.randn(3, *shape, generator=generator, dtype=torch.float64)
    s = torch.randn(3, ndim, generator=generator, dtype=torch.float64) * 2.0
    f = fftn_centered(x, ndim=ndim)
    full = phase_shift_fourier(f, s, pixel_size_angstrom=0.9, image_shape=shape, rfft=False)
    y_full = ifftn_centered(full, ndim=ndim)
    assert y_full.imag.abs().max() < 1e-12  # the Nyquist convention keeps real images real
    y_half = shift_image(x, s, pixel_size_angstrom=0.9)
    torch.testing.assert_close(y_half, y_full.real)
    h = phase_shift_fourier(
        rfftn_centered(x, ndim=ndim), s, pixel_size_angstrom=0.9, image_shape=shape, rfft=True
    )
    torch.testing.assert_close(h, _half(full, shape[-1]))


def test_phase_ramp_is_unit_modulus_off_nyquist():
    ramp = phase_ramp(torch.tensor([0.37, -1.1]), pixel_size_angstrom=1.0, image_shape=(8, 8))
    torch.testing.assert_close(ramp[1:, 1:].abs(), torch.ones(7, 7))
    assert ramp[4, 4] == 1  # DC untouched


def test_shift_batch_broadcast_and_dtype(generator):
    x = torch.randn(4, 8, 8, generator=generator)
    s = torch.zeros(4, 2)
    s[2] = torch.tensor([1.0, 0.0])
    y = shift_image(x, s, pixel_size_angstrom=1.0)
    assert y.dtype == torch.float32 and y.shape == x.shape
    torch.testing.assert_close(y[0], x[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(y[2], torch.roll(x[2], 1, dims=-1), atol=1e-5, rtol=0)


def test_shift_errors():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        shift_image(torch.zeros(8, 8), torch.zeros(4), pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="trailing shape"):
        phase_shift_fourier(
            torch.zeros(8, 8, dtype=torch.complex64),
            torch.zeros(2),
            pixel_size_angstrom=1.0,
            image_shape=(8, 8),
            rfft=True,
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_shift_cuda_matches_cpu(generator):
    x = torch.randn(2, 16, 16, generator=generator)
    s = torch.tensor([[0.3, 1.2], [-2.5, 0.1]])
    y = shift_image(x.cuda(), s.cuda(), pixel_size_angstrom=1.1)
    assert y.device.type == "cuda"
    torch.testing.assert_close(
        y.cpu(), shift_image(x, s, pixel_size_angstrom=1.1), atol=1e-5, rtol=0
    )
