"""Streaming dataset generation: determinism regardless of chunking, image model, noise levels."""

from __future__ import annotations

import time

import pytest
import torch

from cryoglass.projection import project
from cryoglass.simulate import gaussian_map
from cryoglass.simulate.dataset import (
    BLOCK_SIZE,
    IceBackground,
    ParticleDistributions,
    calibrate_noise_std,
    dataset_parameters,
    particle_diameter_angstrom,
    simulate_dataset,
)
from cryoglass.simulate.distributions import TopSideViews
from cryoglass.simulate.image import interaction_constant_rad_per_volt_angstrom
from cryoglass.simulate.noise import circular_mask, measured_snr

PIXEL = 2.0
DIST = ParticleDistributions(
    shift_scale_angstrom=3.0, astigmatism_angstrom=500.0, bfactor_max_a2=40.0
)


@pytest.fixture(scope="module")
def volume() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    centers = (torch.rand(15, 3, generator=g) - 0.5) * 24
    return gaussian_map(centers, shape=(32, 32, 32), pixel_size_angstrom=PIXEL, sigma_angstrom=3.0)


def _collect(chunks):
    chunks = list(chunks)
    return torch.cat([c.images for c in chunks]), chunks


def test_chunking_does_not_change_the_data(volume):
    options = {"n": 600, "pixel_size_angstrom": PIXEL, "distributions": DIST, "snr": 0.5, "seed": 7}
    small, small_chunks = _collect(simulate_dataset(volume, chunk_size=100, **options))
    large, large_chunks = _collect(simulate_dataset(volume, chunk_size=1000, **options))
    odd, _ = _collect(simulate_dataset(volume, chunk_size=77, **options))
    assert small.shape == (600, 32, 32) and len(small_chunks) == 6 and len(large_chunks) == 1
    assert torch.equal(small, large) and torch.equal(odd, large)
    assert [c.start for c in small_chunks] == list(range(0, 600, 100))
    params = dataset_parameters(DIST, n=600, seed=7)
    joined = torch.cat([c.parameters.euler_deg for c in small_chunks])
    assert torch.equal(joined, params.euler_deg)
    assert torch.equal(
        large_chunks[0].parameters.ctf.defocus_u_angstrom, params.ctf.defocus_u_angstrom
    )
    other, _ = _collect(simulate_dataset(volume, chunk_size=1000, **{**options, "seed": 8}))
    assert not torch.allclose(other, large)


def test_prefix_does_not_depend_on_n(volume):
    options = {"pixel_size_angstrom": PIXEL, "distributions": DIST, "snr": 2.0, "seed": 3}
    short, _ = _collect(simulate_dataset(volume, n=100, **options))
    long, _ = _collect(simulate_dataset(volume, n=BLOCK_SIZE + 50, chunk_size=60, **options))
    torch.testing.assert_close(short, long[:100], atol=1e-5, rtol=1e-5)


def test_noise_free_images_are_relion_style_projections(volume):
    (chunk,) = list(
        simulate_dataset(volume, n=40, pixel_size_angstrom=PIXEL, distributions=DIST, seed=1)
    )
    p = chunk.parameters
    expected = project(
        volume,
        euler_deg=p.euler_deg.float(),
        shift_angstrom=p.shift_angstrom.float(),
        pixel_size_angstrom=PIXEL,
        ctf=p.ctf.as_tensors(dtype=torch.float32),
    )
    torch.testing.assert_close(chunk.images, expected, atol=1e-4, rtol=1e-4)
    assert set(p.random_subset.tolist()) == {1, 2}
    bf = p.ctf.bfactor_a2
    assert float(bf.min()) >= 0 and float(bf.max()) <= 40 and float(bf.std()) > 5


