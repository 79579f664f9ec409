"""`cryoglass nma`: normal modes (ANM/GNM) of an atomic model or of a map's pseudo-atoms."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, print_json
from cryoglass.cli.options import Overwrite

MAP_SUFFIXES = (".mrc", ".map", ".mrcs", ".ccp4")


def _read_nodes(path: Path, atoms: str):
    """Node coordinates, B-factors, (chain, residue) keys and the gemmi structure, without torch.

    The selection matches ``cryoglass.io.read_structure`` (first model, first alternative
    conformation; ``ca``: the Cα of amino-acid residues).
    """
    import gemmi
    import numpy as np

    structure = gemmi.read_structure(str(path))
    for m in reversed(range(1, len(structure))):
        del structure[m]
    structure.remove_alternative_conformations()
    if atoms != "all":
        structure.remove_hydrogens()
    structure.remove_waters()
    if atoms == "ca":
        for chain in structure[0]:
            for r in reversed(range(len(chain))):
                residue = chain[r]
                info = gemmi.find_tabulated_residue(residue.name)
                if info is None or not info.is_amino_acid() or not residue.find_atom("CA", "*"):
                    del chain[r]
                    continue
                for a in reversed(range(len(residue))):
                    if residue[a].name != "CA":
                        del residue[a]
    structure.remove_empty_chains()
    found = [(c.name, r, a) for c in structure[0] for r in c for a in r]
    xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for _, _, a in found], dtype=np.float64)
    bfactors = np.array([a.b_iso for _, _, a in found], dtype=np.float64)
    keys = [(c, r.seqid.num) for c, r, _ in found]
    return xyz.reshape(-1, 3), bfactors, keys, structure


def _output_names(out: Path, *, report: bool, gnm: bool, modes: int) -> list[Path]:
    """The files ``nma`` writes into ``out`` (write_nma_report's names with --report)."""
    names = ["modes.npz"]
    if report:
        names += ["spectrum.svg", "fluctuations.svg", "report.html"]
        names += [] if gnm else [f"mode_{m + 1}.pdb" for m in range(min(3, modes))]
    return [out / name for name in names]


def main(
    source: Path = typer.Argument(..., help="Atomic model (.pdb/.cif[.gz]) or map (.mrc/.map)."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    modes: int = typer.Option(20, "--modes", min=1, help="Number of non-zero modes."),
    cutoff_angstrom: float = typer.Option(
        None, "--cutoff-angstrom", help="Contact cutoff [Å] (default 15 ANM, 10 GNM)."
    ),
    gamma: float = typer.Option(1.0, "--gamma", help="Spring constant γ."),
    gnm: bool = typer.Option(False, "--gnm", help="Gaussian network model instead of ANM."),
    atoms: str = typer.Option("ca", "--atoms", help="Nodes of a model: ca, heavy or all."),
    pseudo_atoms: int = typer.Option(
        None, "--pseudo-atoms", help="Map input: number of TRN pseudo-atoms (default 500)."
    ),
    threshold: float = typer.Option(None, "--threshold", help="Map density threshold."),
    device: str = typer.Option(None, "--device", help="Torch device for the eigensolver."),
    seed: int = typer.Option(0, "--seed", help="Seed of the pseudo-atom network."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html."),
    json_out: bool = typer.Option(False, "--json", help="Print eigenvalues as JSON."),
    overwrite: Overwrite = False,
) -> None:
    """Normal modes (ANM or GNM) of an atomic model, or of pseudo-atoms placed on a map.

    Writes DIR/modes.npz (eigenvalues, eigenvectors (3N×k ANM, N×k GNM), coordinates_angstrom),
    DIR/report.html (spectrum, fluctuations vs B-factors, animations mode_1..3.pdb).
    A model on the CPU never imports torch (maps and --device do).

    Examples:

      cryoglass nma pdb1ubi.pdb --out nma1ubi --json       # ProDy's ANM defaults (Cα, 15 Å)

      cryoglass nma pdb1ubi.pdb --gnm --out gnm1ubi         # GNM, 10 Å

      cryoglass nma emd.mrc --pseudo-atoms 500 --cutoff-angstrom 20 --out trn
    """
    import numpy as np

    from cryoglass.io import atomic_write
    from cryoglass.nma import anm as anm_modes
    from cryoglass.nma import gnm as gnm_modes

    if not source.is_file():
        fail(f"{source}: file not found")
    if atoms not in ("ca", "heavy", "all"):
        fail(f"--atoms must be ca, heavy or all, got {atoms!r}")
    check_outputs(
        _output_names(out, report=report, gnm=gnm, modes=modes),
        inputs=[source],
        overwrite=overwrite,
        creates=[out],
    )
    cutoff = cutoff_angstrom if cutoff_angstrom is not None else (10.0 if gnm else 15.0)
    bfactors, keys = None, None
    try:
        if source.suffix.lower() in MAP_SUFFIXES:
            from cryoglass.io import read_mrc
            from cryoglass.nma.trn import topology_representing_network
            from cryoglass.report.nma import pseudo_atom_structure

            volume, header = read_mrc(source)
            pixel = header.pixel_size_angstrom or 1.0
            network = topology_representing_network(
                volume.float(),
                pseudo_atoms or 500,
                pixel_size_angstrom=pixel,
                threshold=threshold,
                seed=seed,
            )
            xyz = network.nodes_angstrom.numpy()
            structure = pseudo_atom_structure(xyz)
        else:
            xyz, bfactors, keys, structure = _read_nodes(source, atoms)
        solve = gnm_modes if gnm else anm_modes
        result = solve(xyz, n_modes=modes, cutoff_angstrom=cutoff, gamma=gamma, device=device)
    except (ValueError, RuntimeError) as error:
        fail(f"{source}: {error}")
    out.mkdir(parents=True, exist_ok=True)
    arrays = {
        "eigenvalues": result.eigenvalues,
        "eigenvectors": result.eigenvectors,
        "coordinates_angstrom": result.coordinates_angstrom,
        "kind": result.kind,
        "cutoff_angstrom": cutoff,
        "gamma": gamma,
    }
    if keys is not None:
        arrays["chain_ids"] = np.array([c for c, _ in keys])
        arrays["residue_numbers"] = np.array([r for _, r in keys])
        arrays["bfactors_a2"] = bfactors
    atomic_write(
        out / "modes.npz", lambda tmp: np.savez(tmp, **arrays), suffix=".npz", overwrite=overwrite
    )
    if report:
        from cryoglass.report.nma import write_nma_report

        write_nma_report(out, result, source=source, bfactors=bfactors, structure=structure)
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    typer.echo(
        f"{result.kind}: {len(result.eigenvalues)} modes of {int(xyz.shape[0])} nodes "
        f"(cutoff {cutoff:g} Å); wrote {out}/: {', '.join(written)}",
        err=json_out,
    )
    if json_out:
        print_json(
            {
                "headline": ["model", "n_nodes", "eigenvalues"],
                "model": result.kind,
                "n_nodes": int(xyz.shape[0]),
                "cutoff_angstrom": cutoff,
                "gamma": gamma,
                "eigenvalues": [float(v) for v in result.eigenvalues],
                "files": [str(out / name) for name in written],
            }
        )
