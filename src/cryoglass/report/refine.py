"""The report page of ``cryoglass refine3d``: convergence, FSC, orientations and the map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryoglass.report.figures import image_tiles, plot_direction_density, pyplot, save_figure
from cryoglass.report.html import Section, write_html_report

__all__ = ["save_convergence_figure", "write_refine_report"]


def save_convergence_figure(path: str | Path, history: list[dict]) -> Path:
    """Resolution, angular step and pose changes per iteration (two panels)."""
    plt = pyplot()
    it = [r["iteration"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.plot(it, [r["resolution_angstrom"] for r in history], "o-", label="resolution")
    left.set(xlabel="iteration", ylabel="gold-standard resolution [Å]", title="resolution")
    left.invert_yaxis()
    right.plot(it, [r["angular_step_deg"] for r in history], "s-", label="angular step [°]")
    right.plot(it, [r["median_angle_change_deg"] for r in history], "o-", label="median change [°]")
    right.set(xlabel="iteration", ylabel="degrees", title="sampling and pose changes")
    right.set_yscale("symlog", linthresh=0.5)
    right.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def write_refine_report(
    path: str | Path, result: Any, *, poses: Any, pixel_size_angstrom: float
) -> Path:
    """``report.html`` beside the refinement's outputs, with its PNG figures.

    Parameters
    ----------
    path : path-like
        The page; figures are written into its folder.
    result : cryoglass.refine.RefineResult
    poses : cryoglass.refine.Poses
    pixel_size_angstrom : float
    """
    from cryoglass.geometry import matrix_to_euler
    from cryoglass.validate import projection_directions

    path = Path(path)
    folder = path.parent
    history = list(result.state.history)
    save_convergence_figure(folder / "convergence.png", history)
    plt = pyplot()
    fig = plt.figure(figsize=(7, 3.8))
    ax = fig.add_subplot(111, projection="mollweide")
    directions = projection_directions(matrix_to_euler(poses.rotations.double()))
    plot_direction_density(directions, ax=ax, title="orientation distribution")
    save_figure(fig, folder / "orientations.png")
    volume = result.map.detach().cpu()
    c = volume.shape[-1] // 2
    image_tiles(
        [volume[c], volume[:, c], volume[:, :, c]],
        ["z = centre", "y = centre", "x = centre"],
        folder / "central_slices.png",
    )
    last = history[-1] if history else {}
    table = (
        ("resolution (half maps, FSC = 0.143)", f"{result.resolution_angstrom:.2f} Å"),
        ("iterations", str(result.state.iteration)),
        ("final angular step", f"{last.get('angular_step_deg', float('nan')):g}°"),
        ("particles", str(poses.rotations.shape[0])),
        ("pixel size", f"{pixel_size_angstrom:g} Å"),
    )
    sections = [
        Section(
            "Convergence",
            (
                "Each iteration aligns every particle to its half set's reference (the posterior "
                "over orientations and origins), reconstructs both halves, and measures their "
                "FSC. The angular step is refined as the resolution asks for it; the run stops "
                "when the resolution no longer improves at a fine enough step.",
            ),
            table,
            (("convergence.png", "Resolution, angular step and median pose change."),),
        ),
        Section(
            "Resolution",
            ("The FSC of the two unfiltered half maps (run_half1/2_class001_unfil.mrc).",),
            (),
            (("run_fsc.png", "Gold-standard FSC with the 0.143 and 0.5 thresholds."),),
        ),
        Section(
            "Orientations and map",
            (
                "Projection directions of the particles' best poses (density relative to "
                "uniform), and central slices of run_class001.mrc.  Projections cannot tell "
                "a map from its mirror image: the hand must be checked elsewhere.",
            ),
            (),
            (
                ("orientations.png", "Orientation distribution (Mollweide)."),
                ("central_slices.png", "Central slices of the final map."),
            ),
        ),
    ]
    write_html_report(
        path, title="cryoglass refine3d", intro="3D auto-refinement", sections=sections
    )
    return path
