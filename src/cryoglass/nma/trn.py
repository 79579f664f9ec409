r"""Pseudo-atoms from a density map: a topology representing network (TRN).

A TRN places ``M`` nodes so that they quantise the density (each node sits at the centre of
mass of the density closest to it) and connects nodes that are nearest and second-nearest to
the same density point (competitive Hebbian learning), so the edges follow the shape of the
map.  The nodes are then the beads of an elastic network (ANM) for a map without a model.

Algorithm (batch neural gas, then competitive Hebbian learning)
---------------------------------------------------------------
1. Draw ``S`` points ``x`` from the map: voxels above ``threshold`` with probability
   proportional to their density, jittered uniformly inside the voxel.
2. Start the nodes at ``M`` of those points.  For ``λ`` decreasing geometrically from ``λ₀`` to
   ``λ_f`` over the epochs, rank the nodes by distance to every point (rank ``k_i(x) = 0`` for
   the closest) and move every node to the weighted mean

   .. math:: \mathbf w_i \leftarrow \frac{\sum_x h_λ(k_i(x))\, \mathbf x}
             {\sum_x h_λ(k_i(x))}, \qquad h_λ(k) = e^{-k/λ}

   (ranks beyond ``4λ`` are cut off: their weight is below 2 %).  Large ``λ`` moves nodes
   together (no dead nodes); ``λ → 0`` is k-means.
3. For every point, join its two closest nodes by an edge.

This is the batch form of Martinetz & Schulten's online rule (one update per point,
``w_i += ε h_λ(k_i)(x − w_i)``); it is deterministic for a seed and vectorised over points.

References
----------
Martinetz, T. & Schulten, K. (1994). Topology representing networks. Neural Networks 7,
507-522. https://doi.org/10.1016/0893-6080(94)90033-7

Cottrell, M., Hammer, B., Hasenfuß, A. & Villmann, T. (2006). Batch and median neural gas.
Neural Networks 19, 762-771. https://doi.org/10.1016/j.neunet.2006.05.012
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryoglass.fourier.grids import coordinate_grid

__all__ = ["TopologyNetwork", "density_samples", "topology_representing_network"]


@dataclass(frozen=True, eq=False)
class TopologyNetwork:
    """Pseudo-atoms of a map.

    Attributes
    ----------
    nodes_angstrom : Tensor (M, 3)
        Node positions (x, y, z) [Å], relative to the map's origin voxel (N//2 on every axis).
    edges : Tensor (E, 2), int64
        Node pairs ``i < j`` that are nearest and second-nearest to some density point.
    threshold : float
        Density threshold used.
    """

    nodes_angstrom: torch.Tensor
    edges: torch.Tensor
    threshold: float


def _default_threshold(volume: torch.Tensor) -> float:
    return 0.1 * float(volume.max())


def density_samples(
    volume: torch.Tensor,
    n_samples: int,
    *,
    pixel_size_angstrom: float,
    threshold: float | None = None,
    generator: torch.Generator,
) -> torch.Tensor:
    """Points drawn from a map with probability ∝ density above a threshold.

    Parameters
    ----------
    volume : Tensor (d, h, w)
        Density map, ``volume[z, y, x]``, origin at index N//2.
    n_samples : int
    pixel_size_angstrom : float
        Voxel size [Å].
    threshold : float, optional
        Only voxels above this value are sampled (default: 10 % of the maximum).
    generator : torch.Generator
        CPU generator.

    Returns
    -------
    Tensor (n_samples, 3)
        Positions (x, y, z) [Å] relative to the origin voxel, float32 on the map's device.

    Raises
    ------
    ValueError
        No voxel above the threshold.
    """
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (d, h, w), got shape {tuple(volume.shape)}")
    threshold = _default_threshold(volume) if threshold is None else float(threshold)
    weights = torch.where(volume > threshold, volume, torch.zeros_like(volume)).reshape(-1)
    if not bool((weights > 0).any()):
        raise ValueError(
            f"the map has no density above the threshold {threshold:g} "
            f"(max {float(volume.max()):g}): lower the threshold"
        )
    grid = coordinate_grid(tuple(volume.shape)).to(torch.float64).reshape(-1, 3)  # centred
    index = torch.multinomial(
        weights.double().cpu(), n_samples, replacement=True, generator=generator
    )
    jitter = torch.rand(n_samples, 3, generator=generator, dtype=torch.float64) - 0.5
    points = (grid.cpu()[index] + jitter) * pixel_size_angstrom
    return points.to(device=volume.device, dtype=torch.float32)


def _neural_gas_step(points: torch.Tensor, nodes: torch.Tensor, lam: float) -> torch.Tensor:
    """One batch neural-gas update with neighbourhood range ``lam`` (module docstring)."""
    n_nodes = nodes.shape[0]
    k = min(n_nodes, int(math.ceil(4 * lam)) + 1)
    _, nearest = torch.topk(torch.cdist(points, nodes), k, dim=1, largest=False)  # (S, k)
    h = torch.exp(-torch.arange(k, device=points.device, dtype=points.dtype) / lam)
    weights = h.expand_as(nearest).reshape(-1)
    flat = nearest.reshape(-1)
    numerator = torch.zeros_like(nodes).index_add_(
        0, flat, weights[:, None] * points.repeat_interleave(k, dim=0)
    )
    denominator = torch.zeros(n_nodes, device=nodes.device, dtype=nodes.dtype)
    denominator.index_add_(0, flat, weights)
    moved = numerator / denominator.clamp_min(1e-12)[:, None]
    return torch.where(denominator[:, None] > 0, moved, nodes)


def _hebbian_edges(points: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """Unique pairs (i < j) of the two nodes closest to each point."""
    _, two = torch.topk(torch.cdist(points, nodes), 2, dim=1, largest=False)
    pairs = torch.sort(two, dim=1).values
    return torch.unique(pairs, dim=0)


def topology_representing_network(
    volume: torch.Tensor,
    n_nodes: int,
    *,
    pixel_size_angstrom: float,
    threshold: float | None = None,
    n_samples: int | None = None,
    n_epochs: int = 25,
    lambda_initial: float | None = None,
    lambda_final: float = 0.01,
    seed: int = 0,
) -> TopologyNetwork:
    """Place ``n_nodes`` pseudo-atoms on a density map (batch neural gas + Hebbian edges).

    Parameters
    ----------
    volume : Tensor (d, h, w)
        Density map, origin at index N//2 on every axis.
    n_nodes : int
        Number of pseudo-atoms M (≥ 3).
    pixel_size_angstrom : float
        Voxel size [Å].
    threshold : float, optional
        Density threshold (default: 10 % of the maximum).
    n_samples : int, optional
        Density points drawn (default ``max(20 M, 5000)``).
    n_epochs : int
        Neural-gas epochs (λ decreases geometrically over them).
    lambda_initial, lambda_final : float
        Neighbourhood range at the first and last epoch (default ``λ₀ = min(10, M/2)``).
    seed : int
        Seed of the point sampling and the initial nodes (the result is deterministic).

    Returns
    -------
    TopologyNetwork

    Raises
    ------
    ValueError
        Fewer than 3 nodes, or no density above the threshold.

    References
    ----------
    Martinetz & Schulten (1994), https://doi.org/10.1016/0893-6080(94)90033-7;
    Cottrell et al. (2006), https://doi.org/10.1016/j.neunet.2006.05.012
    """
    if n_nodes < 3:
        raise ValueError(f"n_nodes must be at least 3, got {n_nodes}")
    threshold = _default_threshold(volume) if threshold is None else float(threshold)
    generator = torch.Generator().manual_seed(seed)
    n_samples = n_samples or max(20 * n_nodes, 5000)
    points = density_samples(
        volume,
        n_samples,
        pixel_size_angstrom=pixel_size_angstrom,
        threshold=threshold,
        generator=generator,
    )
    start = torch.randperm(n_samples, generator=generator)[:n_nodes].to(points.device)
    nodes = points[start].clone()
    lam0 = lambda_initial if lambda_initial is not None else min(10.0, n_nodes / 2)
    for epoch in range(n_epochs):
        fraction = epoch / max(1, n_epochs - 1)
        nodes = _neural_gas_step(points, nodes, lam0 * (lambda_final / lam0) ** fraction)
    return TopologyNetwork(
        nodes_angstrom=nodes.double(), edges=_hebbian_edges(points, nodes), threshold=threshold
    )
