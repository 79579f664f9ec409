"""Guinier plot, B-factor fit, FSC weighting, sharpening and the postprocess pipeline."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.fourier import apply_bfactor, radial_power_spectrum
from cryoglass.simulate import gaussian_map
from cryoglass.validate import (
    fit_bfactor,
    fourier_shell_correlation,
    fsc_weighting_filter,
    guinier_plot,
    postprocess,
    sharpen,
    soft_sphere_mask,
)


def _point_atoms(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """Unit deltas at random voxels: a flat expected amplitude spectrum (Wilson statistics)."""
    volume = torch.zeros(n**3, dtype=torch.float64)
    volume[torch.randperm(n**3, generator=generator)[:count]] = 1.0
    return volume.reshape(n, n, n)


def _halves(generator, *, n=48, pixel=1.5, bfactor=60.0, noise=3.0):
    centers = torch.randn(300, 3, generator=generator, dtype=torch.float64) * 7.0
    truth = gaussian_map(centers, shape=(n, n, n), pixel_size_angstrom=pixel, sigma_angstrom=1.0)
    truth = apply_bfactor(truth, ndim=3, bfactor_a2=bfactor, pixel_size_angstrom=pixel)
    sigma = noise * float(truth.std())
    h1 = truth + sigma * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    h2 = truth + sigma * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    return truth, h1, h2


@pytest.mark.parametrize("bfactor", [80.0, 150.0])
def test_guinier_fit_recovers_a_known_bfactor(generator, bfactor):
    atoms = _point_atoms(64, 4000, generator)
    blurred = apply_bfactor(atoms, ndim=3, bfactor_a2=bfactor, pixel_size_angstrom=1.0)
    k2, ln_amp = guinier_plot(blurred, pixel_size_angstrom=1.0)
    assert k2.shape == ln_amp.shape == (33,)
    fit = fit_bfactor(k2, ln_amp, low_resolution_angstrom=10.0, high_resolution_angstrom=2.5)
    assert math.isclose(float(fit.bfactor_a2), -bfactor, rel_tol=0.10)
    assert float(fit.correlation) < -0.99


def test_guinier_plot_is_the_log_mean_amplitude(generator):
    x = torch.randn(2, 16, 16, 16, generator=generator, dtype=torch.float64)
    k2, ln_amp = guinier_plot(x, pixel_size_angstrom=2.0)
    torch.testing.assert_close(k2, (torch.arange(9, dtype=torch.float64) / 32.0) ** 2)
    assert ln_amp.shape == (2, 9)
    # white noise: <|F|> is flat up to Rayleigh statistics, <|F|²> = N³ σ²
    power, _ = radial_power_spectrum(x, ndim=3, pixel_size_angstrom=2.0)
    assert bool((ln_amp[:, 2:] < 0.5 * torch.log(power[:, 2:] * 16**3)).all())  # Jensen


def test_sharpen_then_blur_round_trip(generator):
    x = torch.randn(24, 24, 24, generator=generator, dtype=torch.float64)
    sharp = sharpen(x, bfactor_a2=-80.0, pixel_size_angstrom=1.2)
    back = apply_bfactor(sharp, ndim=3, bfactor_a2=80.0, pixel_size_angstrom=1.2)
    torch.testing.assert_close(back, x, atol=1e-9, rtol=0)
    assert float(sharp.std()) > float(x.std())  # high frequencies amplified
    blurred = sharpen(x, bfactor_a2=80.0, pixel_size_angstrom=1.2)
    assert float(blurred.std()) < float(x.std())


def test_fsc_weighting_filter_values_and_cutoff():
    fsc = torch.tensor([1.0, 0.9, 0.5, 0.2, 0.00001, 0.3, 0.3, 0.3, 0.3], dtype=torch.float64)
    filt = fsc_weighting_filter(fsc, (16, 16, 16))
    from cryoglass.validate import fourier_shell_index

    index = fourier_shell_index((16, 16, 16))
    expected = torch.sqrt(2 * fsc / (1 + fsc))
    expected[4:] = 0.0  # zero from the first shell with FSC < 1e-4 on (RELION)
    for shell in range(9):
        values = filt[index == shell]
        torch.testing.assert_close(values, expected[shell].expand_as(values))
    assert float(filt[index > 8].abs().max()) == 0.0


def test_sharpen_applies_fsc_weight_and_lowpass(generator):
    x = torch.randn(32, 32, 32, generator=generator, dtype=torch.float64)
    fsc = torch.linspace(1.0, -0.1, 17, dtype=torch.float64)
    y = sharpen(x, bfactor_a2=0.0, pixel_size_angstrom=1.0, fsc=fsc, resolution_angstrom=4.0)
    p_x, _ = radial_power_spectrum(x, ndim=3, pixel_size_angstrom=1.0)
    p_y, _ = radial_power_spectrum(y, ndim=3, pixel_size_angstrom=1.0)
    ratio = (p_y / p_x).sqrt()
    weight = torch.sqrt(2 * fsc.clamp_min(0) / (1 + fsc.clamp_min(0)))
    torch.testing.assert_close(ratio[:6], weight[:6])  # below the 4 Å low-pass (shell 8)
    assert float(ratio[10:].max()) < 1e-12  # above the low-pass edge


def test_postprocess_pipeline(generator):
    truth, h1, h2 = _halves(generator)
    mask = soft_sphere_mask((48, 48, 48), radius_px=16, edge_width_px=6, dtype=torch.float64)
    result = postprocess(
        h1, h2, pixel_size_angstrom=1.5, mask=mask, generator=torch.Generator().manual_seed(0)
    )
    n = 25
    assert result.fsc_corrected.shape == result.fsc_masked.shape == (n,)
    assert result.sharpened.shape == result.unsharpened.shape == (48, 48, 48)
    rs = result.randomize_shell
    torch.testing.assert_close(result.fsc_corrected[: rs + 2], result.fsc_masked[: rs + 2])
    assert 3.0 < result.resolution_angstrom < 20.0
    assert result.resolution_shell_angstrom >= result.resolution_angstrom
    assert result.bfactor_a2 < 0 and result.fit is not None
    assert math.isclose(result.bfactor_a2, 4 * float(result.fit.slope))
    # the sharpened map is closer to the truth at high resolution than the plain average
    fsc_sharp = fourier_shell_correlation(result.sharpened * mask, truth * mask)
    fsc_avg = fourier_shell_correlation(0.5 * (h1 + h2) * mask, truth * mask)
    assert float(fsc_sharp[5:12].mean()) >= float(fsc_avg[5:12].mean()) - 0.02
    # without a mask the corrected curve is the unmasked one; a given B is used as is
    plain = postprocess(h1, h2, pixel_size_angstrom=1.5, bfactor=-50.0)
    assert plain.fsc_masked is None and plain.fit is None and plain.bfactor_a2 == -50.0
    torch.testing.assert_close(plain.fsc_corrected, plain.fsc_unmasked)


def test_postprocess_bfactor_follows_an_extra_blur(generator):
    _, h1, h2 = _halves(generator, noise=1.0)
    mask = soft_sphere_mask((48, 48, 48), radius_px=16, edge_width_px=6, dtype=torch.float64)
    common = dict(pixel_size_angstrom=1.5, mask=mask, fit_high_resolution_angstrom=4.0)
    base = postprocess(h1, h2, generator=torch.Generator().manual_seed(0), **common)
    b1 = apply_bfactor(h1, ndim=3, bfactor_a2=100.0, pixel_size_angstrom=1.5)
    b2 = apply_bfactor(h2, ndim=3, bfactor_a2=100.0, pixel_size_angstrom=1.5)
    blurred = postprocess(b1, b2, generator=torch.Generator().manual_seed(0), **common)
    assert math.isclose(blurred.bfactor_a2 - base.bfactor_a2, -100.0, rel_tol=0.10)


def test_postprocess_bad_inputs():
    a = torch.zeros(16, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        postprocess(a, torch.zeros(16, 16, 18), pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="mask shape"):
        postprocess(a, a, pixel_size_angstrom=1.0, mask=torch.ones(8, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        postprocess(a, a, pixel_size_angstrom=1.0, mask=2 * torch.ones(16, 16, 16))
    with pytest.raises(ValueError, match="'auto' or a number"):
        postprocess(a, a, pixel_size_angstrom=1.0, bfactor="sharp")
    k2 = torch.linspace(0, 0.25, 9)
    with pytest.raises(ValueError, match="fit range is empty"):
        fit_bfactor(k2, torch.zeros(9), low_resolution_angstrom=10.0, high_resolution_angstrom=12.0)
    with pytest.raises(ValueError, match="fewer than 2 shells"):
        fit_bfactor(k2, torch.zeros(9), low_resolution_angstrom=10.0, high_resolution_angstrom=9.0)
