"""Fourier filters: raised-cosine pass filters, Gaussian, Butterworth, B-factor."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.fourier import (
    apply_bfactor,
    bandpass,
    bandpass_filter,
    bfactor_filter,
    butterworth_lowpass_filter,
    coordinate_grid,
    frequency_radius,
    gaussian_lowpass,
    gaussian_lowpass_filter,
    highpass_filter,
    lowpass,
    lowpass_filter,
)


def test_lowpass_values_below_and_above_cutoff():
    shape, pixel, d = (64, 64), 1.0, 8.0
    filt = lowpass_filter(
        shape, resolution_angstrom=d, pixel_size_angstrom=pixel, dtype=torch.float64
    )
    k = frequency_radius(shape, pixel_size_angstrom=pixel, dtype=torch.float64)
    edge = 2 / (64 * pixel)
    assert torch.all(filt[k <= 1 / d - edge / 2] == 1)
    assert torch.all(filt[k >= 1 / d + edge / 2] == 0)
    assert filt[32, 32 + 8].item() == pytest.approx(0.5)  # k = 8/64 = 1/d exactly
    inside = (k > 1 / d - edge / 2) & (k < 1 / d + edge / 2)
    assert torch.all((filt[inside] > 0) & (filt[inside] < 1))
    hard = lowpass_filter(
        shape, resolution_angstrom=d, pixel_size_angstrom=pixel, edge_width_inv_angstrom=0.0
    )
    assert torch.equal(hard, (k <= 1 / d).float())


def test_lowpass_keeps_low_and_removes_high_cosines():
    n, pixel = 64, 1.5
    x = torch.arange(n, dtype=torch.float64) * pixel
    low = torch.cos(2 * math.pi * x * 3 / (n * pixel))  # 3 cycles: 32 Å period
    high = torch.cos(2 * math.pi * x * 20 / (n * pixel))  # 4.8 Å period
    image = (low + high).expand(n, n)
    out = lowpass(image, ndim=2, resolution_angstrom=10.0, pixel_size_angstrom=pixel)
    torch.testing.assert_close(out, low.expand(n, n))


def test_highpass_complements_lowpass_and_bandpass_is_product():
    kw = dict(pixel_size_angstrom=1.3, rfft=True, dtype=torch.float64)
    low = lowpass_filter((32, 32), resolution_angstrom=6.0, **kw)
    high = highpass_filter((32, 32), resolution_angstrom=6.0, **kw)
    torch.testing.assert_close(low + high, torch.ones_like(low))
    band = bandpass_filter(
        (32, 32), low_resolution_angstrom=20.0, high_resolution_angstrom=6.0, **kw
    )
    torch.testing.assert_close(
        band, low * highpass_filter((32, 32), resolution_angstrom=20.0, **kw)
    )
    assert band[16, 0] == 0  # DC removed
    assert band[16, 4] == 1  # k = 4 / (32 * 1.3) = 1/10.4 Å: inside the band
    assert band[16, 8] == 0  # k = 1/5.2 Å: beyond the 6 Å low-pass


def test_bandpass_on_images_removes_mean(generator):
    x = torch.randn(2, 32, 32, generator=generator) + 5.0
    y = bandpass(
        x,
        ndim=2,
        low_resolution_angstrom=30.0,
        high_resolution_angstrom=4.0,
        pixel_size_angstrom=1.0,
    )
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.mean((-2, -1)), torch.zeros(2), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="smaller"):
        bandpass_filter(
            (8, 8),
            low_resolution_angstrom=4.0,
            high_resolution_angstrom=8.0,
            pixel_size_angstrom=1.0,
        )


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_bfactor_blur_then_sharpen_is_identity(shape, generator):
    x = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
    ndim = len(shape)
    blurred = apply_bfactor(x, ndim=ndim, bfactor_a2=80.0, pixel_size_angstrom=1.5)
    assert (blurred - x).abs().max() > 0.1  # the blur did something
    back = apply_bfactor(blurred, ndim=ndim, bfactor_a2=-80.0, pixel_size_angstrom=1.5)
    torch.testing.assert_close(back, x)


def test_bfactor_values_and_batch():
    pixel = 1.0
    filt = bfactor_filter(
        (64, 64), bfactor_a2=100.0, pixel_size_angstrom=pixel, dtype=torch.float64
    )
    # k = 16/64 = 0.25 1/Å  ->  exp(-100 * 0.0625 / 4)
    assert filt[32, 48].item() == pytest.approx(math.exp(-100 * 0.25**2 / 4))
    b = torch.tensor([0.0, 50.0, -30.0], dtype=torch.float64)
    batch = bfactor_filter((16, 16), bfactor_a2=b, pixel_size_angstrom=pixel, rfft=True)
    assert batch.shape == (3, 16, 9) and batch.dtype == torch.float64
    for i in range(3):
        single = bfactor_filter(
            (16, 16),
            bfactor_a2=float(b[i]),
            pixel_size_angstrom=pixel,
            rfft=True,
            dtype=torch.float64,
        )
        torch.testing.assert_close(batch[i], single)


def test_bfactor_equals_gaussian_with_b_8pi2_sigma2():
    sigma = 1.7
    g = gaussian_lowpass_filter(
        (32, 32), sigma_angstrom=sigma, pixel_size_angstrom=1.1, dtype=torch.float64
    )
    b = bfactor_filter(
        (32, 32), bfactor_a2=8 * math.pi**2 * sigma**2, pixel_size_angstrom=1.1, dtype=torch.float64
    )
    torch.testing.assert_close(g, b)


def test_gaussian_lowpass_of_gaussian_is_wider_gaussian():
    """Convolving Gaussians adds variances: σ² = σ1² + σ2², peak scaled by σ1²/σ² (2D)."""
    pixel, s1, s2 = 1.0, 2.0, 1.5
    r2 = (coordinate_grid((64, 64), dtype=torch.float64) * pixel).square().sum(-1)
    x = torch.exp(-r2 / (2 * s1**2))
    y = gaussian_lowpass(x, ndim=2, sigma_angstrom=s2, pixel_size_angstrom=pixel)
    s = math.hypot(s1, s2)
    torch.testing.assert_close(y, s1**2 / s**2 * torch.exp(-r2 / (2 * s**2)), atol=1e-9, rtol=0)


def test_butterworth_half_power_at_cutoff():
    filt = butterworth_lowpass_filter(
        (64, 64), resolution_angstrom=8.0, pixel_size_angstrom=1.0, order=3, dtype=torch.float64
    )
    assert filt[32, 40].item() == pytest.approx(1 / math.sqrt(2))
    assert filt[32, 32] == 1
    assert filt[32, 63].item() == pytest.approx((1 + (31 / 8) ** 6) ** -0.5)


def test_filter_errors():
    with pytest.raises(ValueError, match="resolution"):
        lowpass_filter((8, 8), resolution_angstrom=0.0, pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="rfft grid"):
        from cryoglass.fourier import apply_fourier_filter

        apply_fourier_filter(torch.zeros(8, 8), torch.ones(8, 8), ndim=2)
