"""CTF estimation (preprocess.ctffind): spectra, background, score, search, fit resolution.

The end-to-end checks use micrographs whose Thon rings are known exactly: white noise filtered by
a known CTF and an envelope, plus coloured background noise (the rings of a real micrograph have
the same form; the full image simulation lives in ``simulate-movies``).
"""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.ctf import CTFParams, aberration_phase, ctf_2d
from cryoglass.preprocess import (
    CTFSearch,
    average_power_spectrum,
    ctf_fit_score,
    equiphase_average,
    estimate_ctf,
    fit_resolution,
    power_spectrum,
    subtract_background,
)
from cryoglass.preprocess.ctffind import _canonical

OPTICS = {"voltage_kv": 300.0, "cs_mm": 2.7, "amplitude_contrast": 0.1}


def thon_micrograph(params, *, size, pixel, bfactor=80.0, noise=1.0, seed=0):
    """White noise × CTF × exp(−B k²/4) + background noise rising at low frequency."""
    g = torch.Generator().manual_seed(seed)
    ctf = ctf_2d(
        params,
        image_size=size,
        pixel_size_angstrom=pixel,
        rfft=True,
        centered=False,
        dtype=torch.float32,
    )
    ky = torch.fft.fftfreq(size, d=pixel)
    kx = torch.fft.rfftfreq(size, d=pixel)
    k = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    signal = torch.fft.rfft2(torch.randn(size, size, generator=g)) * ctf
    signal = signal * torch.exp(-bfactor * k**2 / 4)
    background = torch.fft.rfft2(torch.randn(size, size, generator=g)) * noise
    background = background * (1 + 0.3 / (50 * k + 0.05))
    return torch.fft.irfft2(signal + background, s=(size, size))


