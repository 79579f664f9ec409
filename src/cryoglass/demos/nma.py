"""Demo section: normal modes (ANM) of the bundled TRPV1 model and a deformed map pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryoglass.data import trpv1_model_path
from cryoglass.io import read_structure, write_mrc
from cryoglass.nma import anm, extend_modes, fit_bfactors, square_fluctuations
from cryoglass.nma.deform import amplitude_for_rmsd, deformed_maps
from cryoglass.report.figures import save_figure
from cryoglass.report.html import Section

__all__ = ["run"]


def run(out: Path, *, seed: int = 0) -> list[Section]:
    """ANM of TRPV1's Cα atoms: spectrum, fluctuations vs B-factors, maps at ±mode 1."""
    from cryoglass.report.figures import pyplot

    plt = pyplot()

    del seed  # the analysis is deterministic
    out = Path(out)
    atoms = read_structure(trpv1_model_path(), hydrogens=False, waters=False)
    ca = [i for i, name in enumerate(atoms.atom_names) if name == "CA"]
    modes = anm(atoms.coordinates_angstrom[ca], n_modes=20)
    msf = square_fluctuations(modes)
    fit = fit_bfactors(msf, atoms.bfactors_a2[ca])

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    ax[0].semilogy(np.arange(1, 21), modes.eigenvalues, "o-")
    ax[0].set(xlabel="mode", ylabel="eigenvalue λ (γ/Å²)", title="ANM spectrum")
    ax[1].plot(atoms.bfactors_a2[ca].numpy(), lw=0.7, label="model B")
    ax[1].plot(fit.predicted_a2, lw=0.7, label=f"ANM (r = {fit.correlation:.2f})")
    ax[1].set(xlabel="Cα", ylabel="B (Å²)", title="fluctuations vs B-factors")
    ax[1].legend()
    save_figure(fig, out / "nma_spectrum.png")

    keys = list(zip(atoms.chain_ids, atoms.residue_numbers.tolist(), strict=True))
    node = {keys[c]: n for n, c in enumerate(ca)}
    keep = [i for i, k in enumerate(keys) if k in node]
    vectors = extend_modes(modes.eigenvectors[:, :1], torch.tensor([node[keys[i]] for i in keep]))
    a = amplitude_for_rmsd(3.0, len(ca))
    maps = deformed_maps(
        atoms.coordinates_angstrom[keep],
        [atoms.elements[i] for i in keep],
        vectors,
        torch.tensor([-a, a]),
        shape=(64, 64, 64),
        pixel_size_angstrom=3.0,
        bfactors_a2=50.0,
    ).float()
    for name, volume in zip(("minus", "plus"), maps, strict=True):
        write_mrc(out / f"nma_mode1_{name}.mrc", volume, pixel_size_angstrom=3.0, overwrite=True)
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.4))
    for axis, image, title in zip(
        ax,
        (maps[0].sum(1), maps[1].sum(1), maps[1].sum(1) - maps[0].sum(1)),
        ("mode 1, −3 Å RMSD", "mode 1, +3 Å RMSD", "difference"),
        strict=True,
    ):
        axis.imshow(image.numpy(), cmap="gray" if title != "difference" else "RdBu_r")
        axis.set_title(title)
        axis.axis("off")
    save_figure(fig, out / "nma_maps.png")
    return [
        Section(
            title="Normal modes (ANM) of TRPV1",
            paragraphs=(
                "Anisotropic network model on the Cα atoms (cutoff 15 Å, γ = 1, ProDy's "
                "defaults). The slowest modes are collective breathing motions of the "
                "tetramer; maps of the model moved ±3 Å RMSD along mode 1 are "
                "nma_mode1_minus.mrc and nma_mode1_plus.mrc.",
            ),
            table=(
                ("Cα nodes", str(len(ca))),
                ("λ_1 … λ_3", ", ".join(f"{v:.4f}" for v in modes.eigenvalues[:3])),
                ("B-factor correlation", f"{fit.correlation:.2f}"),
            ),
            figures=(
                ("nma_spectrum.png", "Eigenvalues and predicted vs model B-factors."),
                ("nma_maps.png", "Potential maps (projected along y) at ±3 Å along mode 1."),
            ),
        )
    ]
