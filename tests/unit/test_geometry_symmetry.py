"""Unit tests for cryoglass.geometry.symmetry: orders, axes, expansion, errors."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.geometry import (
    euler_to_matrix,
    expand_poses,
    group_order,
    rotation_about_axis,
    symmetry_matrices,
)

F64 = torch.float64


def _contains(group: torch.Tensor, R: torch.Tensor) -> bool:
    return bool(((group - R).abs().amax(dim=(-1, -2)) < 1e-9).any())


@pytest.mark.parametrize(
    ("group", "order"),
    [("C1", 1), ("C5", 5), ("D1", 2), ("D6", 12), ("T", 12), ("O", 24), ("I", 60), ("i3", 60)],
)
def test_orders_identity_first(group: str, order: int) -> None:
    G = symmetry_matrices(group, dtype=F64)
    assert G.shape == (order, 3, 3)
    assert group_order(group) == order
    torch.testing.assert_close(G[0], torch.eye(3, dtype=F64))


def test_axes_in_relion_orientation() -> None:
    z, x, y = (torch.tensor(v, dtype=F64) for v in ([0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]))
    assert _contains(symmetry_matrices("C7", dtype=F64), rotation_about_axis(z, 360 / 7))
    assert _contains(symmetry_matrices("D3", dtype=F64), rotation_about_axis(x, 180.0))
    assert not _contains(symmetry_matrices("D3", dtype=F64), rotation_about_axis(y, 180.0))
    assert _contains(symmetry_matrices("O", dtype=F64), rotation_about_axis(y, 90.0))
    phi = (1 + math.sqrt(5)) / 2
    i2 = symmetry_matrices("I", dtype=F64)
    assert _contains(i2, rotation_about_axis(torch.tensor([1.0, 0.0, phi], dtype=F64), 72.0))
    assert not _contains(i2, rotation_about_axis(torch.tensor([0.0, 1.0, phi], dtype=F64), 72.0))
    assert _contains(
        symmetry_matrices("I1", dtype=F64),
        rotation_about_axis(torch.tensor([0.0, 1.0, phi], dtype=F64), 72.0),
    )
    assert _contains(symmetry_matrices("I3", dtype=F64), rotation_about_axis(z, 72.0))


def test_expand_poses_right_multiplies() -> None:
    euler = torch.tensor([[30.0, 40.0, 50.0], [-120.0, 100.0, 10.0]], dtype=F64)
    out = expand_poses(euler, "C3")
    assert out.shape == (2, 3, 3)
    # C3 about z: rot advances by 120 degrees, tilt and psi stay (as RELION writes them).
    rot = torch.remainder(out[..., 0] - euler[:, None, 0] + 1.0, 360.0) - 1.0
    torch.testing.assert_close(
        torch.sort(rot, dim=-1).values, torch.tensor([0.0, 120.0, 240.0], dtype=F64).expand(2, 3)
    )
    torch.testing.assert_close(out[..., 1:], euler[:, None, 1:].expand(2, 3, 2))
    # A @ L for each element, in symmetry_matrices order
    L = symmetry_matrices("D2", dtype=F64)
    torch.testing.assert_close(
        euler_to_matrix(expand_poses(euler, "D2")), euler_to_matrix(euler)[:, None] @ L
    )


@pytest.mark.parametrize("bad", ["C0", "Ci", "Cs", "C3v", "I5", "X", "D"])
def test_bad_group_names(bad: str) -> None:
    with pytest.raises(ValueError, match="not supported"):
        symmetry_matrices(bad)
