"""Rotation representations: matrices, unit quaternions, rotation vectors, 6D; sampling and means.

Every function here works on batched tensors (leading ``...`` dimensions), on CPU or CUDA, in
float32 or float64, and keeps the device and dtype of its input.

Conventions
-----------
* A rotation matrix ``R`` (..., 3, 3) acts on column vectors ordered (x, y, z): ``v' = R v``.
  The RELION matrix ``A`` of :func:`cryoglass.geometry.euler_to_matrix` is such a matrix (it
  takes map coordinates to image coordinates); nothing here depends on what ``R`` means.
* Quaternions are ``(w, x, y, z)`` with the scalar ``w`` first (Hamilton convention,
  ``ij = k``).  The unit quaternion ``q`` stands for the matrix ``R`` with ``R v = q v q*``
  (``v`` as the pure quaternion ``(0, v)``).  ``q`` and ``-q`` give the same ``R``; functions
  that return quaternions pick the canonical sign ``w >= 0``.
* A rotation vector ``rotvec`` (..., 3) is ``angle * axis`` with the angle in **radians**
  (right-hand rule), ``R = exp([rotvec]_x)``.  cryoSPARC stores poses this way; which matrix its
  vector encodes relative to RELION's ``A`` is handled in ``cryoglass.io``.
* Angles at public boundaries are in degrees (``angle_deg``), except ``rotvec``, whose norm is
  radians because that is how the representation is defined and stored.
"""

from __future__ import annotations

import torch

from cryoglass.geometry.euler import euler_to_matrix, matrix_to_euler

__all__ = [
    "average_rotations",
    "euler_to_quaternion",
    "geodesic_distance_deg",
    "matrix_to_quaternion",
    "matrix_to_rotvec",
    "matrix_to_sixd",
    "quaternion_multiply",
    "quaternion_to_euler",
    "quaternion_to_matrix",
    "random_quaternions",
    "random_rotations",
    "rotation_about_axis",
    "rotvec_to_matrix",
    "sixd_to_matrix",
]


def _check_last(x: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if tuple(x.shape[x.ndim - len(shape) :]) != shape or x.ndim < len(shape):
        raise ValueError(
            f"{name} must have shape (..., {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    return x


def _canonical(q: torch.Tensor) -> torch.Tensor:
    """Flip the sign of quaternions with w < 0 (same rotation)."""
    return torch.where(q[..., :1] < 0, -q, q)


# --------------------------------------------------------------------------- quaternions


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(w, x, y, z)`` → rotation matrices.

    Parameters
    ----------
    quaternion : Tensor, shape (..., 4)
        ``(w, x, y, z)``; normalised here, so any non-zero length is accepted.

    Returns
    -------
    Tensor, shape (..., 3, 3)
        ``R`` with ``R v = q v q*``.

    Notes
    -----
    .. math::

        R = \\begin{pmatrix}
        1-2(y^2+z^2) & 2(xy-wz) & 2(xz+wy)\\\\
        2(xy+wz) & 1-2(x^2+z^2) & 2(yz-wx)\\\\
        2(xz-wy) & 2(yz+wx) & 1-2(x^2+y^2)\\end{pmatrix}

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([0.0, 0.0, 0.0, 1.0])  # 180 degrees about z
    >>> quaternion_to_matrix(q).diagonal().tolist()
    [-1.0, -1.0, 1.0]
    """
    q = _check_last(quaternion, (4,), "quaternion")
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ]
    return torch.stack(rows, dim=-2)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices → unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Parameters
    ----------
    matrix : Tensor, shape (..., 3, 3)

    Returns
    -------
    Tensor, shape (..., 4)
        Canonical sign: ``w >= 0`` (at exactly 180 degrees, ``w = 0`` and the sign of the
        vector part is whichever the formula gives).

    Notes
    -----
    Four candidate formulas, each dividing by one of ``4w, 4x, 4y, 4z``; for every matrix the
    one with the largest denominator is used (Shepperd's method), so the result is accurate at
    every angle, including 180 degrees, where ``w -> 0``.

    References
    ----------
    Shepperd (1978) Quaternion from rotation matrix. J. Guid. Control 1:223-224.
    https://doi.org/10.2514/3.55767
    """
    m = _check_last(matrix, (3, 3), "matrix")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * (w^2, x^2, y^2, z^2)
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    # Row k holds 4 * q_k * q; divide by 4 * q_k = 2 * sqrt(four_sq[k]).
    candidates = torch.stack(
        [
            torch.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, four_sq[..., 2], m21 + m12], -1),
            torch.stack([m10 - m01, m02 + m20, m21 + m12, four_sq[..., 3]], -1),
        ],
        dim=-2,
    )
    best = four_sq.argmax(dim=-1)
    chosen = torch.take_along_dim(candidates, best[..., None, None], dim=-2)[..., 0, :]
    denom = 2 * torch.sqrt(torch.take_along_dim(four_sq, best[..., None], dim=-1).clamp_min(0))
    q = chosen / denom
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return _canonical(q)


