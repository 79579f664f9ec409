"""Motion correction: alignment, smoothing, RELION's polynomial, sums, against known motion."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.preprocess.motion import (
    MotionEstimate,
    MotionSettings,
    align_spectra,
    correct_movie,
    estimate_motion,
    fit_polynomial_motion,
    motion_corrected_sum,
    polynomial_motion,
    smooth_trajectory,
)
from cryoglass.simulate.micrograph import Exposure, Microscope, Specimen, simulate_micrograph
from cryoglass.simulate.phantom import gaussian_map


def _scene(size: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 1, size, size, generator=g)
    return torch.nn.functional.avg_pool2d(noise, 7, 1, 3)[0, 0]


def _move(image: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Content moved by d = (x, y) pixels (exact Fourier shift)."""
    h, w = image.shape
    ky = torch.fft.fftfreq(h)[:, None]
    kx = torch.fft.rfftfreq(w)[None, :]
    ramp = torch.exp(-2j * math.pi * (kx * float(d[0]) + ky * float(d[1])))
    return torch.fft.irfft2(torch.fft.rfft2(image) * ramp, s=(h, w))


def _movie(trajectory: torch.Tensor, *, dose: float, seed: int = 0, size: int = 128):
    scene = _scene(size, seed)
    scene = 1 + 0.5 * (scene - scene.mean()) / scene.std()
    g = torch.Generator().manual_seed(seed + 1)
    frames = [torch.poisson((dose * _move(scene, d)).clamp_min(0), generator=g) for d in trajectory]
    return torch.stack(frames)


@pytest.mark.parametrize("size", [64, 96])
def test_align_spectra_recovers_shifts_with_relions_sign(size):
    scene = _scene(size)
    moves = torch.tensor([[0.0, 0.0], [0.7, -0.3], [2.2, -1.1], [3.1, -2.4], [3.3, -2.9]])
    spectra = torch.fft.rfft2(torch.stack([_move(scene, d) for d in moves]))
    shifts = align_spectra(spectra, full_shape=(size, size), settings=MotionSettings())
    assert shifts.shape == (5, 2)
    assert torch.allclose(shifts, -moves.double(), atol=0.02)
    # batched over stacks: the same answer for each
    twice = align_spectra(torch.stack([spectra, spectra]), full_shape=(size, size))
    assert torch.allclose(twice[0], twice[1]) and torch.allclose(twice[0], shifts, atol=1e-6)


def test_correct_movie_follows_a_noisy_drift_and_keeps_the_counts():
    t = torch.arange(16.0)
    trajectory = torch.stack([6 * (1 - torch.exp(-t / 4)), -0.25 * t], dim=1)
    frames = _movie(trajectory, dose=20.0)
    image, estimate = correct_movie(frames, pixel_size_angstrom=1.0)
    error = (estimate.global_shifts_px + (trajectory - trajectory[0]).double()).norm(dim=1)
    assert float(error.max()) < 0.15
    assert estimate.global_shifts_px[0].tolist() == [0.0, 0.0]
    # the plain sum holds every count; the dose-weighted one is scaled to the same mean
    assert float(image.mean()) == pytest.approx(float(frames.sum(0).mean()), rel=1e-4)
    weighted, _ = correct_movie(frames, pixel_size_angstrom=1.0, dose_per_frame=2.0)
    assert float(weighted.mean()) == pytest.approx(float(frames.sum(0).mean()), rel=1e-4)
    binned, _ = correct_movie(frames, pixel_size_angstrom=1.0, bin_factor=2)
    assert binned.shape == (64, 64)
    assert float(binned.mean()) == pytest.approx(float(image.mean()), rel=1e-4)
    # the aligned sum is sharper than the unaligned one
    sharp = torch.fft.rfft2(image - image.mean()).abs()[10:40, 10:40].mean()
    blurred = torch.fft.rfft2(frames.sum(0) - frames.sum(0).mean()).abs()[10:40, 10:40].mean()
    assert float(sharp) > 1.15 * float(blurred)


def test_smoothing_is_exact_on_lines_and_removes_jitter():
    line = torch.stack([torch.arange(10.0), -0.5 * torch.arange(10.0)], dim=1).double()
    assert torch.allclose(smooth_trajectory(line, smoothing=5.0), line, atol=1e-9)
    g = torch.Generator().manual_seed(0)
    noisy = line + 0.3 * torch.randn(10, 2, generator=g, dtype=torch.float64)
    noisy = noisy - noisy[:1]
    smooth = smooth_trajectory(noisy, smoothing=5.0)
    assert smooth[0].tolist() == [0.0, 0.0]
    assert float((smooth - line).norm()) < float((noisy - line).norm())
    assert torch.equal(smooth_trajectory(noisy, smoothing=0.0), noisy)


