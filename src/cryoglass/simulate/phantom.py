"""Sum-of-Gaussians maps and their exact projections.

A map made of isotropic 3D Gaussians has projections that are sums of 2D Gaussians, known in
closed form at any pose.  That makes it the standard test object for projectors (the error of
an interpolating projector is measured against these exact images) and a quick, readable
phantom for lessons and the demo.  (Electrostatic potentials from atomic scattering factors are
in the forward-model module.)

For one Gaussian of weight :math:`w` and width :math:`\\sigma` at :math:`\\mathbf r_a`,

.. math::

    V(\\mathbf r) = w\\, \\exp\\!\\left(-\\frac{|\\mathbf r - \\mathbf r_a|^2}{2\\sigma^2}\\right),
    \\qquad
    P(x, y) = \\int V(A^{\\mathsf T}\\mathbf u)\\, dz
            = w \\sqrt{2\\pi}\\,\\sigma\\,
              \\exp\\!\\left(-\\frac{|\\mathbf u_{xy} - (A\\mathbf r_a)_{xy}|^2}{2\\sigma^2}\\right)

with :math:`\\mathbf u = (x, y, z)` and ``A`` RELION's Euler matrix; the rotated Gaussian stays
isotropic, so only its centre moves.  Lengths here are in pixels for the integral (a projection
is a sum over voxels along z, as in RELION), Å at the interface.
"""

from __future__ import annotations

import math

import torch

from cryoglass.fourier.grids import centered_indices

__all__ = ["gaussian_map", "gaussian_map_projections"]


def _gaussian_1d(centers_px: torch.Tensor, n: int, sigma_px: float) -> torch.Tensor:
    """exp(-(i - c)^2 / 2σ²) on the centred axis; shape (M, n)."""
    axis = centered_indices(n, device=centers_px.device, dtype=centers_px.dtype)
    return torch.exp(-((axis - centers_px[:, None]) ** 2) / (2 * sigma_px**2))


def gaussian_map(
    centers_angstrom: torch.Tensor,
    *,
    shape: tuple[int, int, int],
    pixel_size_angstrom: float,
    sigma_angstrom: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sum of isotropic Gaussians sampled on a grid.

    Parameters
    ----------
    centers_angstrom : Tensor, shape (M, 3)
        Centres (x, y, z) in Å relative to the map origin (voxel N//2).
    shape : (d, h, w)
        Output shape.
    pixel_size_angstrom : float
        Voxel size [Å].
    sigma_angstrom : float
        Standard deviation of every Gaussian [Å].
    weights : Tensor, shape (M,), optional
        Peak value of each Gaussian (default 1).

    Returns
    -------
    Tensor, shape (d, h, w)
        ``V[z, y, x] = Σ_a w_a exp(-|r - r_a|² / 2σ²)``, computed separably
        (Σ_a w_a g_z g_y g_x as one matrix product).
    """
    centers_px = centers_angstrom / pixel_size_angstrom
    sigma_px = sigma_angstrom / pixel_size_angstrom
    if weights is None:
        weights = torch.ones(centers_px.shape[0], dtype=centers_px.dtype, device=centers_px.device)
    d, h, w = shape
    gx = _gaussian_1d(centers_px[:, 0], w, sigma_px)
    gy = _gaussian_1d(centers_px[:, 1], h, sigma_px)
    gz = _gaussian_1d(centers_px[:, 2], d, sigma_px) * weights[:, None]
    zy = (gz[:, :, None] * gy[:, None, :]).reshape(-1, d * h)  # (M, d*h)
    return (zy.T @ gx).reshape(d, h, w)


def gaussian_map_projections(
    centers_angstrom: torch.Tensor,
    rotation_matrices: torch.Tensor,
    *,
    image_size: int,
    pixel_size_angstrom: float,
    sigma_angstrom: float,
    weights: torch.Tensor | None = None,
    shift_angstrom: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact projections of :func:`gaussian_map` at the given poses.

    Parameters
    ----------
    centers_angstrom : Tensor, shape (M, 3)
    rotation_matrices : Tensor, shape (B, 3, 3)
        RELION Euler matrices ``A`` (see :mod:`cryoglass.geometry.euler`).
    image_size : int
    pixel_size_angstrom, sigma_angstrom : float
    weights : Tensor, shape (M,), optional
    shift_angstrom : Tensor, shape (B, 2), optional
        RELION origins (x, y) [Å]: the image is the centred projection translated by −origin.

    Returns
    -------
    Tensor, shape (B, image_size, image_size)
        Line integrals along z in voxel units (sum over voxels), as RELION's projector.
    """
    sigma_px = sigma_angstrom / pixel_size_angstrom
    if weights is None:
        weights = torch.ones(
            centers_angstrom.shape[0], dtype=centers_angstrom.dtype, device=centers_angstrom.device
        )
    rotated = torch.einsum("bij,mj->bmi", rotation_matrices, centers_angstrom)[..., :2]
    if shift_angstrom is not None:
        rotated = rotated - shift_angstrom[:, None, :]
    rotated_px = rotated / pixel_size_angstrom  # (B, M, 2)
    axis = centered_indices(image_size, device=rotated.device, dtype=rotated.dtype)
    gx = torch.exp(-((axis - rotated_px[..., 0:1]) ** 2) / (2 * sigma_px**2))  # (B, M, w)
    gy = torch.exp(-((axis - rotated_px[..., 1:2]) ** 2) / (2 * sigma_px**2))  # (B, M, h)
    gy = gy * (weights * math.sqrt(2 * math.pi) * sigma_px)[None, :, None]
    return torch.einsum("bmy,bmx->byx", gy, gx)
