"""Unit tests for cryoglass.geometry.rotations: known values, shapes, dtypes, errors."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.geometry import (
    average_rotations,
    euler_to_matrix,
    euler_to_quaternion,
    geodesic_distance_deg,
    matrix_to_quaternion,
    matrix_to_rotvec,
    matrix_to_sixd,
    quaternion_multiply,
    quaternion_to_euler,
    quaternion_to_matrix,
    random_rotations,
    rotation_about_axis,
    rotvec_to_matrix,
    sixd_to_matrix,
)

F64 = torch.float64


def _rz_active(deg: float) -> torch.Tensor:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=F64)


def test_rotation_about_axis_is_active_right_handed() -> None:
    R = rotation_about_axis(torch.tensor([0.0, 0.0, 2.0], dtype=F64), 30.0)
    torch.testing.assert_close(R, _rz_active(30.0))
    # x -> y under +90 about z; y -> z under +90 about x
    Rx = rotation_about_axis(torch.tensor([1.0, 0.0, 0.0], dtype=F64), 90.0)
    torch.testing.assert_close(
        Rx @ torch.tensor([0.0, 1.0, 0.0], dtype=F64), torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    )


def test_relion_rz_is_passive() -> None:
    A = euler_to_matrix(torch.tensor([25.0, 0.0, 0.0], dtype=F64))
    torch.testing.assert_close(
        A, rotation_about_axis(torch.tensor([0.0, 0.0, 1.0], dtype=F64), -25.0)
    )


def test_quaternion_known_values() -> None:
    # 90 degrees about z: q = (cos 45, 0, 0, sin 45)
    q = matrix_to_quaternion(_rz_active(90.0))
    h = math.sqrt(0.5)
    torch.testing.assert_close(q, torch.tensor([h, 0.0, 0.0, h], dtype=F64))
    # Syllabus question: rotate (1,0,0) 180 degrees about z with q p q^-1.
    q180 = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=F64)
    p = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=F64)
    conj = q180 * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=F64)
    rotated = quaternion_multiply(quaternion_multiply(q180, p), conj)
    torch.testing.assert_close(rotated, torch.tensor([0.0, -1.0, 0.0, 0.0], dtype=F64))


def test_quaternion_canonical_sign_and_180_degrees() -> None:
    R = rotation_about_axis(
        torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], dtype=F64),
        torch.tensor([180.0, 350.0], dtype=F64),
    )
    q = matrix_to_quaternion(R)
    assert (q[:, 0] >= 0).all()
    torch.testing.assert_close(quaternion_to_matrix(q), R)
    n = torch.tensor([1.0, 2.0, 3.0], dtype=F64) / math.sqrt(14)
    assert torch.allclose(q[0, 1:].abs(), n.abs(), atol=1e-12)


def test_quaternion_multiply_matches_matrix_product(generator: torch.Generator) -> None:
    R1, R2 = random_rotations(2, generator=generator, dtype=F64)
    q = quaternion_multiply(matrix_to_quaternion(R1), matrix_to_quaternion(R2))
    torch.testing.assert_close(quaternion_to_matrix(q), R1 @ R2)


def test_rotvec_known_values_and_units() -> None:
    v = torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64)  # radians
    torch.testing.assert_close(rotvec_to_matrix(v), _rz_active(90.0))
    torch.testing.assert_close(matrix_to_rotvec(_rz_active(90.0)), v)
    torch.testing.assert_close(rotvec_to_matrix(torch.zeros(3, dtype=F64)), torch.eye(3, dtype=F64))
    tiny = torch.tensor([1e-9, -2e-9, 3e-9], dtype=F64)
    torch.testing.assert_close(
        matrix_to_rotvec(rotvec_to_matrix(tiny)), tiny, rtol=1e-6, atol=1e-15
    )


def test_sixd_is_first_two_columns(generator: torch.Generator) -> None:
    R = random_rotations(3, generator=generator, dtype=F64)
    d = matrix_to_sixd(R)
    torch.testing.assert_close(d[:, :3], R[:, :, 0])
    torch.testing.assert_close(d[:, 3:], R[:, :, 1])
    # Gram-Schmidt recovers R from a scaled, skewed pair of columns.
    skewed = torch.cat([2.5 * d[:, :3], d[:, 3:] + 0.3 * d[:, :3]], dim=-1)
    torch.testing.assert_close(sixd_to_matrix(skewed), R)


def test_euler_quaternion_round_trip() -> None:
    e = torch.tensor([[30.0, 40.0, 50.0], [-120.0, 100.0, 10.0]], dtype=F64)
    torch.testing.assert_close(quaternion_to_euler(euler_to_quaternion(e)), e)


def test_geodesic_distance_near_0_and_180() -> None:
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=F64)
    angles = torch.tensor([0.0, 1e-6, 37.0, 179.999999, 180.0], dtype=F64)
    R = rotation_about_axis(axis, angles)
    d = geodesic_distance_deg(torch.eye(3, dtype=F64), R)
    torch.testing.assert_close(d, angles, atol=1e-9, rtol=0)
    # float32: acos of the trace would give ~0.03 deg at 1e-3 deg; atan2 stays close.
    d32 = geodesic_distance_deg(torch.eye(3), rotation_about_axis(axis.float(), 1e-3))
    assert abs(float(d32) - 1e-3) < 1e-5


def test_average_rotations_matches_chordal_svd_mean(generator: torch.Generator) -> None:
    center = random_rotations(1, generator=generator, dtype=F64)[0]
    noise = rotvec_to_matrix(0.3 * torch.randn(20, 3, generator=generator, dtype=F64))
    R = center @ noise
    w = torch.rand(20, generator=generator, dtype=F64)
    mean = average_rotations(R, weights=w)
    # Chordal L2 mean = projection of the weighted arithmetic mean onto SO(3) (SVD).
    M = (w[:, None, None] * R).sum(0)
    U, _, Vh = torch.linalg.svd(M)
    D = torch.diag(torch.tensor([1.0, 1.0, torch.linalg.det(U @ Vh)], dtype=F64))
    torch.testing.assert_close(mean, U @ D @ Vh)


def test_average_rotations_batched_and_identical() -> None:
    R = rotation_about_axis(torch.tensor([1.0, 1.0, 0.0], dtype=F64), 120.0)
    batch = R.expand(2, 5, 3, 3)
    torch.testing.assert_close(average_rotations(batch), R.expand(2, 3, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_follow_input(dtype: torch.dtype, generator: torch.Generator) -> None:
    R = random_rotations(4, generator=generator, dtype=dtype)
    assert R.dtype == dtype
    for out in (
        matrix_to_quaternion(R),
        matrix_to_rotvec(R),
        matrix_to_sixd(R),
        geodesic_distance_deg(R, R),
        average_rotations(R),
    ):
        assert out.dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_is_kept() -> None:
    R = random_rotations(4, device="cuda")
    assert matrix_to_quaternion(R).device.type == "cuda"
    assert average_rotations(R).device.type == "cuda"


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="quaternion must have shape"):
        quaternion_to_matrix(torch.zeros(3))
    with pytest.raises(ValueError, match="matrix must have shape"):
        matrix_to_quaternion(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="weights must have shape"):
        average_rotations(torch.eye(3).expand(4, 3, 3), weights=torch.ones(3))
