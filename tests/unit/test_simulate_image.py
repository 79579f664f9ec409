"""Weak-phase and phase-object image formation, envelopes, interaction constant."""

import math
from dataclasses import replace

import pytest
import torch

from cryoglass.constants import (
    ELECTRON_MASS_KG,
    ELEMENTARY_CHARGE_C,
    PLANCK_J_S,
    SPEED_OF_LIGHT_M_S,
)
from cryoglass.ctf import CTFParams, ctf_2d, electron_wavelength_angstrom, multiply_ctf
from cryoglass.simulate.image import (
    exit_wave,
    fft_frequencies,
    focal_spread_angstrom,
    image_from_exit_wave,
    interaction_constant_rad_per_volt_angstrom,
    phase_object_image,
    spatial_coherence_envelope,
    temporal_coherence_envelope,
    weak_phase_contrast,
    weak_phase_image,
)

SIZE = 63  # odd: no Nyquist row, where full-grid and rfft CTFs of astigmatic lenses differ


def _potential(generator, size=SIZE, batch=()):
    """A smooth random projected potential [V Å] of protein-like magnitude (~100 V Å)."""
    x = torch.randn(*batch, size, size, generator=generator, dtype=torch.float64)
    k = fft_frequencies(size, pixel_size_angstrom=1.0)
    blur = torch.exp(-40.0 * (k * k).sum(-1))
    return 100.0 * torch.fft.ifft2(torch.fft.fft2(x) * blur).real.abs()


CTF = CTFParams(12000.0, 10000.0, astigmatism_angle_deg=25.0, amplitude_contrast=0.1)


def test_interaction_constant_from_si_constants():
    volts = 300e3
    lam_m = electron_wavelength_angstrom(300.0) * 1e-10
    mass = ELECTRON_MASS_KG * (
        1 + ELEMENTARY_CHARGE_C * volts / (ELECTRON_MASS_KG * SPEED_OF_LIGHT_M_S**2)
    )
    sigma_si = 2 * math.pi * mass * ELEMENTARY_CHARGE_C * lam_m / PLANCK_J_S**2  # rad / (V m)
    assert interaction_constant_rad_per_volt_angstrom(300.0) == pytest.approx(
        sigma_si * 1e-10, rel=1e-6
    )
    assert interaction_constant_rad_per_volt_angstrom(300.0) == pytest.approx(0.00065, abs=5e-6)


def test_weak_phase_contrast_is_multiply_ctf(generator):
    vp = _potential(generator, size=64, batch=(2,))
    ctf = CTFParams(
        torch.tensor([15000.0, 9000.0]),
        torch.tensor([14000.0, 9500.0]),
        astigmatism_angle_deg=torch.tensor([10.0, 80.0]),
        amplitude_contrast=0.07,
    )
    got = weak_phase_contrast(vp, ctf, pixel_size_angstrom=1.3)
    expected = multiply_ctf(
        vp * interaction_constant_rad_per_volt_angstrom(300.0), ctf, pixel_size_angstrom=1.3
    )
    torch.testing.assert_close(got, expected)


def test_phase_object_agrees_with_weak_phase_to_first_order(generator):
    vp = _potential(generator)
    errors = []
    for scale in (1e-3, 2e-3):
        full = phase_object_image(vp * scale, CTF, pixel_size_angstrom=1.0) - 1
        weak = weak_phase_image(vp * scale, CTF, pixel_size_angstrom=1.0) - 1
        errors.append(float((full - weak).norm() / weak.norm()))
    assert errors[0] < 1e-3
    assert errors[1] / errors[0] == pytest.approx(2.0, rel=0.05)  # the error is second order


def test_strong_phase_breaks_weak_phase(generator):
    vp = _potential(generator) * 20  # phases up to ~several rad
    full = phase_object_image(vp, CTF, pixel_size_angstrom=1.0) - 1
    weak = weak_phase_image(vp, CTF, pixel_size_angstrom=1.0) - 1
    assert float((full - weak).norm() / weak.norm()) > 0.1


