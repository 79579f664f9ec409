"""Figures shared by commands, reports, the demo and the web app: the one home for plots.

Every PNG cryoglass writes is drawn here (or by a function here that a command calls) and saved
through :func:`save_figure`, which writes atomically.  :func:`pyplot` is the only place that
chooses matplotlib's backend (``Agg``: no screen needed); modules that draw import pyplot through
it, inside the function that draws, so that importing cryoglass never imports matplotlib.

One FSC plot (:func:`plot_fsc` on axes, :func:`save_fsc_figure` to a file) serves ``fsc``,
``reconstruct --halves``, ``postprocess``, ``3dfsc`` and the demo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "FSC_THRESHOLDS",
    "pyplot",
    "save_figure",
    "plot_fsc",
    "save_fsc_figure",
    "fsc_summary_figure",
    "plot_guinier",
    "save_guinier_figure",
    "save_3dfsc_figures",
    "image_tiles",
    "plot_direction_density",
    "plot_thickness_voltage_table",
]

#: Threshold lines drawn on every FSC plot: 0.143 (half maps) dashed, 0.5 (map vs model) dotted.
FSC_THRESHOLDS: tuple[tuple[float, str], ...] = ((0.143, "--"), (0.5, ":"))

_BACKEND_SET = False

#: Legend labels of the curve names used in JSON and :class:`cryoglass.validate.FSCSummary`.
_CURVE_LABELS = {
    "fsc": "FSC",
    "fsc_corrected": "corrected FSC",
    "fsc_unmasked": "unmasked",
    "fsc_masked": "masked",
    "fsc_phase_randomized": "phase-randomised masked",
}


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive ``Agg`` backend (chosen once, here).

    A process that imported ``matplotlib.pyplot`` before (a Jupyter kernel with its inline
    backend, a lesson, a user's script) keeps the backend it chose, so figures drawn here show
    in notebooks.

    Returns
    -------
    module
        ``matplotlib.pyplot``.
    """
    global _BACKEND_SET
    if not _BACKEND_SET:
        import sys

        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        _BACKEND_SET = True
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary file, then rename) and close it.

    Parameters
    ----------
    figure : matplotlib Figure
    path : path-like
        The PNG to write; an existing file is replaced.
    dpi : int

    Returns
    -------
    Path
    """
    from cryoglass.io._atomic import atomic_write

    plt = pyplot()
    try:
        return atomic_write(
            path,
            lambda tmp: figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"),
            overwrite=True,
        )
    finally:
        plt.close(figure)


def plot_fsc(
    ax,
    frequency_inv_angstrom: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    resolution_angstrom: float | None = None,
    title: str | None = None,
    emphasise: str | None = None,
    thresholds: Sequence[tuple[float, str]] = FSC_THRESHOLDS,
) -> None:
    """Draw FSC curves against spatial frequency with the threshold lines.

    Parameters
    ----------
    ax : matplotlib Axes
    frequency_inv_angstrom : (n_shells,)
        Shell frequencies ``k_i = i / (box · pixel)`` [1/Å].
    curves : mapping label → (n_shells,)
        The curves, drawn in order (the legend shows the labels).
    resolution_angstrom : float, optional
        Marked by a dotted vertical line at ``1/resolution``.
    title : str, optional
    emphasise : str, optional
        Label of the curve drawn thicker (e.g. the corrected FSC).
    thresholds : sequence of (level, linestyle)
        Horizontal lines (0.143 dashed and 0.5 dotted by default).
    """
    import numpy as np

    freq = np.asarray(frequency_inv_angstrom, dtype=float)
    for label, values in curves.items():
        ax.plot(
            freq,
            np.asarray(values, dtype=float),
            lw=1.9 if label == emphasise else 1.1,
            label=label,
        )
    for level, style in thresholds:
        ax.axhline(level, color="0.5", lw=0.7, ls=style)
    ax.axhline(0.0, color="0.85", lw=0.5)
    if resolution_angstrom is not None and resolution_angstrom > 0:
        ax.axvline(1.0 / resolution_angstrom, color="k", lw=0.7, ls=":")
    ax.set(
        xlabel="spatial frequency [1/Å]",
        ylabel="Fourier shell correlation",
        xlim=(0, float(freq[-1])),
        ylim=(-0.1, 1.02),
    )
    if title:
        ax.set_title(title, fontsize=10)
    if curves:
        ax.legend(fontsize=8)


def save_fsc_figure(
    path: str | Path,
    frequency_inv_angstrom: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    resolution_angstrom: float | None = None,
    title: str | None = None,
    emphasise: str | None = None,
) -> Path:
    """:func:`plot_fsc` on a figure of its own, saved as PNG (atomically)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_fsc(
        ax,
        frequency_inv_angstrom,
        curves,
        resolution_angstrom=resolution_angstrom,
        title=title,
        emphasise=emphasise,
    )
    return save_figure(fig, path)


