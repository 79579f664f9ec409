"""SCF / SCF*, directions, tilt and density maps (Baldwin & Lyumkis 2020 analytic values)."""

import math

import pytest
import torch

from cryoglass.geometry import euler_to_matrix
from cryoglass.simulate.distributions import uniform_orientations, vmf_orientations
from cryoglass.validate.orientations import (
    direction_density,
    directional_sampling,
    orientation_bild,
    orientation_statistics,
    projection_directions,
    sampling_compensation_factors,
    tilt_directions,
)


def _uniform_dirs(n, g):
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1)


def test_uniform_scf_is_one(generator):
    stats = orientation_statistics(_uniform_dirs(200_000, generator))
    assert stats.scf == pytest.approx(1.0, abs=0.01)
    assert stats.scf_star == pytest.approx(1.0, abs=0.01)
    assert stats.empty_fraction == 0.0 and stats.efficiency == 1.0
    assert stats.mean_sampling == pytest.approx(200_000 / 100)


def test_side_views_give_eight_over_pi_squared(generator):
    phi = 2 * math.pi * torch.rand(200_000, generator=generator, dtype=torch.float64)
    side = torch.stack((phi.cos(), phi.sin(), torch.zeros_like(phi)), dim=1)
    stats = orientation_statistics(side)
    assert stats.scf == pytest.approx(8 / math.pi**2, abs=0.01)


def test_single_view_far_below(generator):
    one = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).repeat(20_000, 1)
    stats = orientation_statistics(one)
    assert stats.scf == 0.0  # part of the shell unsampled: <1/S> diverges
    assert stats.scf_star < 0.01
    assert stats.empty_fraction > 0.95


def test_top_views_lower_than_uniform_and_particle_count_dependence(generator):
    top = projection_directions(vmf_orientations(100_000, kappa=20.0, generator=generator))
    s1 = orientation_statistics(top)
    s2 = orientation_statistics(top[:10_000])
    assert s1.scf_star < 0.5
    assert s1.efficiency < 0.5
    assert s1.mean_sampling == pytest.approx(10 * s2.mean_sampling)


def test_ring_counting_matches_brute_force(generator):
    d = _uniform_dirs(2000, generator)
    d[:5] = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # poles: degenerate arcs
    for radius in (3.0, 20.0):
        m = directional_sampling(
            d, fourier_radius=radius, n_rings=12, n_azimuths=30, chunk_size=700, dtype=torch.float64
        )
        rays = m.ray_directions.reshape(-1, 3)
        brute = ((rays @ d.T).abs() * radius < 0.5).sum(1).reshape(m.counts.shape)
        torch.testing.assert_close(m.counts, brute.to(torch.float64))


def test_scf_formulas_on_known_counts():
    counts = torch.tensor([1.0, 2.0, 4.0, 0.0])
    v = sampling_compensation_factors(counts)
    mean = 7 / 4
    scf0 = 1 / (mean * (1 + 0.5 + 0.25) / 3)
    assert v["scf_sampled"] == pytest.approx(scf0)
    assert v["scf"] == 0.0
    assert v["empty_fraction"] == 0.25
    assert v["scf_star"] == pytest.approx(scf0 / (1 + (0.25 / 0.75) * mean * scf0 / 2))
    with pytest.raises(ValueError):
        sampling_compensation_factors(torch.tensor([-1.0]))


def test_projection_directions_third_row_and_symmetry(generator):
    euler = uniform_orientations(50, generator=generator)
    d = projection_directions(euler)
    torch.testing.assert_close(d, euler_to_matrix(euler)[:, 2, :])
    d4 = projection_directions(euler, symmetry="C4").reshape(50, 4, 3)
    # C4 about z: the four directions share z and their xy parts are 90° apart
    torch.testing.assert_close(d4[..., 2], d4[:, :1, 2].expand(50, 4))
    xy = d4[..., :2]
    dots = (xy[:, :1] * xy[:, 1:]).sum(-1).abs().min(dim=1).values
    assert float(dots.max()) < 1e-9
    with pytest.raises(ValueError, match="shape"):
        projection_directions(torch.zeros(5, 2))


def test_tilt_directions_angle(generator):
    d = _uniform_dirs(1000, generator)
    t = tilt_directions(d, 30.0, generator=generator)
    torch.testing.assert_close(t.norm(dim=1), torch.ones(1000, dtype=torch.float64))
    torch.testing.assert_close(
        (t * d).sum(1), torch.full((1000,), math.cos(math.radians(30)), dtype=torch.float64)
    )
    # tilting top views fills Fourier space: SCF* rises
    top = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).repeat(50_000, 1)
    tilted = tilt_directions(top, 40.0, generator=generator)
    assert orientation_statistics(tilted).scf_star > 10 * orientation_statistics(top).scf_star


def test_density_is_normalised(generator):
    density, az, lat = direction_density(
        _uniform_dirs(100_000, generator), n_azimuths=36, n_bands=18
    )
    cell = 4 * math.pi / (36 * 18)
    assert float((density * cell).sum()) == pytest.approx(1.0)
    assert float(density.mean()) == pytest.approx(1 / (4 * math.pi), rel=1e-6)
    assert float((density * 4 * math.pi).std()) < 0.1
    assert az.shape == (37,) and lat.shape == (19,)


def test_bild_text(generator):
    text = orientation_bild(_uniform_dirs(5000, generator), order=1)
    cylinders = [line for line in text.splitlines() if line.startswith(".cylinder")]
    assert len(cylinders) == 48
    assert all(len(line.split()) == 8 for line in cylinders)
