"""Conical FSC (3DFSC): sphericity, worst direction, covariance, bad input."""

import math

import pytest
import torch

from cryoglass.simulate.distributions import top_side_orientations, uniform_orientations
from cryoglass.validate import fourier_shell_correlation
from cryoglass.validate.fsc3d import conical_fsc, icosphere, sphericity, three_d_fsc
from cryoglass.validate.orientations import projection_directions
from cryoglass.validate.planner import anisotropic_half_maps

N = 32


def _halves(euler, generator):
    truth = torch.randn(N, N, N, generator=generator, dtype=torch.float64)
    # SSNR uniform views would give: 60 exp(-r/4) (0.5-crossing at r ≈ 16 = Nyquist)
    ssnr = 60.0 * torch.exp(-torch.arange(N // 2 + 1, dtype=torch.float64) / 4.0)
    return anisotropic_half_maps(
        truth, projection_directions(euler), uniform_ssnr=ssnr, generator=generator
    )


def _top_dominated(g, n=3000):
    """85 % top views (tilt |N(0, 6°)|: 95 % of them within 12°) + 15 % uniform views."""
    top = top_side_orientations(int(0.85 * n), top_fraction=1.0, jitter_deg=6.0, generator=g)
    return torch.cat([top, uniform_orientations(n - top.shape[0], generator=g)])


@pytest.fixture(scope="module")
def results():
    g = torch.Generator().manual_seed(5)
    uniform = three_d_fsc(
        *_halves(uniform_orientations(3000, generator=g), g),
        pixel_size_angstrom=1.0,
        subdivisions=2,
    )
    top = _top_dominated(g)
    topr = three_d_fsc(*_halves(top, g), pixel_size_angstrom=1.0, subdivisions=2)
    return uniform, topr


def test_uniform_views_are_spherical(results):
    uniform, _ = results
    assert uniform.sphericity >= 0.9
    assert uniform.global_resolution_angstrom is not None


def test_top_views_less_spherical_worst_along_z(results):
    uniform, top = results
    assert top.sphericity <= uniform.sphericity - 0.1
    angle = math.degrees(math.acos(min(1.0, abs(float(top.worst_direction[2])))))
    assert angle < 30.0
    assert abs(float(top.best_direction[2])) < 0.5


def test_random_maps_have_no_resolution(generator):
    a = torch.randn(N, N, N, generator=generator)
    b = torch.randn(N, N, N, generator=generator)
    r = three_d_fsc(a, b, pixel_size_angstrom=1.0, subdivisions=2)
    s = r.summary()
    assert s["global_resolution_angstrom"] is None
    assert s["resolution_min_angstrom"] is None and s["resolution_max_angstrom"] is None


def test_rotation_covariance(generator):
    h1, h2 = _halves(_top_dominated(generator), generator)
    r1 = three_d_fsc(h1, h2, pixel_size_angstrom=1.0, subdivisions=2)
    # rotate maps by 90° about x: volume[z, y, x] -> axes (z, y) rotated; z direction -> y
    rot = lambda v: torch.rot90(v, 1, dims=(0, 1))  # noqa: E731
    r2 = three_d_fsc(rot(h1), rot(h2), pixel_size_angstrom=1.0, subdivisions=2)
    w1, w2 = r1.worst_direction, r2.worst_direction
    # map w1 through the same rotation of coordinates: rot90 over (z, y) sends z -> -y
    mapped = torch.stack((w1[0], -w1[2], w1[1]))
    cos = abs(float((mapped * w2).sum()))
    assert cos > math.cos(math.radians(15))
    assert r2.sphericity == pytest.approx(r1.sphericity, abs=0.03)


def test_wide_cone_matches_global_fsc(generator):
    a = torch.randn(16, 16, 16, generator=generator, dtype=torch.float64)
    b = a + torch.randn(16, 16, 16, generator=generator, dtype=torch.float64)
    fsc, _ = conical_fsc(
        a, b, cone_half_angle_deg=89.999, axes=torch.tensor([[0.3, math.sqrt(2) / 3, math.pi / 4]])
    )
    torch.testing.assert_close(fsc[0], fourier_shell_correlation(a, b), atol=1e-5, rtol=0)


def test_volume_is_friedel_symmetric_and_holds_cone_values(results):
    uniform, _ = results
    v = uniform.volume
    assert v.shape == (N, N, N)
    c = N // 2
    # voxel at +k and -k (centred grid) carry the same value
    torch.testing.assert_close(v[c + 3, c - 2, c + 5], v[c - 3, c + 2, c - 5])
    assert float(v[c, c, c]) == pytest.approx(1.0)
    assert float(v.max()) <= 1.0 + 1e-6


def test_icosphere_sphericity():
    v, f = icosphere(3)
    assert v.shape == (642, 3) and f.shape == (1280, 3)
    assert sphericity(v, f) == pytest.approx(1.0, abs=0.002)
    squashed = v * torch.tensor([1.0, 1.0, 0.4], dtype=torch.float64)
    assert sphericity(squashed, f) < 0.9


def test_bad_input(generator):
    a = torch.randn(16, 16, 16, generator=generator)
    with pytest.raises(ValueError, match="shape"):
        three_d_fsc(a, torch.randn(16, 16, 14), pixel_size_angstrom=1.0)
    for angle in (0.0, -5.0, 90.0, 120.0):
        with pytest.raises(ValueError, match="half-angle"):
            three_d_fsc(a, a, pixel_size_angstrom=1.0, cone_half_angle_deg=angle)
    with pytest.raises(ValueError, match="pixel"):
        three_d_fsc(a, a, pixel_size_angstrom=0.0)