def fsc_summary_figure(path: str | Path, summary: Any, *, title: str) -> Path:
    """The FSC plot of a :class:`cryoglass.validate.FSCSummary` (all its curves)."""
    curves = {_CURVE_LABELS.get(summary.label, summary.label): summary.fsc.tolist()}
    curves.update(
        {_CURVE_LABELS.get(name, name): curve.tolist() for name, curve in summary.curves.items()}
    )
    res = summary.resolution_0143_angstrom
    text = (
        f"{res:.2f} Å at FSC = 0.143"
        if summary.crossed_0143
        else (f"FSC ≥ 0.143 up to Nyquist ({res:.2f} Å)")
    )
    return save_fsc_figure(
        path,
        summary.frequency_inv_angstrom.tolist(),
        curves,
        resolution_angstrom=res,
        title=f"{title}: {text}",
        emphasise=_CURVE_LABELS.get(summary.label, summary.label),
    )


def plot_guinier(ax, result: Any, *, title: str = "Guinier plot") -> None:
    """Guinier plot of a :class:`cryoglass.validate.PostprocessResult` on ``ax``: ln⟨|F|⟩ vs k².

    Draws the input (average of the halves), the FSC-weighted and the sharpened amplitudes, the
    fitted line (``slope = −B/4``) over its range and the final resolution.
    """
    k2 = result.guinier_k2.cpu().numpy()
    for label, curve in (
        ("input (average of halves)", result.guinier_input),
        ("FSC-weighted", result.guinier_weighted),
        (f"sharpened, B = {result.bfactor_a2:.1f} Å²", result.guinier_sharpened),
    ):
        values = curve.cpu().numpy()
        keep = values > -1e30
        ax.plot(k2[keep][1:], values[keep][1:], lw=1.1, label=label)
    if result.fit is not None:
        x = k2[k2 >= 1.0 / 100.0]
        ax.plot(
            x,
            float(result.fit.intercept) + float(result.fit.slope) * x,
            "k--",
            lw=0.8,
            label=f"fit: slope {float(result.fit.slope):.2f} Å²",
        )
    ax.axvline(1.0 / result.resolution_angstrom**2, color="k", lw=0.7, ls=":")
    ax.set(xlabel="k² [1/Å²]", ylabel="ln <|F|>", title=title)
    ax.legend(fontsize=8)


