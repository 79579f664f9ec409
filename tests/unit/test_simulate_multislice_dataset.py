"""Multislice datasets: agree with the projection path for a thin weak particle, seeded as it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli.simulate import main
from cryoglass.geometry import euler_to_matrix
from cryoglass.io import read_mrc, write_mrc
from cryoglass.projection.real_space import project_real_space
from cryoglass.simulate import gaussian_map
from cryoglass.simulate.dataset import (
    ParticleDistributions,
    dataset_parameters,
    multislice_particle_images,
    rotate_map,
    simulate_dataset,
)
from cryoglass.simulate.image import interaction_constant_rad_per_volt_angstrom
from cryoglass.simulate.noise import circular_mask, measured_snr

PIXEL = 2.0
DIST = ParticleDistributions(
    shift_scale_angstrom=3.0, astigmatism_angstrom=300.0, bfactor_max_a2=40.0
)


def _phantom(box: int, *, max_phase_rad: float) -> torch.Tensor:
    """Gaussian blobs [V] scaled so that the largest projected phase σ_e ∫V dz is given."""
    g = torch.Generator().manual_seed(0)
    centers = (torch.rand(12, 3, generator=g) - 0.5) * (0.35 * box * PIXEL)  # inside a sphere
    v = gaussian_map(centers, shape=(box,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=3.0)
    phase = interaction_constant_rad_per_volt_angstrom(300.0) * PIXEL * v.sum(dim=0).max()
    return v * (max_phase_rad / float(phase))


def _ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    b = b - b.mean(dim=(-2, -1), keepdim=True)
    return (a * b).sum(dim=(-2, -1)) / torch.sqrt(
        (a * a).sum(dim=(-2, -1)) * (b * b).sum(dim=(-2, -1))
    )


def _images(volume, **options) -> torch.Tensor:
    return torch.cat([c.images for c in simulate_dataset(volume, **options)])


@pytest.fixture(scope="module")
def weak() -> torch.Tensor:
    return _phantom(40, max_phase_rad=0.05)


def test_rotate_map_sums_to_the_real_space_projection(weak):
    rotations = euler_to_matrix(torch.tensor([[30.0, 50.0, -70.0], [0.0, 90.0, 10.0]]))
    rotated = rotate_map(weak, rotations)
    assert rotated.shape == (2, 40, 40, 40)
    torch.testing.assert_close(rotated.sum(dim=1), project_real_space(weak, rotations))
    identity = rotate_map(weak, torch.eye(3)[None])[0]
    torch.testing.assert_close(identity, weak)


def test_thin_weak_particle_matches_the_projection_dataset(weak):
    """Pose, origin (RELION sign), astigmatic CTF, B-factor and units agree: NCC ≥ 0.99."""
    options = {"n": 6, "pixel_size_angstrom": PIXEL, "distributions": DIST, "seed": 1}
    projection = _images(weak, **options)
    multislice = _images(weak, multislice_thickness_angstrom=4.0, **options)
    ncc = _ncc(multislice, projection)
    assert bool((ncc >= 0.99).all()), ncc
    ratio = multislice.norm(dim=(-2, -1)) / projection.norm(dim=(-2, -1))
    assert bool(((ratio > 0.9) & (ratio < 1.1)).all()), ratio
    # the agreement pins the conventions: the opposite origin sign visibly breaks it
    params = dataset_parameters(DIST, n=6, seed=1)
    flipped = dataclasses.replace(params, shift_angstrom=-params.shift_angstrom)
    wrong = multislice_particle_images(
        weak, flipped, pixel_size_angstrom=PIXEL, slice_thickness_angstrom=4.0
    )
    moved = params.shift_angstrom.norm(dim=-1) > 2.0
    assert bool((_ncc(wrong, projection)[moved] < 0.97).all())


def test_chunking_batching_and_noise_follow_the_projection_path():
    volume = _phantom(20, max_phase_rad=0.2)
    options = {
        "n": 260,
        "pixel_size_angstrom": PIXEL,
        "distributions": DIST,
        "seed": 5,
        "snr": 0.5,
        "multislice_thickness_angstrom": 2.0,
    }
    chunks = list(simulate_dataset(volume, chunk_size=1000, keep_clean=True, **options))
    small = _images(volume, chunk_size=70, **options)
    assert torch.equal(small, chunks[0].images)
    clean, noisy = chunks[0].clean, chunks[0].images
    params = dataset_parameters(DIST, n=260, seed=5)
    again = multislice_particle_images(
        volume, params[:10], pixel_size_angstrom=PIXEL, slice_thickness_angstrom=2.0, batch_size=3
    )
    # float32 round-off of 1 − I (|ψ|² ≈ 1) only, whatever the batch
    torch.testing.assert_close(again, clean[:10], rtol=0, atol=3e-5 * float(clean.abs().max()))
    mask = circular_mask(20, diameter_px=16.0)
    assert measured_snr(clean, noisy, mask=mask) == pytest.approx(0.5, rel=0.08)


def test_dose_and_bad_thickness():
    volume = _phantom(24, max_phase_rad=0.2)
    options = {"n": 4, "pixel_size_angstrom": PIXEL, "multislice_thickness_angstrom": 2.0}
    clean = _images(volume, **options)
    noisy = _images(volume, dose_e_per_a2=1e6, **options)
    assert not torch.equal(noisy, clean)
    assert float((noisy - clean).std()) < 0.2 * float(clean.std())
    with pytest.raises(ValueError, match="whole multiple"):
        _images(volume, n=2, pixel_size_angstrom=PIXEL, multislice_thickness_angstrom=3.0)


def test_cli_multislice_writes_the_library_dataset(tmp_path):
    volume = _phantom(24, max_phase_rad=0.2)
    path = tmp_path / "map.mrc"
    write_mrc(path, volume, pixel_size_angstrom=PIXEL)
    app = typer.Typer()
    app.command()(main)
    args = ["--volume", path, "--n-particles", 3, "--multislice", "--slice-thickness-angstrom", 4]
    result = CliRunner().invoke(app, [str(a) for a in (*args, "--out", tmp_path / "sim")])
    assert result.exit_code == 0, result.output
    written, _ = read_mrc(tmp_path / "sim" / "particles.mrcs")
    expected = _images(
        volume,
        n=3,
        pixel_size_angstrom=PIXEL,
        distributions=ParticleDistributions(),
        multislice_thickness_angstrom=4.0,
    )
    torch.testing.assert_close(written, expected)
    bad = CliRunner().invoke(app, [str(a) for a in (*args[:-1], 3, "--out", tmp_path / "bad")])
    assert bad.exit_code == 2 and "whole multiple" in bad.output
