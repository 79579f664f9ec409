r"""What normal modes say about a structure: fluctuations, B-factors, correlations, collectivity,
and how well a few modes describe an observed conformational change.

All functions take :class:`~cryoglass.nma.modes.NormalModes` (numpy, float64) and return numpy
arrays; none imports torch.

In the harmonic approximation the covariance of the node displacements is ``(k_B T) H⁺`` (ANM)
or ``(3 k_B T / γ) Γ⁺`` for ``⟨ΔR_i·ΔR_j⟩`` (GNM), with ``H⁺ = Σ_k v_k v_kᵀ / λ_k`` over the
non-zero modes.  Up to the unknown scale ``k_B T / γ``:

* square fluctuation ``⟨ΔR_i²⟩ ∝ Σ_k |v_{k,i}|² / λ_k``;
* B-factor ``B_i = (8π²/3) ⟨ΔR_i²⟩``;
* normalised cross-correlation ``C_ij = ⟨ΔR_i·ΔR_j⟩ / √(⟨ΔR_i²⟩⟨ΔR_j²⟩)``.

References
----------
Bahar, I., Lezon, T. R., Bakan, A. & Shrivastava, I. H. (2010). Chem. Rev. 110, 1463-1497.
https://doi.org/10.1021/cr900095e
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cryoglass.nma.modes import NormalModes

__all__ = [
    "BFactorFit",
    "square_fluctuations",
    "fit_bfactors",
    "cross_correlations",
    "collectivity",
    "superpose",
    "match_residues",
    "overlaps",
    "cumulative_overlap",
]


def _node_vectors(modes: NormalModes, n_modes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (k,) and eigenvectors as (k, N, d) with d = 3 (ANM) or 1 (GNM)."""
    k = modes.n_modes if n_modes is None else min(n_modes, modes.n_modes)
    n = modes.coordinates_angstrom.shape[0]
    vectors = modes.eigenvectors[:, :k].T.reshape(k, n, modes.dim)
    return modes.eigenvalues[:k], vectors


def square_fluctuations(modes: NormalModes, *, n_modes: int | None = None) -> np.ndarray:
    """Square fluctuation of every node, ``Σ_k |v_{k,i}|² / λ_k`` (in units of k_B T/γ).

    Parameters
    ----------
    modes : NormalModes
    n_modes : int, optional
        Use only the lowest this many modes (default: all in ``modes``).

    Returns
    -------
    ndarray (N,)
        ANM: ``⟨ΔR_i²⟩ / (k_B T)`` [Å²·γ⁻¹·Å²…]; GNM: ``⟨ΔR_i²⟩ γ / (3 k_B T)``.
    """
    values, vectors = _node_vectors(modes, n_modes)
    return ((vectors**2).sum(-1) / values[:, None]).sum(0)


@dataclass(frozen=True)
class BFactorFit:
    """Predicted B-factors fitted to experimental ones.

    Attributes
    ----------
    predicted_a2 : ndarray (N,)
        ``s · (8π²/3) · ⟨ΔR_i²⟩`` [Å²].
    scale : float
        Fitted ``s`` (= ``k_B T / γ`` in the model's units).
    correlation : float
        Pearson correlation of predicted and experimental B-factors.
    """

    predicted_a2: np.ndarray
    scale: float
    correlation: float


def fit_bfactors(square_fluctuation: np.ndarray, bfactors_a2) -> BFactorFit:
    """Predict B-factors ``B_i = s (8π²/3) ⟨ΔR_i²⟩`` with ``s`` fitted by least squares.

    Parameters
    ----------
    square_fluctuation : ndarray (N,)
        From :func:`square_fluctuations` (ANM, or GNM).
    bfactors_a2 : array-like (N,)
        Experimental (crystallographic) B-factors [Å²].

    Returns
    -------
    BFactorFit

    Notes
    -----
    ``s = Σ_i B_i f_i / Σ_i f_i²`` with ``f_i = (8π²/3)⟨ΔR_i²⟩`` (a fit through the origin:
    the model has one free scale, ``k_B T/γ``).
    """
    if hasattr(bfactors_a2, "detach"):
        bfactors_a2 = bfactors_a2.detach().cpu().numpy()
    observed = np.asarray(bfactors_a2, dtype=np.float64)
    f = (8 * math.pi**2 / 3) * np.asarray(square_fluctuation, dtype=np.float64)
    if observed.shape != f.shape:
        raise ValueError(f"bfactors_a2 has shape {observed.shape}, fluctuations {f.shape}")
    scale = float((observed * f).sum() / (f * f).sum())
    if np.std(observed) == 0:
        correlation = float("nan")
    else:
        correlation = float(np.corrcoef(observed, f)[0, 1])
    return BFactorFit(predicted_a2=scale * f, scale=scale, correlation=correlation)


def cross_correlations(modes: NormalModes, *, n_modes: int | None = None) -> np.ndarray:
    """Normalised cross-correlations of the node fluctuations.

    Returns
    -------
    ndarray (N, N)
        ``C_ij = c_ij / √(c_ii c_jj)``, ``c_ij = Σ_k (v_{k,i}·v_{k,j}) / λ_k``; in [−1, 1],
        1 on the diagonal (same-direction motion), −1 for opposite motion.
    """
    values, vectors = _node_vectors(modes, n_modes)
    weighted = vectors / np.sqrt(values)[:, None, None]  # (k, N, d)
    flat = weighted.transpose(1, 0, 2).reshape(vectors.shape[1], -1)  # (N, k·d)
    covariance = flat @ flat.T
    norm = np.sqrt(np.diag(covariance))
    return covariance / np.outer(norm, norm)


