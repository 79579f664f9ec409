r"""Point-group symmetry for reconstruction: insert every particle at all equivalent poses.

A map with point-group symmetry ``{L_g}`` satisfies ``V(L_g r) = V(r)``, so the image taken
at pose ``A`` is also the projection at every pose ``A·L_g`` (see
:func:`cryoglass.geometry.expand_poses`).  Inserting each particle's transform at all ``G``
poses fills ``G`` times more of Fourier space and averages the symmetry copies, exactly as
RELION's ``BackProjector::symmetrise`` (which sums data and weights over the group after the
insertion).
"""

from __future__ import annotations

import torch

from cryoglass.geometry.symmetry import symmetry_matrices

__all__ = ["expand_rotations"]


def expand_rotations(rotations: torch.Tensor, group: str) -> torch.Tensor:
    """All symmetry-equivalent rotation matrices ``A·L_g`` of each pose.

    Parameters
    ----------
    rotations : Tensor, shape (..., 3, 3)
        RELION matrices ``A``.
    group : str
        RELION point group: ``C<n>``, ``D<n>``, ``T``, ``O``, ``I`` (see
        :func:`cryoglass.geometry.symmetry_matrices`).

    Returns
    -------
    Tensor, shape (..., G, 3, 3)
        ``A @ L_g`` with the identity first (entry 0 is the input pose), the matrix form of
        :func:`cryoglass.geometry.expand_poses`.

    Examples
    --------
    >>> expand_rotations(torch.eye(3)[None], "D2").shape
    torch.Size([1, 4, 3, 3])
    """
    if rotations.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must have shape (..., 3, 3), got {tuple(rotations.shape)}")
    ops = symmetry_matrices(group, dtype=rotations.dtype, device=rotations.device)
    return rotations[..., None, :, :] @ ops
