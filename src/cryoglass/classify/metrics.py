"""Scores for classifications against known truth: adjusted Rand index, in-plane angle errors."""

from __future__ import annotations

import torch

__all__ = ["adjusted_rand_index", "inplane_error_deg"]


def _pairs(counts: torch.Tensor) -> torch.Tensor:
    """Σ C(n, 2) over ``counts`` (float64)."""
    counts = counts.double()
    return (counts * (counts - 1) / 2).sum()


def adjusted_rand_index(labels_true: torch.Tensor, labels_pred: torch.Tensor) -> float:
    """Adjusted Rand index of two labellings of the same items (1: identical up to renaming).

    Parameters
    ----------
    labels_true, labels_pred : Tensor (n,), integer
        Cluster labels (any integers).

    Returns
    -------
    float
        ``(Σ_ij C(n_ij,2) − E) / (½(Σ_i C(a_i,2) + Σ_j C(b_j,2)) − E)`` with
        ``E = Σ_i C(a_i,2) Σ_j C(b_j,2) / C(n,2)``; 1.0 when both labellings are trivial.

    References
    ----------
    Hubert, L. & Arabie, P. (1985) Comparing partitions. J. Classif. 2:193-218.
    https://doi.org/10.1007/BF01908075

    Examples
    --------
    >>> adjusted_rand_index(torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5, 2, 2]))
    1.0
    """
    a = torch.unique(torch.as_tensor(labels_true), return_inverse=True)[1].reshape(-1)
    b = torch.unique(torch.as_tensor(labels_pred), return_inverse=True)[1].reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"label vectors differ in length: {a.shape[0]} vs {b.shape[0]}")
    n = a.shape[0]
    table = torch.zeros(int(a.max()) + 1, int(b.max()) + 1, dtype=torch.float64)
    table.index_put_((a, b), torch.ones(n, dtype=torch.float64), accumulate=True)
    index = _pairs(table)
    rows, cols = _pairs(table.sum(1)), _pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    maximum = (rows + cols) / 2
    if float(maximum - expected) == 0.0:
        return 1.0
    return float((index - expected) / (maximum - expected))


def inplane_error_deg(
    psi_deg: torch.Tensor, true_psi_deg: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """In-plane angle errors [degrees] after removing one free rotation per class.

    A class average may come out turned by any angle; within each class (``labels``) the
    offset ``psi − true_psi`` is estimated as the circular mean and removed.  Returns the
    absolute residual (n,) in [0, 180].
    """
    diff = torch.deg2rad(torch.as_tensor(psi_deg, dtype=torch.float64) - true_psi_deg.double())
    out = torch.empty_like(diff)
    for label in torch.unique(labels).tolist():  # loop over classes, not particles
        rows = labels == label
        offset = torch.atan2(torch.sin(diff[rows]).mean(), torch.cos(diff[rows]).mean())
        residual = torch.remainder(diff[rows] - offset + torch.pi, 2 * torch.pi) - torch.pi
        out[rows] = residual.abs()
    return torch.rad2deg(out)