def test_polynomial_is_relions_third_order_model():
    cx = torch.arange(1.0, 19.0, dtype=torch.float64) / 10
    cy = -cx.flip(0)
    x, y, z = 0.3, -0.2, 4.0
    # ThirdOrderPolynomialModel::getShiftAt, written out
    terms = [1, x, x * x, y, y * y, x * y]
    expected_x = sum(t * (cx[3 * i] * z + cx[3 * i + 1] * z**2 + cx[3 * i + 2] * z**3)
                     for i, t in enumerate(terms))  # fmt: skip
    got = polynomial_motion(cx, cy, torch.tensor(x), torch.tensor(y), torch.tensor(z))
    assert float(got[0]) == pytest.approx(float(expected_x))
    # a fit to exact observations returns the coefficients
    g = torch.Generator().manual_seed(1)
    pts = torch.rand(40, 2, generator=g, dtype=torch.float64) * torch.tensor([300.0, 200.0])
    rows = []
    for frame in range(8):
        shift = polynomial_motion(cx, cy, pts[:, 0] / 300 - 0.5, pts[:, 1] / 200 - 0.5,
                                  torch.tensor(float(frame)))  # fmt: skip
        rows.append(torch.cat([torch.full((40, 1), float(frame)), pts, shift], dim=1))
    fx, fy = fit_polynomial_motion(torch.cat(rows), shape_px=(200, 300))
    assert torch.allclose(fx, cx, atol=1e-6) and torch.allclose(fy, cy, atol=1e-6)
    with pytest.raises(ValueError, match="more than 18"):
        fit_polynomial_motion(torch.cat(rows)[:10], shape_px=(200, 300))


def test_estimate_shifts_at_adds_global_and_local():
    estimate = MotionEstimate(
        global_shifts_px=torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64),
        shape_px=(100, 200),
        polynomial_x=torch.zeros(18, dtype=torch.float64).index_fill(0, torch.tensor([0]), 0.5),
        polynomial_y=torch.zeros(18, dtype=torch.float64),
    )
    shifts = estimate.shifts_at(torch.tensor([[10.0, 20.0], [150.0, 80.0]]))
    assert shifts.shape == (2, 2, 2)
    assert torch.allclose(shifts[0], torch.zeros(2, 2, dtype=torch.float64))  # z = 0: no local
    assert torch.allclose(shifts[1, :, 0], torch.tensor([1.5, 1.5], dtype=torch.float64))


@pytest.fixture(scope="module")
def simulated():
    """A 320² movie of dense particles with drift and local motion (the library's truth)."""
    g = torch.Generator().manual_seed(3)
    centres = (torch.rand(12, 3, generator=g) - 0.5) * 16
    v = gaussian_map(centres, shape=(24, 24, 24), pixel_size_angstrom=2.0, sigma_angstrom=2.5)
    return simulate_micrograph(
        30 * v / v.max(),
        index=0,
        seed=7,
        microscope=Microscope(
            pixel_size_angstrom=2.0, defocus_min_angstrom=15000, defocus_max_angstrom=18000
        ),  # fmt: skip
        specimen=Specimen(shape_px=(320, 320), crowding=0.4, ice_thickness_angstrom=150.0),
        exposure=Exposure(
            n_frames=12, dose_per_frame=8.0, drift_angstrom=24.0, local_motion_angstrom=6.0
        ),  # fmt: skip
    )


def test_patches_recover_the_simulated_local_motion(simulated):
    truth = simulated.truth.motion
    grid = (torch.arange(4, dtype=torch.float64) + 0.5) / 4 * 320
    ys, xs = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xs, ys], dim=-1).reshape(-1, 2)
    true = truth.relion_shifts_px(points)
    global_only, _ = estimate_motion(simulated.frames, settings=MotionSettings())
    local, spectra = estimate_motion(
        simulated.frames, settings=MotionSettings(patches=(3, 3), group_frames=2)
    )

    def rms(estimate):
        return float((estimate.shifts_at(points) - true).norm(dim=-1).pow(2).mean().sqrt())

    assert rms(global_only) > 1.0  # the local motion is there …
    assert rms(local) < 0.6 * rms(global_only)  # … and the patches find most of it
    image = motion_corrected_sum(spectra, local, pixel_size_angstrom=2.0, dose_per_frame=8.0)
    assert image.shape == (320, 320)
    assert float(image.mean()) == pytest.approx(float(simulated.frames.sum(0).mean()), rel=1e-3)
