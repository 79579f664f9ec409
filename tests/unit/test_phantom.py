"""Sum-of-Gaussians phantom: the map and its closed-form projections agree."""

from __future__ import annotations

import math

import torch

from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.simulate.phantom import gaussian_map, gaussian_map_projections


def test_map_peak_and_integral(generator):
    centers = torch.zeros(1, 3, dtype=torch.float64)
    v = gaussian_map(centers, shape=(32, 32, 32), pixel_size_angstrom=1.5, sigma_angstrom=3.0)
    assert v[16, 16, 16] == 1.0
    sigma_px = 2.0
    torch.testing.assert_close(
        v.sum(),
        torch.tensor((2 * math.pi) ** 1.5 * sigma_px**3, dtype=torch.float64),
        rtol=1e-6,
        atol=0,
    )


def test_projection_at_identity_is_sum_over_z(generator):
    centers = (torch.rand(15, 3, generator=generator, dtype=torch.float64) - 0.5) * 30
    weights = torch.rand(15, generator=generator, dtype=torch.float64)
    v = gaussian_map(
        centers, shape=(48, 48, 48), pixel_size_angstrom=1.0, sigma_angstrom=2.0, weights=weights
    )
    p = gaussian_map_projections(
        centers,
        torch.eye(3, dtype=torch.float64)[None],
        image_size=48,
        pixel_size_angstrom=1.0,
        sigma_angstrom=2.0,
        weights=weights,
    )
    torch.testing.assert_close(p[0], v.sum(0), atol=1e-6, rtol=0)


def test_projection_at_tilt_90_is_sum_over_x(generator):
    # A = Ry(90): image x = -z_map, image y = y_map, viewing along the map's x axis.
    centers = (torch.rand(10, 3, generator=generator, dtype=torch.float64) - 0.5) * 20
    v = gaussian_map(centers, shape=(40, 40, 40), pixel_size_angstrom=1.0, sigma_angstrom=2.0)
    a = euler_to_matrix(torch.tensor([[0.0, 90.0, 0.0]], dtype=torch.float64))
    p = gaussian_map_projections(
        centers, a, image_size=40, pixel_size_angstrom=1.0, sigma_angstrom=2.0
    )
    expected = v.sum(2).T.flip(-1)  # [y, -z] → image[y, x] with x = -z
    expected = torch.roll(
        expected, shifts=1, dims=-1
    )  # -z index: x index i ↔ z index (N - i) mod N
    torch.testing.assert_close(p[0], expected, atol=1e-6, rtol=0)
