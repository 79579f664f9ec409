"""Local resolution by windowed FSC: RELION's window grid, exact windowed FSCs, physics, errors."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.fourier import apply_bfactor
from cryoglass.simulate import gaussian_map
from cryoglass.validate import fourier_shell_correlation, fsc_summary, soft_sphere_mask
from cryoglass.validate.localres import (
    LocalResolutionParams,
    local_resolution,
    window_centers,
)

PIXEL = 2.0


def _relion_centers(box: int, step: int, radius: int) -> list[list[int]]:
    """RELION 3.1's loop in Postprocessing::run_locres, written out (voxel indices z, y, x)."""
    first = -(box // 2)
    myrad = box // 2 - radius
    out = []
    for kk in range(first, first + box, step):
        for ii in range(first, first + box, step):
            for jj in range(first, first + box, step):
                if math.sqrt(kk * kk + ii * ii + jj * jj) < myrad:
                    out.append([kk - first, ii - first, jj - first])
    return out


@pytest.mark.parametrize(("box", "step", "radius"), [(64, 13, 6), (65, 7, 4), (40, 5, 3)])
def test_window_grid_is_relions(box, step, radius):
    assert window_centers(box, step_px=step, radius_px=radius).tolist() == _relion_centers(
        box, step, radius
    )


def _halves(generator, *, box=40, noise=1.0, blur_right=None):
    """Atom-like map (+ a blurred right half) and two noisy halves of it."""
    n_atoms = int(900 * (box / 40) ** 3)
    centers = (torch.rand(n_atoms, 3, generator=generator, dtype=torch.float64) - 0.5) * (
        0.75 * box * PIXEL
    )
    truth = gaussian_map(centers, shape=(box,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=1.2)
    if blur_right is not None:
        blurred = apply_bfactor(truth, ndim=3, bfactor_a2=blur_right, pixel_size_angstrom=PIXEL)
        right = torch.arange(box) >= box // 2
        truth = torch.where(right, blurred, truth)  # x ≥ N//2 blurred
    sigma = noise * float(truth.std())
    h1 = truth + sigma * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    h2 = truth + sigma * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    return truth, h1, h2


def test_windowed_fsc_equals_the_full_box_fsc_of_the_windowed_maps(generator):
    """With fft_box = N the batched windows give RELION's FSC(m_c h1, m_c h2) exactly."""
    _, h1, h2 = _halves(generator, box=32)
    # randomise beyond Nyquist: nothing is corrected, the curves are the windows' plain FSCs
    params = LocalResolutionParams(
        sampling_angstrom=16.0, randomize_at_angstrom=1.0, fft_box=32, threshold=0.143
    )
    result = local_resolution(h1, h2, pixel_size_angstrom=PIXEL, params=params)
    step, radius, edge = result.window_px
    assert (step, radius, edge) == (8, 4, 8)
    grid = torch.arange(32, dtype=torch.float64)
    for index in (0, len(result.centers) // 2, len(result.centers) - 1):
        c = result.centers[index].double()
        r = (
            (grid[:, None, None] - c[0]) ** 2
            + (grid[None, :, None] - c[1]) ** 2
            + (grid[None, None, :] - c[2]) ** 2
        ).sqrt()
        m = torch.where(
            r < radius,
            1.0,
            torch.where(
                r > radius + edge, 0.0, 0.5 + 0.5 * torch.cos(math.pi * (r - radius) / edge)
            ),
        )  # RELION's raisedCosineMask around c
        expected = fourier_shell_correlation(h1 * m, h2 * m)
        torch.testing.assert_close(result.window_fsc[index], expected, atol=1e-9, rtol=0)


def test_default_fft_box_agrees_with_the_full_box(generator):
    """P = 2M − 1 (rounded up) samples RELION's shells as the full N box does."""
    _, h1, h2 = _halves(generator, box=40, noise=1.5)
    mask = torch.zeros(40, 40, 40)
    mask[14:26, 14:26, 20:26] = 1.0  # limits the work to the windows that reach it
    runs = [
        local_resolution(
            h1.float(),
            h2.float(),
            pixel_size_angstrom=PIXEL,
            params=LocalResolutionParams(sampling_angstrom=10.0, fft_box=fft_box),
            mask=mask,
            generator=torch.Generator().manual_seed(0),
        )
        for fft_box in (None, 40)
    ]
    small, full = runs
    assert small.fft_box == 36 and full.fft_box == 40 and len(small.centers) > 20
    ratio = small.window_resolution_angstrom / full.window_resolution_angstrom
    assert abs(float(ratio.median()) - 1.0) < 0.02
    assert float((ratio - 1).abs().quantile(0.9)) < 0.1


def test_batch_size_and_mask_do_not_change_the_result(generator):
    _, h1, h2 = _halves(generator, box=32)
    params = LocalResolutionParams(sampling_angstrom=12.0)
    runs = [
        local_resolution(
            h1,
            h2,
            pixel_size_angstrom=PIXEL,
            params=params,
            batch_size=b,
            generator=torch.Generator().manual_seed(3),
        )
        for b in (1, 5, 64)
    ]
    for other in runs[1:]:
        torch.testing.assert_close(other.resolution_angstrom, runs[0].resolution_angstrom)
        torch.testing.assert_close(other.filtered, runs[0].filtered)
    mask = soft_sphere_mask((32, 32, 32), radius_px=3, edge_width_px=2, dtype=torch.float64)
    mask = torch.roll(mask, shifts=(-9, -9, -9), dims=(0, 1, 2))  # a small blob near a corner
    masked = local_resolution(
        h1,
        h2,
        pixel_size_angstrom=PIXEL,
        params=params,
        mask=mask,
        generator=torch.Generator().manual_seed(3),
    )
    assert masked.centers.shape[0] < runs[0].centers.shape[0]
    inside = mask > 0
    torch.testing.assert_close(
        masked.resolution_angstrom[inside], runs[0].resolution_angstrom[inside]
    )


def _blurred_case(seed: int, noise: float):
    g = torch.Generator().manual_seed(seed)
    truth, h1, h2 = _halves(g, box=40, noise=noise, blur_right=400.0)
    result = local_resolution(
        h1.float(),
        h2.float(),
        pixel_size_angstrom=PIXEL,
        params=LocalResolutionParams(sampling_angstrom=12.0),
        generator=torch.Generator().manual_seed(seed),
    )
    return truth, h1, h2, result


@pytest.fixture(scope="module")
def blurred():
    return _blurred_case(0, 0.7)


def _check_right_half_is_worse(result, box: int = 40) -> None:
    x = result.centers[:, 2]
    left = result.window_resolution_angstrom[x < box // 2 - 5]
    right = result.window_resolution_angstrom[x > box // 2 + 5]
    assert float(right.median()) > 1.25 * float(left.median())
    res = result.resolution_angstrom
    assert float(res[..., 26:].median()) > float(res[..., :14].median())


def test_blurred_half_of_a_map_has_worse_local_resolution(blurred):
    _check_right_half_is_worse(blurred[3])


@pytest.mark.parametrize(
    ("seed", "noise"),
    [
        (1, 2.0),
        pytest.param(2, 0.4, marks=pytest.mark.slow),
        pytest.param(3, 3.0, marks=pytest.mark.slow),
    ],
)
def test_blurred_half_sweep_of_noise_and_seeds(seed, noise):
    _check_right_half_is_worse(_blurred_case(seed, noise)[3])


@pytest.mark.parametrize("noise", [0.5, 1.5, 4.0])
def test_homogeneous_map_local_resolution_matches_the_global_fsc(noise):
    """Signal everywhere, equal in every window: the local FSC is the global one."""
    g = torch.Generator().manual_seed(7)
    box = 40
    signal = apply_bfactor(
        torch.randn(box, box, box, generator=g, dtype=torch.float64),
        ndim=3,
        bfactor_a2=120.0,
        pixel_size_angstrom=PIXEL,
    )
    sigma = noise * 0.1 * float(signal.std())
    h1 = signal + sigma * torch.randn(signal.shape, generator=g, dtype=torch.float64)
    h2 = signal + sigma * torch.randn(signal.shape, generator=g, dtype=torch.float64)
    global_res = fsc_summary(
        fourier_shell_correlation(h1, h2), box_size=box, pixel_size_angstrom=PIXEL
    ).resolution_0143_angstrom
    result = local_resolution(
        h1.float(),
        h2.float(),
        pixel_size_angstrom=PIXEL,
        params=LocalResolutionParams(sampling_angstrom=16.0),
        generator=g,
    )
    local = float(result.window_resolution_angstrom.median())
    assert abs(local / global_res - 1.0) < 0.12, (local, global_res)


def test_filtered_map_is_lowpassed_where_resolution_is_poor(blurred):
    truth, h1, h2, result = blurred
    f = result.filtered.double()
    # closer to the truth than the noisy average (noise above the local resolution removed)
    average = 0.5 * (h1 + h2)
    assert float((f - truth).square().mean()) < 0.8 * float((average - truth).square().mean())
    assert torch.isfinite(f).all() and float((result.resolution_angstrom > 0).double().mean()) > 0.5


def test_errors_name_the_problem(generator):
    a = torch.zeros(32, 32, 32)
    with pytest.raises(ValueError, match="one shape"):
        local_resolution(a, torch.zeros(32, 32, 30), pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="cubic"):
        local_resolution(torch.zeros(32, 32, 30), torch.zeros(32, 32, 30), pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="larger than the box"):
        local_resolution(a, a, pixel_size_angstrom=1.0)  # 25 Å windows: 77 px across
    with pytest.raises(ValueError, match="mask shape"):
        local_resolution(a, a, pixel_size_angstrom=4.0, mask=torch.ones(8, 8, 8))
    with pytest.raises(ValueError, match="no window reaches the mask"):
        local_resolution(a, a, pixel_size_angstrom=4.0, mask=torch.zeros(32, 32, 32))
