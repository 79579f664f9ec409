"""cryoglass.hetero.analysis: PCA, k-means, ARI, Gaussian mixtures, trajectories, traversal."""

from __future__ import annotations

import sys

import pytest
import torch

from cryoglass.hetero import (
    adjusted_rand_index,
    gaussian_mixture,
    graph_traversal,
    kmeans,
    knn_graph,
    nearest_points,
    pc_trajectory,
    pca,
    umap_embedding,
)


def _two_clusters(generator, n=200):
    labels = torch.arange(n) % 2
    centres = torch.tensor([[-3.0, 0.0, 1.0], [3.0, 1.0, -1.0]], dtype=torch.float64)
    return centres[labels] + 0.5 * torch.randn(
        n, 3, generator=generator, dtype=torch.float64
    ), labels


def test_pca_finds_the_direction_of_largest_variance(generator):
    t = torch.randn(500, generator=generator, dtype=torch.float64)
    direction = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64) / 3
    z = t[:, None] * 5 * direction + 0.1 * torch.randn(
        500, 3, generator=generator, dtype=torch.float64
    )
    result = pca(z)
    assert abs(float(result.components[0] @ direction)) > 0.999
    assert abs(float(torch.corrcoef(torch.stack([result.projections[:, 0], t]))[0, 1])) > 0.999
    assert result.explained_variance[0] == pytest.approx(25, rel=0.15)
    assert torch.all(result.explained_variance[:-1] >= result.explained_variance[1:])


def test_kmeans_recovers_two_clusters(generator):
    z, truth = _two_clusters(generator)
    labels, centres = kmeans(z, 2)
    assert adjusted_rand_index(labels, truth) == 1.0
    assert centres.shape == (2, 3)
    on_data = nearest_points(z, centres)
    assert torch.equal(labels[on_data], torch.tensor([0, 1]))


def test_adjusted_rand_index_values(generator):
    a = torch.tensor([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(a, torch.tensor([5, 5, 3, 3, 9, 9])) == 1.0
    # hand-computed: table [[2,0],[0,2],[1,1]] pairs 2, rows 3, cols 6, E = 18/15
    b = torch.tensor([0, 0, 1, 1, 0, 1])
    assert adjusted_rand_index(a, b) == pytest.approx((2 - 1.2) / (4.5 - 1.2))
    x = torch.randint(0, 3, (4000,), generator=generator)
    y = torch.randint(0, 3, (4000,), generator=generator)
    assert abs(adjusted_rand_index(x, y)) < 0.02


def test_gaussian_mixture_weights_and_means(generator):
    n1, n2 = 300, 100
    z = torch.cat(
        [
            torch.randn(n1, 2, generator=generator, dtype=torch.float64) * 0.5,
            torch.randn(n2, 2, generator=generator, dtype=torch.float64) * 0.5 + 4,
        ]
    )
    fit = gaussian_mixture(z, 2)
    order = torch.argsort(fit.weights, descending=True)
    assert torch.allclose(
        fit.weights[order], torch.tensor([0.75, 0.25], dtype=torch.float64), atol=0.02
    )
    assert torch.allclose(
        fit.means[order[1]], torch.tensor([4.0, 4.0], dtype=torch.float64), atol=0.15
    )
    assert torch.allclose(
        fit.covariances[order[0]], 0.25 * torch.eye(2, dtype=torch.float64), atol=0.06
    )


def test_pc_trajectory_spans_the_percentiles(generator):
    z = torch.randn(1000, 4, generator=generator, dtype=torch.float64) * torch.tensor(
        [4.0, 1, 1, 1]
    )
    result = pca(z)
    points = pc_trajectory(result, 1, n_points=5)
    along = (points - result.mean) @ result.components[0]
    assert along[0] == pytest.approx(float(torch.quantile(result.projections[:, 0], 0.05)))
    assert along[-1] == pytest.approx(float(torch.quantile(result.projections[:, 0], 0.95)))
    with pytest.raises(ValueError, match="pc must be"):
        pc_trajectory(result, 9)


def test_graph_traversal_follows_the_data(generator):
    """On a half circle of points, the path between its ends goes round, not across."""
    angle = torch.linspace(0, torch.pi, 200, dtype=torch.float64)
    z = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    z = z + 0.005 * torch.randn(z.shape, generator=generator, dtype=torch.float64)
    path, length = graph_traversal(z, [0, 199], k=4)
    assert int(path[0]) == 0 and int(path[-1]) == 199
    assert length == pytest.approx(torch.pi, rel=0.1)  # arc, not the chord of length 2
    assert torch.all(torch.diff(path) > 0)  # monotone along the arc
    edges, lengths = knn_graph(z, k=4)
    assert edges.shape == (800, 2) and (lengths > 0).all()


def test_graph_traversal_disconnected_is_explained(generator):
    z, _ = _two_clusters(generator, n=40)
    with pytest.raises(ValueError, match="not connected"):
        graph_traversal(z, [0, 1], k=2)


def test_umap_separates_two_clusters(generator):
    """umap-learn is a dev dependency: the embedding must keep two clusters apart."""
    z, truth = _two_clusters(generator, n=60)
    embedding = umap_embedding(z)
    assert embedding.shape == (60, 2) and torch.isfinite(embedding).all()
    labels, _ = kmeans(embedding, 2)
    assert adjusted_rand_index(labels, truth) == pytest.approx(1.0)
    assert torch.equal(umap_embedding(z), embedding)  # seeded


def test_umap_missing_is_explained(generator, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    z, _ = _two_clusters(generator, n=20)
    with pytest.raises(ImportError, match="umap-learn"):
        umap_embedding(z)
