"""The report of ``cryoglass class2d``: class gallery, convergence plots and ``report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cryoglass.report.figures import pyplot, save_figure
from cryoglass.report.html import Section, write_html_report

if TYPE_CHECKING:
    from cryoglass.classify import Class2DModel

__all__ = ["save_class_gallery", "save_convergence_figure", "write_class2d_report"]


def _by_occupancy(model: Class2DModel) -> list[int]:
    """Class indices, most populated first."""
    prior = model.class_prior.cpu()
    return sorted(range(prior.shape[0]), key=lambda c: -float(prior[c]))


def save_class_gallery(model: Class2DModel, path: str | Path) -> Path:
    """Class averages as a grid of images (8 per row), sorted by occupancy, as a PNG.

    Parameters
    ----------
    model : cryoglass.classify.Class2DModel
        Classes (K, N, N) (origin N//2), occupancies (K,) and resolutions (K,) [Å]; each
        image is titled ``class number: occupancy % / resolution Å``.
    path : path-like
        The PNG to write (replaced if it exists).

    Returns
    -------
    Path
    """
    plt = pyplot()
    prior = model.class_prior.cpu()
    order = _by_occupancy(model)
    cols = min(8, len(order))
    rows = (len(order) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, c in zip(axes.ravel(), order, strict=False):
        ax.imshow(model.classes[c].cpu().numpy(), cmap="gray", origin="lower")
        res = float(model.resolution_angstrom[c])
        ax.set_title(f"{c + 1}: {100 * float(prior[c]):.1f}%\n{res:.0f} Å", fontsize=8)
    return save_figure(fig, path)


def save_convergence_figure(log: list[dict], path: str | Path, *, n_particles: int) -> Path:
    """Log-likelihood per particle and class occupancies against the iteration, as a PNG.

    Parameters
    ----------
    log : list of dict
        One entry per iteration with ``iteration``, ``log_likelihood`` (summed over the
        particles) and ``occupancies`` (K,).
    path : path-like
        The PNG to write (replaced if it exists).
    n_particles : int
        Divides the log-likelihood.

    Returns
    -------
    Path
    """
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    its = [e["iteration"] for e in log]
    ax1.plot(its, [e["log_likelihood"] / n_particles for e in log], "o-k")
    ax1.set(xlabel="iteration", ylabel="log-likelihood per particle")
    occ = [e["occupancies"] for e in log]
    for c in range(len(occ[0])):
        ax2.plot(its, [o[c] for o in occ], "o-", ms=3, label=f"class {c + 1}")
    ax2.set(xlabel="iteration", ylabel="occupancy")
    if len(occ[0]) <= 10:
        ax2.legend(fontsize=7)
    return save_figure(fig, path)


def write_class2d_report(
    folder: str | Path,
    model: Class2DModel,
    log: list[dict],
    *,
    pixel_size_angstrom: float,
    n_particles: int,
) -> Path:
    """FOLDER/report.html with FOLDER/classes.png and FOLDER/convergence.png.

    Parameters
    ----------
    folder : path-like
        The class2d output folder (exists).
    model : cryoglass.classify.Class2DModel
        The final model.
    log : list of dict
        The per-iteration log (see :func:`save_convergence_figure`).
    pixel_size_angstrom : float
        Pixel size of the images [Å].
    n_particles : int

    Returns
    -------
    Path
        The report.
    """
    folder = Path(folder)
    save_class_gallery(model, folder / "classes.png")
    save_convergence_figure(log, folder / "convergence.png", n_particles=n_particles)
    prior = model.class_prior.cpu()
    table = tuple(
        (
            f"class {c + 1}",
            f"{100 * float(prior[c]):.1f} %, {float(model.resolution_angstrom[c]):.1f} Å",
        )
        for c in _by_occupancy(model)
    )
    sections_extra = _reseed_sections(log)
    path = folder / "report.html"
    write_html_report(
        path,
        title="cryoglass class2d",
        intro=f"{n_particles} particles, {prior.shape[0]} classes, {model.iteration} iterations, "
        f"{pixel_size_angstrom:g} Å/px.",
        sections=[
            Section(
                "Class averages",
                ("Sorted by occupancy; title: class number, occupancy, estimated resolution.",),
                table,
                (("classes.png", "class averages"),),
            ),
            Section(
                "Convergence",
                (
                    "Log-likelihood of the data under each iteration's input model, "
                    "log p(X | model) summed over every Fourier coefficient of the Nyquist "
                    "circle (those outside the E-step's band count as noise), over the "
                    "coarse pose grid, and occupancies. "
                    "It rises as the classes come to explain the data; re-seeding an empty "
                    "class, masking, re-centring and adaptive oversampling (the averages are "
                    "made from the finer grid's posteriors) can make it dip slightly.",
                ),
                figures=(("convergence.png", "log-likelihood and class occupancies"),),
            ),
            *sections_extra,
        ],
    )
    return path


def _reseed_sections(log: list[dict]) -> list[Section]:
    """A section listing the re-seeded classes and the split trials, if there were any."""
    rows = []
    for entry in log:
        for c in entry.get("reseeded", []):
            rows.append((f"iteration {entry['iteration']}", f"class {c} re-seeded by a split"))
        for t in entry.get("split_tests", []):
            verdict = "kept" if t["kept"] else f"merged back into class {t['parent']}"
            rows.append(
                (
                    f"iteration {entry['iteration']}",
                    f"split {t['parent']}/{t['class']}: r = {t['ratio']:.2f} over "
                    f"{t['coefficients']} coefficients, {verdict}",
                )
            )
    if not rows:
        return []
    text = (
        "A class that fell below the re-seeding occupancy was refilled by splitting the "
        "largest class.  After the trial iterations the two halves' averages were aligned "
        "and compared in units of their noise: r ≈ 1 means they show the same view "
        "(split merged back, the emptied class retired); r at or above the threshold "
        "(Class2DSettings.split_min_ratio, 2.5) a real difference (split kept).",
    )
    return [Section("Re-seeded classes", text, tuple(rows))]
