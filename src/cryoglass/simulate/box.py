"""The box of a simulated dataset: the smallest one that holds the particle, and a map fitted
to a given box by zero padding or cropping (the origin voxel N//2 kept at the centre).
"""

from __future__ import annotations

import torch

from cryoglass.fourier.rescale import center_window
from cryoglass.simulate.dataset import particle_diameter_angstrom

__all__ = ["fit_to_box", "particle_box_size"]


def particle_box_size(volume: torch.Tensor, *, pixel_size_angstrom: float) -> int:
    """The smallest box [px] that holds the particle of a map.

    Parameters
    ----------
    volume : Tensor (N, N, N)
        Map, origin at index N//2.
    pixel_size_angstrom : float
        Voxel size [Å].

    Returns
    -------
    int
        ``⌈d / pixel_size_angstrom⌉`` with ``d`` the particle diameter [Å] of
        :func:`cryoglass.simulate.particle_diameter_angstrom`.

    Raises
    ------
    ValueError
        The map has no positive density.
    """
    diameter = particle_diameter_angstrom(volume, pixel_size_angstrom=pixel_size_angstrom)
    return int(torch.tensor(diameter / pixel_size_angstrom).ceil())


def fit_to_box(volume: torch.Tensor, box: int) -> torch.Tensor:
    """A cubic map zero-padded or cropped to ``box³`` voxels, its origin kept at the centre.

    Parameters
    ----------
    volume : Tensor (N, N, N)
        Map, origin at index N//2 (not modified).
    box : int
        New edge length [voxels], ≥ 1.

    Returns
    -------
    Tensor (box, box, box)
        Voxel ``N//2`` of ``volume`` at index ``box//2`` on every axis; ``volume`` itself when
        ``box == N``, else a new tensor of its dtype and device.

    Examples
    --------
    >>> v = torch.zeros(4, 4, 4); v[2, 2, 2] = 1.0
    >>> padded = fit_to_box(v, 7)
    >>> padded.shape, float(padded[3, 3, 3])
    (torch.Size([7, 7, 7]), 1.0)
    >>> float(fit_to_box(padded, 4)[2, 2, 2])
    1.0
    """
    return center_window(volume, (box, box, box))
