"""The CTF figure of ``cryoglass ctf --plot``: the 1D CTF with its zeros beside the 2D CTF."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryoglass.ctf import CTFParams

__all__ = ["save_ctf_figure"]


def save_ctf_figure(
    path: str | os.PathLike,
    params: CTFParams,
    *,
    pixel_size_angstrom: float,
    box: int,
    n_zeros: int,
) -> Path:
    """Plot one CTF (1D with its zeros, and 2D) and write it atomically; the format follows
    the suffix.

    Parameters
    ----------
    path : path-like
        ``.png``, ``.pdf``, ``.svg`` (any format matplotlib writes; no suffix: PNG).  An
        existing file is replaced.
    params : CTFParams
        One CTF (scalar fields), float64 tensors.
    pixel_size_angstrom : float
        Pixel size [Å]; the plots run to Nyquist, ``1 / (2 · pixel_size_angstrom)`` [1/Å].
    box : int
        Size of the 2D CTF image [px].
    n_zeros : int
        Zeros of the mean defocus to mark (those below Nyquist are drawn).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        matplotlib cannot write the suffix's format.
    """
    import torch

    from cryoglass.ctf import ctf_1d, ctf_2d, ctf_zeros_inv_angstrom
    from cryoglass.io import atomic_write
    from cryoglass.report.figures import pyplot

    plt = pyplot()
    path = Path(path)
    nyquist = 0.5 / pixel_size_angstrom
    k = torch.linspace(0.0, nyquist, 2000, dtype=torch.float64)
    zeros = ctf_zeros_inv_angstrom(params, n_zeros, dtype=torch.float64)
    zeros = zeros[torch.isfinite(zeros) & (zeros <= nyquist)].numpy()
    image = ctf_2d(params, image_size=box, pixel_size_angstrom=pixel_size_angstrom, rfft=False)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    try:
        ax1.plot(k.numpy(), ctf_1d(params, k).numpy(), lw=1, label="mean defocus")
        if float(params.defocus_u_angstrom) != float(params.defocus_v_angstrom):
            angle = float(params.astigmatism_angle_deg)
            for label, azimuth in (("along U", angle), ("along V", angle + 90)):
                profile = ctf_1d(params, k, azimuth_deg=azimuth).numpy()
                ax1.plot(k.numpy(), profile, lw=0.6, alpha=0.7, label=label)
        ax1.plot(zeros, 0 * zeros, "o", ms=4, color="k", label="zeros (mean defocus)")
        ax1.axhline(0, color="0.6", lw=0.5)
        ax1.set(
            xlabel="spatial frequency k [1/Å]", ylabel="CTF", xlim=(0, nyquist), ylim=(-1.05, 1.05)
        )
        ax1.legend(fontsize=8, loc="upper right", framealpha=0.9)
        extent = [-nyquist, nyquist, -nyquist, nyquist]
        ax2.imshow(image.numpy(), cmap="gray", vmin=-1, vmax=1, origin="lower", extent=extent)
        ax2.set(
            xlabel="k_x [1/Å]",
            ylabel="k_y [1/Å]",
            title=f"2D CTF, {box}² px at {pixel_size_angstrom:g} Å",
        )
        fig.tight_layout()
        fmt = path.suffix.lstrip(".").lower() or "png"
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120), overwrite=True)
    finally:
        plt.close(fig)
