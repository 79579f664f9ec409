r"""Normal modes: the lowest eigenpairs of a symmetric network matrix (Hessian or Kirchhoff).

Solvers (``method``):

* ``"dense"`` — LAPACK on the full matrix (``numpy.linalg.eigh``, or ``scipy.linalg.eigh`` with
  ``subset_by_index`` when only the lowest ``k`` are wanted and scipy is installed).  Cost
  ``O(n³)`` time and ``O(n²)`` memory whatever ``k`` is: the reduction to tridiagonal form
  dominates.
* ``"sparse"`` — shift-invert Lanczos (``scipy.sparse.linalg.eigsh`` with ``σ < 0``): one sparse
  LU factorisation of ``H − σI`` (positive definite because ``H`` is positive semi-definite),
  then a few dozen sparse solves.  Only the ``O(n·contacts)`` non-zeros are stored.
* ``"torch"`` — ``torch.linalg.eigh`` on a device (e.g. ``"cuda"``): the dense matrix is moved
  there; useful for a GPU, where dense LAPACK-style solvers are fast.
* ``"auto"`` — ``"torch"`` when a device is given, ``"dense"`` for ``n ≤ 600`` (or more than
  n/4 modes, or no scipy), else ``"sparse"``.

Eigenvectors are unit vectors; the sign of each is fixed so that its largest-magnitude component
is positive (eigensolvers return either sign).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NormalModes", "lowest_eigenpairs", "DENSE_LIMIT"]

#: Matrices up to this size are diagonalised densely by ``method="auto"``.
DENSE_LIMIT = 600


@dataclass(frozen=True, eq=False)
class NormalModes:
    """Non-zero normal modes of an elastic network, lowest first.

    Attributes
    ----------
    eigenvalues : ndarray (k,)
        ``λ_1 ≤ … ≤ λ_k`` (units of γ/Å² for ANM, γ for GNM), zero modes removed.
    eigenvectors : ndarray (d·N, k)
        Unit columns; for ANM ``d = 3`` and rows are ``(x_1, y_1, z_1, x_2, …)``, for GNM
        ``d = 1``.
    coordinates_angstrom : ndarray (N, 3)
        Node positions [Å] the network was built on.
    kind : {"anm", "gnm"}
    cutoff_angstrom, gamma : float
        Network parameters.
    n_zero : int
        Number of zero modes removed (6 for ANM, 1 for GNM).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    coordinates_angstrom: np.ndarray
    kind: str
    cutoff_angstrom: float
    gamma: float
    n_zero: int

    @property
    def n_modes(self) -> int:
        """Number of (non-zero) modes kept."""
        return int(self.eigenvalues.shape[0])

    @property
    def dim(self) -> int:
        """Degrees of freedom per node: 3 (ANM) or 1 (GNM)."""
        return 3 if self.kind == "anm" else 1

    def vectors_xyz(self) -> np.ndarray:
        """ANM eigenvectors as ``(k, N, 3)`` displacements (unit norm over all nodes)."""
        if self.kind != "anm":
            raise ValueError("vectors_xyz is defined for ANM modes only (GNM modes are scalar)")
        n = self.coordinates_angstrom.shape[0]
        return self.eigenvectors.T.reshape(self.n_modes, n, 3)


def _has_scipy() -> bool:
    import importlib.util

    return importlib.util.find_spec("scipy") is not None


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude component is positive."""
    idx = np.abs(vectors).argmax(axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def _dense(matrix, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    dense = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    n = dense.shape[0]
    if k is None or k >= n:
        return np.linalg.eigh(dense)
    try:
        from scipy.linalg import eigh
    except ImportError:
        values, vectors = np.linalg.eigh(dense)
        return values[:k], vectors[:, :k]
    return eigh(dense, subset_by_index=(0, k - 1), driver="evr")


def _sparse(matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        import scipy.sparse as sp
        from scipy.sparse.linalg import eigsh
    except ImportError as error:  # scipy is optional at run time
        raise ImportError(
            "method='sparse' needs scipy (pip install scipy); or use method='dense'"
        ) from error
    matrix = sp.csc_array(matrix)
    # σ below the spectrum: H − σI is positive definite, zero modes become the largest 1/(λ−σ)
    scale = float(abs(matrix.diagonal()).max()) or 1.0
    sigma = -1e-5 * scale
    start = np.ones(matrix.shape[0]) / np.sqrt(matrix.shape[0])  # deterministic start vector
    values, vectors = eigsh(matrix, k=k, sigma=sigma, which="LM", v0=start, tol=0)
    order = np.argsort(values)
    return values[order], vectors[:, order]


def _torch(matrix, k: int | None, device) -> tuple[np.ndarray, np.ndarray]:
    import torch

    dense = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    values, vectors = torch.linalg.eigh(torch.as_tensor(dense, device=device))
    k = values.shape[0] if k is None else k
    return values[:k].cpu().numpy(), vectors[:, :k].cpu().numpy()


def lowest_eigenpairs(
    matrix,
    k: int | None,
    *,
    method: str = "auto",
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` lowest eigenpairs of a real symmetric positive semi-definite matrix.

    Parameters
    ----------
    matrix : ndarray (n, n) or scipy sparse array
        Symmetric matrix (Hessian or Kirchhoff).
    k : int or None
        Number of eigenpairs (None: all, dense only).
    method : {"auto", "dense", "sparse", "torch"}
        Solver (module docstring).
    device : str, optional
        Torch device for ``method="torch"`` (``"auto"`` picks torch when this is given).

    Returns
    -------
    eigenvalues : ndarray (k,)
        Ascending.
    eigenvectors : ndarray (n, k)
        Unit columns, sign fixed (largest component positive).
    """
    n = matrix.shape[0]
    if k is not None and not 1 <= k <= n:
        raise ValueError(f"number of eigenpairs must be in [1, {n}], got {k}")
    if method == "auto":
        if device is not None:
            method = "torch"
        elif k is None or n <= DENSE_LIMIT or k > n // 4 or not _has_scipy():
            method = "dense"
        else:
            method = "sparse"
    if method == "dense":
        values, vectors = _dense(matrix, k)
    elif method == "sparse":
        if k is None or k >= n - 1:
            raise ValueError("method='sparse' needs k < n − 1 eigenpairs; use method='dense'")
        values, vectors = _sparse(matrix, k)
    elif method == "torch":
        values, vectors = _torch(matrix, k, device or "cpu")
    else:
        raise ValueError(f"method must be auto, dense, sparse or torch, got {method!r}")
    return np.asarray(values, dtype=np.float64), _fix_signs(np.asarray(vectors, dtype=np.float64))


def drop_zero_modes(
    values: np.ndarray, vectors: np.ndarray, *, n_zero: int, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Remove the ``n_zero`` lowest pairs after checking the next one is clearly non-zero."""
    tolerance = 1e-6 * max(1.0, float(np.abs(values).max()))
    if values.shape[0] > n_zero and values[n_zero] < tolerance:
        extra = int((values < tolerance).sum())
        raise ValueError(
            f"{kind.upper()} network has {extra} zero modes instead of {n_zero}: some nodes "
            f"have too few contacts (raise the cutoff)"
        )
    return values[n_zero:], vectors[:, n_zero:]