@pytest.fixture(autouse=True)
def _one_thread():
    """The search is many small operations: one thread is fastest (and reproducible)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- spectrum


def test_white_noise_spectrum_is_flat_at_its_variance(generator):
    noise = 2.0 * torch.randn(2, 700, 900, generator=generator)
    power, n_tiles = average_power_spectrum(noise, tile_px=128, overlap=0.5)
    assert power.shape == (2, 128, 128)
    assert n_tiles == ((700 - 128) // 64 + 1) * ((900 - 128) // 64 + 1)
    ring = power[:, 4:124, 4:124]
    assert torch.allclose(ring.mean(dim=(-2, -1)), torch.tensor([4.0, 4.0]), rtol=0.03)


def test_spectrum_is_centred_and_point_symmetric(generator):
    image = torch.randn(256, 256, generator=generator)
    y, x = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    image = image + 5 * torch.cos(2 * math.pi * (8 * x + 3 * y) / 64)  # a peak at k = (8, 3)/64
    power, _ = average_power_spectrum(image, tile_px=64, overlap=0.0)
    assert divmod(int(power.argmax()), 64) in ((32 + 3, 32 + 8), (32 - 3, 32 - 8))
    assert torch.allclose(power[1:, 1:], torch.flip(power[1:, 1:], dims=(-2, -1)), rtol=1e-4)


def test_small_pixels_are_resampled_to_the_fit_pixel(generator):
    noise = torch.randn(1200, 1200, generator=generator)
    spectrum = power_spectrum(noise, pixel_size_angstrom=0.5, tile_size=256)
    assert spectrum.power.shape == (256, 256)
    assert spectrum.tile_px >= 256 * 1.4 / 0.5
    assert spectrum.pixel_size_angstrom == pytest.approx(0.5 * spectrum.tile_px / 256)
    big = power_spectrum(noise, pixel_size_angstrom=2.0, tile_size=256)
    assert big.tile_px == 256 and big.pixel_size_angstrom == 2.0


def test_tiles_larger_than_the_micrograph_are_refused(generator):
    with pytest.raises(ValueError, match="smaller than the spectrum tile"):
        power_spectrum(
            torch.randn(300, 800, generator=generator), pixel_size_angstrom=1.0, tile_size=512
        )


def test_background_subtraction_keeps_rings_and_removes_slopes():
    n = 128
    i = torch.arange(n, dtype=torch.float64) - n // 2
    r = torch.sqrt(i[:, None] ** 2 + i[None, :] ** 2)
    rings = 0.2 * torch.cos(2 * math.pi * r / 6)
    smooth = 10.0 / (1 + r / 10)
    clean = subtract_background(smooth + rings, box_px=13, inner_radius_px=8)
    outside = (r > 16) & (r < 60)
    correlation = torch.corrcoef(torch.stack([clean[outside], rings[outside]]))[0, 1]
    assert correlation > 0.95
    assert float(clean[outside].mean().abs()) < 0.02
    assert bool((clean[r < 8] == 0).all())


# ----------------------------------------------------------------------------- score


def test_score_is_one_for_the_true_ctf_and_ignores_scale_and_offset():
    n, pixel = 128, 1.5
    i = torch.arange(n, dtype=torch.float64) - n // 2
    k = torch.stack(torch.meshgrid(i, i, indexing="xy"), dim=-1).reshape(-1, 2) / (n * pixel)
    k = k[(k.norm(dim=-1) > 1 / 30) & (k.norm(dim=-1) < 1 / 4)]
    truth = CTFParams(18000.0, 16000.0, astigmatism_angle_deg=25.0, **OPTICS)
    values = torch.sin(aberration_phase(truth, k)).abs()
    assert float(ctf_fit_score(values, k, truth)) == pytest.approx(1.0, abs=1e-9)
    assert float(ctf_fit_score(3 * values - 7, k, truth)) == pytest.approx(1.0, abs=1e-9)
    wrong = CTFParams(16000.0, 18000.0, astigmatism_angle_deg=25.0, **OPTICS)  # U/V swapped
    assert float(ctf_fit_score(values, k, wrong)) < 0.5


def test_canonical_form_orders_u_v_and_wraps_the_angle():
    u, v, angle, phase = _canonical(
        CTFParams(15000.0, 17000.0, astigmatism_angle_deg=100.0, phase_shift_deg=200.0)
    )
    assert (u, v) == (17000.0, 15000.0)
    assert angle == pytest.approx(10.0)  # 100 + 90 = 190 ≡ 10 (mod 180)
    assert phase == pytest.approx(20.0)


# ----------------------------------------------------------------------------- estimate


@pytest.mark.parametrize(
    ("mean", "astigmatism", "angle", "pixel", "noise", "seed"),
    [
        (9000.0, 1200.0, 40.0, 1.0, 1.0, 1),  # low defocus, strong astigmatism
        (32000.0, 600.0, -70.0, 1.0, 1.0, 2),  # high defocus: dense rings
        (18000.0, 2000.0, 85.0, 0.6, 1.0, 3),  # small pixel: resampled spectrum
        (15000.0, 800.0, -20.0, 1.6, 2.0, 4),  # noisier
        (22000.0, 0.0, 0.0, 1.2, 1.0, 5),  # no astigmatism
    ],
)
def test_estimate_recovers_defocus_and_astigmatism(mean, astigmatism, angle, pixel, noise, seed):
    truth = CTFParams(
        mean + astigmatism / 2, mean - astigmatism / 2, astigmatism_angle_deg=angle, **OPTICS
    )
    micrograph = thon_micrograph(truth, size=2048, pixel=pixel, noise=noise, seed=seed)
    fit = estimate_ctf(micrograph, pixel_size_angstrom=pixel, **OPTICS)
    assert abs(fit.defocus_mean_angstrom - mean) / mean < 0.005
    assert fit.defocus_u_angstrom >= fit.defocus_v_angstrom
    assert -90.0 <= fit.astigmatism_angle_deg < 90.0
    assert abs(fit.astigmatism_angstrom - astigmatism) < 100.0
    if astigmatism >= 500:
        error = (fit.astigmatism_angle_deg - angle + 90.0) % 180.0 - 90.0
        assert abs(error) < 3.0
    assert 0.0 < fit.figure_of_merit <= 1.0


def test_phase_plate_shift_is_found():
    truth = CTFParams(9000.0, 8500.0, astigmatism_angle_deg=10.0, phase_shift_deg=70.0, **OPTICS)
    micrograph = thon_micrograph(truth, size=1024, pixel=1.2, seed=7)
    fit = estimate_ctf(
        micrograph,
        pixel_size_angstrom=1.2,
        **OPTICS,
        search=CTFSearch(tile_size=256, phase_plate=True, min_defocus_angstrom=3000.0),
    )
    assert abs(fit.phase_shift_deg - 70.0) < 5.0
    assert abs(fit.defocus_mean_angstrom - 8750.0) / 8750.0 < 0.01


def test_defocus_range_is_respected():
    truth = CTFParams(30000.0, 30000.0, **OPTICS)
    micrograph = thon_micrograph(truth, size=1024, pixel=1.0, seed=8)
    fit = estimate_ctf(
        micrograph,
        pixel_size_angstrom=1.0,
        **OPTICS,
        search=CTFSearch(tile_size=256, max_defocus_angstrom=20000.0),
    )
    assert fit.defocus_mean_angstrom <= 20000.0 + 2000.0


def test_fit_resolution_follows_the_envelope():
    truth = CTFParams(15000.0, 14000.0, astigmatism_angle_deg=30.0, **OPTICS)
    resolutions = []
    for bfactor in (50.0, 400.0, 1500.0):
        micrograph = thon_micrograph(truth, size=1024, pixel=1.0, bfactor=bfactor, seed=9)
        fit = estimate_ctf(
            micrograph,
            pixel_size_angstrom=1.0,
            **OPTICS,
            search=CTFSearch(tile_size=256, max_resolution_angstrom=6.0),
        )
        resolutions.append(fit.max_resolution_angstrom)
    assert resolutions[0] < resolutions[1] < resolutions[2]
    assert resolutions[0] < 4.0 and resolutions[2] > 6.0


def test_equiphase_average_straightens_astigmatic_rings():
    p = CTFParams(20000.0, 16000.0, astigmatism_angle_deg=-35.0, **OPTICS)
    n, pixel = 256, 2.0
    i = torch.arange(n, dtype=torch.float64) - n // 2
    k = torch.stack(torch.meshgrid(i, i, indexing="xy"), dim=-1) / (n * pixel)
    image = torch.sin(aberration_phase(p, k)).abs()
    freq, average, fit = equiphase_average(image, p, pixel_size_angstrom=pixel)
    inside = (freq > 1 / 40) & (freq < 1 / 5)
    assert torch.corrcoef(torch.stack([average[inside], fit[inside]]))[0, 1] > 0.97
    resolution, correlation = fit_resolution(
        freq, average, fit, p, min_frequency_inv_angstrom=1 / 40
    )
    assert resolution == pytest.approx(2 * pixel, rel=0.02)  # rings everywhere: Nyquist
    assert bool(torch.isnan(correlation[: int(n * pixel / 40)]).all())