def quaternion_multiply(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``q1 q2`` of quaternions ``(w, x, y, z)`` (broadcasting).

    Notes
    -----
    :math:`(w_1, \\mathbf v_1)(w_2, \\mathbf v_2) = (w_1 w_2 - \\mathbf v_1\\cdot\\mathbf v_2,\\;
    w_1 \\mathbf v_2 + w_2 \\mathbf v_1 + \\mathbf v_1 \\times \\mathbf v_2)`.  The matrix of
    ``q1 q2`` is ``R(q1) @ R(q2)``.  No normalisation, no sign canonicalisation.
    """
    q1 = _check_last(q1, (4,), "q1")
    q2 = _check_last(q2, (4,), "q2")
    q1, q2 = torch.broadcast_tensors(q1, q2)
    w1, v1 = q1[..., :1], q1[..., 1:]
    w2, v2 = q2[..., :1], q2[..., 1:]
    w = w1 * w2 - (v1 * v2).sum(-1, keepdim=True)
    v = w1 * v2 + w2 * v1 + torch.linalg.cross(v1, v2, dim=-1)
    return torch.cat([w, v], dim=-1)


def euler_to_quaternion(euler_deg: torch.Tensor) -> torch.Tensor:
    """RELION Euler angles (rot, tilt, psi) [deg] → quaternions of their matrix ``A``, ``w >= 0``.

    Parameters
    ----------
    euler_deg : Tensor, shape (..., 3)

    Returns
    -------
    Tensor, shape (..., 4)
        ``matrix_to_quaternion(euler_to_matrix(euler_deg))``.
    """
    return matrix_to_quaternion(euler_to_matrix(euler_deg))


def quaternion_to_euler(quaternion: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(w, x, y, z)`` → RELION Euler angles (rot, tilt, psi) [deg].

    Parameters
    ----------
    quaternion : Tensor, shape (..., 4)

    Returns
    -------
    Tensor, shape (..., 3)
        ``matrix_to_euler(quaternion_to_matrix(quaternion))``.
    """
    return matrix_to_euler(quaternion_to_matrix(quaternion))


# --------------------------------------------------------------------------- rotation vectors


def rotvec_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (axis * angle, **radians**) → rotation matrices.

    Parameters
    ----------
    rotvec : Tensor, shape (..., 3)
        Direction = rotation axis, length = rotation angle in radians (right-hand rule).

    Returns
    -------
    Tensor, shape (..., 3, 3)
        ``R = exp([rotvec]_x)`` (Rodrigues' formula).

    Notes
    -----
    Built through the quaternion ``q = (cos(θ/2), sin(θ/2) n)`` with
    ``sin(θ/2) n = (sin(θ/2)/θ) rotvec``; ``sin(θ/2)/θ = ½ sinc(θ/2π)`` is smooth at θ = 0.
    """
    v = _check_last(rotvec, (3,), "rotvec")
    angle = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    half_sinc = 0.5 * torch.sinc(angle / (2 * torch.pi))
    q = torch.cat([torch.cos(angle / 2), half_sinc * v], dim=-1)
    return quaternion_to_matrix(q)


def matrix_to_rotvec(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices → rotation vectors (axis * angle, **radians**), angle in [0, π].

    Parameters
    ----------
    matrix : Tensor, shape (..., 3, 3)

    Returns
    -------
    Tensor, shape (..., 3)
        ``rotvec`` with ``rotvec_to_matrix(rotvec) == matrix``.  At exactly π both ``±rotvec``
        are valid; one of them is returned.

    Notes
    -----
    From the canonical quaternion ``(w, u)`` (``w >= 0``): θ = 2 atan2(|u|, w) and
    ``rotvec = θ u / |u|``; as ``|u| -> 0`` the factor θ/|u| tends to 2/w, used there.
    """
    q = matrix_to_quaternion(matrix)
    w, u = q[..., :1], q[..., 1:]
    norm_u = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    angle = 2 * torch.atan2(norm_u, w)
    small = norm_u < 1e-6
    safe_norm = torch.where(small, torch.ones_like(norm_u), norm_u)
    # Series of 2 atan(s/w)/s for small s: 2/w * (1 - s^2/(3 w^2)).
    safe_w = torch.where(small, w, torch.ones_like(w))  # w ~ 1 wherever small is True
    factor = torch.where(small, 2 / safe_w * (1 - norm_u**2 / (3 * safe_w**2)), angle / safe_norm)
    return factor * u


# --------------------------------------------------------------------------- 6D


def matrix_to_sixd(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices → 6D representation: the first two **columns**, concatenated.

    Parameters
    ----------
    matrix : Tensor, shape (..., 3, 3)

    Returns
    -------
    Tensor, shape (..., 6)
        ``(R[:, 0], R[:, 1])`` = ``(R00, R10, R20, R01, R11, R21)``.

    Notes
    -----
    Zhou et al. (2019) use the first two columns (some code, e.g. PyTorch3D, uses rows; a
    row-based vector is the 6D vector of ``R^T``).

    References
    ----------
    Zhou, Barnes, Lu, Yang & Li (2019) On the continuity of rotation representations in neural
    networks. CVPR, 5745-5753. https://doi.org/10.1109/CVPR.2019.00589
    """
    m = _check_last(matrix, (3, 3), "matrix")
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def sixd_to_matrix(sixd: torch.Tensor) -> torch.Tensor:
    """6D vectors (two 3-vectors, the first two columns) → rotation matrices by Gram-Schmidt.

    Parameters
    ----------
    sixd : Tensor, shape (..., 6)
        ``(a1, a2)``; need not be orthonormal, only linearly independent.

    Returns
    -------
    Tensor, shape (..., 3, 3)
        Columns ``b1 = a1/|a1|``, ``b2 = normalise(a2 - (b1·a2) b1)``, ``b3 = b1 × b2``.

    References
    ----------
    Zhou et al. (2019), https://doi.org/10.1109/CVPR.2019.00589
    """
    d = _check_last(sixd, (6,), "sixd")
    a1, a2 = d[..., :3], d[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


# --------------------------------------------------------------------------- construction


def rotation_about_axis(axis: torch.Tensor, angle_deg: torch.Tensor | float) -> torch.Tensor:
    """Active rotation by ``angle_deg`` about ``axis`` (right-hand rule).

    Parameters
    ----------
    axis : Tensor, shape (..., 3)
        Rotation axis (x, y, z); normalised here.
    angle_deg : Tensor, shape (...) or float
        Angle in degrees; positive = counter-clockwise looking down the axis towards the origin.
        Broadcasts with ``axis[..., 0]``.

    Returns
    -------
    Tensor, shape (..., 3, 3)

    Notes
    -----
    Rodrigues: :math:`R = I + \\sin\\theta\\,K + (1-\\cos\\theta)K^2`, ``K = [n]_x``.  RELION's
    ``Rz(a)`` inside the Euler matrix is the *passive* rotation, so
    ``euler_to_matrix([a, 0, 0]) == rotation_about_axis([0, 0, 1], -a)``.

    Examples
    --------
    >>> import torch
    >>> R = rotation_about_axis(torch.tensor([0.0, 0.0, 1.0]), 90.0)
    >>> ((R @ torch.tensor([1.0, 0.0, 0.0])).round(decimals=6) + 0.0).tolist()
    [0.0, 1.0, 0.0]
    """
    axis = _check_last(axis, (3,), "axis")
    angle = torch.as_tensor(angle_deg, dtype=axis.dtype, device=axis.device)
    n = torch.nn.functional.normalize(axis, dim=-1)
    rotvec = n * torch.deg2rad(angle)[..., None]
    return rotvec_to_matrix(rotvec)


def random_quaternions(
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` unit quaternions uniform on SO(3) (Haar measure), ``w >= 0``.

    Notes
    -----
    A 4D standard normal vector divided by its length is uniform on the 3-sphere S³, and the
    map S³ → SO(3) is a 2:1 covering that carries the uniform measure to the Haar measure.

    References
    ----------
    Shoemake (1992) Uniform random rotations. Graphics Gems III, 124-132.
    https://doi.org/10.1016/B978-0-08-050755-2.50036-1
    """
    dtype = dtype or torch.get_default_dtype()
    gen_device = generator.device if generator is not None else device
    q = torch.randn(n, 4, generator=generator, dtype=dtype, device=gen_device)
    q = torch.nn.functional.normalize(q, dim=-1).to(device=device)
    return _canonical(q)


def random_rotations(
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` rotation matrices uniform on SO(3), shape (n, 3, 3).

    Parameters
    ----------
    n : int
    generator : torch.Generator, optional
        For reproducibility; its device is used to draw, then the result moves to ``device``.
    dtype, device : optional
        Of the result (default dtype, CPU).

    Notes
    -----
    ``quaternion_to_matrix`` of :func:`random_quaternions`.  The rotation angle θ of a uniform
    rotation has density :math:`(1-\\cos\\theta)/\\pi` on [0, π].

    Examples
    --------
    >>> import torch
    >>> R = random_rotations(5, generator=torch.Generator().manual_seed(0))
    >>> R.shape
    torch.Size([5, 3, 3])
    """
    q = random_quaternions(n, generator=generator, dtype=dtype, device=device)
    return quaternion_to_matrix(q)


# --------------------------------------------------------------------------- metrics and means


def geodesic_distance_deg(matrix1: torch.Tensor, matrix2: torch.Tensor) -> torch.Tensor:
    """Angle [deg] of the rotation taking ``matrix1`` to ``matrix2`` (broadcasting), in [0, 180].

    Parameters
    ----------
    matrix1, matrix2 : Tensor, shape (..., 3, 3)

    Returns
    -------
    Tensor, shape (...)

    Notes
    -----
    With :math:`M = R_1^{\\mathsf T} R_2`, :math:`\\cos\\theta = (\\operatorname{tr} M - 1)/2`
    and :math:`\\sin\\theta = |\\operatorname{vee}(M - M^{\\mathsf T})|/2`;
    ``θ = atan2(sin θ, cos θ)`` stays accurate near 0 and near 180 degrees, where ``arccos``
    of the trace alone loses half the digits.
    """
    m1 = _check_last(matrix1, (3, 3), "matrix1")
    m2 = _check_last(matrix2, (3, 3), "matrix2")
    m = m1.transpose(-1, -2) @ m2
    cos = (m.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    skew = torch.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
    )
    sin = torch.linalg.vector_norm(skew, dim=-1) / 2
    return torch.rad2deg(torch.atan2(sin, cos))


def average_rotations(
    matrices: torch.Tensor, *, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Chordal L2 mean of rotations (weighted), over the second-to-last batch axis.

    Parameters
    ----------
    matrices : Tensor, shape (..., n, 3, 3)
    weights : Tensor, shape (..., n), optional
        Non-negative weights (default: all 1).

    Returns
    -------
    Tensor, shape (..., 3, 3)
        The rotation ``R`` minimising :math:`\\sum_i w_i \\|R - R_i\\|_F^2`.

    Notes
    -----
    With unit quaternions :math:`q_i`, :math:`\\|R - R_i\\|_F^2 = 8(1 - (q\\cdot q_i)^2)`, so the
    minimiser is the eigenvector of largest eigenvalue of
    :math:`M = \\sum_i w_i q_i q_i^{\\mathsf T}` (4×4).  The sign ambiguity ``q`` vs ``-q`` does
    not matter since ``q_i q_i^T`` is sign-free.

    References
    ----------
    Markley, Cheng, Crassidis & Oshman (2007) Averaging quaternions. J. Guid. Control Dyn.
    30:1193-1197. https://doi.org/10.2514/1.28949
    """
    m = _check_last(matrices, (3, 3), "matrices")
    if m.ndim < 3:
        raise ValueError(f"matrices must have shape (..., n, 3, 3), got {tuple(m.shape)}")
    q = matrix_to_quaternion(m)
    if weights is None:
        weights = torch.ones(q.shape[:-1], dtype=q.dtype, device=q.device)
    weights = torch.as_tensor(weights, dtype=q.dtype, device=q.device)
    if weights.shape != q.shape[:-1]:
        raise ValueError(
            f"weights must have shape {tuple(q.shape[:-1])} (matrices without 3, 3), "
            f"got {tuple(weights.shape)}"
        )
    scatter = torch.einsum("...n,...ni,...nj->...ij", weights, q, q)
    _, eigenvectors = torch.linalg.eigh(scatter)
    return quaternion_to_matrix(eigenvectors[..., :, -1])
