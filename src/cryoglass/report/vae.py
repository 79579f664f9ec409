"""Figures of ``cryoglass vae``: learning curve, latent scatter plots and volume projections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryoglass.report.figures import pyplot, save_figure

__all__ = ["save_latent_scatter", "save_learning_curve", "save_volume_projections"]


def save_learning_curve(history: list[dict[str, float]], path: str | Path) -> Path:
    """Total and reconstruction loss per Fourier pixel against the epoch, as a PNG.

    Parameters
    ----------
    history : list of dict
        One entry per epoch with ``epoch``, ``loss`` and ``reconstruction``.
    path : path-like
        The PNG to write (replaced if it exists).

    Returns
    -------
    Path
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], "o-", label="total")
    ax.plot(epochs, [h["reconstruction"] for h in history], "s--", label="reconstruction")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per Fourier pixel")
    ax.legend()
    ax.set_title("learning curve")
    return save_figure(fig, path)


def save_latent_scatter(
    points: torch.Tensor,
    colours: np.ndarray,
    path: str | Path,
    *,
    title: str,
    labels: tuple[str, str],
) -> Path:
    """Scatter plot of 2D (or 1D) latent coordinates, coloured by cluster, as a PNG.

    Parameters
    ----------
    points : Tensor (n, 2) or (n, 1)
        Coordinates (e.g. PCA projections or a UMAP embedding); one column is drawn at y = 0.
    colours : ndarray (n,)
        Cluster label of each point (``tab20`` colour map).
    path : path-like
        The PNG to write (replaced if it exists).
    title : str
    labels : (str, str)
        Axis labels (x, y).

    Returns
    -------
    Path
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    p = points.numpy()
    ax.scatter(p[:, 0], p[:, 1] if p.shape[1] > 1 else 0 * p[:, 0], c=colours, s=4, cmap="tab20")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    return save_figure(fig, path)


def save_volume_projections(volumes: torch.Tensor, path: str | Path) -> Path:
    """Projections along z of a few volumes, 10 per row, numbered from 0, as a PNG.

    Parameters
    ----------
    volumes : Tensor (k, D, D, D)
        Maps indexed (z, y, x).
    path : path-like
        The PNG to write (replaced if it exists).

    Returns
    -------
    Path
    """
    plt = pyplot()
    k = volumes.shape[0]
    cols = min(k, 10)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.4 * rows), squeeze=False)
    for ax in axes.reshape(-1):
        ax.axis("off")
    for i, volume in enumerate(volumes):
        ax = axes.reshape(-1)[i]
        ax.imshow(volume.sum(dim=0).numpy(), cmap="gray")
        ax.set_title(f"{i}", fontsize=7)
    return save_figure(fig, path)
