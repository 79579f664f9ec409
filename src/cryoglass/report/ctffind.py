"""Figures of CTF estimation and micrograph selection: the diagnostics users judge them by.

* :func:`save_ctffind_figure` — CTFFIND's two pictures side by side: the power spectrum with the
  fitted CTF in its left half (the rings must continue across the middle), and the 1D
  equi-phase average of the spectrum against ``|CTF|`` with the local correlation and the fit
  resolution.
* :func:`save_selection_figure` — ``select-micrographs``: histograms of fit resolution, mean
  defocus, astigmatism (and drift), and fit resolution against defocus, with the cuts drawn and
  the rejected micrographs in another colour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryoglass.preprocess.ctffind import CTFFit

__all__ = ["save_ctffind_figure", "save_selection_figure"]


def save_ctffind_figure(path: str | os.PathLike, fit: CTFFit, *, title: str) -> Path:
    """The spectrum with the fit in one half, and the 1D average against the fit (PNG).

    Parameters
    ----------
    path : path-like
        The PNG (replaced if it exists).
    fit : CTFFit
        From :func:`cryoglass.preprocess.estimate_ctf`.
    title : str
        Usually the micrograph's name.

    Returns
    -------
    Path
    """
    import numpy as np

    from cryoglass.preprocess.ctffind import diagnostic_image
    from cryoglass.report.figures import pyplot, save_figure

    plt = pyplot()
    image = diagnostic_image(fit).numpy()
    nyquist = 0.5 / fit.spectrum_pixel_size_angstrom
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.5]})
    extent = [-nyquist, nyquist, -nyquist, nyquist]
    ax1.imshow(image, cmap="gray", origin="lower", extent=extent, vmin=0, vmax=1)
    ax1.axvline(0.0, color="tab:orange", lw=0.6)
    ax1.set(xlabel="k_x [1/Å]", ylabel="k_y [1/Å]", title="fit | spectrum")
    freq = fit.frequency_inv_angstrom.numpy()
    average = fit.rotational_average.numpy()
    model = fit.fit_profile.numpy()
    correlation = fit.fit_correlation.numpy()
    shown = np.isfinite(correlation)
    if shown.any():
        data = average[shown]
        spread = max(float(data.max() - data.min()), 1e-12)
        ax2.plot(freq[shown], (data - data.min()) / spread, lw=0.8, color="k",
                 label="spectrum (equi-phase average)")  # fmt: skip
        ax2.plot(freq[shown], model[shown], lw=0.8, color="tab:red", label="|CTF| fit")
        ax2.plot(freq[shown], correlation[shown], lw=1.0, color="tab:blue",
                 label="local correlation")  # fmt: skip
    k_res = 1.0 / fit.max_resolution_angstrom
    ax2.axvline(k_res, color="tab:green", ls="--", lw=1,
                label=f"fit resolution {fit.max_resolution_angstrom:.2f} Å")  # fmt: skip
    ax2.axhline(0.0, color="0.7", lw=0.5)
    ax2.set(xlabel="spatial frequency [1/Å]", xlim=(0, nyquist), ylim=(-0.5, 1.1))
    ax2.legend(fontsize=8, loc="lower left", framealpha=0.9)
    params = (
        f"U {fit.defocus_u_angstrom:.0f} Å, V {fit.defocus_v_angstrom:.0f} Å, "
        f"angle {fit.astigmatism_angle_deg:.1f}°"
    )
    if fit.phase_shift_deg:
        params += f", phase shift {fit.phase_shift_deg:.1f}°"
    ax2.set_title(f"{params}; CC {fit.figure_of_merit:.3f}", fontsize=9)
    top = ax2.twiny()
    top.set_xlim(ax2.get_xlim())
    marks = [d for d in (50, 20, 10, 7, 5, 4, 3, 2.5, 2) if 1.0 / d <= nyquist]
    top.set_xticks([1.0 / d for d in marks], [f"{d:g}" for d in marks])
    top.set_xlabel("resolution [Å]")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def save_selection_figure(
    path: str | os.PathLike,
    values: Mapping[str, Sequence[float]],
    keep: Sequence[bool],
    *,
    cuts: Mapping[str, tuple[float | None, float | None]],
    title: str,
) -> Path:
    """Histograms of the micrographs' CTF (and drift) values with the cuts, and a scatter plot.

    Parameters
    ----------
    path : path-like
        The PNG (replaced if it exists).
    values : mapping
        ``{"max_resolution_angstrom", "defocus_mean_angstrom", "astigmatism_angstrom"}`` and
        optionally ``"drift_angstrom"`` and ``"figure_of_merit"``: one value per micrograph.
    keep : sequence of bool
        Whether each micrograph passes every cut.
    cuts : mapping
        ``{key: (low, high)}`` drawn as vertical lines (None: no cut on that side).
    title : str

    Returns
    -------
    Path
    """
    import numpy as np

    from cryoglass.report.figures import pyplot, save_figure

    plt = pyplot()
    keep = np.asarray(keep, dtype=bool)
    labels = {
        "max_resolution_angstrom": "CTF fit resolution [Å]",
        "defocus_mean_angstrom": "mean defocus [Å]",
        "astigmatism_angstrom": "astigmatism U − V [Å]",
        "figure_of_merit": "CTF figure of merit",
        "drift_angstrom": "total drift [Å]",
    }
    keys = [k for k in labels if k in values]
    panels = len(keys) + 1
    cols = 3
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel()[panels:]:
        ax.axis("off")
    for ax, key in zip(axes.ravel(), keys, strict=False):
        data = np.asarray(values[key], dtype=float)
        bins = np.histogram_bin_edges(data[np.isfinite(data)], bins=min(40, max(5, len(data))))
        ax.hist([data[keep], data[~keep]], bins=bins, stacked=True,
                color=["tab:blue", "tab:red"], label=["kept", "rejected"])  # fmt: skip
        for limit in cuts.get(key, (None, None)):
            if limit is not None:
                ax.axvline(limit, color="k", ls="--", lw=1)
        ax.set(xlabel=labels[key], ylabel="micrographs")
        if key == keys[0]:
            ax.legend(fontsize=8)
    ax = axes.ravel()[len(keys)]
    x = np.asarray(values["defocus_mean_angstrom"], dtype=float)
    y = np.asarray(values["max_resolution_angstrom"], dtype=float)
    ax.scatter(x[keep], y[keep], s=12, color="tab:blue", label=f"kept ({int(keep.sum())})")
    ax.scatter(x[~keep], y[~keep], s=12, color="tab:red",
               label=f"rejected ({int((~keep).sum())})")  # fmt: skip
    ax.set(xlabel="mean defocus [Å]", ylabel="CTF fit resolution [Å]")
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
