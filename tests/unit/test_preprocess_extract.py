"""Particle extraction: RELION's windows, background plane, normalisation and binning."""

from __future__ import annotations

import pytest
import torch

from cryoglass.fourier.rescale import fourier_crop
from cryoglass.preprocess.extract import (
    background_mask,
    bin_windows,
    extract_windows,
    normalise_background,
    preprocess_particles,
)


def test_windows_truncate_coordinates_and_repeat_the_edge():
    mic = torch.arange(100.0).reshape(10, 10)
    windows = extract_windows(mic, torch.tensor([[5.9, 4.2], [0.0, 9.0]]), box=4)
    # centre pixel (2, 2) at (row 4, column 5): RELION truncates 5.9 → 5
    assert float(windows[0, 2, 2]) == 45.0
    assert torch.equal(windows[0], mic[2:6, 3:7])
    # beyond the micrograph: the nearest pixel inside (the corner repeats)
    assert float(windows[1, 0, 0]) == mic[7, 0] and float(windows[1, 3, 0]) == mic[9, 0]
    assert float(windows[1, 3, 3]) == mic[9, 1]


def test_normalisation_removes_a_plane_and_scales_the_background():
    g = torch.Generator().manual_seed(0)
    offsets = torch.arange(32.0, dtype=torch.float64) - 16
    jj, ii = torch.meshgrid(offsets, offsets, indexing="xy")
    noise = torch.randn(3, 32, 32, generator=g, dtype=torch.float64)
    plane = 0.3 * jj - 0.2 * ii + 5.0
    out = normalise_background(plane + 2.0 * noise, radius_px=12)
    bg = background_mask(32, radius_px=12)
    assert torch.allclose(out[:, bg].mean(dim=1), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(out[:, bg].std(dim=1, unbiased=False), torch.ones(3, dtype=torch.float64))
    # the plane is gone: the result is the noise, rescaled
    scaled = normalise_background(2.0 * noise, radius_px=12)
    assert torch.allclose(out, scaled, atol=1e-9)
    # without the ramp, only the mean is taken out: the plane stays
    flat = normalise_background(plane + 2.0 * noise, radius_px=12, ramp=False)
    assert float((flat[:, 16, 28] - flat[:, 16, 4]).mean()) > 1


def test_background_radius_must_fit():
    with pytest.raises(ValueError, match="exceeds the box"):
        background_mask(32, radius_px=17)
    assert int(background_mask(32, radius_px=0).sum()) == 32 * 32 - 1


def test_relion_binning_differs_from_the_folding_crop_only_at_nyquist():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(4, 64, 64, generator=g, dtype=torch.float64)
    ours, folded = bin_windows(images, 32), fourier_crop(images, (32, 32))
    spectrum_a = torch.fft.rfft2(ours)
    spectrum_b = torch.fft.rfft2(folded)
    inner = torch.ones(32, 17, dtype=torch.bool)
    inner[16, :] = False
    inner[:, 16] = False
    assert torch.allclose(spectrum_a[:, inner], spectrum_b[:, inner], atol=1e-9)
    assert float(ours.mean()) == pytest.approx(float(images.mean()), abs=1e-12)


def test_preprocess_checks_the_box_and_bins():
    mic = torch.randn(80, 90, generator=torch.Generator().manual_seed(2))
    xy = torch.tensor([[40.0, 40.0], [1.0, 79.0]])
    images = preprocess_particles(mic, xy, box=32, bin_factor=2, invert_contrast=True)
    assert images.shape == (2, 16, 16) and images.dtype == torch.float32
    plain = preprocess_particles(mic, xy, box=32, bin_factor=2)
    assert torch.allclose(images, -plain)
    with pytest.raises(ValueError, match="even"):
        preprocess_particles(mic, xy, box=31)
    with pytest.raises(ValueError, match="bin"):
        preprocess_particles(mic, xy, box=32, bin_factor=3)
