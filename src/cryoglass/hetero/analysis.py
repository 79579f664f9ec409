"""Analysis of per-particle latent means: PCA, UMAP, k-means, Gaussian mixtures, trajectories.

Latents ``Z`` are (N, zdim) posterior means, one row per particle in star order.  Everything
here is plain linear algebra on ``Z`` (torch), except UMAP (the optional ``umap-learn``
package) and the shortest paths (:func:`scipy.sparse.csgraph.dijkstra`).

References
----------
Zhong et al. (2021) Nat. Methods 18:176-185 (latent analysis of cryoDRGN).
https://doi.org/10.1038/s41592-020-01049-4
Lloyd (1982) Least squares quantization in PCM. IEEE Trans. Inf. Theory 28:129-137.
https://doi.org/10.1109/TIT.1982.1056489
Hubert & Arabie (1985) Comparing partitions. J. Classif. 2:193-218.
https://doi.org/10.1007/BF01908075
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "GaussianMixture",
    "PCA",
    "adjusted_rand_index",
    "gaussian_mixture",
    "graph_traversal",
    "kmeans",
    "knn_graph",
    "nearest_points",
    "pc_trajectory",
    "pca",
    "umap_embedding",
]


@dataclass(frozen=True, eq=False)
class PCA:
    """Principal components of latents.

    Attributes
    ----------
    mean : Tensor (zdim,)
    components : Tensor (n_pcs, zdim)
        Unit row vectors, by decreasing variance (sign: largest |entry| positive).
    explained_variance : Tensor (n_pcs,)
    projections : Tensor (N, n_pcs)
        ``(Z − mean) · componentsᵀ``.
    """

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor
    projections: torch.Tensor


def pca(latents: torch.Tensor, *, n_components: int | None = None) -> PCA:
    """PCA of (N, zdim) latents by SVD of the centred matrix.

    Notes
    -----
    ``Z − μ = U S Vᵀ``; components are the rows of ``Vᵀ``, variances ``S² / (N − 1)``.
    """
    z = torch.as_tensor(latents, dtype=torch.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"pca needs latents of shape (N >= 2, zdim), got {tuple(z.shape)}")
    k = min(z.shape) if n_components is None else min(n_components, *z.shape)
    mean = z.mean(dim=0)
    _, s, vt = torch.linalg.svd(z - mean, full_matrices=False)
    components = vt[:k]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    components = components * signs
    return PCA(mean, components, s[:k] ** 2 / (z.shape[0] - 1), (z - mean) @ components.T)


def kmeans(
    latents: torch.Tensor, k: int, *, n_iter: int = 100, n_init: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means (Lloyd) with k-means++ seeding; the best of ``n_init`` runs.

    Parameters
    ----------
    latents : Tensor (N, zdim)
    k : int
    n_iter, n_init : int
    seed : int

    Returns
    -------
    labels : Tensor, int64, (N,)
    centers : Tensor, float64, (k, zdim)

    Notes
    -----
    Minimises :math:`\\sum_i \\min_j |z_i - c_j|^2`.
    """
    z = torch.as_tensor(latents, dtype=torch.float64)
    if not 1 <= k <= z.shape[0]:
        raise ValueError(f"kmeans: need 1 <= k <= N = {z.shape[0]}, got k = {k}")
    generator = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(n_init):
        centers = _kmeans_pp(z, k, generator)
        for _ in range(n_iter):
            labels = torch.cdist(z, centers).argmin(dim=1)
            counts = torch.bincount(labels, minlength=k).to(z.dtype)
            sums = torch.zeros_like(centers).index_add_(0, labels, z)
            new = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centers)
            if torch.allclose(new, centers):
                break
            centers = new
        labels = torch.cdist(z, centers).argmin(dim=1)
        inertia = float(((z - centers[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centers)
    return best[1], best[2]


def _kmeans_pp(z: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    first = torch.randint(z.shape[0], (1,), generator=generator)
    centers = z[first]
    for _ in range(k - 1):
        d2 = torch.cdist(z, centers).min(dim=1).values ** 2
        p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1 / len(d2))
        centers = torch.cat([centers, z[torch.multinomial(p, 1, generator=generator)]])
    return centers


def nearest_points(latents: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Index of the particle whose latent is closest to each point: (K,) int64.

    (Volumes are then made at *observed* latents, as cryoDRGN does for k-means centres.)
    """
    z = torch.as_tensor(latents, dtype=torch.float64)
    return torch.cdist(torch.as_tensor(points, dtype=torch.float64), z).argmin(dim=1)


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A fitted Gaussian mixture (full covariances).

    Attributes
    ----------
    weights : Tensor (K,)
    means : Tensor (K, zdim)
    covariances : Tensor (K, zdim, zdim)
    labels : Tensor, int64, (N,)
        Most probable component of each particle.
    log_likelihood : float
        Mean log-likelihood per particle.
    """

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    labels: torch.Tensor
    log_likelihood: float


def gaussian_mixture(
    latents: torch.Tensor, k: int, *, n_iter: int = 200, seed: int = 0, reg: float = 1e-6
) -> GaussianMixture:
    """Fit a K-component Gaussian mixture by EM, initialised from k-means.

    Notes
    -----
    E step: responsibilities :math:`r_{ij} \\propto \\pi_j \\mathcal N(z_i; \\mu_j, \\Sigma_j)`;
    M step: :math:`\\pi_j = \\bar r_j`, :math:`\\mu_j`, :math:`\\Sigma_j` the weighted mean and
    covariance (+ ``reg`` · I).
    """
    z = torch.as_tensor(latents, dtype=torch.float64)
    n, dim = z.shape
    labels, means = kmeans(z, k, seed=seed)
    resp = torch.nn.functional.one_hot(labels, k).to(z.dtype)
    eye = torch.eye(dim, dtype=z.dtype)
    previous = -math.inf
    log_lik = previous
    for _ in range(n_iter):
        nk = resp.sum(dim=0) + 1e-12
        weights = nk / n
        means = resp.T @ z / nk[:, None]
        centred = z[None] - means[:, None]  # (K, N, dim)
        cov = torch.einsum("kn,kni,knj->kij", resp.T, centred, centred) / nk[:, None, None]
        cov = cov + reg * eye
        dist = torch.distributions.MultivariateNormal(means, covariance_matrix=cov)
        log_p = dist.log_prob(z[:, None]) + torch.log(weights)  # (N, K)
        log_norm = torch.logsumexp(log_p, dim=1, keepdim=True)
        resp = torch.exp(log_p - log_norm)
        log_lik = float(log_norm.mean())
        if abs(log_lik - previous) < 1e-8:
            break
        previous = log_lik
    return GaussianMixture(weights, means, cov, resp.argmax(dim=1), log_lik)


def pc_trajectory(
    result: PCA, pc: int, *, n_points: int = 10, percentiles: tuple[float, float] = (5.0, 95.0)
) -> torch.Tensor:
    """Latent points along one principal component, between two percentiles of its projections.

    Parameters
    ----------
    result : PCA
    pc : int
        1-based component number.
    n_points : int
    percentiles : (float, float)

    Returns
    -------
    Tensor, float64, (n_points, zdim)
        ``mean + t · component`` for ``t`` evenly spaced between the percentiles.
    """
    if not 1 <= pc <= result.components.shape[0]:
        raise ValueError(f"pc must be in 1..{result.components.shape[0]}, got {pc}")
    values = result.projections[:, pc - 1]
    low, high = torch.quantile(values, torch.tensor(percentiles, dtype=values.dtype) / 100)
    t = torch.linspace(float(low), float(high), n_points, dtype=torch.float64)
    return result.mean + t[:, None] * result.components[pc - 1]


def knn_graph(latents: torch.Tensor, *, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric k-nearest-neighbour graph of the latents.

    Returns
    -------
    edges : Tensor, int64, (E, 2)
    lengths : Tensor, float64, (E,)
        Euclidean distances.
    """
    z = torch.as_tensor(latents, dtype=torch.float64)
    k = min(k, z.shape[0] - 1)
    dist = torch.cdist(z, z)
    dist.fill_diagonal_(math.inf)
    lengths, neighbours = dist.topk(k, dim=1, largest=False)
    rows = torch.arange(z.shape[0]).repeat_interleave(k)
    edges = torch.stack([rows, neighbours.reshape(-1)], dim=1)
    return edges, lengths.reshape(-1)


def graph_traversal(
    latents: torch.Tensor, anchors: list[int], *, k: int = 10
) -> tuple[torch.Tensor, float]:
    """Shortest path through the kNN graph visiting the anchor particles in order.

    Parameters
    ----------
    latents : Tensor (N, zdim)
    anchors : list of int
        Particle indices (≥ 2).
    k : int
        Neighbours per particle.

    Returns
    -------
    path : Tensor, int64
        Particle indices along the path (anchors included).
    length : float
        Total latent distance.

    Raises
    ------
    ValueError
        If two consecutive anchors are not connected in the graph (increase ``k``).

    Notes
    -----
    Dijkstra's algorithm on the undirected graph with edge weights ``|z_i − z_j|``: the path
    stays where particles are (dense latent regions), unlike a straight line in latent space.
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    n = latents.shape[0]
    if len(anchors) < 2 or any(not 0 <= a < n for a in anchors):
        raise ValueError(f"graph_traversal: need >= 2 anchors in 0..{n - 1}, got {anchors}")
    edges, lengths = knn_graph(latents, k=k)
    e, w = edges.numpy(), lengths.numpy()
    graph = coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    path, total = [anchors[0]], 0.0
    for start, stop in zip(anchors[:-1], anchors[1:], strict=True):
        dist, pred = dijkstra(graph, directed=False, indices=start, return_predecessors=True)
        if not np.isfinite(dist[stop]):
            raise ValueError(
                f"graph_traversal: particles {start} and {stop} are not connected in the "
                f"{k}-nearest-neighbour graph; use a larger k"
            )
        leg, node = [], stop
        while node != start:
            leg.append(int(node))
            node = pred[node]
        path.extend(reversed(leg))
        total += float(dist[stop])
    return torch.tensor(path, dtype=torch.int64), total


def umap_embedding(latents: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """2D UMAP embedding of the latents (needs the optional package ``umap-learn``).

    Raises
    ------
    ImportError
        With an explanation when ``umap-learn`` is not installed.
    """
    import warnings

    try:
        with warnings.catch_warnings():  # "Tensorflow not installed; ParametricUMAP ..."
            warnings.simplefilter("ignore", ImportWarning)
            import umap  # type: ignore[import-not-found]
    except ImportError as error:
        raise ImportError(
            "UMAP needs the optional package umap-learn (pip install 'cryoglass[umap]' or "
            "pip install umap-learn); PCA plots are made without it"
        ) from error
    z = torch.as_tensor(latents, dtype=torch.float64).numpy()
    # n_jobs=1: a fixed random_state makes UMAP single-threaded anyway (and warn otherwise)
    reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1)
    return torch.as_tensor(reducer.fit_transform(z), dtype=torch.float64)


def adjusted_rand_index(labels_a: torch.Tensor, labels_b: torch.Tensor) -> float:
    """Adjusted Rand index between two partitions (1: identical up to relabelling, ~0: chance).

    Notes
    -----
    From the contingency table ``n_ij``, with ``a_i``, ``b_j`` its row and column sums:
    :math:`\\mathrm{ARI} = \\frac{\\sum \\binom{n_{ij}}{2} - E}{\\tfrac12[\\sum\\binom{a_i}{2}
    + \\sum\\binom{b_j}{2}] - E}`, with
    :math:`E = \\sum\\binom{a_i}{2}\\sum\\binom{b_j}{2}/\\binom{n}{2}`.
    """
    a = torch.unique(torch.as_tensor(labels_a), return_inverse=True)[1]
    b = torch.unique(torch.as_tensor(labels_b), return_inverse=True)[1]
    if a.shape != b.shape:
        raise ValueError("adjusted_rand_index: label arrays differ in length")
    table = torch.zeros(int(a.max()) + 1, int(b.max()) + 1, dtype=torch.float64)
    table.index_put_((a, b), torch.ones_like(a, dtype=torch.float64), accumulate=True)

    def pairs(x: torch.Tensor) -> torch.Tensor:
        return (x * (x - 1) / 2).sum()

    index = pairs(table)
    rows, cols = pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (a.numel() * (a.numel() - 1) / 2)
    maximum = (rows + cols) / 2
    if float(maximum - expected) == 0:
        return 1.0
    return float((index - expected) / (maximum - expected))
