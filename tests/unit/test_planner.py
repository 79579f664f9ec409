"""Orientation planner: SSNR model, slab counts, predicted 3DFSC and tilt scan."""

import math

import pytest
import torch

from cryoglass.simulate.distributions import (
    TopSideViews,
    TopUniformViews,
    VonMisesFisherViews,
    top_uniform_orientations,
)
from cryoglass.validate import (
    SSNRModel,
    icosphere,
    orientation_model,
    plan_orientations,
    plan_tilt_scan,
    projection_directions,
    shell_sampling,
)


def _dirs(spec, n, g):
    return projection_directions(orientation_model(spec).sample(n, generator=g))


def test_shell_sampling_matches_brute_force(generator):
    d = torch.nn.functional.normalize(
        torch.randn(3000, 3, generator=generator, dtype=torch.float64), dim=1
    )
    rays = icosphere(1)[0]
    counts = shell_sampling(d, rays, 12, chunk_size=700)
    r = torch.arange(12, dtype=torch.float64)
    brute = ((rays @ d.T).abs()[:, :, None] * r < 0.5).sum(1).to(torch.float64)
    torch.testing.assert_close(counts, brute)


def test_uniform_views_reproduce_the_calibration(generator):
    model = SSNRModel(reference_particles=20_000, reference_resolution_angstrom=4.0)
    plan = plan_orientations(
        _dirs("uniform", 20_000, generator),
        n_particles=20_000,
        box_size=96,
        pixel_size_angstrom=1.0,
        model=model,
    )
    assert plan.uniform_resolution_angstrom == pytest.approx(4.0, rel=0.01)
    assert plan.global_resolution_angstrom == pytest.approx(4.0, rel=0.03)
    assert plan.sphericity > 0.97
    assert plan.orientation.scf == pytest.approx(1.0, abs=0.03)
    # 4x the particles: SSNR x4 at every k -> better resolution, exactly the uniform curve
    more = plan_orientations(
        _dirs("uniform", 20_000, generator),
        n_particles=80_000,
        box_size=96,
        pixel_size_angstrom=1.0,
        model=model,
    )
    assert more.uniform_resolution_angstrom < 3.6


def test_top_views_worst_along_z_and_more_data_does_not_fix_it(generator):
    d = _dirs("vmf:10", 20_000, generator)
    small = plan_orientations(d, n_particles=50_000, box_size=96)
    angle = math.degrees(math.acos(min(1.0, abs(float(small.worst_direction[2])))))
    assert angle < 20.0
    assert small.sphericity < 0.93
    assert small.orientation.scf_star < 0.2


def test_more_data_keeps_the_scf_penalty(generator):
    """SSNR = SCF · <S> σ: 10x particles raise <S>, not SCF (no holes: top + side views)."""
    d = _dirs("topside:0.85", 20_000, generator)
    small = plan_orientations(d, n_particles=50_000, box_size=96)
    big = plan_orientations(d, n_particles=500_000, box_size=96)
    torch.testing.assert_close(small.scf_by_shell[5:], big.scf_by_shell[5:], rtol=1e-9, atol=0)
    assert float(small.scf_by_shell[20]) < 0.5
    # global SSNR / uniform SSNR = SCF at every shell, for both particle counts
    for plan in (small, big):
        ssnr = plan.global_fsc / (1 - plan.global_fsc)
        uniform = plan.uniform_fsc / (1 - plan.uniform_fsc)
        torch.testing.assert_close(ssnr[5:] / uniform[5:], plan.scf_by_shell[5:], rtol=0.05, atol=0)
    assert big.global_resolution_angstrom < small.global_resolution_angstrom


def test_tilt_scan_prefers_tilt_for_top_views(generator):
    scan = plan_tilt_scan(
        _dirs("vmf:10", 4000, generator),
        n_particles=100_000,
        box_size=64,
        tilts_deg=(0, 20, 40),
        max_directions=4000,
    )
    worst = [row["resolution_max_angstrom"] for row in scan.table()]
    assert scan.best_tilt_deg == 40.0 and worst[2] < worst[0]
    assert scan.table()[2]["scf_star"] > scan.table()[0]["scf_star"]
    uniform = plan_tilt_scan(
        _dirs("uniform", 4000, generator),
        n_particles=100_000,
        box_size=64,
        tilts_deg=(0, 20, 40),
        max_directions=4000,
    )
    assert uniform.best_tilt_deg == 0.0  # nothing to gain, cos(α) SNR loss


def test_model_parsing_and_bad_input(generator):
    assert orientation_model("vmf:5") == VonMisesFisherViews(kappa=5.0)
    assert orientation_model("topside:0.7") == TopSideViews(top_fraction=0.7)
    assert orientation_model("topuniform:0.85") == TopUniformViews(top_fraction=0.85)
    for bad in ("vmf", "topside:2", "gauss:3", "vmf:x", "topuniform:-1"):
        with pytest.raises(ValueError, match="model"):
            orientation_model(bad)
    d = _dirs("uniform", 100, generator)
    with pytest.raises(ValueError, match="n_particles"):
        plan_orientations(d, n_particles=1)
    with pytest.raises(ValueError, match="generator"):
        plan_orientations(d, n_particles=100, tilt_deg=10.0)
    with pytest.raises(ValueError, match="shape"):
        plan_orientations(torch.zeros(5, 2), n_particles=100)


def test_top_uniform_views_put_the_fraction_near_z(generator):
    """topuniform:0.85 → ≈ 85 % of projection directions within 12° of ±z, the rest uniform."""
    euler = top_uniform_orientations(20_000, top_fraction=0.85, generator=generator)
    d = projection_directions(euler)
    near = d[:, 2].abs() >= math.cos(math.radians(12))
    # 0.85 · 0.984 (|N(0, 5°)| < 12°) + 0.15 · (1 − cos 12°) (uniform cap, both poles)
    expected = 0.85 * math.erf(12 / (5 * math.sqrt(2))) + 0.15 * (1 - math.cos(math.radians(12)))
    assert float(near.double().mean()) == pytest.approx(expected, abs=0.01)
    uniform = projection_directions(
        top_uniform_orientations(20_000, top_fraction=0.0, generator=generator)
    )
    assert float(uniform[:, 2].square().mean()) == pytest.approx(1 / 3, abs=0.01)  # E[z²] = ⅓
    with pytest.raises(ValueError, match="top_fraction"):
        top_uniform_orientations(3, top_fraction=1.5, generator=generator)
