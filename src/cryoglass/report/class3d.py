"""The report pages of ``cryoglass class3d`` and ``cryoglass abinitio``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryoglass.report.figures import image_tiles, pyplot, save_figure
from cryoglass.report.html import Section, write_html_report

__all__ = [
    "save_abinitio_convergence_figure",
    "save_class_occupancy_figure",
    "write_abinitio_report",
    "write_class3d_report",
]

HAND = (
    "Projections cannot determine the hand: a map and its mirror image have mirrored "
    "projections, so the same data fit both equally well. Check the hand elsewhere (a known "
    "structure, tilt pairs, the twist of α-helices at high resolution) and flip the map if needed."
)


def save_class_occupancy_figure(path: str | Path, history: list[dict]) -> Path:
    """Class distribution (stacked) and class resolutions per iteration (two panels)."""
    import numpy as np

    plt = pyplot()
    it = np.array([r["iteration"] for r in history])
    occupancy = np.array([r["class_distribution"] for r in history])
    resolution = np.array([r["resolution_angstrom"] for r in history])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    bottom = np.zeros(len(it))
    for c in range(occupancy.shape[1]):
        left.bar(it, occupancy[:, c], bottom=bottom, label=f"class {c + 1}")
        bottom += occupancy[:, c]
    left.set(xlabel="iteration", ylabel="fraction of particles", title="class occupancy")
    left.set_ylim(0, 1)
    left.legend(fontsize=8, loc="lower right")
    for c in range(resolution.shape[1]):
        right.plot(it, resolution[:, c], "o-", label=f"class {c + 1}")
    right.set(xlabel="iteration", ylabel="resolution [Å] (SSNR = 1)", title="class resolution")
    right.invert_yaxis()
    right.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def _central_slices(volumes: Any, names: list[str], path: Path) -> Path:
    tiles, titles = [], []
    for volume, name in zip(volumes, names, strict=True):
        v = volume.detach().cpu()
        c = v.shape[-1] // 2
        tiles += [v[c], v[:, c], v[:, :, c]]
        titles += [f"{name}: z = centre", f"{name}: y = centre", f"{name}: x = centre"]
    return image_tiles(tiles, titles, path, columns=3)


def write_class3d_report(path: str | Path, state: Any, *, paths: dict[str, Path]) -> Path:
    """``report.html`` beside a classification's outputs, with its PNG figures.

    Parameters
    ----------
    path : path-like
    state : cryoglass.refine.class3d.Class3DState
        After the last iteration.
    paths : dict
        The last iteration's files (``data``, ``model``, ``class001`` …).
    """
    import torch

    path = Path(path)
    folder = path.parent
    history = list(state.history)
    save_class_occupancy_figure(folder / "class_occupancy.png", history)
    k = state.n_classes
    _central_slices(
        [state.references[c] for c in range(k)],
        [f"class {c + 1}" for c in range(k)],
        folder / "class_slices.png",
    )
    counts = torch.bincount(state.classes.clamp_min(0), minlength=k)
    table = tuple(
        (
            f"class {c + 1} ({paths[f'class{c + 1:03d}'].name})",
            f"{float(state.class_prior[c]):.3f} of the particles ({int(counts[c])} best), "
            f"{float(state.resolution_angstrom[c]):.1f} Å",
        )
        for c in range(k)
    )
    last = history[-1] if history else {}
    sections = [
        Section(
            "Classes",
            (
                "Each iteration computes every particle's posterior over classes, orientations "
                "and origins given the current class maps and class priors, and reconstructs "
                "each class from its particles weighted by that posterior (regularised by the "
                "class's own signal power, RELION's τ² with --tau2-fudge). Iteration 1 aligns "
                "to the reference by cross-correlation; iteration 2 splits the particles into "
                "random classes to make the class maps differ.",
                f"After {state.iteration} iterations the last iteration changed the class of "
                f"{last.get('class_changes') or 0:.1%} of the particles.",
            ),
            table,
            (
                ("class_occupancy.png", "Class occupancy and class resolution per iteration."),
                ("class_slices.png", "Central slices of each class map."),
            ),
        ),
        Section(
            "Files",
            (
                f"{paths['data'].name}: the particles with rlnClassNumber, angles, origins and "
                f"rlnMaxValueProbDistribution; {paths['model'].name}: class distribution, "
                "resolution and SSNR per shell; run_itNNN_classMMM.mrc: the class maps. "
                "Class maps are related to the reference only through the data: " + HAND,
            ),
        ),
    ]
    write_html_report(path, title="cryoglass class3d", intro="3D classification", sections=sections)
    return path


def save_abinitio_convergence_figure(path: str | Path, history: list[dict]) -> Path:
    """Resolution, minibatch size and mean max. posterior per SGD iteration."""
    plt = pyplot()
    it = [r["iteration"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.plot(it, [r["resolution_angstrom"] for r in history], "-", label="resolution [Å]")
    left.set(xlabel="iteration", ylabel="resolution of the step [Å]", title="schedule")
    left.invert_yaxis()
    twin = left.twinx()
    twin.plot(it, [r["batch"] for r in history], "--", color="tab:orange", label="minibatch")
    twin.set_ylabel("particles per minibatch")
    right.plot(it, [r["mean_max_probability"] for r in history], "-")
    right.set(xlabel="iteration", ylabel="mean max. posterior", title="pose certainty")
    right.set_ylim(0, 1)
    fig.tight_layout()
    return save_figure(fig, path)


def write_abinitio_report(
    path: str | Path, state: Any, *, maps: list[Path], pixel_size_angstrom: float
) -> Path:
    """``report.html`` beside the initial model(s).

    Parameters
    ----------
    path : path-like
    state : cryoglass.refine.abinitio.AbinitioState
    maps : list of Path
        The written maps (one per class).
    pixel_size_angstrom : float
    """
    path = Path(path)
    folder = path.parent
    history = list(state.history)
    save_abinitio_convergence_figure(folder / "convergence.png", history)
    k = state.references.shape[0]
    _central_slices(
        [state.references[c] for c in range(k)],
        [m.stem for m in maps],
        folder / "central_slices.png",
    )
    last = history[-1] if history else {}
    table = (
        ("iterations (minibatches)", str(state.iteration)),
        ("final resolution of the steps", f"{last.get('resolution_angstrom', 0):g} Å"),
        ("pixel size", f"{pixel_size_angstrom:g} Å"),
        ("maps", ", ".join(m.name for m in maps)),
        ("class distribution", ", ".join(f"{p:.2f}" for p in last.get("class_distribution", []))),
    )
    sections = [
        Section(
            "Stochastic gradient descent",
            (
                "Starting from a reconstruction of random particles at random orientations, "
                "each iteration aligns a small random minibatch to the current map (the "
                "posterior over orientations and origins), back-projects the weighted "
                "residuals, and moves the map a step along this preconditioned gradient with "
                "momentum (Punjani et al. 2017; RELION 3.1's --sgd). The resolution and the "
                "minibatch grow over the iterations.",
            ),
            table,
            (("convergence.png", "Schedule and pose certainty per iteration."),),
        ),
        Section(
            "The map(s)",
            (HAND, "Refine the map with cryoglass refine3d before interpreting it."),
            (),
            (("central_slices.png", "Central slices of the initial model(s)."),),
        ),
    ]
    write_html_report(
        path, title="cryoglass abinitio", intro="Initial model from particles", sections=sections
    )
    return path
