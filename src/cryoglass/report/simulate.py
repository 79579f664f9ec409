"""The report of ``cryoglass simulate``: example images, spectra against CTF², orientations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

    from cryoglass.simulate.dataset import ParticleParameters

__all__ = ["write_simulate_report"]

#: At most this many particles are drawn on the orientation plot.
_MAX_ORIENTATIONS = 20000


def _save_examples(path: Path, images: np.ndarray, clean: torch.Tensor) -> None:
    """The images as written (top row) above the same images without noise (bottom row)."""
    from cryoglass.report.figures import pyplot, save_figure

    plt = pyplot()
    k = len(images)
    fig, axes = plt.subplots(2, k, figsize=(2 * k, 4.2), squeeze=False)
    for i in range(k):
        for row, image in enumerate((images[i], clean[i].numpy())):
            axes[row, i].imshow(image, cmap="gray", origin="lower")
            axes[row, i].axis("off")
        axes[0, i].set_title(f"#{i + 1}", fontsize=8)
    save_figure(fig, path)


def _save_spectra(
    path: Path, clean: torch.Tensor, parameters: ParticleParameters, *, pixel_size_angstrom: float
) -> None:
    """Up to 4 panels to half Nyquist: log power of the clean image (left) beside CTF² (right)."""
    import torch

    from cryoglass.ctf import ctf_2d
    from cryoglass.fourier import fft2_centered
    from cryoglass.report.figures import pyplot, save_figure

    plt = pyplot()
    shown = min(len(clean), 4)
    box = clean.shape[-1]
    power = fft2_centered(clean[:shown]).abs().square()
    ctf = parameters.ctf[:shown]
    ctf2 = ctf_2d(ctf, image_size=box, pixel_size_angstrom=pixel_size_angstrom, rfft=False) ** 2
    fig, axes = plt.subplots(1, shown, figsize=(3 * shown, 3.2), squeeze=False)
    for i in range(shown):
        logp = torch.log(power[i] + 1e-12 * float(power[i].max()))
        low, high = torch.quantile(logp, torch.tensor([0.05, 0.995], dtype=logp.dtype))
        logp = ((logp - low) / (high - low + 1e-12)).clamp(0, 1)
        panel = torch.cat((logp[:, : box // 2], ctf2[i, :, box // 2 :].to(logp.dtype)), dim=1)
        zoom = slice(box // 4, box // 4 + box // 2)  # frequencies up to half Nyquist
        axes[0, i].imshow(panel[zoom, zoom].numpy(), cmap="gray", origin="lower")
        axes[0, i].axis("off")
        du = float(ctf.defocus_u_angstrom[i]) / 1e4
        axes[0, i].set_title(f"#{i + 1}: ΔU {du:.2f} µm", fontsize=8)
    save_figure(fig, path)


def _save_orientations(path: Path, euler_deg: torch.Tensor) -> None:
    """Projection directions on a Mollweide map (longitude = rot, latitude = 90° − tilt)."""
    import numpy as np

    from cryoglass.report.figures import pyplot, save_figure
    from cryoglass.simulate.distributions import viewing_direction

    plt = pyplot()
    direction = viewing_direction(euler_deg).numpy()
    longitude = np.arctan2(direction[:, 1], direction[:, 0])
    latitude = np.arcsin(np.clip(direction[:, 2], -1, 1))
    fig = plt.figure(figsize=(7, 3.8))
    ax = fig.add_subplot(projection="mollweide")
    ax.scatter(longitude, latitude, s=1, alpha=0.3)
    ax.grid(True)
    ax.set_title("projection directions Aᵀe_z (longitude = rot, latitude = 90° − tilt)", fontsize=9)
    save_figure(fig, path)


def write_simulate_report(
    out: str | os.PathLike,
    *,
    parameters: ParticleParameters,
    examples: tuple[np.ndarray, torch.Tensor],
    pixel_size_angstrom: float,
    summary: dict,
) -> Path:
    """Write ``out/report.html`` and its figures for a simulated dataset.

    Files (existing ones are replaced): ``examples.png`` (the example images with and
    without noise), ``spectra.png`` (power spectra of up to 4 noise-free images beside the CTF²
    of their STAR parameters: the Thon rings continue across when the written CTF matches),
    ``orientations.png`` (projection directions of up to 20 000 particles) and
    ``report.html``.

    Parameters
    ----------
    out : path-like
        The dataset's folder (exists).
    parameters : ParticleParameters
        Of all particles, in order (poses, CTF).
    examples : (ndarray (k, N, N), Tensor (k, N, N))
        The first ``k`` images as written and without noise (CPU, float32).
    pixel_size_angstrom : float
        Pixel size [Å].
    summary : dict
        Shown as the report's first table (key → value, printed with ``str``).

    Returns
    -------
    Path
        ``out/report.html``.
    """
    from cryoglass.report.html import Section, write_html_report

    out = Path(out)
    images, clean = examples
    _save_examples(out / "examples.png", images, clean)
    _save_spectra(
        out / "spectra.png",
        clean,
        parameters[: len(images)],
        pixel_size_angstrom=pixel_size_angstrom,
    )
    m = min(len(parameters), _MAX_ORIENTATIONS)
    _save_orientations(out / "orientations.png", parameters.euler_deg[:m])
    write_html_report(
        out / "report.html",
        title="cryoglass simulate",
        intro=(
            "A simulated single-particle dataset. Images are projections of truth.mrc at the "
            "poses in particles.star (RELION 3.1), multiplied by each particle's CTF, plus noise."
        ),
        sections=[
            Section("Summary", table=tuple((key, str(value)) for key, value in summary.items())),
            Section(
                "Example images",
                figures=(("examples.png", "top: the images as written; bottom: without noise"),),
            ),
            Section(
                "Power spectra and CTF",
                figures=(
                    (
                        "spectra.png",
                        "up to half Nyquist; left half: log power spectrum of the noise-free "
                        "image; right half: "
                        "CTF² from the particle's STAR parameters (the Thon rings continue "
                        "across when the written CTF matches the images)",
                    ),
                ),
            ),
            Section(
                "Orientations",
                figures=(("orientations.png", f"projection directions of {m} particles"),),
            ),
        ],
    )
    return out / "report.html"
