"""Noise: the SNR definition (variance inside the particle mask / noise variance), shot noise."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.ctf import CTFParams
from cryoglass.projection import project
from cryoglass.simulate import gaussian_map
from cryoglass.simulate.noise import (
    add_gaussian_noise,
    add_shot_noise,
    circular_mask,
    electron_counts,
    measured_snr,
    noise_std_for_snr,
    signal_variance,
    threshold_mask,
)


@pytest.fixture(scope="module")
def clean_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    centers = (torch.rand(12, 3, generator=g) - 0.5) * 30
    volume = gaussian_map(centers, shape=(48, 48, 48), pixel_size_angstrom=2.0, sigma_angstrom=3.0)
    euler = torch.rand(64, 3, generator=g) * torch.tensor([360.0, 180.0, 360.0])
    ctf = CTFParams(
        defocus_u_angstrom=torch.linspace(1e4, 2e4, 64),
        defocus_v_angstrom=torch.linspace(1e4, 2e4, 64),
    )
    return project(volume, euler_deg=euler, pixel_size_angstrom=2.0, ctf=ctf)


def test_circular_mask_area_and_centre():
    mask = circular_mask(64, diameter_px=40.0)
    assert abs(int(mask.sum()) - math.pi * 20**2) < 0.02 * math.pi * 20**2
    assert bool(mask[32, 32]) and bool(mask[32, 12]) and not bool(mask[32, 11])
    with pytest.raises(ValueError, match="diameter"):
        circular_mask(8, diameter_px=0.0)


def test_signal_variance_matches_direct_definition(clean_images):
    mask = circular_mask(48, diameter_px=36.0)
    direct = torch.stack([img[mask].var(unbiased=False) for img in clean_images])
    torch.testing.assert_close(signal_variance(clean_images, mask=mask), direct)
    with pytest.raises(ValueError, match="at least 2"):
        signal_variance(clean_images, mask=torch.zeros(48, 48, dtype=torch.bool))


@pytest.mark.parametrize("snr", [0.05, 1.0, 10.0])
def test_measured_snr_equals_requested(clean_images, snr):
    mask = circular_mask(48, diameter_px=36.0)
    sigma = noise_std_for_snr(clean_images, snr=snr, mask=mask)
    noisy = add_gaussian_noise(
        clean_images, noise_std=sigma, generator=torch.Generator().manual_seed(1)
    )
    # independent measurement: signal variance in the disc, noise variance from the residual
    signal = torch.stack([img[mask].var(unbiased=False) for img in clean_images]).mean()
    noise = (noisy - clean_images).var()
    assert abs(float(signal / noise) / snr - 1) < 0.05
    assert abs(measured_snr(clean_images, noisy, mask=mask) / snr - 1) < 0.05


def test_gaussian_noise_is_deterministic_white_and_does_not_mutate(clean_images):
    copy = clean_images.clone()
    a = add_gaussian_noise(clean_images, noise_std=2.0, generator=torch.Generator().manual_seed(5))
    b = add_gaussian_noise(clean_images, noise_std=2.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(clean_images, copy)
    noise = a - clean_images
    neighbour = float((noise[..., 1:] * noise[..., :-1]).mean() / noise.var())
    assert abs(neighbour) < 0.02
    with pytest.raises(ValueError, match="snr"):
        noise_std_for_snr(clean_images, snr=0.0, mask=circular_mask(48, diameter_px=10.0))


def test_threshold_mask_selects_particle():
    images = torch.zeros(2, 16, 16)
    images[:, 6:10, 6:10] = 1.0
    images[1, 0, 0] = 0.01
    mask = threshold_mask(images, fraction=0.05)
    assert int(mask[0].sum()) == 16 and int(mask[1].sum()) == 16


def test_poisson_mean_equals_variance_at_low_dose():
    dose, pixel = 0.5, 1.2  # 0.72 e⁻ per pixel
    counts = electron_counts(
        torch.zeros(200, 64, 64),
        dose_e_per_a2=dose,
        pixel_size_angstrom=pixel,
        generator=torch.Generator().manual_seed(2),
    )
    assert torch.equal(counts, counts.round()) and float(counts.min()) >= 0
    expected = dose * pixel**2
    assert abs(float(counts.mean()) / expected - 1) < 0.01
    assert abs(float(counts.var()) / float(counts.mean()) - 1) < 0.02


def test_shot_noise_is_unbiased_with_predicted_variance():
    contrast = torch.linspace(-0.3, 0.3, 16).reshape(4, 4).expand(4000, 4, 4)
    dose, pixel = 20.0, 1.0
    noisy = add_shot_noise(
        contrast,
        dose_e_per_a2=dose,
        pixel_size_angstrom=pixel,
        generator=torch.Generator().manual_seed(3),
    )
    torch.testing.assert_close(noisy.mean(0), contrast[0], atol=0.01, rtol=0)
    predicted = (1 + contrast[0]) / (dose * pixel**2)
    torch.testing.assert_close(noisy.var(0), predicted, rtol=0.1, atol=0)
    again = add_shot_noise(
        contrast,
        dose_e_per_a2=dose,
        pixel_size_angstrom=pixel,
        generator=torch.Generator().manual_seed(3),
    )
    assert torch.equal(noisy, again)
    with pytest.raises(ValueError, match="dose"):
        add_shot_noise(
            contrast, dose_e_per_a2=0.0, pixel_size_angstrom=1.0, generator=torch.Generator()
        )