def save_guinier_figure(path: str | Path, result: Any, *, title: str = "Guinier plot") -> Path:
    """:func:`plot_guinier` on a figure of its own, saved as PNG (atomically)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_guinier(ax, result, title=title)
    return save_figure(fig, path)


def image_tiles(
    images: Any, titles: Sequence[str], path: str | Path, *, cmap: str = "gray", columns: int = 4
) -> Path:
    """Images (2D arrays or tensors) with titles on a grid of at most ``columns`` per row (PNG)."""
    import math

    import numpy as np

    plt = pyplot()
    count = len(images)
    cols = min(count, columns)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles, strict=False):
        array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
        ax.imshow(array, cmap=cmap, origin="lower")
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def plot_direction_density(
    directions: Any,
    *,
    ax=None,
    projection: str = "mollweide",
    title: str | None = None,
    n_azimuths: int = 72,
    n_bands: int = 36,
):
    """Equal-area map (Mollweide or Hammer) of the direction density relative to uniform.

    Parameters
    ----------
    directions : Tensor, shape (N, 3)
    ax : matplotlib Axes, optional
        Must have the same ``projection``; a new figure is made when omitted.
    projection : {"mollweide", "hammer"}
    title : str, optional
    n_azimuths, n_bands : int
        See :func:`cryoglass.validate.direction_density`.

    Returns
    -------
    matplotlib Figure
        Colour = density · 4π (1 = uniform), longitude = rot (azimuth of ``d``), latitude =
        90° − tilt.
    """
    import math

    from cryoglass.validate.orientations import direction_density

    plt = pyplot()
    if projection not in ("mollweide", "hammer"):
        raise ValueError(f"projection must be 'mollweide' or 'hammer', got {projection!r}")
    density, az, lat = direction_density(directions, n_azimuths=n_azimuths, n_bands=n_bands)
    if ax is None:
        fig = plt.figure(figsize=(7, 3.8))
        ax = fig.add_subplot(111, projection=projection)
    mesh = ax.pcolormesh(
        az.numpy(), lat.numpy(), (4 * math.pi * density).numpy(), cmap="viridis", shading="flat"
    )
    ax.figure.colorbar(
        mesh, ax=ax, orientation="horizontal", pad=0.08, shrink=0.7, label="density / uniform"
    )
    ax.grid(True, lw=0.3, color="w")
    ax.set_xticklabels([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure


def plot_thickness_voltage_table(rows: list[dict[str, float]], *, key: str = "ncc_projection_high"):
    """One column of :func:`cryoglass.simulate.thickness_voltage_table` against thickness.

    A line per voltage.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for voltage in sorted({r["voltage_kv"] for r in rows}):
        sel = [r for r in rows if r["voltage_kv"] == voltage]
        ax.plot(
            [r["thickness_angstrom"] for r in sel],
            [r[key] for r in sel],
            "o-",
            label=f"{voltage:g} kV",
        )
    ax.set_xlabel("specimen thickness [Å]")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_title("multislice vs projection approximation")
    ax.legend()
    fig.tight_layout()
    return fig


def save_3dfsc_figures(out: str | Path, result: Any) -> tuple[Path, Path]:
    """``histogram.png`` and ``fsc.png`` of a :class:`cryoglass.validate.ThreeDFSC` in ``out``.

    The histogram shows the directional resolutions (% of cones) with the global FSC and the
    mean directional FSC ± 1 SD; ``fsc.png`` draws 60 conical FSCs in grey over the global FSC
    (:func:`plot_fsc`).
    """
    import torch

    plt = pyplot()
    out = Path(out)

    freq = result.frequency_inv_angstrom.numpy()
    res = result.directional_resolution_angstrom
    valid = res[~torch.isnan(res)]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if valid.numel():
        ax.hist(
            (1.0 / valid).numpy(),
            bins=20,
            range=(0, float(freq[-1])),
            color="#4878cf",
            alpha=0.7,
            weights=100.0 * torch.ones_like(valid).numpy() / res.numel(),
        )
    ax.set(xlabel="directional resolution at FSC = 0.143 [1/Å]", ylabel="% of cones")
    ax2 = ax.twinx()
    # a cone with no voxels in a (low) shell has FSC exactly 0: leave it out of the curves
    cones = torch.where(result.cone_fsc == 0, torch.nan, result.cone_fsc)
    mean_t = cones.nanmean(0)
    mean = mean_t.numpy()
    std = ((cones - mean_t) ** 2).nanmean(0).sqrt().numpy()
    ax2.plot(freq, result.global_fsc.numpy(), color="#d62728", lw=2.5, label="global FSC")
    ax2.plot(freq, mean + std, "g--", lw=1, label="directional FSC ± 1 SD")
    ax2.plot(freq, mean - std, "g--", lw=1)
    ax2.axhline(result.fsc_threshold, color="0.5", ls=":", lw=0.8)
    ax2.set(ylim=(-0.05, 1.02), ylabel="FSC", xlim=(0, float(freq[-1])))
    ax2.legend(fontsize=8, loc="upper right")
    g = result.global_resolution_angstrom
    ax.set_title(
        f"3DFSC: sphericity {result.sphericity:.3f}, global "
        + (f"{g:.2f} Å" if g is not None else "none"),
        fontsize=10,
    )
    fig_h = fig

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i in torch.linspace(0, result.cone_fsc.shape[0] - 1, 60).long().tolist():
        ax.plot(freq, cones[i].numpy(), color="0.7", lw=0.5)
    plot_fsc(
        ax,
        freq,
        {"global FSC": result.global_fsc.numpy()},
        title=f"conical FSCs ({result.cone_half_angle_deg:g}° cones, 60 of "
        f"{result.cone_fsc.shape[0]}) and the global FSC",
        emphasise="global FSC",
    )
    return save_figure(fig_h, out / "histogram.png"), save_figure(fig, out / "fsc.png")
