r"""A real-space projector: rotate the map by interpolation, then sum along z.

.. math:: P(x, y) = \sum_z V\!\left(A^{\mathsf T} (x, y, z)^{\mathsf T}\right)

It is slow (``N³`` interpolations per image, against ``~0.8 N²`` for a Fourier slice) but it is
the definition of a projection, so it is the teaching and testing reference for
:func:`cryoglass.projection.project`.
"""

from __future__ import annotations

import torch

from cryoglass.fourier.grids import coordinate_grid
from cryoglass.interpolate.grid import interpolate_grid

__all__ = ["project_real_space"]


def project_real_space(
    volume: torch.Tensor, rotations: torch.Tensor, *, method: str = "linear"
) -> torch.Tensor:
    """Project a map by rotating it in real space and summing along the beam (z).

    Parameters
    ----------
    volume : Tensor, shape (N, N, N), real, indexed [z, y, x]
        Origin at index ``N//2``.
    rotations : Tensor, shape (B, 3, 3)
        RELION rotation matrices ``A``.
    method : {"nearest", "linear", "cubic"}
        Real-space interpolation (:func:`cryoglass.interpolate.interpolate_grid`).

    Returns
    -------
    Tensor, shape (B, N, N)
        ``P(x, y) = Σ_z V(Aᵀ(x, y, z))``; samples outside the box count as zero.
    """
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"volume must be a cubic (N, N, N) map, got shape {tuple(volume.shape)}")
    if rotations.ndim != 3 or rotations.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must have shape (B, 3, 3), got {tuple(rotations.shape)}")
    n = volume.shape[-1]
    image_frame = coordinate_grid((n, n, n), device=volume.device, dtype=volume.dtype)  # (z,y,x,3)
    rotations = rotations.to(device=volume.device, dtype=volume.dtype)
    # map-frame point of image-frame point u is Aᵀu; as row vectors: u @ A
    map_frame = torch.einsum("zyxj,bjk->bzyxk", image_frame, rotations)
    values = interpolate_grid(volume, map_frame, method=method)  # (B, z, y, x)
    return values.sum(dim=1)
