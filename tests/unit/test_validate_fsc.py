"""FSC on cryoglass shells, resolution, SSNR and the phase-randomisation correction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoglass.fourier import (
    apply_bfactor,
    fftn_centered,
    lowpass,
    radial_shell_index,
    rfftn_centered,
)
from cryoglass.validate import (
    corrected_fsc,
    fourier_shell_correlation,
    fourier_shell_correlation_spectra,
    fourier_shell_index,
    fourier_shell_sizes,
    fsc_against_reference,
    fsc_weight,
    masked_fsc,
    phase_randomization_shell,
    randomize_phases_beyond,
    resolution_at_threshold,
    shell_values_to_grid,
    soft_sphere_mask,
    ssnr_from_fsc,
)


def numpy_fsc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent FSC: full complex FFT, shells floor(r + 1/2) from np.fft.fftfreq, loops."""
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    w = a.shape[-1]
    grids = np.meshgrid(*[np.fft.fftfreq(n) * w for n in a.shape], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grids))
    shell = np.floor(r + 0.5).astype(int)
    out = np.zeros(w // 2 + 1)
    for i in range(w // 2 + 1):
        sel = shell == i
        num = np.real(np.sum(fa[sel] * np.conj(fb[sel])))
        den = np.sqrt(np.sum(np.abs(fa[sel]) ** 2) * np.sum(np.abs(fb[sel]) ** 2))
        out[i] = num / den
    return out


@pytest.mark.parametrize("shape", [(16, 16, 16), (15, 15, 15), (12, 14, 16)])
def test_shell_index_matches_fourier_radial(shape):
    for rfft in (True, False):
        assert torch.equal(
            fourier_shell_index(shape, rfft=rfft), radial_shell_index(shape, rfft=rfft)
        )


def test_fsc_of_a_map_with_itself_is_one(generator):
    x = torch.randn(3, 17, 17, 17, generator=generator)
    fsc = fourier_shell_correlation(x, x)
    assert fsc.shape == (3, 9)
    torch.testing.assert_close(fsc, torch.ones(3, 9), atol=1e-6, rtol=0)
    frc = fourier_shell_correlation(x[0], 2.5 * x[0], ndim=2)  # scale-invariant, 2D FRC
    torch.testing.assert_close(frc, torch.ones(17, 9), atol=1e-6, rtol=0)


def test_fsc_of_independent_noise_is_within_three_sigma(generator):
    x = torch.randn(32, 32, 32, generator=generator, dtype=torch.float64)
    y = torch.randn(32, 32, 32, generator=generator, dtype=torch.float64)
    fsc = fourier_shell_correlation(x, y)
    sizes = fourier_shell_sizes((32, 32, 32))
    bound = 3.0 / sizes.sqrt()
    assert bool((fsc[2:].abs() < bound[2:]).all()), (fsc, bound)
    assert abs(float(fsc[4:].mean())) < 0.02


@pytest.mark.parametrize("shape", [(24, 24, 24), (21, 21, 21), (20, 22, 24)])
def test_fsc_equals_independent_numpy_fsc(generator, shape):
    a = torch.randn(shape, generator=generator, dtype=torch.float64)
    b = 0.7 * a + torch.randn(shape, generator=generator, dtype=torch.float64)
    b = apply_bfactor(b, ndim=3, bfactor_a2=20.0, pixel_size_angstrom=1.0)
    expected = numpy_fsc(a.numpy(), b.numpy())
    np.testing.assert_allclose(fourier_shell_correlation(a, b).numpy(), expected, atol=1e-12)
    # the same from centred half and full spectra
    fa, fb = rfftn_centered(a, ndim=3), rfftn_centered(b, ndim=3)
    half = fourier_shell_correlation_spectra(fa, fb, width=shape[-1])
    full = fourier_shell_correlation_spectra(
        fftn_centered(a, ndim=3), fftn_centered(b, ndim=3), rfft=False
    )
    np.testing.assert_allclose(half.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(full.numpy(), expected, atol=1e-12)


def test_shell_sizes_count_the_full_grid():
    sizes = fourier_shell_sizes((10, 10, 10))
    grids = np.meshgrid(*[np.arange(10) - 5] * 3, indexing="ij")
    shell = np.floor(np.sqrt(sum(g**2 for g in grids)) + 0.5).astype(int)
    expected = np.bincount(shell.ravel())[:6]
    np.testing.assert_array_equal(sizes.numpy(), expected)


def test_shell_values_to_grid_spreads_values():
    values = torch.arange(5, dtype=torch.float64)
    grid = shell_values_to_grid(values, (8, 8, 8), rfft=True, fill=-1.0)
    index = fourier_shell_index((8, 8, 8), rfft=True)
    expected = torch.where(index < 5, index.double(), torch.tensor(-1.0, dtype=torch.float64))
    assert torch.equal(grid, expected)


def test_resolution_interpolates_between_shells():
    # FSC_i = 1 - i/20 on 33 shells (box 64, 2 Å): 0.143 is crossed at i = 17.14
    box, pixel = 64, 2.0
    shells = torch.arange(33, dtype=torch.float64)
    fsc = 1.0 - shells / 20.0
    res = resolution_at_threshold(fsc, threshold=0.143, box_size=box, pixel_size_angstrom=pixel)
    assert math.isclose(float(res), box * pixel / (0.857 * 20.0), rel_tol=1e-12)
    res05 = resolution_at_threshold(fsc, threshold=0.5, box_size=box, pixel_size_angstrom=pixel)
    assert math.isclose(float(res05), box * pixel / 10.0, rel_tol=1e-12)
    # RELION's rule: the last shell above the threshold (17)
    coarse = resolution_at_threshold(
        fsc, threshold=0.143, box_size=box, pixel_size_angstrom=pixel, interpolate=False
    )
    assert math.isclose(float(coarse), box * pixel / 17.0, rel_tol=1e-12)


def test_resolution_first_crossing_batched_and_never_crossing():
    fsc = torch.tensor(
        [
            [1.0, 0.9, 0.1, 0.5, 0.4],  # first crossing between shells 1 and 2
            [1.0, 0.9, 0.8, 0.7, 0.6],  # never crosses: Nyquist
        ],
        dtype=torch.float64,
    )
    res = resolution_at_threshold(fsc, threshold=0.143, box_size=8, pixel_size_angstrom=1.0)
    shell = 1.0 + (0.9 - 0.143) / (0.9 - 0.1)
    torch.testing.assert_close(res, torch.tensor([8.0 / shell, 2.0], dtype=torch.float64))


def test_ssnr_and_fsc_weight():
    fsc = torch.tensor([0.5, 1.0 / 3.0, 0.0, -0.2], dtype=torch.float64)
    torch.testing.assert_close(ssnr_from_fsc(fsc)[:3], torch.tensor([1.0, 0.5, 0.0]).double())
    torch.testing.assert_close(
        ssnr_from_fsc(fsc, full_map=True)[:3], torch.tensor([2.0, 1.0, 0.0]).double()
    )
    assert float(ssnr_from_fsc(fsc)[3]) == 0.0
    weights = fsc_weight(fsc)
    torch.testing.assert_close(
        weights[:3], torch.tensor([math.sqrt(2 / 3), 0.5**0.5, 0.0]).double()
    )
    assert float(weights[3]) == 0.0


def test_randomize_phases_keeps_amplitudes_and_low_shells(generator):
    x = torch.randn(2, 20, 20, 20, generator=generator, dtype=torch.float64)
    shell = torch.tensor([5, 8])
    y = randomize_phases_beyond(x, shell=shell, generator=torch.Generator().manual_seed(1))
    y2 = randomize_phases_beyond(x, shell=shell, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y, y2) and y.dtype == x.dtype
    fx, fy = rfftn_centered(x, ndim=3), rfftn_centered(y, ndim=3)
    torch.testing.assert_close(fy.abs(), fx.abs(), atol=1e-9, rtol=1e-9)
    fsc = fourier_shell_correlation(x, y)
    torch.testing.assert_close(fsc[0, :5], torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(fsc[1, :8], torch.ones(8, dtype=torch.float64))
    assert float(fsc[0, 6:].abs().max()) < 0.4


def test_phase_randomization_shell_and_corrected_fsc():
    unmasked = torch.tensor([1.0, 0.95, 0.85, 0.7, 0.3, 0.1])
    assert int(phase_randomization_shell(unmasked)) == 3
    assert int(phase_randomization_shell(torch.ones(6))) == 6
    masked = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    randomized = torch.tensor([1.0, 0.9, 0.5, 0.5, 0.5, 0.5])
    corrected = corrected_fsc(masked, randomized, randomize_shell=2)
    expected = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.2, 0.0])
    torch.testing.assert_close(corrected, expected)


def test_corrected_masked_fsc_removes_mask_induced_correlation(generator):
    # Halves share only low-resolution content (beyond 12 Å they are independent noise);
    # a tight hard mask spreads the shared low-resolution power into high shells.
    n = 48
    common = lowpass(
        torch.randn(n, n, n, generator=generator, dtype=torch.float64),
        ndim=3,
        resolution_angstrom=12.0,
        pixel_size_angstrom=1.0,
    )
    common = 3.0 * common / common.std()
    h1 = common + torch.randn(n, n, n, generator=generator, dtype=torch.float64)
    h2 = common + torch.randn(n, n, n, generator=generator, dtype=torch.float64)
    mask = soft_sphere_mask((n, n, n), radius_px=16, edge_width_px=0, dtype=torch.float64)
    result = masked_fsc(h1, h2, mask, generator=torch.Generator().manual_seed(5))
    high = slice(14, None)
    assert float(result.unmasked[high].abs().mean()) < 0.02  # truly uncorrelated there
    assert float(result.masked[high].min()) > 0.1  # inflated by the mask
    assert abs(float(result.corrected[high].mean())) < 0.05
    assert float(result.corrected[high].abs().max()) < 0.2
    assert int(result.randomize_shell) == int(phase_randomization_shell(result.unmasked))


def test_fsc_against_reference(generator):
    truth = lowpass(
        torch.randn(32, 32, 32, generator=generator, dtype=torch.float64),
        ndim=3,
        resolution_angstrom=3.0,
        pixel_size_angstrom=1.0,
    )
    noisy = truth + 0.05 * torch.randn(32, 32, 32, generator=generator, dtype=torch.float64)
    fsc, res = fsc_against_reference(noisy, truth, pixel_size_angstrom=1.0)
    assert fsc.shape == (17,)
    assert 2.6 < float(res) < 3.2  # signal stops at the 3 Å low-pass (2-pixel cosine edge)
    _, same = fsc_against_reference(truth, truth, pixel_size_angstrom=1.0)
    assert float(same) == 2.0


def test_bad_inputs_raise():
    a = torch.zeros(8, 8, 8)
    with pytest.raises(ValueError, match="different shapes"):
        fourier_shell_correlation(a, torch.zeros(8, 8, 10))
    with pytest.raises(ValueError, match="real maps"):
        fourier_shell_correlation(a.to(torch.complex64), a.to(torch.complex64))
    with pytest.raises(ValueError, match="ndim"):
        fourier_shell_correlation(a, a, ndim=4)
    with pytest.raises(ValueError, match="does not match width"):
        fourier_shell_correlation_spectra(
            torch.zeros(8, 8, 4, dtype=torch.complex64), torch.zeros(8, 8, 4, dtype=torch.complex64)
        )
    with pytest.raises(ValueError, match="mask shape"):
        masked_fsc(a, a, torch.ones(6, 6, 6))
    with pytest.raises(ValueError, match="pixel_size"):
        resolution_at_threshold(torch.ones(5), box_size=8, pixel_size_angstrom=0.0)


def test_fsc_summary_reports_crossings_and_nyquist_limited_curves():
    from cryoglass.validate import fsc_summary

    crossing = torch.tensor([1.0, 0.95, 0.7, 0.3, 0.1, 0.05], dtype=torch.float64)
    s = fsc_summary(crossing, box_size=10, pixel_size_angstrom=2.0)
    # 0.143 between shells 3 (0.3) and 4 (0.1): 3 + 0.157/0.2 = 3.785 → 20/3.785 Å
    assert s.resolution_0143_angstrom == pytest.approx(20.0 / 3.785)
    assert s.resolution_05_angstrom == pytest.approx(20.0 / (2 + 0.2 / 0.4))
    assert s.crossed_0143 and s.crossed_05
    assert "or better" not in s.describe()
    never = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6, 0.55], dtype=torch.float64)
    n = fsc_summary(never, box_size=10, pixel_size_angstrom=2.0, curves={"other": never / 2})
    assert not n.crossed_0143 and not n.crossed_05
    assert n.resolution_0143_angstrom == pytest.approx(n.nyquist_angstrom) == pytest.approx(4.0)
    assert "Nyquist-limited" in n.describe(0.5)
    payload = n.to_dict()
    assert payload["crossed_0143"] is False
    assert [row["shell"] for row in payload["shells"]] == list(range(6))
    assert payload["shells"][2]["other"] == pytest.approx(0.4)
    assert payload["shells"][0]["resolution_angstrom"] is None
    with pytest.raises(ValueError, match="one curve"):
        fsc_summary(torch.ones(2, 6), box_size=10, pixel_size_angstrom=2.0)


def test_one_crossing_function_serves_fsc_and_conical_fsc():
    from cryoglass.fourier import crossing_shell

    curves = torch.tensor([[1.0, 0.8, 0.4, 0.0], [1.0, 0.9, 0.9, 0.9], [0.2, 0.1, 0.9, 0.9]])
    shells = crossing_shell(curves, 0.5)
    assert shells.tolist() == pytest.approx([1.75, 3.0, 0.0 + (1.0 - 0.5) / (1.0 - 0.1 + 0.0)])
    # integer (RELION's reported) shells and forced inside shells
    assert crossing_shell(curves, 0.5, interpolate=False).tolist() == [1.0, 3.0, 0.0]
    assert crossing_shell(curves[2], 0.5, inside_shells=1).item() == 3.0
    # per-shell thresholds broadcast against the curves
    assert crossing_shell(curves[0], torch.tensor([0.0, 0.9, 0.0, 0.0])).item() == pytest.approx(
        0.0 + (1.0 - 0.0) / (1.0 - (0.8 - 0.9))
    )
