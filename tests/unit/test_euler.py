"""RELION Euler angles: the matrix, its inverse, and known cases."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.geometry.euler import euler_to_matrix, matrix_to_euler


def _rz(a_deg: float) -> torch.Tensor:
    a = math.radians(a_deg)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _ry(a_deg: float) -> torch.Tensor:
    a = math.radians(a_deg)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]], dtype=torch.float64)


@pytest.mark.parametrize("angles", [(10.0, 20.0, 30.0), (-170.0, 95.0, 45.0), (0.0, 180.0, 12.0)])
def test_matrix_is_zyz_product(angles):
    rot, tilt, psi = angles
    expected = _rz(psi) @ _ry(tilt) @ _rz(rot)
    got = euler_to_matrix(torch.tensor(angles, dtype=torch.float64))
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_tilt_90_sends_z_to_x():
    # tilt +90 about y (RELION): A·e_z = (-sin 90, 0, cos 90) = -x, the map's z axis maps to -x
    a = euler_to_matrix(torch.tensor([0.0, 90.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        a @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
        torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64),
        atol=1e-12,
        rtol=0,
    )


def test_round_trip_and_orthogonality(generator):
    n = 500
    angles = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    angles = angles * torch.tensor([360.0, 180.0, 360.0], dtype=torch.float64) - torch.tensor(
        [180.0, 0.0, 180.0], dtype=torch.float64
    )
    a = euler_to_matrix(angles)
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    torch.testing.assert_close(a @ a.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(a), torch.ones(n, dtype=torch.float64))
    back = matrix_to_euler(a)
    torch.testing.assert_close(back, angles, atol=1e-9, rtol=0)


def test_gimbal_lock_keeps_the_rotation():
    angles = torch.tensor([[25.0, 0.0, 40.0], [25.0, 180.0, 40.0]], dtype=torch.float64)
    a = euler_to_matrix(angles)
    back = matrix_to_euler(a)
    assert back[:, 0].abs().max() < 1e-12  # rot set to 0 at the poles
    torch.testing.assert_close(euler_to_matrix(back), a, atol=1e-12, rtol=0)


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        euler_to_matrix(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        matrix_to_euler(torch.zeros(4, 3))
