"""Properties of rotations, groups and random sampling (round trips, SO(3), closure, Haar)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoglass.geometry import (
    euler_to_matrix,
    euler_to_quaternion,
    geodesic_distance_deg,
    group_order,
    matrix_to_euler,
    matrix_to_quaternion,
    matrix_to_rotvec,
    matrix_to_sixd,
    quaternion_to_euler,
    quaternion_to_matrix,
    random_rotations,
    rotvec_to_matrix,
    sixd_to_matrix,
    symmetry_matrices,
)

F64 = torch.float64
SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


def _rotations(seed: int, n: int = 64, dtype: torch.dtype = F64) -> torch.Tensor:
    return random_rotations(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _near_180(seed: int) -> torch.Tensor:
    """Rotations by 180 - tiny and exactly 180 degrees about random axes (hard cases)."""
    gen = torch.Generator().manual_seed(seed)
    axes = torch.nn.functional.normalize(torch.randn(8, 3, generator=gen, dtype=F64), dim=-1)
    angles = torch.tensor([math.pi, math.pi - 1e-7, 1e-7, 0.0] * 2, dtype=F64)
    return rotvec_to_matrix(axes * angles[:, None])


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_matrices_are_proper_rotations(seed: int) -> None:
    R = torch.cat([_rotations(seed), _near_180(seed)])
    eye = torch.eye(3, dtype=F64).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(len(R), dtype=F64))


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_round_trips(seed: int) -> None:
    R = torch.cat([_rotations(seed), _near_180(seed)])
    q = matrix_to_quaternion(R)
    assert (q[:, 0] >= 0).all()
    torch.testing.assert_close(quaternion_to_matrix(q), R)
    torch.testing.assert_close(rotvec_to_matrix(matrix_to_rotvec(R)), R)
    torch.testing.assert_close(sixd_to_matrix(matrix_to_sixd(R)), R)
    torch.testing.assert_close(euler_to_matrix(matrix_to_euler(R)), R)
    torch.testing.assert_close(quaternion_to_matrix(euler_to_quaternion(matrix_to_euler(R))), R)
    torch.testing.assert_close(euler_to_matrix(quaternion_to_euler(q)), R)
    # rotvec angle lies in [0, pi]
    assert (torch.linalg.vector_norm(matrix_to_rotvec(R), dim=-1) <= math.pi + 1e-12).all()


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_float32_round_trips(seed: int) -> None:
    R = _rotations(seed, dtype=torch.float32)
    tol = {"atol": 2e-5, "rtol": 0}
    torch.testing.assert_close(quaternion_to_matrix(matrix_to_quaternion(R)), R, **tol)
    torch.testing.assert_close(rotvec_to_matrix(matrix_to_rotvec(R)), R, **tol)


@pytest.mark.parametrize(
    "group", ["C1", "C2", "C7", "D1", "D2", "D5", "T", "O", "I1", "I2", "I3", "I4"]
)
def test_groups_are_closed(group: str) -> None:
    G = symmetry_matrices(group, dtype=F64)
    assert len(G) == group_order(group)
    products = (G[:, None] @ G[None, :]).reshape(-1, 1, 3, 3)
    nearest = (products - G[None]).abs().amax(dim=(-1, -2)).amin(dim=-1)
    assert nearest.max() < 1e-12
    inverses = G.transpose(-1, -2)[:, None]
    assert (inverses - G[None]).abs().amax(dim=(-1, -2)).amin(dim=-1).max() < 1e-12
    # distinct elements
    pairwise = (G[:, None] - G[None]).abs().amax(dim=(-1, -2)) + 10 * torch.eye(len(G))
    assert pairwise.min() > 1e-3


def test_random_rotations_are_haar_distributed() -> None:
    n = 20000
    R = random_rotations(n, generator=torch.Generator().manual_seed(1), dtype=F64)
    # E[R] = 0 for the Haar measure; standard error of each entry is sqrt(1/3 / n).
    assert R.mean(0).abs().max() < 5 * math.sqrt(1 / 3 / n)
    # Rotation angle density (1 - cos t)/pi on [0, pi]: compare the CDF (t - sin t)/pi (KS).
    angle = torch.sort(torch.deg2rad(geodesic_distance_deg(torch.eye(3, dtype=F64), R))).values
    cdf = (angle - torch.sin(angle)) / math.pi
    empirical = torch.arange(1, n + 1, dtype=F64) / n
    assert (cdf - empirical).abs().max() < 1.63 / math.sqrt(n)  # KS at the 1 % level
    # A non-uniform sampler (uniform Euler angles) fails the same test.
    gen = torch.Generator().manual_seed(2)
    euler = torch.rand(n, 3, generator=gen, dtype=F64) * torch.tensor([360.0, 180.0, 360.0])
    bad = torch.sort(
        torch.deg2rad(geodesic_distance_deg(torch.eye(3, dtype=F64), euler_to_matrix(euler)))
    ).values
    assert ((bad - torch.sin(bad)) / math.pi - empirical).abs().max() > 1.63 / math.sqrt(n)


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_geodesic_distance_is_a_metric(seed: int) -> None:
    R = _rotations(seed, n=96)
    a, b, c = R[:32], R[32:64], R[64:]
    dab, dba = geodesic_distance_deg(a, b), geodesic_distance_deg(b, a)
    torch.testing.assert_close(dab, dba)
    assert (dab >= 0).all() and (dab <= 180).all()
    assert (geodesic_distance_deg(a, c) <= dab + geodesic_distance_deg(b, c) + 1e-9).all()
    # Invariant under left and right multiplication by the same rotation.
    g = R[:1]
    torch.testing.assert_close(geodesic_distance_deg(g @ a, g @ b), dab)
    torch.testing.assert_close(geodesic_distance_deg(a @ g, b @ g), dab)
    torch.testing.assert_close(
        geodesic_distance_deg(a, a), torch.zeros(32, dtype=F64), atol=1e-6, rtol=0
    )
