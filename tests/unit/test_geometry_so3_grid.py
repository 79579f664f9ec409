"""Unit tests for cryoglass.geometry.so3_grid: HEALPix counts, geometry, RELION's grid."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.geometry import (
    angular_step_for_order,
    euler_to_matrix,
    geodesic_distance_deg,
    healpix_directions,
    healpix_pix2ang_nest,
    order_for_angular_step,
    so3_grid,
)


def _unit_vectors(directions_deg: torch.Tensor) -> torch.Tensor:
    rot, tilt = torch.deg2rad(directions_deg).unbind(-1)
    return torch.stack(
        [torch.sin(tilt) * torch.cos(rot), torch.sin(tilt) * torch.sin(rot), torch.cos(tilt)], -1
    )


def test_angular_steps() -> None:
    assert [angular_step_for_order(k) for k in range(4)] == [60.0, 30.0, 15.0, 7.5]
    assert order_for_angular_step(7.5) == 3
    assert order_for_angular_step(1.8) == 6  # 0.9375 <= 1.8 < 1.875
    with pytest.raises(ValueError, match="HEALPix order"):
        angular_step_for_order(-1)


def test_order0_centres_are_the_twelve_base_pixels() -> None:
    d = healpix_directions(0, dtype=torch.float64)
    z = torch.cos(torch.deg2rad(d[:, 1]))
    torch.testing.assert_close(
        z, torch.tensor([2 / 3] * 4 + [0.0] * 4 + [-2 / 3] * 4, dtype=torch.float64)
    )
    torch.testing.assert_close(
        d[:4, 0], torch.tensor([45.0, 135.0, 225.0, 315.0], dtype=torch.float64)
    )


@pytest.mark.parametrize("order", [1, 2, 3])
def test_healpix_count_uniqueness_and_gap(order: int) -> None:
    nside = 2**order
    d = healpix_directions(order, dtype=torch.float64)
    assert d.shape == (12 * nside**2, 2)
    v = _unit_vectors(d)
    angle = torch.rad2deg(torch.acos((v @ v.T).clamp(-1, 1)))
    angle.fill_diagonal_(360.0)
    nearest = angle.amin(dim=1)
    step = angular_step_for_order(order)
    assert nearest.min() > 0.75 * step  # all distinct and not clumped
    assert nearest.max() < 1.05 * step  # no holes larger than the step
    # Equal-area sampling: low moments of the uniform sphere (mean 0, <z^2> = 1/3).
    assert v.mean(0).abs().max() < 1e-12
    assert (
        abs(float((v[:, 2] ** 2).mean()) - 1 / 3) < 0.05 / nside**2
    )  # error of the equal-area rule falls as 1/Nside^2


def test_healpix_rings() -> None:
    order = 2
    nside = 2**order
    theta, _ = healpix_pix2ang_nest(order, torch.arange(12 * nside**2))
    z = torch.cos(theta)
    rings, counts = torch.unique(torch.round(z * 1e9), return_counts=True)
    assert len(rings) == 4 * nside - 1
    expected = [4 * r for r in range(1, nside)] + [4 * nside] * (2 * nside + 1)
    expected += [4 * r for r in range(nside - 1, 0, -1)]
    assert counts.tolist() == expected


def test_healpix_bad_pixels() -> None:
    with pytest.raises(ValueError, match="pixels must lie"):
        healpix_pix2ang_nest(0, torch.tensor([12]))


def test_so3_grid_layout_and_coverage() -> None:
    grid = so3_grid(1, dtype=torch.float64)
    assert grid.shape == (48 * 12, 3)
    torch.testing.assert_close(grid[:12, 2], torch.arange(12, dtype=torch.float64) * 30.0)
    torch.testing.assert_close(
        grid[:12, :2], healpix_directions(1, dtype=torch.float64)[:1].expand(12, 2)
    )
    # Every rotation is within about one step of a grid point.
    gen = torch.Generator().manual_seed(0)
    from cryoglass.geometry import random_rotations

    R = random_rotations(200, generator=gen, dtype=torch.float64)
    d = geodesic_distance_deg(R[:, None], euler_to_matrix(grid)[None]).amin(dim=1)
    assert d.max() < angular_step_for_order(1)
    assert grid.shape[0] == pytest.approx(8 * math.pi**2 / math.radians(30.0) ** 3, rel=0.3)
