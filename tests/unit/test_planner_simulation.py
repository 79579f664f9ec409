"""Planner predictions vs simulate → reconstruct → 3DFSC (48³, 3000 particles per dataset)."""

import math

import pytest
import torch

from cryoglass.reconstruct import reconstruct
from cryoglass.simulate import ParticleDistributions, simulate_dataset
from cryoglass.simulate.phantom import gaussian_map
from cryoglass.validate import (
    orientation_model,
    plan_orientations,
    projection_directions,
    three_d_fsc,
)

BOX, PIXEL, N = 48, 3.0, 3000


def _measure(volume, spec):
    views = orientation_model(spec)
    chunks = list(
        simulate_dataset(
            volume,
            n=N,
            pixel_size_angstrom=PIXEL,
            snr=0.3,
            seed=3,
            chunk_size=N,
            distributions=ParticleDistributions(
                views=views, defocus_min_um=0.8, defocus_max_um=1.6
            ),
        )
    )
    images = torch.cat([c.images for c in chunks])
    params = [c.parameters for c in chunks]
    euler = torch.cat([p.euler_deg for p in params])
    subset = torch.cat([p.random_subset for p in params])
    ctf = params[0].ctf if len(params) == 1 else None
    assert ctf is not None
    halves = [
        reconstruct(
            images[subset == h],
            euler_deg=euler[subset == h],
            ctf=ctf[subset == h],
            pixel_size_angstrom=PIXEL,
        )
        for h in (1, 2)
    ]
    return three_d_fsc(*halves, pixel_size_angstrom=PIXEL, subdivisions=2), euler


def _angle(a, b):
    return math.degrees(math.acos(min(1.0, abs(float((a * b).sum())))))


@pytest.mark.slow
def test_planner_agrees_with_simulated_3dfsc():
    g = torch.Generator().manual_seed(0)
    centres = (torch.rand(600, 3, generator=g, dtype=torch.float64) - 0.5) * 40.0
    volume = gaussian_map(
        centres, shape=(BOX,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=2.0
    ).float()
    measured, predicted = {}, {}
    for spec in ("uniform", "topside:0.9"):
        measured[spec], euler = _measure(volume, spec)
        predicted[spec] = plan_orientations(
            projection_directions(euler), n_particles=N, box_size=BOX, pixel_size_angstrom=PIXEL
        )
    top_m, top_p = measured["topside:0.9"], predicted["topside:0.9"]
    # predicted worst direction: the unsampled kz cone
    assert _angle(top_p.worst_direction, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)) < 30
    # NOTE: the measured worst direction is NOT z here: the Wiener-regularised reconstruction
    # sets unsampled voxels to ~0 in both halves, so they drop out of the cone sums and the
    # FSC along z stays high (the blind spot SCF* was made for).  Open point, see the report.
    assert (measured["uniform"].sphericity > top_m.sphericity) == (
        predicted["uniform"].sphericity > top_p.sphericity
    )
    assert measured["uniform"].sphericity - top_m.sphericity > 0.03
    assert top_p.global_resolution_angstrom > predicted["uniform"].global_resolution_angstrom
    assert top_m.global_resolution_angstrom > measured["uniform"].global_resolution_angstrom
