"""Figures of map tools: a mask over its map, local-resolution slices and histogram.

Used by ``cryoglass mask --plot``, ``cryoglass localres``, the demo and lesson 10.  Every
function takes results (tensors or arrays) and a path, draws with :func:`pyplot` and writes
through :func:`save_figure` (atomically).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryoglass.report.figures import pyplot, save_figure

__all__ = [
    "central_slices",
    "save_mask_preview",
    "plot_localres_slices",
    "save_localres_slices",
    "plot_localres_histogram",
    "save_localres_histogram",
    "save_localres_overview",
]

_AXES = ("z", "y", "x")


def _numpy(x: Any):
    import numpy as np

    if hasattr(x, "detach"):
        return x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=float)


def central_slices(volume: Any) -> list:
    """The three central slices of a (d, h, w) map through voxel ``N//2``: z, y and x sections.

    Returns
    -------
    list of 3 arrays: ``v[d//2]`` (h, w), ``v[:, h//2]`` (d, w), ``v[:, :, w//2]`` (d, h).
    """
    v = _numpy(volume)
    d, h, w = v.shape
    return [v[d // 2], v[:, h // 2], v[:, :, w // 2]]


def save_mask_preview(
    path: str | Path,
    volume: Any,
    mask: Any,
    *,
    title: str = "",
    levels: Sequence[float] = (0.01, 0.5, 0.99),
) -> Path:
    """Central slices of a map with the outline of its mask (``cryoglass mask --plot``).

    Parameters
    ----------
    path : path-like
        PNG to write.
    volume, mask : (d, h, w) tensors or arrays
        The map (shown in grey) and the soft mask in [0, 1].
    title : str
    levels : sequence of float
        Mask values outlined: by default where the soft edge starts (0.99), its half height
        (0.5, solid) and where it ends (0.01).

    Returns
    -------
    Path
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    styles = {0.5: "-"}
    for ax, image, outline, axis in zip(
        axes, central_slices(volume), central_slices(mask), _AXES, strict=True
    ):
        ax.imshow(image, cmap="gray", origin="lower")
        for level in levels:
            if outline.min() < level < outline.max():
                ax.contour(
                    outline,
                    levels=[level],
                    colors="#e8682a",
                    linewidths=1.4 if level == 0.5 else 0.8,
                    linestyles=styles.get(level, "--"),
                )
        ax.set_title(f"central {axis} slice", fontsize=9)
        ax.axis("off")
    fig.suptitle(title or "mask outline: 0.5 solid, soft edge 0.99 → 0.01 dashed", fontsize=10)
    return save_figure(fig, path)


def plot_localres_slices(
    axes: Sequence[Any],
    volume: Any,
    localres_angstrom: Any,
    *,
    mask: Any = None,
    value_range: tuple[float, float] | None = None,
):
    """Central slices of a map in grey with its local resolution [Å] in colour on top.

    Parameters
    ----------
    axes : three matplotlib axes
    volume, localres_angstrom : (d, h, w)
        The map and its local-resolution map (0 where unknown).
    mask : (d, h, w), optional
        Colour only where ``mask > 0.5`` (default: where the local resolution is known).
    value_range : (low, high) [Å], optional
        Colour scale; default the 2nd–98th percentiles of the coloured voxels.

    Returns
    -------
    matplotlib image (for a colour bar).
    """
    import numpy as np

    res_slices = central_slices(localres_angstrom)
    keep_slices = central_slices(mask) if mask is not None else res_slices
    if value_range is None:
        res = _numpy(localres_angstrom)
        keep = _numpy(mask) > 0.5 if mask is not None else res > 0
        values = res[keep & (res > 0)]
        value_range = (
            tuple(np.percentile(values, [2, 98])) if values.size else (float(res.min()), 1.0)
        )
    image = None
    for ax, grey, res, keep, axis in zip(
        axes, central_slices(volume), res_slices, keep_slices, _AXES, strict=True
    ):
        ax.imshow(grey, cmap="gray", origin="lower")
        inside = (keep > 0.5) if mask is not None else (keep > 0)
        shown = np.ma.masked_where(~inside | (res <= 0), res)
        image = ax.imshow(
            shown,
            cmap="turbo",
            origin="lower",
            alpha=0.65,
            vmin=value_range[0],
            vmax=value_range[1],
        )
        ax.set_title(f"central {axis} slice", fontsize=9)
        ax.axis("off")
    return image


def save_localres_slices(
    path: str | Path,
    volume: Any,
    localres_angstrom: Any,
    *,
    mask: Any = None,
    title: str = "local resolution",
) -> Path:
    """:func:`plot_localres_slices` on a figure of its own with a colour bar [Å] (PNG)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.0))
    image = plot_localres_slices(axes, volume, localres_angstrom, mask=mask)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="local resolution [Å]")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_localres_histogram(
    ax, values_angstrom: Any, *, median_angstrom: float | None = None, title: str = ""
) -> None:
    """Histogram of local resolutions [Å] (e.g. the voxels inside the mask) on ``ax``."""
    import numpy as np

    values = _numpy(values_angstrom).ravel()
    values = values[values > 0]
    ax.hist(values, bins=min(60, max(10, int(np.sqrt(values.size)))), color="#4878cf")
    if median_angstrom is not None:
        ax.axvline(
            median_angstrom, color="k", ls="--", lw=1, label=f"median {median_angstrom:.2f} Å"
        )
        ax.legend(fontsize=8)
    ax.set(xlabel="local resolution [Å]", ylabel="voxels", title=title or "local resolution")


def save_localres_histogram(
    path: str | Path,
    values_angstrom: Any,
    *,
    median_angstrom: float | None = None,
    title: str = "",
) -> Path:
    """:func:`plot_localres_histogram` on a figure of its own (PNG, atomically)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    plot_localres_histogram(ax, values_angstrom, median_angstrom=median_angstrom, title=title)
    return save_figure(fig, path)


def save_localres_overview(
    path: str | Path,
    volume: Any,
    localres_angstrom: Any,
    *,
    mask: Any = None,
    median_angstrom: float | None = None,
    title: str = "local resolution",
) -> Path:
    """Central slices coloured by local resolution and the histogram inside the mask, one row."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), width_ratios=(1, 1, 1, 1.25))
    image = plot_localres_slices(axes[:3], volume, localres_angstrom, mask=mask)
    fig.colorbar(image, ax=list(axes[:3]), shrink=0.8, label="local resolution [Å]")
    res = _numpy(localres_angstrom)
    inside = (_numpy(mask) > 0.5) if mask is not None else res > 0
    plot_localres_histogram(
        axes[3], res[inside & (res > 0)], median_angstrom=median_angstrom, title="inside the mask"
    )
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
