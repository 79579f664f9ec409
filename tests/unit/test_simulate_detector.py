"""Detector MTF/DQE models and their application."""

import math

import pytest
import torch

from cryoglass.fourier import rfft2_centered
from cryoglass.simulate.detector import (
    apply_dqe,
    apply_mtf,
    counting_detector_dqe,
    counting_detector_mtf,
    nyquist_frequency_grid,
    tabulated_detector_curve,
)


def test_counting_mtf_values():
    mtf = counting_detector_mtf(64, dtype=torch.float64)  # centred rfft: DC at row 32, col 0
    assert mtf.shape == (64, 33)
    assert mtf[32, 0] == 1.0
    assert mtf[32, 32] == pytest.approx(2 / math.pi)  # Nyquist along x
    assert mtf[0, 32] == pytest.approx((2 / math.pi) ** 2)  # corner: separable
    radial = counting_detector_mtf(64, separable=False, dtype=torch.float64)
    assert radial[0, 32] == pytest.approx(
        math.sin(math.pi / math.sqrt(2)) / (math.pi / math.sqrt(2))
    )
    spread = counting_detector_mtf(64, charge_spread_px=0.5, dtype=torch.float64)
    assert spread[32, 32] == pytest.approx(2 / math.pi * math.exp(-0.5 * math.pi**2 * 0.25))


def test_counting_dqe_is_dqe0_mtf_squared():
    mtf = counting_detector_mtf(32, charge_spread_px=0.3, rfft=False, centered=False)
    dqe = counting_detector_dqe(32, dqe_zero=0.7, charge_spread_px=0.3, rfft=False, centered=False)
    torch.testing.assert_close(dqe, 0.7 * mtf**2)
    with pytest.raises(ValueError, match="dqe_zero"):
        counting_detector_dqe(32, dqe_zero=1.5)


def test_tabulated_curve_interpolates():
    f = torch.tensor([0.0, 0.25, 0.5], dtype=torch.float64)
    values = torch.tensor([1.0, 0.6, 0.2], dtype=torch.float64)
    curve = tabulated_detector_curve(f, values, image_size=64)
    assert curve[32, 0] == pytest.approx(1.0)
    assert curve[32, 16] == pytest.approx(0.6)  # k = 16/64 = 0.25 / pixel
    assert curve[32, 8] == pytest.approx(0.8)
    assert curve[32, 32] == pytest.approx(0.2)
    assert curve[0, 32] == pytest.approx(0.2)  # beyond the table: last value
    with pytest.raises(ValueError, match="increasing"):
        tabulated_detector_curve(f.flip(0), values, image_size=8)


def test_apply_dqe_scales_signal_spectrum(generator):
    images = torch.rand(2, 32, 32, generator=generator, dtype=torch.float64) + 5
    dqe = counting_detector_dqe(32, dqe_zero=0.8, dtype=torch.float64)
    out = apply_dqe(images, dqe)
    torch.testing.assert_close(out.mean(dim=(-2, -1)), images.mean(dim=(-2, -1)))
    signal_in = rfft2_centered(images - images.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    signal_out = rfft2_centered(out - out.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    inner = signal_in[:, 1:, 1:-1]  # away from the self-conjugate column/row
    torch.testing.assert_close(signal_out[:, 1:, 1:-1], inner * dqe[1:, 1:-1])
    with pytest.raises(ValueError, match="centred rfft grid"):
        apply_dqe(images, dqe[:, :-1])


def test_apply_mtf_of_a_delta_has_the_mtf_as_spectrum():
    delta = torch.zeros(32, 32, dtype=torch.float64)
    delta[16, 16] = 1.0
    mtf = counting_detector_mtf(32, charge_spread_px=0.4, dtype=torch.float64)
    psf = apply_mtf(delta, mtf)
    torch.testing.assert_close(rfft2_centered(psf).real, mtf, atol=1e-12, rtol=0)
    assert nyquist_frequency_grid(32)[16, 16, 0] == 1.0