def test_underfocus_makes_protein_dark():
    y, x = torch.meshgrid(
        torch.arange(SIZE) - SIZE // 2, torch.arange(SIZE) - SIZE // 2, indexing="ij"
    )
    blob = 200.0 * torch.exp(-(x**2 + y**2) / (2 * 4.0**2)).double()
    ctf = CTFParams(20000.0, 20000.0, amplitude_contrast=0.1)
    image = phase_object_image(blob, ctf, pixel_size_angstrom=2.0)
    assert image[SIZE // 2, SIZE // 2] < 0.99
    assert weak_phase_contrast(blob, ctf, pixel_size_angstrom=2.0)[SIZE // 2, SIZE // 2] > 0.005


@pytest.mark.parametrize("defocus_angstrom", [3000.0, 8000.0, 15000.0, 30000.0])
@pytest.mark.parametrize("cs_mm", [0.0, 2.7])
@pytest.mark.parametrize("amplitude_contrast", [0.0, 0.1])
@pytest.mark.parametrize("size", [64, 65])
def test_protein_is_dark_in_underfocus_in_the_raw_image(
    defocus_angstrom, cs_mm, amplitude_contrast, size
):
    """RELION's sign (docs/conventions.md item 7): a positive potential is darker than vacuum in
    the raw image in underfocus, brighter in overfocus (pure phase object); RELION's particle
    image (CTF × projection) shows it white.  Lesson 01 teaches exactly this."""
    pixel = 2.0
    centre = size // 2
    yx = torch.arange(size, dtype=torch.float64) - centre
    r2 = yx[:, None] ** 2 + yx[None, :] ** 2
    sigma_e = interaction_constant_rad_per_volt_angstrom(300.0)
    # a 0.05 rad phase bump of σ = 8 Å: protein-like, and inside the first CTF lobe
    blob = 0.05 / sigma_e * torch.exp(-r2 * pixel**2 / (2 * 8.0**2))
    under = CTFParams(
        defocus_angstrom, defocus_angstrom, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast
    )
    raw = phase_object_image(blob, under, pixel_size_angstrom=pixel)
    assert raw[centre, centre] < 1.0 - 1e-3
    assert weak_phase_image(blob, under, pixel_size_angstrom=pixel)[centre, centre] < 1.0 - 1e-3
    assert weak_phase_contrast(blob, under, pixel_size_angstrom=pixel)[centre, centre] > 1e-4
    if amplitude_contrast == 0.0:
        over = replace(
            under, defocus_u_angstrom=-defocus_angstrom, defocus_v_angstrom=-defocus_angstrom
        )
        assert (
            phase_object_image(blob, over, pixel_size_angstrom=pixel)[centre, centre] > 1.0 + 1e-3
        )


def test_protein_dark_in_underfocus_numbers_of_lesson_01():
    """Issue 22's case: the same phase bump at 1.5 µm underfocus has centre intensity 0.95 (the
    lesson's old, wrong-signed lens gave 1.05)."""
    size, pixel = 96, 2.0
    yx = torch.arange(size, dtype=torch.float64) - size // 2
    r2 = yx[:, None] ** 2 + yx[None, :] ** 2
    bump = 0.05 * torch.exp(-r2 / (2 * 4.0**2)) / interaction_constant_rad_per_volt_angstrom(300.0)
    ctf = CTFParams(15000.0, 15000.0, amplitude_contrast=0.0)
    image = phase_object_image(bump, ctf, pixel_size_angstrom=pixel)
    assert float(image[size // 2, size // 2]) == pytest.approx(0.95, abs=0.01)


def test_in_focus_amplitude_object():
    """No aberrations: only the imaginary potential shows, I = exp(−2ησV) exactly."""
    vp = (
        torch.rand(SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        * 500
    )
    ctf = CTFParams(0.0, 0.0, cs_mm=0.0, amplitude_contrast=0.2)
    image = phase_object_image(vp, ctf, pixel_size_angstrom=1.0)
    eta = 0.2 / math.sqrt(1 - 0.04)
    expected = torch.exp(-2 * eta * interaction_constant_rad_per_volt_angstrom(300.0) * vp)
    torch.testing.assert_close(image, expected)
    assert exit_wave(vp, voltage_kv=300.0).abs().sub(1).abs().max() < 1e-12


def test_free_propagation_is_a_defocus_change(generator):
    wave = exit_wave(_potential(generator), voltage_kv=300.0, amplitude_contrast=0.1)
    dz = 300.0
    k2 = (fft_frequencies(SIZE, pixel_size_angstrom=1.0) ** 2).sum(-1)
    propagated = torch.fft.ifft2(
        torch.fft.fft2(wave)
        * torch.polar(torch.ones_like(k2), -math.pi * electron_wavelength_angstrom(300.0) * dz * k2)
    )
    a = image_from_exit_wave(
        propagated,
        replace(CTF, defocus_u_angstrom=12000.0 + dz, defocus_v_angstrom=10000.0 + dz),
        pixel_size_angstrom=1.0,
    )
    b = image_from_exit_wave(wave, CTF, pixel_size_angstrom=1.0)
    torch.testing.assert_close(a, b)


def test_spatial_envelope_formula():
    ctf = CTFParams(20000.0, 20000.0, cs_mm=2.7)
    env = spatial_coherence_envelope(
        ctf, illumination_semiangle_mrad=0.1, image_size=64, pixel_size_angstrom=1.5
    )
    k = torch.fft.fftfreq(64, d=1.5, dtype=torch.float64)
    lam = electron_wavelength_angstrom(300.0)
    expected = torch.exp(
        -((math.pi * 1e-4 / lam) ** 2) * (lam * 20000.0 * k - 2.7e7 * lam**3 * k**3) ** 2
    )
    torch.testing.assert_close(env[0, :], expected)  # along x (k_y = 0)
    torch.testing.assert_close(env[:, 0], expected)
    assert env[0, 0] == 1.0 and float(env.min()) < 0.9


def test_temporal_envelope_and_weak_phase_envelope(generator):
    spread = focal_spread_angstrom(cc_mm=2.7, energy_spread_ev=0.8, voltage_kv=300.0)
    assert spread == pytest.approx(2.7e7 * 0.8 / 300e3)
    env = temporal_coherence_envelope(
        voltage_kv=300.0, focal_spread_angstrom=spread, image_size=64, pixel_size_angstrom=1.0
    )
    k2 = (fft_frequencies(64, pixel_size_angstrom=1.0) ** 2).sum(-1)
    torch.testing.assert_close(
        env, torch.exp(-0.5 * (math.pi * electron_wavelength_angstrom(300.0) * spread * k2) ** 2)
    )
    vp = _potential(generator, size=64)
    ctf = CTFParams(12000.0, 12000.0)
    with_env = weak_phase_contrast(vp, ctf, pixel_size_angstrom=1.0, envelope=env)
    transfer = (
        ctf_2d(ctf, image_size=64, pixel_size_angstrom=1.0, centered=False, dtype=torch.float64)
        * env[:, :33]
    )
    expected = torch.fft.irfft2(
        torch.fft.rfft2(vp) * transfer, s=(64, 64)
    ) * interaction_constant_rad_per_volt_angstrom(300.0)
    torch.testing.assert_close(with_env, expected)


def test_bad_amplitude_contrast():
    with pytest.raises(ValueError, match="amplitude_contrast"):
        exit_wave(torch.zeros(4, 4), voltage_kv=300.0, amplitude_contrast=1.0)
