"""CTF against analytic and tabulated values (no external program needed)."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.ctf import CTFParams, ctf_1d, ctf_zeros_inv_angstrom, electron_wavelength_angstrom

F64 = torch.float64


@pytest.mark.parametrize("voltage_kv", [60.0, 100.0, 120.0, 200.0, 300.0, 1000.0])
def test_wavelength_agrees_with_relion_formula(voltage_kv: float) -> None:
    volts = voltage_kv * 1e3
    relion = 12.2643247 / math.sqrt(volts * (1 + 0.978466e-6 * volts))
    # RELION's two constants are rounded older values of h/sqrt(2 m0 e) and e/(2 m0 c^2);
    # with CODATA 2018 the two formulas differ by 5.6e-6 (60 kV) to 7.5e-6 (1 MV) relative.
    assert electron_wavelength_angstrom(voltage_kv) == pytest.approx(relion, rel=1e-5)


@pytest.mark.parametrize(
    ("voltage_kv", "wavelength_pm"),
    # relativistic wavelengths as tabulated (3 digits) by Williams & Carter, Transmission
    # Electron Microscopy (2009), Table 1.1 [pm]
    [(100.0, 3.70), (120.0, 3.35), (200.0, 2.51), (300.0, 1.97), (400.0, 1.64), (1000.0, 0.87)],
)
def test_wavelength_matches_textbook_table(voltage_kv: float, wavelength_pm: float) -> None:
    assert electron_wavelength_angstrom(voltage_kv) * 100 == pytest.approx(wavelength_pm, abs=5e-3)


def test_wavelength_is_the_de_broglie_relation_in_si() -> None:
    h, m0, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0
    volts = 300e3
    metres = h / math.sqrt(2 * m0 * e * volts * (1 + e * volts / (2 * m0 * c**2)))
    assert electron_wavelength_angstrom(300.0) == pytest.approx(metres * 1e10, rel=1e-9)


def test_zeros_without_cs_follow_sqrt_n_over_lambda_defocus() -> None:
    p = CTFParams(10000.0, 10000.0, cs_mm=0.0, amplitude_contrast=0.0)
    zeros = ctf_zeros_inv_angstrom(p, 5, dtype=F64)
    lam = electron_wavelength_angstrom(300.0)
    expected = torch.tensor([math.sqrt(n / (lam * 10000.0)) for n in range(1, 6)], dtype=F64)
    torch.testing.assert_close(zeros, expected, rtol=1e-12, atol=0)
    # first zero at 1 µm underfocus, 300 kV: 1/k1 = sqrt(λ Δf) ≈ 14.03 Å
    assert 1 / float(zeros[0]) == pytest.approx(14.031, abs=1e-3)


def test_bfactor_100_attenuates_5_angstrom_to_one_over_e() -> None:
    """Syllabus 14 Jan 2021, question 6: B = 100 Å² attenuates (5 Å)⁻¹ to 1/e."""
    p = CTFParams(
        0.0, 0.0, cs_mm=0.0, amplitude_contrast=0.0, phase_shift_deg=90.0, bfactor_a2=100.0
    )
    # φ = 90°, no defocus or Cs: sin χ = 1 everywhere, so the CTF is the envelope alone
    value = ctf_1d(p, torch.tensor([0.2], dtype=F64))
    assert float(value[0]) == pytest.approx(math.exp(-1.0), rel=1e-12)


def test_scherzer_focus_has_no_zero_before_its_passband() -> None:
    """Scherzer defocus Δf = sqrt(4/3 · Cs λ) (Q0 = 0): one broad positive band, then a zero."""
    lam = electron_wavelength_angstrom(300.0)
    cs = 2.7e7
    defocus = math.sqrt(4.0 / 3.0 * cs * lam)
    p = CTFParams(defocus, defocus, cs_mm=2.7, amplitude_contrast=0.0)
    # χ(x) = πλΔf x − ½πCsλ³x² has χ_max = πΔf²/(2Csλ) = 2π/3 < π: the only zero at k > 0 is
    # where χ returns to 0: x = 2Δf/(Csλ²)
    zero = ctf_zeros_inv_angstrom(p, 1, dtype=F64)
    expected = math.sqrt(2 * defocus / (cs * lam**2))
    assert float(zero[0]) == pytest.approx(expected, rel=1e-12)
    k = torch.linspace(1e-4, 0.99 * expected, 1000, dtype=F64)
    assert (ctf_1d(p, k) > 0).all()
