"""Unit tests of cryoglass.projection: accuracy against analytic projections, API behaviour."""

from __future__ import annotations

import pytest
import torch

from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.projection import (
    extract_slices,
    gaussian_blobs_projection,
    gaussian_blobs_volume,
    prepare_volume_fourier,
    project,
)

N = 48


def _blobs(generator, n=N, count=5, dtype=torch.float64):
    centers = (torch.rand(count, 3, generator=generator, dtype=dtype) - 0.5) * (n / 3)
    sigmas = 1.5 + 1.5 * torch.rand(count, generator=generator, dtype=dtype)
    amplitudes = 0.5 + torch.rand(count, generator=generator, dtype=dtype)
    return centers, sigmas, amplitudes


def _random_rotations(generator, b, dtype=torch.float64):
    angles = torch.rand(b, 3, generator=generator, dtype=dtype) * torch.tensor(
        [360.0, 180.0, 360.0], dtype=dtype
    )
    return euler_to_matrix(angles)


def _relative_error(a, b):
    return float((a - b).norm() / b.norm())


def test_accuracy_against_analytic_gaussian_projections(generator):
    blobs = _blobs(generator)
    volume = gaussian_blobs_volume(N, *blobs)
    rotations = _random_rotations(generator, 12)
    exact = gaussian_blobs_projection(N, *blobs, rotations)
    errors = {pad: _relative_error(project(volume, rotations, pad=pad), exact) for pad in (1, 2, 3)}
    assert errors[2] < 1e-2
    assert errors[3] < errors[2] < errors[1]  # finer Fourier sampling → smaller error
    no_gridding = _relative_error(project(volume, rotations, pad=2, gridding=False), exact)
    assert errors[2] < no_gridding  # the gridding pre-correction helps
    nearest = _relative_error(project(volume, rotations, interpolation="nearest"), exact)
    assert errors[2] < nearest


def test_euler_angles_and_matrices_give_the_same_images(generator):
    volume = gaussian_blobs_volume(N, *_blobs(generator))
    angles = torch.tensor([[10.0, 20.0, 30.0], [200.0, 100.0, -40.0]], dtype=torch.float64)
    a = project(volume, euler_deg=angles)
    b = project(volume, euler_to_matrix(angles))
    torch.testing.assert_close(a, b)


def test_batch_size_does_not_change_results_and_batch_shape_is_kept(generator):
    volume = gaussian_blobs_volume(N, *_blobs(generator)).float()
    rotations = _random_rotations(generator, 6, dtype=torch.float32).reshape(2, 3, 3, 3)
    shifts = torch.randn(2, 3, 2, generator=generator) * 3
    a = project(volume, rotations, shift_angstrom=shifts, batch_size=1)
    b = project(volume, rotations, shift_angstrom=shifts, batch_size=64)
    assert a.shape == (2, 3, N, N) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_shift_moves_the_projection_like_relion_origins(generator):
    blobs = _blobs(generator)
    volume = gaussian_blobs_volume(N, *blobs)
    rotations = _random_rotations(generator, 3)
    origin = torch.tensor([[3.0, -5.0], [0.5, 2.25], [-7.0, 1.0]], dtype=torch.float64)
    pixel = 1.5
    images = project(volume, rotations, shift_angstrom=origin * pixel, pixel_size_angstrom=pixel)
    # shifted(r) = centred(r + o): a blob centred at c appears at c − o
    centers, sigmas, amplitudes = blobs
    expected = torch.stack(
        [
            gaussian_blobs_projection(N, centers - _lift(o, r), sigmas, amplitudes, r[None])[0]
            for o, r in zip(origin, rotations, strict=True)
        ]
    )
    assert _relative_error(images, expected) < 1e-2
    wrong = project(volume, rotations, shift_angstrom=-origin * pixel, pixel_size_angstrom=pixel)
    assert _relative_error(wrong, expected) > 0.5


def _lift(origin_xy, rotation):
    """The map-frame vector whose image-frame (x, y) is the origin: Aᵀ(o_x, o_y, 0)."""
    return rotation.T @ torch.cat([origin_xy, origin_xy.new_zeros(1)])


def test_extract_slices_layout_and_nyquist_mask(generator):
    volume = gaussian_blobs_volume(16, *_blobs(generator, n=16))
    prepared = prepare_volume_fourier(volume, pad=2)
    slices = extract_slices(prepared, _random_rotations(generator, 2))
    assert slices.shape == (2, 16, 9) and slices.is_complex()
    ky = torch.arange(16) - 8
    kx = torch.arange(9)
    outside = ky[:, None] ** 2 + kx[None, :] ** 2 > 64
    assert (slices[:, outside] == 0).all()
    assert (slices[:, ~outside] != 0).all()
    # column k_x = 0 is Hermitian: F(0, -k_y) = conj F(0, k_y)
    torch.testing.assert_close(slices[:, 1:, 0], slices[:, 1:, 0].flip(-1).conj())


def test_inputs_are_not_modified_and_device_follows_volume(generator):
    volume = gaussian_blobs_volume(N, *_blobs(generator)).float()
    before = volume.clone()
    images = project(volume, euler_deg=torch.zeros(1, 3))
    torch.testing.assert_close(volume, before)
    assert images.device == volume.device


def test_errors_are_specific(generator):
    volume = torch.zeros(8, 8, 8)
    with pytest.raises(ValueError, match="exactly one of"):
        project(volume)
    with pytest.raises(ValueError, match="exactly one of"):
        project(volume, torch.eye(3)[None], euler_deg=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="cubic"):
        project(torch.zeros(8, 8, 6), euler_deg=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="pad must be an integer"):
        project(volume, euler_deg=torch.zeros(1, 3), pad=0)
    with pytest.raises(ValueError, match="shift_angstrom"):
        project(volume, euler_deg=torch.zeros(1, 3), shift_angstrom=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="interpolation"):
        project(volume, euler_deg=torch.zeros(1, 3), interpolation="cubic")
