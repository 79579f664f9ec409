"""Figures of the preprocessing steps: motion trajectories, micrographs with particles."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["save_micrograph_figure", "save_motion_figure"]


def save_motion_figure(
    path: str | os.PathLike,
    global_shifts_px: torch.Tensor,
    *,
    shape_px: tuple[int, int],
    local_tracks_px: torch.Tensor | None = None,
    local_points_px: torch.Tensor | None = None,
    truth_shifts_px: torch.Tensor | None = None,
    title: str = "",
) -> Path:
    """RELION's trajectory plot: the global track, and local tracks drawn at their patches.

    Parameters
    ----------
    path : path-like
        PNG to write (atomically).
    global_shifts_px : Tensor (n_frames, 2)
        rlnMicrographShiftX/Y [pixels].
    shape_px : (h, w)
        The micrograph (the local tracks are drawn at their positions, magnified).
    local_tracks_px : Tensor (n_frames, P, 2), optional
        Local shifts (without the global track) at ``local_points_px`` (P, 2).
    truth_shifts_px : Tensor (n_frames, 2), optional
        A known global trajectory to compare with (simulations).
    title : str

    Returns
    -------
    Path
    """
    from cryoglass.report.figures import pyplot, save_figure

    plt = pyplot()
    g = torch.as_tensor(global_shifts_px, dtype=torch.float64).cpu()
    panels = 2 if local_tracks_px is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.8), squeeze=False)
    ax = axes[0, 0]
    ax.plot(g[:, 0], g[:, 1], "-o", ms=3, color="tab:blue", label="estimated")
    ax.plot(g[:1, 0], g[:1, 1], "o", ms=7, color="tab:red", label="frame 1")
    if truth_shifts_px is not None:
        t = torch.as_tensor(truth_shifts_px, dtype=torch.float64).cpu()
        ax.plot(t[:, 0], t[:, 1], "--", color="0.4", label="truth")
    ax.set_xlabel("shift x [px]")
    ax.set_ylabel("shift y [px]")
    ax.invert_yaxis()  # image convention: y down, as RELION's plot
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title("global trajectory" + (f" — {title}" if title else ""), fontsize=9)
    ax.legend(fontsize=8)
    if local_tracks_px is not None and local_points_px is not None:
        ax = axes[0, 1]
        tracks = torch.as_tensor(local_tracks_px, dtype=torch.float64).cpu()
        points = torch.as_tensor(local_points_px, dtype=torch.float64).cpu()
        h, w = shape_px
        span = float((tracks - tracks[:1]).abs().max().clamp_min(1e-6))
        scale = 0.4 * min(h, w) / max(round(len(points) ** 0.5), 1) / span
        for p in range(points.shape[0]):
            track = points[p] + scale * (tracks[:, p] - tracks[0, p])
            ax.plot(track[:, 0], track[:, 1], "-", color="k", lw=1)
            ax.plot(track[:1, 0], track[:1, 1], "o", ms=3, color="tab:red")
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_aspect("equal")
        ax.set_title(f"local deformation at the patches (×{scale:.0f})", fontsize=9)
        ax.set_xlabel("x [px]")
        ax.set_ylabel("y [px]")
    fig.tight_layout()
    return save_figure(fig, Path(path))


def save_micrograph_figure(
    path: str | os.PathLike,
    micrograph: torch.Tensor,
    *,
    circles_px: dict[str, torch.Tensor] | None = None,
    radius_px: float = 20.0,
    title: str = "",
    bin_to: int = 1024,
) -> Path:
    """A micrograph (low-passed for display) with circles at particle positions.

    Parameters
    ----------
    path : path-like
    micrograph : Tensor (h, w)
    circles_px : dict, optional
        Label → (n, 2) positions (x, y) [pixels]; each label gets its own colour.
    radius_px : float
        Circle radius [pixels of the micrograph].
    title : str
    bin_to : int
        Display size of the longer side.
    """
    from cryoglass.report.figures import pyplot, save_figure

    plt = pyplot()
    image = torch.as_tensor(micrograph, dtype=torch.float32).cpu()
    factor = max(1, max(image.shape) // bin_to)
    small = torch.nn.functional.avg_pool2d(image[None, None], factor)[0, 0] if factor > 1 else image
    lo, hi = torch.quantile(small.flatten()[::7], torch.tensor([0.01, 0.99])).tolist()
    fig, ax = plt.subplots(figsize=(7, 7 * image.shape[0] / image.shape[1]))
    ax.imshow(
        small.numpy(), cmap="gray", vmin=lo, vmax=hi, extent=(0, image.shape[1], image.shape[0], 0)
    )
    colours = ("tab:green", "tab:red", "tab:orange", "tab:cyan")
    for (label, xy), colour in zip((circles_px or {}).items(), colours, strict=False):
        xy = torch.as_tensor(xy, dtype=torch.float64).reshape(-1, 2).cpu()
        for x, y in xy.tolist():
            ax.add_patch(plt.Circle((x, y), radius_px, fill=False, color=colour, lw=1))
        ax.plot([], [], "o", mfc="none", color=colour, label=f"{label} ({len(xy)})")
    if circles_px:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    return save_figure(fig, Path(path))
