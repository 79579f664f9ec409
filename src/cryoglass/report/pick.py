"""Figures of particle picking: picks drawn on the micrograph, and the FOM histogram.

* :func:`save_picks_overlay` — the (binned, low-pass) micrograph with a circle of the particle
  diameter on every pick (and, when given, the true positions as crosses).
* :func:`save_fom_histogram` — the figure of merit of every candidate peak, with the threshold
  that separates picks from background: the plot a user moves the threshold on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["save_fom_histogram", "save_picks_overlay"]


def save_picks_overlay(
    path: str | os.PathLike,
    image: Any,
    picks_px: Any,
    *,
    radius_px: float,
    title: str,
    truth_px: Any | None = None,
) -> Path:
    """A micrograph with circles on the picks (PNG).

    Parameters
    ----------
    path : path-like
        The PNG (replaced if it exists).
    image : Tensor or array (h, w)
        The micrograph as shown (e.g. binned); the picks are in its pixels.
    picks_px : Tensor or array (n, 2)
        Pick centres ``(x, y)`` [pixels of ``image``].
    radius_px : float
        Circle radius [pixels of ``image``] (the particle's).
    title : str
    truth_px : Tensor or array (m, 2), optional
        True centres, drawn as small crosses.

    Returns
    -------
    Path
    """
    import numpy as np

    from cryoglass.report.figures import pyplot, save_figure

    plt = pyplot()
    array = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=float)
    picks = np.asarray(picks_px, dtype=float).reshape(-1, 2)
    low, high = np.percentile(array, [1, 99])
    h, w = array.shape
    fig, ax = plt.subplots(figsize=(8, 8 * h / w))
    ax.imshow(array, cmap="gray", vmin=low, vmax=high, origin="upper")
    for x, y in picks:
        ax.add_patch(plt.Circle((x, y), radius_px, fill=False, color="tab:green", lw=0.8))
    if truth_px is not None:
        truth = np.asarray(truth_px, dtype=float).reshape(-1, 2)
        ax.plot(truth[:, 0], truth[:, 1], "x", color="tab:red", ms=4, label="truth")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title(f"{title}: {len(picks)} picks", fontsize=10)
    ax.axis("off")
    return save_figure(fig, path)


def save_fom_histogram(
    path: str | os.PathLike,
    figures_of_merit: Sequence[float] | Any,
    *,
    threshold: float,
    automatic: bool,
    title: str,
) -> Path:
    """Histogram of the candidates' figures of merit with the threshold (PNG).

    Parameters
    ----------
    path : path-like
    figures_of_merit : sequence of float
        FOM of every candidate peak (picked or not).
    threshold : float
        Picks have FOM ≥ threshold.
    automatic : bool
        Whether the threshold was chosen automatically — said in the legend.
    title : str

    Returns
    -------
    Path
    """
    import numpy as np

    from cryoglass.report.figures import pyplot, save_figure

    plt = pyplot()
    values = np.asarray(figures_of_merit, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    if values.size:
        bins = np.histogram_bin_edges(values, bins=min(100, max(10, values.size // 20)))
        ax.hist(values[values < threshold], bins=bins, color="0.6", label="background")
        ax.hist(values[values >= threshold], bins=bins, color="tab:green",
                label=f"picked ({int((values >= threshold).sum())})")  # fmt: skip
    how = "automatic" if automatic else "given"
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3g} ({how})")
    if values.size:
        span = float(values.max() - values.min()) or 1.0
        low = min(float(values.min()), max(threshold, float(values.min()) - 0.1 * span))
        high = max(float(values.max()), min(threshold, float(values.max()) + 0.1 * span))
        ax.set_xlim(low - 0.02 * span, high + 0.02 * span)
    ax.set(xlabel="figure of merit (rlnAutopickFigureOfMerit)", ylabel="candidate peaks",
           title=title)  # fmt: skip
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
