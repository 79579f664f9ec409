"""Radial shells, radial averages and rotationally averaged power spectra."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.fourier import (
    coordinate_grid,
    fftn_centered,
    radial_average,
    radial_power_spectrum,
    radial_shell_index,
    rfftn_centered,
    shell_frequencies,
)


def test_shell_index_definition():
    idx = radial_shell_index((16, 16))
    assert idx[8, 8] == 0
    assert idx[8, 11] == 3  # 3 px along x
    assert idx[12, 11] == 5  # (3, 4) -> 5
    assert idx[9, 9] == 1  # sqrt(2) = 1.41 -> 1
    assert idx[10, 10] == 3  # sqrt(8) = 2.83 -> 3
    assert idx[0, 0] == 11  # corner sqrt(128) = 11.3
    half = radial_shell_index((16, 16), rfft=True)
    assert half.shape == (16, 9) and half[8, 0] == 0 and half[8, 8] == 8


@pytest.mark.parametrize("shape", [(10, 10), (9, 9), (8, 8, 8)])
def test_radial_average_matches_loop(shape, generator):
    """The vectorised average equals a plain per-shell mean."""
    ndim = len(shape)
    x = torch.rand(3, *shape, generator=generator, dtype=torch.float64)
    got = radial_average(x, ndim=ndim)
    index = radial_shell_index(shape)
    for i in range(shape[-1] // 2 + 1):
        expected = x[..., index == i].mean(-1)
        torch.testing.assert_close(got[..., i], expected)


@pytest.mark.parametrize("shape", [(12, 12), (11, 11), (8, 8, 8), (7, 7, 7)])
def test_rfft_average_equals_full_average(shape, generator):
    ndim = len(shape)
    x = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
    full = radial_average(fftn_centered(x, ndim=ndim).abs().square(), ndim=ndim)
    half = radial_average(
        rfftn_centered(x, ndim=ndim).abs().square(), ndim=ndim, rfft=True, width=shape[-1]
    )
    torch.testing.assert_close(half, full)


def test_power_spectrum_of_gaussian_matches_analytic():
    """g(r) = exp(-r²/2σ²) has FT 2πσ² exp(-2π²σ²k²); the DFT samples it divided by p²."""
    n, pixel, sigma = 64, 1.2, 1.2
    r = coordinate_grid((n, n), dtype=torch.float64) * pixel
    g = torch.exp(-r.square().sum(-1) / (2 * sigma**2))
    power, freq = radial_power_spectrum(g, ndim=2, pixel_size_angstrom=pixel)
    assert power.shape == (n // 2 + 1,)
    torch.testing.assert_close(freq, torch.arange(n // 2 + 1, dtype=torch.float64) / (n * pixel))
    analytic = (
        2 * math.pi * sigma**2 / pixel**2 * torch.exp(-2 * math.pi**2 * sigma**2 * freq**2)
    ) ** 2 / n**2
    torch.testing.assert_close(power[0], analytic[0], rtol=1e-6, atol=0)  # DC: sum = integral
    torch.testing.assert_close(power[:16], analytic[:16], rtol=0.03, atol=0)


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_white_noise_power_is_flat(shape, generator):
    variance = 2.5
    x = torch.randn(24, *shape, generator=generator, dtype=torch.float64) * math.sqrt(variance)
    power, _ = radial_power_spectrum(x, ndim=len(shape), pixel_size_angstrom=1.0)
    mean_power = power.mean(0)
    torch.testing.assert_close(
        mean_power[2:], torch.full_like(mean_power[2:], variance), rtol=0.2, atol=0
    )
    assert abs(mean_power[2:].mean().item() / variance - 1) < 0.04


def test_complex_and_batched_average(generator):
    x = torch.randn(2, 3, 8, 8, generator=generator, dtype=torch.complex128)
    avg = radial_average(x, ndim=2)
    assert avg.shape == (2, 3, 5) and avg.is_complex()
    torch.testing.assert_close(avg.real, radial_average(x.real, ndim=2))


def test_shell_frequencies_and_errors():
    torch.testing.assert_close(
        shell_frequencies(3, box_size=128, pixel_size_angstrom=1.0, dtype=torch.float64),
        torch.tensor([0.0, 1 / 128, 2 / 128], dtype=torch.float64),
    )
    with pytest.raises(ValueError, match="width"):
        radial_average(torch.zeros(8, 6), ndim=2, rfft=True)
    with pytest.raises(ValueError, match="ndim"):
        radial_average(torch.zeros(8, 8), ndim=4)
