r"""Elastic networks: the contact pairs within a cutoff and a check that the network is connected.

Works on numpy arrays (float64) so that a CPU normal-mode analysis does not import torch.

A network with nodes ``r_i`` (Å) joins every pair with ``|r_j − r_i| ≤ r_c`` by a spring.  If
the graph falls apart into several pieces, each piece can move rigidly on its own: extra zero
modes appear and the lowest "modes" are meaningless, so :func:`check_connected` raises an error
naming the smallest gap between two pieces (the cutoff that would join them).
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_coordinates", "contact_pairs", "connected_components", "check_connected"]

_BLOCK = 2048  # rows of the distance matrix computed at once (memory ≈ _BLOCK · N · 8 bytes)


def as_coordinates(coordinates_angstrom, *, name: str = "coordinates") -> np.ndarray:
    """``coordinates_angstrom`` (array-like or tensor (N, 3)) as a float64 numpy array.

    Raises
    ------
    ValueError
        Wrong shape, non-finite values, or fewer than 3 atoms.
    """
    if hasattr(coordinates_angstrom, "detach"):  # a torch tensor, without importing torch
        coordinates_angstrom = coordinates_angstrom.detach().cpu().numpy()
    xyz = np.asarray(coordinates_angstrom, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {xyz.shape}")
    if xyz.shape[0] < 3:
        raise ValueError(
            f"{name}: a normal-mode analysis needs at least 3 atoms, got {xyz.shape[0]}"
        )
    if not np.isfinite(xyz).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return xyz


def contact_pairs(
    coordinates_angstrom: np.ndarray, *, cutoff_angstrom: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with ``|r_j − r_i| ≤ cutoff``.

    Parameters
    ----------
    coordinates_angstrom : ndarray (N, 3)
        Node positions [Å].
    cutoff_angstrom : float
        Contact distance [Å] (> 0).

    Returns
    -------
    i, j : ndarray (P,), int64
        Pair indices with ``i < j``, sorted by ``i`` then ``j``.
    distance_angstrom : ndarray (P,)
        ``|r_j − r_i|`` [Å].

    Notes
    -----
    Brute force over blocks of rows (``O(N²)`` distances, ``O(N·block)`` memory): 3000 nodes
    take a few tens of milliseconds.
    """
    if not cutoff_angstrom > 0:
        raise ValueError(f"cutoff_angstrom must be > 0, got {cutoff_angstrom}")
    xyz = np.asarray(coordinates_angstrom, dtype=np.float64)
    n = xyz.shape[0]
    cut2 = float(cutoff_angstrom) ** 2
    rows, cols, dists = [], [], []
    for start in range(0, n, _BLOCK):
        block = xyz[start : start + _BLOCK]
        d2 = ((block[:, None, :] - xyz[None, :, :]) ** 2).sum(-1)
        i, j = np.nonzero(d2 <= cut2)
        i = i + start
        keep = j > i
        rows.append(i[keep])
        cols.append(j[keep])
        dists.append(np.sqrt(d2[i[keep] - start, j[keep]]))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(dists)


def connected_components(n_nodes: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Label of the connected component of every node (labels 0, 1, ... by first node).

    Min-label propagation along the edges until nothing changes (``O(E)`` per sweep, the number
    of sweeps is at most the graph's diameter).
    """
    labels = np.arange(n_nodes)
    while True:
        low = np.minimum(labels[i], labels[j])
        new = labels.copy()
        np.minimum.at(new, i, low)
        np.minimum.at(new, j, low)
        new = new[new]  # pointer jumping: follow labels to their roots
        if np.array_equal(new, labels):
            break
        labels = new
    _, dense = np.unique(labels, return_inverse=True)
    return dense


def check_connected(
    coordinates_angstrom: np.ndarray, i: np.ndarray, j: np.ndarray, *, cutoff_angstrom: float
) -> None:
    """Raise ``ValueError`` if the contact network is not one connected piece.

    The message gives the number of pieces, their sizes, and the smallest distance between the
    piece holding node 0 and the rest (the gap): a cutoff above it joins them.
    """
    n = coordinates_angstrom.shape[0]
    labels = connected_components(n, i, j)
    n_pieces = int(labels.max()) + 1
    if n_pieces == 1:
        return
    sizes = np.bincount(labels)
    first = coordinates_angstrom[labels == 0]
    rest_index = np.nonzero(labels != 0)[0]
    rest = coordinates_angstrom[rest_index]
    best, pair = np.inf, (0, 0)
    for start in range(0, first.shape[0], _BLOCK):
        d2 = ((first[start : start + _BLOCK, None, :] - rest[None, :, :]) ** 2).sum(-1)
        k = int(np.argmin(d2))
        if d2.flat[k] < best:
            a, b = np.unravel_index(k, d2.shape)
            best = float(d2.flat[k])
            pair = (int(np.nonzero(labels == 0)[0][start + a]), int(rest_index[b]))
    shown = ", ".join(str(s) for s in sizes[:8]) + (" ..." if n_pieces > 8 else "")
    raise ValueError(
        f"the elastic network is disconnected at cutoff {cutoff_angstrom:g} Å: {n_pieces} "
        f"pieces (sizes {shown}); the gap between the piece of node 0 and the rest is "
        f"{np.sqrt(best):.2f} Å (nodes {pair[0]} and {pair[1]}); use a cutoff above "
        f"{np.sqrt(best):.2f} Å or remove the isolated atoms"
    )
