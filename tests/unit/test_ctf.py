"""Unit tests of cryoglass.ctf.ctf: formula, zeros, astigmatism, grids, batching, dtypes."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from cryoglass.ctf import (
    CTFParams,
    aberration_phase,
    ctf_1d,
    ctf_2d,
    ctf_zeros_angstrom,
    ctf_zeros_inv_angstrom,
    electron_wavelength_angstrom,
)

F64 = torch.float64


def _numpy_ctf(u, v, angle_deg, kv, cs_mm, q0, shift_deg, b, scale, kx, ky):
    """Independent reference: the textbook form with atan2, in numpy float64."""
    lam = 12398.419843320026 / math.sqrt(kv * 1e3 * (2 * 510998.95 + kv * 1e3))
    alpha = np.arctan2(ky, kx)
    defocus = 0.5 * (u + v) + 0.5 * (u - v) * np.cos(2 * (alpha - math.radians(angle_deg)))
    k2 = kx**2 + ky**2
    chi = (
        math.pi * lam * defocus * k2
        - 0.5 * math.pi * cs_mm * 1e7 * lam**3 * k2**2
        + math.radians(shift_deg)
        + math.atan(q0 / math.sqrt(1 - q0**2))
    )
    return scale * np.sin(chi) * np.exp(-b * k2 / 4)


def _random_params(generator: torch.Generator, n: int) -> CTFParams:
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=F64)

    return CTFParams(
        defocus_u_angstrom=uniform(5000, 25000),
        defocus_v_angstrom=uniform(5000, 25000),
        astigmatism_angle_deg=uniform(-180, 180),
        voltage_kv=uniform(100, 300),
        cs_mm=uniform(0, 3),
        amplitude_contrast=uniform(0, 0.3),
        phase_shift_deg=uniform(0, 90),
        bfactor_a2=uniform(0, 100),
        scale=uniform(0.5, 1.5),
    )


def test_ctf_2d_matches_independent_numpy_formula(generator: torch.Generator) -> None:
    p = _random_params(generator, 4)
    ours = ctf_2d(p, image_size=(48, 40), pixel_size_angstrom=1.3, rfft=False)
    ky, kx = np.meshgrid(
        (np.arange(48) - 24) / (48 * 1.3), (np.arange(40) - 20) / (40 * 1.3), indexing="ij"
    )
    for i in range(4):
        fields = [float(getattr(p, name)[i]) for name in vars(p)]
        expected = _numpy_ctf(*fields, kx, ky)
        np.testing.assert_allclose(ours[i].numpy(), expected, atol=1e-10)


def test_ctf_at_dc_is_scaled_amplitude_contrast_and_first_lobe_positive() -> None:
    p = CTFParams(20000.0, 20000.0, amplitude_contrast=0.07, scale=2.0)
    k = torch.tensor([0.0, 0.5 * float(ctf_zeros_inv_angstrom(p, 1, dtype=F64)[0])], dtype=F64)
    values = ctf_1d(p, k)
    assert values[0] == pytest.approx(2.0 * 0.07, abs=1e-12)
    assert values[1] > 0.5  # underfocus: positive (bright) first lobe


def test_zeros_are_zeros_of_ctf_1d(generator: torch.Generator) -> None:
    p = _random_params(generator, 6)
    zeros = ctf_zeros_inv_angstrom(p, 8)
    assert zeros.shape == (6, 8)
    assert torch.all(torch.diff(zeros, dim=-1) > 0)
    own = torch.arange(6)
    values = ctf_1d(p, zeros)[own, own]  # (6, 6, 8) -> each particle at its own zeros
    assert values.abs().max() < 1e-6
    assert ctf_1d(p, zeros * 1.01)[own, own].abs().min() > 1e-3  # the test can fail
    angled = ctf_zeros_inv_angstrom(p, 8, azimuth_deg=37.0)
    values = ctf_1d(p, angled, azimuth_deg=37.0)[own, own]
    assert values.abs().max() < 1e-6
    assert torch.allclose(ctf_zeros_angstrom(p, 8), 1 / zeros)


@pytest.mark.parametrize(
    ("defocus", "n_zeros"),
    [(15000.0, 10), (300.0, 3), (-5000.0, 6), (1500.0, 25)],  # underfocus, near focus, overfocus
)
def test_zeros_interlace_with_maxima_and_none_are_missed(defocus: float, n_zeros: int) -> None:
    p = CTFParams(defocus, defocus, cs_mm=2.7, amplitude_contrast=0.1)
    zeros = ctf_zeros_inv_angstrom(p, n_zeros, dtype=F64)
    assert torch.isfinite(zeros).all()
    k = torch.linspace(1e-6, float(zeros[-1]) + 1e-9, 400_001, dtype=F64)
    values = ctf_1d(p, k)
    crossings = k[1:][torch.sign(values[1:]) != torch.sign(values[:-1])]
    assert len(crossings) == n_zeros  # no zero missed, none invented
    assert torch.allclose(crossings, zeros, atol=2 * float(k[1] - k[0]))
    # between two zeros one lobe of one sign; lobes alternate; each lobe reaches |CTF| = 1
    # (B = 0) except the one where χ turns round (k² = A/2C: Cs overtakes defocus)
    lam = electron_wavelength_angstrom(300.0)
    k_turn = math.sqrt(defocus / (2.7e7 * lam**2)) if defocus > 0 else 0.0
    signs = []
    for lo, hi in zip(zeros[:-1], zeros[1:], strict=True):
        inside = values[(k > lo) & (k < hi)]
        if not lo < k_turn < hi:
            assert inside.abs().max() > 0.999
        assert (torch.sign(inside) == torch.sign(inside[len(inside) // 2])).all()
        signs.append(float(torch.sign(inside[len(inside) // 2])))
    assert all(a == -b for a, b in zip(signs[:-1], signs[1:], strict=True))


def test_zeros_without_cs_and_amplitude_contrast() -> None:
    defocus = torch.tensor([8000.0, 16000.0], dtype=F64)
    p = CTFParams(defocus, defocus, voltage_kv=200.0, cs_mm=0.0, amplitude_contrast=0.0)
    zeros = ctf_zeros_inv_angstrom(p, 4)
    lam = electron_wavelength_angstrom(200.0)
    n = torch.arange(1, 5, dtype=F64)
    expected = torch.sqrt(n / (lam * defocus[:, None]))
    torch.testing.assert_close(zeros, expected, rtol=1e-12, atol=0)


def test_zeros_reject_bad_count() -> None:
    with pytest.raises(ValueError, match="n_zeros"):
        ctf_zeros_inv_angstrom(CTFParams(1e4, 1e4), 0)


def test_astigmatism_axes_are_u_and_v() -> None:
    p = CTFParams(20000.0, 12000.0, astigmatism_angle_deg=25.0)
    k = torch.linspace(0, 0.3, 301, dtype=F64)
    along_u = ctf_1d(p, k, azimuth_deg=25.0)
    along_v = ctf_1d(p, k, azimuth_deg=115.0)
    only_u = ctf_1d(replace(p, defocus_v_angstrom=20000.0), k)
    only_v = ctf_1d(replace(p, defocus_u_angstrom=12000.0), k)
    torch.testing.assert_close(along_u, only_u, rtol=0, atol=1e-12)
    torch.testing.assert_close(along_v, only_v, rtol=0, atol=1e-12)
    assert (along_u - along_v).abs().max() > 0.5
    # the angle is measured from +x counter-clockwise towards +y: (kx, ky) = k (cos 25°, sin 25°)
    direction = torch.stack([k * math.cos(math.radians(25)), k * math.sin(math.radians(25))], -1)
    mirrored = direction * torch.tensor([1.0, -1.0], dtype=F64)
    chi = aberration_phase(p, direction)
    torch.testing.assert_close(torch.sin(chi), along_u, rtol=0, atol=1e-12)
    assert (torch.sin(aberration_phase(p, mirrored)) - along_u).abs().max() > 0.1


def test_ctf_2d_axis_row_equals_1d_profile() -> None:
    p = CTFParams(15000.0, 11000.0, astigmatism_angle_deg=-40.0, bfactor_a2=60.0, scale=0.9)
    image = ctf_2d(p, image_size=64, pixel_size_angstrom=1.2, dtype=F64)
    kx = torch.arange(33, dtype=F64) / (64 * 1.2)
    torch.testing.assert_close(image[32], ctf_1d(p, kx, azimuth_deg=0.0), rtol=0, atol=1e-12)
    ky = (torch.arange(64, dtype=F64) - 32) / (64 * 1.2)
    column = ctf_1d(p, ky.abs(), azimuth_deg=90.0)
    torch.testing.assert_close(image[:, 0], column, rtol=0, atol=1e-12)


def test_bfactor_envelope_is_exp_minus_b_k2_over_4() -> None:
    p = CTFParams(12000.0, 12000.0)
    k = torch.linspace(0.01, 0.4, 50, dtype=F64)
    ratio = ctf_1d(replace(p, bfactor_a2=80.0), k) / ctf_1d(p, k)
    torch.testing.assert_close(ratio, torch.exp(-80.0 * k**2 / 4), rtol=1e-9, atol=1e-12)


def test_batch_shapes_broadcast(generator: torch.Generator) -> None:
    defocus = 10000 + 5000 * torch.rand(3, 1, generator=generator, dtype=F64)
    voltage = torch.tensor([[200.0, 300.0]], dtype=F64)
    p = CTFParams(defocus, defocus + 500.0, astigmatism_angle_deg=10.0, voltage_kv=voltage)
    batch = ctf_2d(p, image_size=(32, 24), pixel_size_angstrom=1.5)
    assert batch.shape == (3, 2, 32, 13)
    for i in range(3):
        for j in range(2):
            single = CTFParams(
                float(defocus[i, 0]), float(defocus[i, 0]) + 500.0, 10.0, float(voltage[0, j])
            )
            expected = ctf_2d(single, image_size=(32, 24), pixel_size_angstrom=1.5, dtype=F64)
            torch.testing.assert_close(batch[i, j], expected, rtol=0, atol=1e-12)
    assert ctf_1d(p, torch.zeros(7, 5, dtype=F64)).shape == (3, 2, 7, 5)
    assert ctf_zeros_inv_angstrom(p, 4).shape == (3, 2, 4)


def test_rfft_grid_is_right_half_of_full_grid_and_uncentred_is_shifted(
    generator: torch.Generator,
) -> None:
    p = _random_params(generator, 3)
    for h, w in [(32, 32), (33, 31), (20, 26)]:
        full = ctf_2d(p, image_size=(h, w), pixel_size_angstrom=1.1, rfft=False)
        half = ctf_2d(p, image_size=(h, w), pixel_size_angstrom=1.1, rfft=True)
        assert half.shape == (3, h, w // 2 + 1)
        n = (w + 1) // 2  # columns of kx >= 0 present in the full centred grid
        torch.testing.assert_close(half[..., :n], full[..., w // 2 :], rtol=0, atol=1e-12)
        plain = ctf_2d(p, image_size=(h, w), pixel_size_angstrom=1.1, rfft=False, centered=False)
        torch.testing.assert_close(
            plain, torch.fft.ifftshift(full, dim=(-2, -1)), rtol=0, atol=1e-12
        )
        plain_half = ctf_2d(p, image_size=(h, w), pixel_size_angstrom=1.1, centered=False)
        torch.testing.assert_close(
            plain_half, torch.fft.ifftshift(half, dim=-2), rtol=0, atol=1e-12
        )


def test_float32_agrees_with_float64(generator: torch.Generator) -> None:
    p = _random_params(generator, 5)
    p32 = p.as_tensors(dtype=torch.float32)
    c64 = ctf_2d(p, image_size=128, pixel_size_angstrom=1.0)
    c32 = ctf_2d(p32, image_size=128, pixel_size_angstrom=1.0)
    assert c64.dtype == F64 and c32.dtype == torch.float32
    assert (c64 - c32.double()).abs().max() < 2e-3
    # plain floats: default dtype; dtype argument overrides
    assert ctf_2d(CTFParams(1e4, 1e4), image_size=8, pixel_size_angstrom=1.0).dtype == torch.float32
    assert ctf_2d(p32, image_size=8, pixel_size_angstrom=1.0, dtype=F64).dtype == F64


def test_inputs_are_not_mutated(generator: torch.Generator) -> None:
    p = _random_params(generator, 2)
    before = {name: value.clone() for name, value in vars(p).items()}
    ctf_2d(p, image_size=16, pixel_size_angstrom=1.0)
    ctf_zeros_inv_angstrom(p, 3)
    for name, value in vars(p).items():
        assert torch.equal(value, before[name])


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="amplitude_contrast"):
        ctf_2d(CTFParams(1e4, 1e4, amplitude_contrast=1.0), image_size=8, pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="amplitude_contrast"):
        ctf_1d(CTFParams(1e4, 1e4, amplitude_contrast=torch.tensor([0.1, -0.1])), torch.zeros(3))
    with pytest.raises(ValueError, match="last axis of length 2"):
        aberration_phase(CTFParams(1e4, 1e4), torch.zeros(4, 3))


def test_wavelength_accepts_tensors() -> None:
    kv = torch.tensor([100.0, 200.0, 300.0], dtype=F64)
    lam = electron_wavelength_angstrom(kv)
    assert isinstance(lam, torch.Tensor) and lam.shape == (3,)
    assert float(lam[2]) == pytest.approx(electron_wavelength_angstrom(300.0), rel=1e-15)


def test_expand_gives_one_independent_row_per_particle():
    ctf = CTFParams(defocus_u_angstrom=torch.tensor([1e4, 2e4, 3e4]), defocus_v_angstrom=9e3)
    rows = ctf.expand(dtype=torch.float64)
    assert rows.batch_shape == (3,)
    assert (
        rows.voltage_kv.tolist() == [300.0] * 3 and rows.defocus_v_angstrom.dtype == torch.float64
    )
    rows.defocus_v_angstrom[0] = 1.0  # a copy: the original is untouched
    assert ctf.defocus_v_angstrom == 9e3
    assert rows[torch.tensor([2, 0])].defocus_u_angstrom.tolist() == [3e4, 1e4]
    grid = CTFParams(defocus_u_angstrom=torch.ones(2, 1), defocus_v_angstrom=torch.ones(3))
    assert grid.expand((2, 3)).flatten().defocus_u_angstrom.shape == (6,)
    with pytest.raises(ValueError, match="does not broadcast"):
        ctf.expand(4)
    with pytest.raises(ValueError, match="not 1-D"):
        grid.expand()
