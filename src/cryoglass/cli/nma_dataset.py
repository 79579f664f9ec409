"""`cryoglass nma-dataset`: a heterogeneous particle stack along a normal mode (ground truth)."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, print_json
from cryoglass.cli.options import Overwrite


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        fail(f"{name} must be comma-separated numbers, got {text!r}")
        raise


def main(
    model: Path = typer.Argument(..., help="Atomic model (.pdb/.cif[.gz])."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    n: int = typer.Option(1000, "--n-particles", min=1, help="Number of particles."),
    mode: int = typer.Option(1, "--mode", min=1, help="Mode (1 = lowest non-zero ANM mode)."),
    means: str = typer.Option("-2,2", "--means", help="Mixture means, RMSD [Å] along the mode."),
    stds: str = typer.Option("0.5,0.5", "--stds", help="Mixture standard deviations [Å RMSD]."),
    box: int = typer.Option(64, "--box", help="Box size [pixels]."),
    pixel_size_angstrom: float = typer.Option(2.0, "--apix", help="Pixel size [Å]."),
    snr: float = typer.Option(0.1, "--snr", help="Signal-to-noise ratio."),
    bins: int = typer.Option(32, "--bins", help="Amplitude levels (one map per level)."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: Overwrite = False,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Particles of a model deformed along one ANM mode, amplitudes drawn from Gaussians.

    Writes DIR/particles.mrcs and DIR/particles.star (RELION 3.1) whose column
    _cryoglassModeAmplitude<k> holds each particle's true amplitude [Å] along unit mode k
    (RMSD = amplitude / √N_Cα). RELION keeps this unknown label.

    Example:

      cryoglass nma-dataset pdb1ake.pdb --n-particles 2000 --means -2,2 --stds 0.5,0.5 --out het
    """
    import dataclasses

    import pandas as pd
    import torch

    from cryoglass.io import make_particle_set, read_structure, write_mrc, write_relion_star
    from cryoglass.nma import anm, extend_modes, gaussian_mixture_amplitudes
    from cryoglass.nma.deform import MODE_AMPLITUDE_COLUMN, heterogeneous_dataset

    m_, s_ = _floats(means, "--means"), _floats(stds, "--stds")
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    outputs = [out / "particles.mrcs", out / "particles.star"]
    check_outputs(outputs, inputs=[model], overwrite=overwrite, creates=[out])
    try:
        atoms = read_structure(model, hydrogens=False, waters=False)
        ca = [i for i, a in enumerate(atoms.atom_names) if a == "CA"]
        keys = list(zip(atoms.chain_ids, atoms.residue_numbers.tolist(), strict=True))
        node = {keys[c]: k for k, c in enumerate(ca)}
        if len(node) < 3:
            raise ValueError("fewer than 3 Cα atoms")
        keep = [i for i, k in enumerate(keys) if k in node]
        modes = anm(atoms.coordinates_angstrom[ca], n_modes=mode)
        vectors = extend_modes(
            modes.eigenvectors[:, mode - 1 : mode], torch.tensor([node[keys[i]] for i in keep])
        )
        scale = len(ca) ** 0.5  # RMSD → amplitude along the unit mode
        generator = torch.Generator().manual_seed(seed)
        amplitudes = gaussian_mixture_amplitudes(
            n, means=[v * scale for v in m_], stds=[v * scale for v in s_], generator=generator
        )
        data = heterogeneous_dataset(
            atoms.coordinates_angstrom[keep],
            [atoms.elements[i] for i in keep],
            vectors,
            amplitudes[:, None],
            box=box,
            pixel_size_angstrom=pixel_size_angstrom,
            snr=snr,
            n_bins=bins,
            seed=seed,
        )
    except ValueError as error:
        fail(f"{model}: {error}")
    out.mkdir(parents=True, exist_ok=True)
    write_mrc(
        out / "particles.mrcs",
        data.images,
        pixel_size_angstrom=pixel_size_angstrom,
        overwrite=True,
        stack=True,
    )
    p = data.parameters
    particles = make_particle_set(
        [f"{i:06d}@particles.mrcs" for i in range(1, n + 1)],
        pixel_size_angstrom=pixel_size_angstrom,
        image_size=box,
        euler_deg=p.euler_deg,
        shift_angstrom=p.shift_angstrom,
        ctf=p.ctf,
        image_root=out,
    )
    column = MODE_AMPLITUDE_COLUMN.format(mode)
    table = pd.DataFrame(
        {
            "rlnRandomSubset": p.random_subset.numpy().astype(int),
            column: data.amplitudes_angstrom[:, 0].numpy(),
        }
    )
    particles = dataclasses.replace(particles, particles_table=table)
    write_relion_star(out / "particles.star", particles, overwrite=True)
    if json_out:
        print_json(
            {
                "n": n,
                "column": "_" + column,
                "noise_std": data.noise_std,
                "amplitude_mean_angstrom": float(data.amplitudes_angstrom.mean()),
            }
        )
