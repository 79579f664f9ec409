r"""Maps made of isotropic 3D Gaussians and their exact projections (for tests and lessons).

A Gaussian ``a·exp(−|r − c|²/(2σ²))`` projects along z, after rotation by ``A``, to

.. math:: \int a\,e^{-|A^{\mathsf T}u - c|^2/2\sigma^2}\,du_z
          = a\sqrt{2\pi}\,\sigma\; e^{-|(u_x, u_y) - (Ac)_{xy}|^2 / 2\sigma^2},

because ``|Aᵀu − c| = |u − Ac|`` for a rotation: the projection is a 2D Gaussian at the rotated
centre.  For ``σ ≳ 1`` voxel the discrete sum over z equals the integral to machine precision.
"""

from __future__ import annotations

import math

import torch

from cryoglass.fourier.grids import coordinate_grid

__all__ = ["gaussian_blobs_volume", "gaussian_blobs_projection"]


def gaussian_blobs_volume(
    size: int, centers: torch.Tensor, sigmas: torch.Tensor, amplitudes: torch.Tensor
) -> torch.Tensor:
    """Sample ``Σ_j a_j exp(−|r − c_j|²/(2σ_j²))`` on an ``N³`` grid.

    Parameters
    ----------
    size : int
        ``N`` [voxels].
    centers : Tensor, shape (J, 3)
        Centres ``(x, y, z)`` in voxels from the origin at ``N//2``.
    sigmas, amplitudes : Tensor, shape (J,)
        Widths [voxels] and peak values.

    Returns
    -------
    Tensor, shape (N, N, N), dtype of ``centers``, indexed [z, y, x]
    """
    grid = coordinate_grid((size, size, size), device=centers.device, dtype=centers.dtype)
    d2 = ((grid[..., None, :] - centers) ** 2).sum(-1)  # (N, N, N, J)
    return (amplitudes * torch.exp(-d2 / (2 * sigmas**2))).sum(-1)


def gaussian_blobs_projection(
    size: int,
    centers: torch.Tensor,
    sigmas: torch.Tensor,
    amplitudes: torch.Tensor,
    rotations: torch.Tensor,
) -> torch.Tensor:
    """Exact projections ``∫ V(Aᵀ(x, y, z)) dz`` of :func:`gaussian_blobs_volume` maps.

    Parameters
    ----------
    size : int
    centers : Tensor, shape (J, 3)
    sigmas, amplitudes : Tensor, shape (J,)
    rotations : Tensor, shape (B, 3, 3)
        RELION rotation matrices ``A``.

    Returns
    -------
    Tensor, shape (B, N, N)
    """
    grid = coordinate_grid((size, size), device=centers.device, dtype=centers.dtype)  # (y, x, 2)
    # image-frame centres A·c, (B, J, 2)
    rotated = torch.einsum("bij,cj->bci", rotations.to(centers.dtype), centers)[..., :2]
    d2 = ((grid[None, :, :, None, :] - rotated[:, None, None]) ** 2).sum(-1)  # (B, y, x, J)
    weight = amplitudes * sigmas * math.sqrt(2 * math.pi)
    return (weight * torch.exp(-d2 / (2 * sigmas**2))).sum(-1)
