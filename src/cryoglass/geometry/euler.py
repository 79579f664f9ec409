"""RELION's Euler angles: the only place in cryoglass that knows them.

Convention (RELION, Heymann et al. 2005): three angles (rot, tilt, psi) in degrees, rotations
about Z, then the new Y, then the new Z.  The matrix

.. math::

    A = R_z(\\psi)\\, R_y(\\theta)\\, R_z(\\varphi), \\qquad
    R_z(a) = \\begin{pmatrix} \\cos a & \\sin a & 0 \\\\ -\\sin a & \\cos a & 0 \\\\ 0 & 0 & 1
    \\end{pmatrix},\\quad
    R_y(a) = \\begin{pmatrix} \\cos a & 0 & -\\sin a \\\\ 0 & 1 & 0 \\\\ \\sin a & 0 & \\cos a
    \\end{pmatrix}

with :math:`\\varphi` = rot, :math:`\\theta` = tilt, :math:`\\psi` = psi, is RELION's
``Euler_angles2matrix``.  ``A`` takes a vector in the map's frame to the particle (image) frame:
the projection of a map ``V`` at pose ``A`` is

.. math:: P(x, y) = \\int V\\!\\left(A^{\\mathsf T} (x, y, z)^{\\mathsf T}\\right) dz,

and, by the Fourier-slice theorem, the 2D transform of ``P`` at frequency ``(k_x, k_y)`` is the
3D transform of ``V`` at ``A^T (k_x, k_y, 0)``.

Vectors are ordered (x, y, z); arrays are indexed [z, y, x] (see docs/conventions.md).

References
----------
Heymann, Chagoyen & Belnap (2005) Common conventions for interchange and archiving of
three-dimensional electron microscopy information in structural biology.
J. Struct. Biol. 151:196-207. https://doi.org/10.1016/j.jsb.2005.06.001
"""

from __future__ import annotations

import torch

__all__ = ["euler_to_matrix", "matrix_to_euler"]


def euler_to_matrix(euler_deg: torch.Tensor) -> torch.Tensor:
    """RELION Euler angles (rot, tilt, psi) in degrees → rotation matrices ``A``.

    Parameters
    ----------
    euler_deg : Tensor, shape (..., 3)
        (rot, tilt, psi) in degrees.

    Returns
    -------
    Tensor, shape (..., 3, 3)
        ``A = Rz(psi) @ Ry(tilt) @ Rz(rot)`` exactly as RELION's ``Euler_angles2matrix``.

    Examples
    --------
    >>> import torch
    >>> A = euler_to_matrix(torch.tensor([90.0, 0.0, 0.0], dtype=torch.float64))
    >>> (A.round(decimals=6)[0] + 0.0).tolist()
    [0.0, 1.0, 0.0]
    """
    euler_deg = torch.as_tensor(euler_deg)
    if not euler_deg.is_floating_point():
        euler_deg = euler_deg.to(torch.get_default_dtype())
    if euler_deg.shape[-1] != 3:
        raise ValueError(f"euler_deg must have shape (..., 3), got {tuple(euler_deg.shape)}")
    rot, tilt, psi = torch.deg2rad(euler_deg).unbind(-1)
    ca, sa = torch.cos(rot), torch.sin(rot)
    cb, sb = torch.cos(tilt), torch.sin(tilt)
    cg, sg = torch.cos(psi), torch.sin(psi)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    rows = [
        torch.stack([cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb], dim=-1),
        torch.stack([-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb], dim=-1),
        torch.stack([sc, ss, cb], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def matrix_to_euler(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices → RELION Euler angles (rot, tilt, psi) in degrees.

    Follows RELION's ``Euler_matrix2angles``: tilt in [0, 180]; rot and psi in (-180, 180].
    At the poles (tilt = 0 or 180) only rot ± psi is defined; rot is set to 0.

    Parameters
    ----------
    matrix : Tensor, shape (..., 3, 3)

    Returns
    -------
    Tensor, shape (..., 3)
        (rot, tilt, psi) in degrees; ``euler_to_matrix`` of the result equals ``matrix``.
    """
    matrix = torch.as_tensor(matrix)
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {tuple(matrix.shape)}")
    a = matrix
    abs_sb = torch.sqrt(a[..., 0, 2] ** 2 + a[..., 1, 2] ** 2)
    eps = 16 * torch.finfo(a.dtype).eps
    regular = abs_sb > eps
    psi = torch.atan2(a[..., 1, 2], -a[..., 0, 2])
    rot = torch.atan2(a[..., 2, 1], a[..., 2, 0])
    tilt = torch.atan2(abs_sb, a[..., 2, 2])
    # Gimbal lock: tilt = 0 (A22 > 0) or tilt = 180 (A22 < 0); put everything in psi.
    up = a[..., 2, 2] > 0
    psi_pole = torch.where(
        up, torch.atan2(-a[..., 1, 0], a[..., 0, 0]), torch.atan2(a[..., 1, 0], -a[..., 0, 0])
    )
    tilt_pole = torch.where(up, torch.zeros_like(tilt), torch.full_like(tilt, torch.pi))
    rot = torch.where(regular, rot, torch.zeros_like(rot))
    tilt = torch.where(regular, tilt, tilt_pole)
    psi = torch.where(regular, psi, psi_pole)
    return torch.rad2deg(torch.stack([rot, tilt, psi], dim=-1))
