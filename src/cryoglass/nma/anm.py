r"""Anisotropic network model (ANM): 3D harmonic springs between nodes within a cutoff.

The potential of a network of springs of stiffness ``γ_ij`` between nodes closer than ``r_c``
(their rest lengths = the distances in the structure) is, to second order,

.. math:: V = \tfrac12 \sum_{i<j,\ d_{ij}^0 \le r_c} γ_{ij} (d_{ij} − d_{ij}^0)^2
          = \tfrac12\, Δ\mathbf r^\mathsf T H\, Δ\mathbf r .

Its Hessian ``H`` (3N × 3N) has off-diagonal 3×3 blocks

.. math:: H_{ij} = −\frac{γ_{ij}}{d_{ij}^2}\, \mathbf r_{ij} \mathbf r_{ij}^\mathsf T,
          \quad \mathbf r_{ij} = \mathbf r_j − \mathbf r_i,
          \qquad H_{ii} = −\sum_{j≠i} H_{ij},

so every row of blocks sums to zero: the 3 translations and 3 rotations cost no energy and ``H``
has six zero eigenvalues.  The modes are the eigenvectors of ``H``; the lowest non-zero ones are
the large, collective "breathing" motions.  ProDy's defaults are Cα nodes, ``r_c = 15 Å`` and
``γ = 1``; with ``distance_exponent = p`` the springs soften with distance,
``γ_ij = γ (3.8 Å / d_ij)^p`` (3.8 Å: the Cα–Cα virtual bond).

References
----------
Atilgan, A. R. et al. (2001). Anisotropy of fluctuation dynamics of proteins with an elastic
network model. Biophys. J. 80, 505-515. https://doi.org/10.1016/S0006-3495(01)76033-X

Bahar, I., Lezon, T. R., Bakan, A. & Shrivastava, I. H. (2010). Normal mode analysis of
biomolecular structures: functional mechanisms of membrane proteins. Chem. Rev. 110, 1463-1497.
https://doi.org/10.1021/cr900095e
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

__all__ = ["anm_hessian", "anm", "spring_constants"]

#: Reference length of distance-dependent springs (the Cα–Cα virtual bond) [Å].
REFERENCE_DISTANCE_ANGSTROM = 3.8


def spring_constants(
    distance_angstrom: np.ndarray, *, gamma: float, distance_exponent: float
) -> np.ndarray:
    """``γ_ij = γ (3.8 Å / d_ij)^p`` (``p = 0``: the same γ for every spring)."""
    if distance_exponent == 0:
        return np.full_like(distance_angstrom, float(gamma))
    return gamma * (REFERENCE_DISTANCE_ANGSTROM / distance_angstrom) ** distance_exponent


def _blocks(xyz: np.ndarray, i, j, d, gamma, distance_exponent) -> np.ndarray:
    """Off-diagonal blocks ``H_ij = −γ_ij/d² · r_ij r_ijᵀ`` for the pairs, shape (P, 3, 3)."""
    r = xyz[j] - xyz[i]
    k = spring_constants(d, gamma=gamma, distance_exponent=distance_exponent) / d**2
    return -k[:, None, None] * r[:, :, None] * r[:, None, :]


def anm_hessian(
    coordinates_angstrom,
    *,
    cutoff_angstrom: float = 15.0,
    gamma: float = 1.0,
    distance_exponent: float = 0.0,
    sparse: bool = False,
    check_connectivity: bool = True,
):
    """The ANM Hessian of a set of nodes.

    Parameters
    ----------
    coordinates_angstrom : array-like or Tensor (N, 3)
        Node positions [Å] (e.g. Cα atoms), N ≥ 3.
    cutoff_angstrom : float
        Springs join nodes closer than this [Å] (ProDy: 15 Å).
    gamma : float
        Spring constant γ (ProDy: 1).
    distance_exponent : float
        ``p`` in ``γ_ij = γ (3.8 Å / d_ij)^p`` (0: uniform springs).
    sparse : bool
        Return a ``scipy.sparse.csr_array`` (needs scipy) instead of a dense ndarray.
    check_connectivity : bool
        Raise a ``ValueError`` naming the gap if the network is disconnected.

    Returns
    -------
    ndarray or scipy.sparse.csr_array, shape (3N, 3N), float64
        Rows/columns ordered ``(x_1, y_1, z_1, x_2, …)``.

    Notes
    -----
    ``H_ij = −γ_ij r_ij r_ijᵀ / d_ij²`` for ``d_ij ≤ r_c``, ``H_ii = −Σ_j H_ij`` (module
    docstring).

    References
    ----------
    Atilgan et al. (2001), https://doi.org/10.1016/S0006-3495(01)76033-X
    """
    xyz = as_coordinates(coordinates_angstrom)
    n = xyz.shape[0]
    i, j, d = contact_pairs(xyz, cutoff_angstrom=cutoff_angstrom)
    if check_connectivity:
        check_connected(xyz, i, j, cutoff_angstrom=cutoff_angstrom)
    blocks = _blocks(xyz, i, j, d, gamma, distance_exponent)
    diagonal = np.zeros((n, 3, 3))
    np.add.at(diagonal, i, -blocks)
    np.add.at(diagonal, j, -blocks)
    if sparse:
        import scipy.sparse as sp

        rows = np.concatenate([i, j, np.arange(n)])
        cols = np.concatenate([j, i, np.arange(n)])
        data = np.concatenate([blocks, blocks, diagonal])  # r rᵀ is symmetric: H_ji = H_ij
        a = np.arange(3)
        element_rows = (3 * rows[:, None, None] + a[None, :, None]).repeat(3, axis=2)
        element_cols = (3 * cols[:, None, None] + a[None, None, :]).repeat(3, axis=1)
        return sp.csr_array(
            (data.ravel(), (element_rows.ravel(), element_cols.ravel())), shape=(3 * n, 3 * n)
        )
    hessian = np.zeros((n, 3, n, 3))
    hessian[i, :, j, :] = blocks
    hessian[j, :, i, :] = blocks
    hessian[np.arange(n), :, np.arange(n), :] = diagonal
    return hessian.reshape(3 * n, 3 * n)


def anm(
    coordinates_angstrom,
    *,
    n_modes: int | None = 20,
    cutoff_angstrom: float = 15.0,
    gamma: float = 1.0,
    distance_exponent: float = 0.0,
    zeros: bool = False,
    method: str = "auto",
    device: str | None = None,
) -> NormalModes:
    """ANM normal modes: the lowest non-zero eigenpairs of :func:`anm_hessian`.

    Parameters
    ----------
    coordinates_angstrom : array-like or Tensor (N, 3)
        Node positions [Å], N ≥ 3.
    n_modes : int or None
        Non-zero modes to compute (None: all ``3N − 6``).
    cutoff_angstrom, gamma, distance_exponent : float
        Network parameters (:func:`anm_hessian`; ProDy's defaults 15 Å, 1, 0).
    zeros : bool
        Keep the six zero modes at the start (``n_zero`` is then 0).
    method : {"auto", "dense", "sparse", "torch"}
        Eigensolver (:func:`cryoglass.nma.modes.lowest_eigenpairs`); ``"auto"`` uses the sparse
        shift-invert Lanczos solver above 3000 degrees of freedom.
    device : str, optional
        Torch device (e.g. ``"cuda"``) for the eigensolver.

    Returns
    -------
    NormalModes
        ``kind="anm"``, eigenvalues ascending [γ/Å²], eigenvectors (3N, k).

    Raises
    ------
    ValueError
        Fewer than 3 nodes, a disconnected network (the message gives the gap), or more than
        six zero modes.

    References
    ----------
    Atilgan et al. (2001), https://doi.org/10.1016/S0006-3495(01)76033-X

    Examples
    --------
    >>> import numpy as np
    >>> xyz = np.random.default_rng(0).normal(scale=6.0, size=(40, 3))
    >>> modes = anm(xyz, n_modes=5)
    >>> modes.eigenvectors.shape
    (120, 5)
    """
    xyz = as_coordinates(coordinates_angstrom)
    n_dof = 3 * xyz.shape[0]
    k = None if n_modes is None else min(n_modes + 6, n_dof)
    use_sparse = method == "sparse" or (
        method == "auto"
        and device is None
        and k is not None
        and n_dof > DENSE_LIMIT
        and k <= n_dof // 4
        and _has_scipy()
    )
    hessian = anm_hessian(
        xyz,
        cutoff_angstrom=cutoff_angstrom,
        gamma=gamma,
        distance_exponent=distance_exponent,
        sparse=use_sparse,
    )
    values, vectors = lowest_eigenpairs(hessian, k, method=method, device=device)
    if not zeros:
        values, vectors = drop_zero_modes(values, vectors, n_zero=6, kind="anm")
    return NormalModes(
        eigenvalues=values,
        eigenvectors=vectors,
        coordinates_angstrom=xyz,
        kind="anm",
        cutoff_angstrom=float(cutoff_angstrom),
        gamma=float(gamma),
        n_zero=0 if zeros else 6,
    )
