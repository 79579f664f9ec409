r"""Gaussian network model (GNM): isotropic fluctuations from the Kirchhoff (contact) matrix.

Nodes closer than ``r_c`` are joined by springs that penalise changes of the *vector* between
them equally in all directions, so x, y and z decouple and one N × N matrix describes the
fluctuations, the Kirchhoff matrix

.. math:: Γ_{ij} = −γ \ \ (i ≠ j,\ d_{ij} ≤ r_c), \qquad Γ_{ii} = −\sum_{j≠i} Γ_{ij}

(the graph Laplacian of the contact network, times γ).  Its single zero mode is the uniform
translation; ``⟨ΔR_i · ΔR_j⟩ = (3 k_B T / γ) [Γ^{-1}]_{ij}`` (pseudo-inverse).  ProDy's default
cutoff is 10 Å (γ = 1).

References
----------
Bahar, I., Atilgan, A. R. & Erman, B. (1997). Direct evaluation of thermal fluctuations in
proteins using a single-parameter harmonic potential. Fold. Des. 2, 173-181.
https://doi.org/10.1016/S1359-0278(97)00024-2
"""

from __future__ import annotations

import numpy as np

from cryoglass.nma.modes import (
    DENSE_LIMIT,
    NormalModes,
    _has_scipy,
    drop_zero_modes,
    lowest_eigenpairs,
)
from cryoglass.nma.network import as_coordinates, check_connected, contact_pairs

__all__ = ["kirchhoff_matrix", "gnm"]


def kirchhoff_matrix(
    coordinates_angstrom,
    *,
    cutoff_angstrom: float = 10.0,
    gamma: float = 1.0,
    check_connectivity: bool = True,
) -> np.ndarray:
    """The GNM Kirchhoff matrix ``Γ`` (N × N, float64).

    Parameters
    ----------
    coordinates_angstrom : array-like or Tensor (N, 3)
        Node positions [Å], N ≥ 3.
    cutoff_angstrom : float
        Contact distance [Å] (ProDy: 10 Å).
    gamma : float
        Spring constant γ.
    check_connectivity : bool
        Raise a ``ValueError`` naming the gap if the network is disconnected.

    Returns
    -------
    ndarray (N, N)

    Notes
    -----
    ``Γ_ij = −γ`` for contacts, ``Γ_ii = γ · (number of contacts of i)``.

    References
    ----------
    Bahar et al. (1997), https://doi.org/10.1016/S1359-0278(97)00024-2
    """
    xyz = as_coordinates(coordinates_angstrom)
    n = xyz.shape[0]
    i, j, _ = contact_pairs(xyz, cutoff_angstrom=cutoff_angstrom)
    if check_connectivity:
        check_connected(xyz, i, j, cutoff_angstrom=cutoff_angstrom)
    kirchhoff = np.zeros((n, n))
    kirchhoff[i, j] = -gamma
    kirchhoff[j, i] = -gamma
    kirchhoff[np.arange(n), np.arange(n)] = -kirchhoff.sum(axis=1)
    return kirchhoff


def gnm(
    coordinates_angstrom,
    *,
    n_modes: int | None = 20,
    cutoff_angstrom: float = 10.0,
    gamma: float = 1.0,
    zeros: bool = False,
    method: str = "auto",
    device: str | None = None,
) -> NormalModes:
    """GNM normal modes: the lowest non-zero eigenpairs of :func:`kirchhoff_matrix`.

    Parameters
    ----------
    coordinates_angstrom : array-like or Tensor (N, 3)
        Node positions [Å], N ≥ 3.
    n_modes : int or None
        Non-zero modes (None: all ``N − 1``).
    cutoff_angstrom, gamma : float
        Network parameters (ProDy's defaults 10 Å, 1).
    zeros : bool
        Keep the zero mode at the start.
    method : {"auto", "dense", "sparse", "torch"}
    device : str, optional
        Torch device for the eigensolver.

    Returns
    -------
    NormalModes
        ``kind="gnm"``, eigenvectors (N, k).

    References
    ----------
    Bahar et al. (1997), https://doi.org/10.1016/S1359-0278(97)00024-2
    """
    xyz = as_coordinates(coordinates_angstrom)
    n = xyz.shape[0]
    k = None if n_modes is None else min(n_modes + 1, n)
    kirchhoff = kirchhoff_matrix(xyz, cutoff_angstrom=cutoff_angstrom, gamma=gamma)
    sparse_ok = k is not None and n > DENSE_LIMIT and k <= n // 4 and _has_scipy()
    if method == "sparse" or (method == "auto" and device is None and sparse_ok):
        import scipy.sparse as sp

        kirchhoff = sp.csr_array(kirchhoff)
    values, vectors = lowest_eigenpairs(kirchhoff, k, method=method, device=device)
    if not zeros:
        values, vectors = drop_zero_modes(values, vectors, n_zero=1, kind="gnm")
    return NormalModes(
        eigenvalues=values,
        eigenvectors=vectors,
        coordinates_angstrom=xyz,
        kind="gnm",
        cutoff_angstrom=float(cutoff_angstrom),
        gamma=float(gamma),
        n_zero=0 if zeros else 1,
    )
