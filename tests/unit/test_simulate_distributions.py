"""Random particle parameters: orientations (uniform, vMF, top/side, resampled), CTF, ice."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.geometry import euler_to_matrix
from cryoglass.simulate.distributions import (
    ResampledViews,
    TopSideViews,
    UniformViews,
    VonMisesFisherViews,
    direction_to_euler,
    gaussian_random_field,
    random_bfactors,
    random_defocus,
    random_shifts,
    resample_orientations,
    top_side_orientations,
    uniform_orientations,
    viewing_direction,
    vmf_directions,
    vmf_orientations,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_viewing_direction_is_third_row_of_relion_matrix():
    euler = uniform_orientations(50, generator=_gen())
    third_row = euler_to_matrix(euler)[:, 2, :]
    torch.testing.assert_close(viewing_direction(euler), third_row)


def test_direction_to_euler_round_trip():
    d = vmf_directions(40, mean_direction=(1.0, -2.0, 0.5), kappa=2.0, generator=_gen())
    psi = torch.linspace(-170, 170, 40, dtype=torch.float64)
    euler = direction_to_euler(d, psi)
    torch.testing.assert_close(viewing_direction(euler), d)
    torch.testing.assert_close(euler[:, 2], psi)


def test_uniform_orientations_cover_sphere_evenly():
    n = 20000
    d = viewing_direction(uniform_orientations(n, generator=_gen(1)))
    assert d.mean(0).norm() < 4 / math.sqrt(n)  # mean direction ≈ 0
    torch.testing.assert_close(
        d.square().mean(0), torch.full((3,), 1 / 3, dtype=d.dtype), atol=0.015, rtol=0
    )
    # psi uniform: its mean cosine/sine vanish
    psi = torch.deg2rad(uniform_orientations(n, generator=_gen(2))[:, 2])
    assert abs(float(torch.cos(psi).mean())) < 0.03 and abs(float(torch.sin(psi).mean())) < 0.03


@pytest.mark.parametrize("kappa", [1.0, 5.0, 50.0])
def test_vmf_mean_resultant_length(kappa):
    mean = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64) / math.sqrt(2)
    d = vmf_directions(20000, mean_direction=mean, kappa=kappa, generator=_gen(3))
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(20000, dtype=d.dtype))
    expected = 1 / math.tanh(kappa) - 1 / kappa
    assert abs(float((d @ mean).mean()) - expected) < 0.01
    # the spread is symmetric around the mean: the average direction points along it
    average = d.mean(0)
    assert float(average @ mean / average.norm()) > 0.999


def test_vmf_infinite_concentration_and_zero():
    d = vmf_directions(500, mean_direction=(0.0, 0.0, 2.0), kappa=1e9, generator=_gen(4))
    torch.testing.assert_close(
        d, torch.tensor([0.0, 0.0, 1.0], dtype=d.dtype).expand(500, 3), atol=1e-4, rtol=0
    )
    u = vmf_directions(20000, mean_direction=(0.0, 0.0, 1.0), kappa=0.0, generator=_gen(5))
    assert u.mean(0).norm() < 0.03


def test_vmf_orientations_direction_and_errors():
    euler = vmf_orientations(1000, kappa=1e8, mean_direction=(0.0, 1.0, 0.0), generator=_gen(6))
    d = viewing_direction(euler)
    assert float(d[:, 1].min()) > 0.9999
    assert float(euler[:, 2].std()) > 50  # psi spread out
    with pytest.raises(ValueError, match="kappa"):
        vmf_directions(3, mean_direction=(0, 0, 1), kappa=-1.0, generator=_gen())
    with pytest.raises(ValueError, match="non-zero"):
        vmf_directions(3, mean_direction=(0, 0, 0), kappa=1.0, generator=_gen())


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_top_side_fractions(fraction):
    euler = top_side_orientations(10000, top_fraction=fraction, jitter_deg=5.0, generator=_gen(7))
    tilt = euler[:, 1]
    top = tilt < 45
    assert abs(float(top.double().mean()) - fraction) < 0.015
    if fraction < 1:
        side_tilt = tilt[~top]
        assert abs(float(side_tilt.mean()) - 90) < 0.5 and 4 < float(side_tilt.std()) < 6
        side_z = viewing_direction(euler[~top])[:, 2]
        assert float(side_z.abs().max()) < math.sin(math.radians(30))
    with pytest.raises(ValueError, match="top_fraction"):
        top_side_orientations(3, top_fraction=1.5, generator=_gen())


def test_resample_orientations_draws_from_table():
    table = torch.tensor(
        [[10.0, 20.0, 30.0], [40.0, 50.0, 60.0], [-5.0, 90.0, 0.0]], dtype=torch.float64
    )
    out = resample_orientations(table, 3000, generator=_gen(8))
    matches = (out[:, None, :] == table[None]).all(-1)
    assert bool(matches.any(-1).all())
    counts = matches.sum(0).double()
    assert float((counts / 3000 - 1 / 3).abs().max()) < 0.04
    with pytest.raises(ValueError, match="shape"):
        resample_orientations(torch.zeros(0, 3), 2, generator=_gen())


def test_view_objects_are_seeded():
    for views in (
        UniformViews(),
        VonMisesFisherViews(kappa=3.0),
        TopSideViews(top_fraction=0.5),
        ResampledViews(euler_deg=torch.randn(7, 3, dtype=torch.float64)),
    ):
        a = views.sample(20, generator=_gen(9))
        b = views.sample(20, generator=_gen(9))
        c = views.sample(20, generator=_gen(10))
        assert a.shape == (20, 3) and torch.equal(a, b) and not torch.equal(a, c)


def test_random_defocus_range_and_astigmatism():
    du, dv, angle = random_defocus(
        5000, defocus_min_um=1.0, defocus_max_um=2.5, astigmatism_angstrom=800.0, generator=_gen(11)
    )
    mean = (du + dv) / 2
    assert float(mean.min()) >= 1e4 and float(mean.max()) <= 2.5e4
    assert abs(float(mean.mean()) - 1.75e4) < 200
    spread = du - dv
    assert float(spread.min()) >= 0 and float(spread.max()) <= 800 and float(spread.max()) > 750
    assert float(angle.min()) >= 0 and float(angle.max()) < 180
    with pytest.raises(ValueError, match="defocus"):
        random_defocus(3, defocus_min_um=2.0, defocus_max_um=1.0, generator=_gen())


def test_random_shifts_and_bfactors():
    g = random_shifts(20000, scale_angstrom=3.0, generator=_gen(12))
    torch.testing.assert_close(g.std(0), torch.full((2,), 3.0, dtype=g.dtype), atol=0.06, rtol=0)
    u = random_shifts(20000, scale_angstrom=4.0, kind="uniform", generator=_gen(13))
    assert float(u.abs().max()) <= 4.0 and float(u.abs().max()) > 3.99
    assert abs(float(u.std()) - 4 / math.sqrt(3)) < 0.05
    zero = random_shifts(10, scale_angstrom=0.0, generator=_gen())
    assert not bool(torch.signbit(zero).any())  # no "-0.0" in STAR files
    b = random_bfactors(1000, bfactor_min_a2=10.0, bfactor_max_a2=50.0, generator=_gen(14))
    assert 10 <= float(b.min()) and float(b.max()) <= 50
    with pytest.raises(ValueError, match="kind"):
        random_shifts(2, scale_angstrom=1.0, kind="cauchy", generator=_gen())


def test_gaussian_random_field_std_and_smoothness():
    field = gaussian_random_field(
        64,
        box=64,
        pixel_size_angstrom=2.0,
        correlation_length_angstrom=10.0,
        std=0.7,
        generator=_gen(15),
    )
    assert field.shape == (64, 64, 64)
    assert abs(float(field.std()) - 0.7) < 0.07
    # neighbouring pixels are strongly correlated (white noise would give ~0)
    corr = float((field[..., 1:] * field[..., :-1]).mean() / field.var())
    expected = math.exp(-(2.0**2) / (4 * 10.0**2))  # Gaussian kernel σ=ℓ: ρ(Δ)=exp(−Δ²/4ℓ²)
    assert abs(corr - expected) < 0.03