def test_dataset_snr_matches_request(volume):
    snr = 0.2
    noisy, chunks = _collect(
        simulate_dataset(
            volume,
            n=BLOCK_SIZE,
            pixel_size_angstrom=PIXEL,
            distributions=DIST,
            snr=snr,
            seed=2,
            keep_clean=True,
        )
    )
    p = chunks[0].parameters
    clean = project(
        volume,
        euler_deg=p.euler_deg.float(),
        shift_angstrom=p.shift_angstrom.float(),
        pixel_size_angstrom=PIXEL,
        ctf=p.ctf.as_tensors(dtype=torch.float32),
    )
    torch.testing.assert_close(chunks[0].clean, clean, atol=1e-4, rtol=1e-4)
    diameter = particle_diameter_angstrom(volume, pixel_size_angstrom=PIXEL)
    mask = circular_mask(32, diameter_px=diameter / PIXEL)
    assert abs(measured_snr(clean, noisy, mask=mask) / snr - 1) < 0.05
    sigma = calibrate_noise_std(
        volume, pixel_size_angstrom=PIXEL, snr=snr, distributions=DIST, seed=2
    )
    assert abs(float((noisy - clean).std()) / sigma - 1) < 0.02


def test_dose_gives_shot_noise_in_map_units(volume):
    dose = 30.0
    voltage = DIST.voltage_kv
    options = {"n": 200, "pixel_size_angstrom": PIXEL, "distributions": DIST, "seed": 4}
    clean, _ = _collect(simulate_dataset(volume, **options))
    noisy, _ = _collect(simulate_dataset(volume, dose_e_per_a2=dose, **options))
    unit = 2 * interaction_constant_rad_per_volt_angstrom(voltage) * PIXEL / (1 - 0.1**2) ** 0.5
    # per-pixel variance of the contrast is (1 + c)/(D p²) ≈ 1/(D p²) for a weak object
    expected_std = 1 / (dose * PIXEL**2) ** 0.5 / unit
    residual = noisy - clean
    assert abs(float(residual.std()) / expected_std - 1) < 0.03
    assert abs(float(residual.mean())) < 0.01 * expected_std * 10


def test_background_is_added_and_seeded(volume):
    options = {"n": 50, "pixel_size_angstrom": PIXEL, "seed": 5}
    plain, _ = _collect(simulate_dataset(volume, **options))
    ice = IceBackground(std=1.0, correlation_length_angstrom=20.0)
    a, _ = _collect(simulate_dataset(volume, background=ice, **options))
    b, _ = _collect(simulate_dataset(volume, background=ice, chunk_size=7, **options))
    assert torch.equal(a, b)
    assert float((a - plain).std()) > 0.1


def test_views_distribution_reaches_the_poses(volume):
    dist = ParticleDistributions(views=TopSideViews(top_fraction=1.0, jitter_deg=1.0))
    (chunk,) = list(
        simulate_dataset(volume, n=30, pixel_size_angstrom=PIXEL, distributions=dist, seed=0)
    )
    assert float(chunk.parameters.euler_deg[:, 1].max()) < 5.0


def test_streaming_is_lazy_for_a_million_particles(volume):
    start = time.perf_counter()
    stream = simulate_dataset(
        volume, n=1_000_000, pixel_size_angstrom=PIXEL, snr=1.0, chunk_size=64
    )
    first = next(stream)
    assert first.images.shape == (64, 32, 32)
    assert time.perf_counter() - start < 10.0  # only block 0 was made, not a million images
    stream.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be"),
        ({"n": 5, "snr": 1.0, "dose_e_per_a2": 10.0}, "not both"),
        ({"n": 5, "snr": -1.0}, "snr"),
        ({"n": 5, "chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_input(volume, kwargs, message):
    with pytest.raises(ValueError, match=message):
        next(simulate_dataset(volume, pixel_size_angstrom=PIXEL, **kwargs))


def test_non_cubic_volume_is_refused():
    with pytest.raises(ValueError, match="cubic"):
        next(simulate_dataset(torch.zeros(8, 8, 9), n=2, pixel_size_angstrom=1.0))