def collectivity(modes: NormalModes, *, masses=None) -> np.ndarray:
    """Collectivity κ of every mode (Brüschweiler 1995): the fraction of nodes that move.

    Parameters
    ----------
    modes : NormalModes
    masses : array-like (N,), optional
        Node masses (default: all equal).

    Returns
    -------
    ndarray (k,)
        ``κ = exp(−Σ_i u_i² ln u_i²) / N`` with ``u_i² ∝ |v_i|² / m_i`` normalised to sum 1;
        1 when all nodes move equally, ``1/N`` when one node moves.

    References
    ----------
    Brüschweiler, R. (1995). Collective protein dynamics and nuclear spin relaxation.
    J. Chem. Phys. 102, 3396-3403. https://doi.org/10.1063/1.469213
    """
    _, vectors = _node_vectors(modes, None)
    amplitude = (vectors**2).sum(-1)  # (k, N)
    if masses is not None:
        amplitude = amplitude / np.asarray(masses, dtype=np.float64)[None, :]
    u2 = amplitude / amplitude.sum(axis=1, keepdims=True)
    entropy = -np.where(u2 > 0, u2 * np.log(np.where(u2 > 0, u2, 1.0)), 0.0).sum(axis=1)
    return np.exp(entropy) / u2.shape[1]


def superpose(mobile_angstrom, target_angstrom) -> tuple[np.ndarray, float]:
    """Rigidly move ``mobile`` onto ``target`` (least squares, Kabsch) and give the RMSD.

    Parameters
    ----------
    mobile_angstrom, target_angstrom : array-like (N, 3)
        Matched positions [Å].

    Returns
    -------
    moved : ndarray (N, 3)
        ``R (x − x̄) + ȳ`` with the proper rotation ``R`` minimising the RMSD.
    rmsd_angstrom : float

    References
    ----------
    Kabsch, W. (1976). Acta Cryst. A32, 922-923. https://doi.org/10.1107/S0567739476001873
    """
    x = np.asarray(mobile_angstrom, dtype=np.float64)
    y = np.asarray(target_angstrom, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"mobile has shape {x.shape}, target {y.shape}: match atoms first")
    xc, yc = x - x.mean(0), y - y.mean(0)
    u, _, vt = np.linalg.svd(xc.T @ yc)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = (u @ np.diag([1.0, 1.0, d]) @ vt).T
    moved = xc @ rotation.T + y.mean(0)
    return moved, float(np.sqrt(((moved - y) ** 2).sum(-1).mean()))


def match_residues(
    keys_a: Sequence[tuple[str, int]],
    keys_b: Sequence[tuple[str, int]],
    *,
    match_chains: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the nodes two structures share, matched by (chain, residue number).

    Parameters
    ----------
    keys_a, keys_b : sequence of (chain id, residue number)
        One key per node (e.g. per Cα), in node order.
    match_chains : bool
        Match on chain and number (default), or on the residue number only.

    Returns
    -------
    index_a, index_b : ndarray (M,), int64
        ``a[index_a[m]]`` and ``b[index_b[m]]`` are the same residue, in the order of ``a``.
    """

    def key(k):
        return (k[0], int(k[1])) if match_chains else int(k[1])

    position_b = {}
    for n, k in enumerate(keys_b):
        position_b.setdefault(key(k), n)
    pairs = [(n, position_b[key(k)]) for n, k in enumerate(keys_a) if key(k) in position_b]
    if len(pairs) < 3:
        raise ValueError(f"only {len(pairs)} residues match between the two structures")
    index = np.asarray(pairs, dtype=np.int64)
    return index[:, 0], index[:, 1]


def overlaps(modes: NormalModes, displacement_angstrom) -> np.ndarray:
    """Overlap (cosine) of every ANM mode with a displacement ``Δr`` of the nodes.

    Parameters
    ----------
    modes : NormalModes
        ANM modes on the reference structure.
    displacement_angstrom : array-like (N, 3)
        ``target − reference`` after superposition [Å].

    Returns
    -------
    ndarray (k,)
        ``O_k = v_k · Δr / |Δr|`` (signed; ``Σ_k O_k² = 1`` over all 3N − 6 modes when ``Δr``
        has no rigid-body part).

    References
    ----------
    Tama, F. & Sanejouand, Y.-H. (2001). Conformational change of proteins arising from normal
    mode calculations. Protein Eng. 14, 1-6. https://doi.org/10.1093/protein/14.1.1
    """
    if modes.kind != "anm":
        raise ValueError("overlaps need 3D (ANM) modes")
    delta = np.asarray(displacement_angstrom, dtype=np.float64).reshape(-1)
    if delta.shape[0] != modes.eigenvectors.shape[0]:
        raise ValueError(
            f"displacement has {delta.shape[0] // 3} nodes, the modes "
            f"{modes.eigenvectors.shape[0] // 3}"
        )
    return modes.eigenvectors.T @ delta / np.linalg.norm(delta)


def cumulative_overlap(overlap: np.ndarray) -> np.ndarray:
    """``CO(k) = √(Σ_{j≤k} O_j²)``: how much of the change the lowest k modes describe."""
    return np.sqrt(np.cumsum(np.asarray(overlap) ** 2))
