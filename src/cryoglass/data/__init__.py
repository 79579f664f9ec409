"""Small bundled data files (CC0/BSD; see README.md beside this file).

Light to import: torch and the structure reader are imported inside :func:`model_map`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["model_map", "trpv1_model_path"]

#: Atomic numbers used as Gaussian weights by :func:`model_map` (others count as carbon).
_ATOMIC_NUMBER = {"H": 1, "C": 6, "N": 7, "O": 8, "P": 15, "S": 16}


def trpv1_model_path() -> Path:
    """Path of the bundled TRPV1 model (PDB 3J5P, 15,820 heavy atoms, mmCIF, gzip)."""
    return Path(str(files("cryoglass.data").joinpath("trpv1_3j5p.cif.gz")))


def model_map(
    *, box: int, pixel_size_angstrom: float, sigma_angstrom: float, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The bundled TRPV1 model as a sum-of-Gaussians map centred on its centre of mass.

    A quick, smooth stand-in for the potential (one Gaussian per atom, weighted by its atomic
    number), used by the demos, the web app's explorers, tests and lessons.

    Parameters
    ----------
    box : int
        Edge of the cubic map [pixels].
    pixel_size_angstrom : float
        Voxel size [Å].
    sigma_angstrom : float
        Standard deviation of every atom's Gaussian [Å].
    device : str
        Torch device of the outputs.

    Returns
    -------
    volume : Tensor, float32, (box, box, box)
        The map, origin at voxel ``box // 2``, indexed [z, y, x].
    coordinates : Tensor, float32, (M, 3)
        Atom coordinates centred on the weighted centre of mass [Å].
    weights : Tensor, float32, (M,)
        Atomic numbers (hydrogens and waters left out; unknown elements count as carbon).

    Examples
    --------
    >>> volume, xyz, weights = model_map(box=32, pixel_size_angstrom=6.0, sigma_angstrom=6.0)
    >>> tuple(volume.shape), xyz.shape[1], weights.shape == xyz.shape[:1]
    ((32, 32, 32), 3, True)
    """
    import torch

    from cryoglass.io import read_structure
    from cryoglass.simulate import gaussian_map

    model = read_structure(trpv1_model_path(), hydrogens=False, waters=False)
    weights = torch.tensor([_ATOMIC_NUMBER.get(e, 6) for e in model.elements], dtype=torch.float64)
    coords = model.coordinates_angstrom
    centre = (coords * weights[:, None]).sum(0) / weights.sum()
    coords = (coords - centre).to(device=device, dtype=torch.float32)
    weights = weights.to(device=device, dtype=torch.float32)
    volume = gaussian_map(
        coords,
        shape=(box, box, box),
        pixel_size_angstrom=pixel_size_angstrom,
        sigma_angstrom=sigma_angstrom,
        weights=weights,
    )
    return volume, coords, weights
