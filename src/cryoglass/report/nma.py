"""The report of ``cryoglass nma``: eigenvalue spectrum, fluctuations, mode animations.

Light on purpose: the plots are small SVG files drawn here (no matplotlib) and the animations
are written with gemmi, so that ``cryoglass nma`` on an atomic model never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryoglass.io import atomic_write, write_text_atomic

if TYPE_CHECKING:
    import gemmi

    from cryoglass.nma.modes import NormalModes

__all__ = ["ANIMATED_MODES", "pseudo_atom_structure", "write_nma_report"]

#: Modes written as animations (multi-model PDB files) for ANM results.
ANIMATED_MODES = 3


def pseudo_atom_structure(xyz: np.ndarray) -> gemmi.Structure:
    """A gemmi structure with one CA pseudo-atom per node, for the animation files.

    Parameters
    ----------
    xyz : ndarray (N, 3)
        Node positions [Å].

    Returns
    -------
    gemmi.Structure
        One model, chain A, residues GLY 1 … N with one CA atom each.
    """
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


def _write_animation(path: Path, structure: gemmi.Structure, frames: np.ndarray) -> None:
    """A multi-model PDB: one model per frame (same atoms as ``structure``'s first model)."""
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
    atomic_write(path, lambda tmp: movie.write_pdb(str(tmp)), overwrite=True, suffix=".pdb")


def _svg_plot(
    path: Path,
    series: Sequence[tuple[np.ndarray, np.ndarray, str]],
    *,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
) -> None:
    """A small line plot of up to three ``(x, y, label)`` series as SVG (no matplotlib)."""
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
    write_text_atomic(path, "\n".join(parts))


def _animations(out: Path, modes: NormalModes, structure: gemmi.Structure) -> str:
    """Write mode_1.pdb … (20 frames, ±2 Å RMSD) for the lowest ANM modes; the HTML links."""
    links = []
    xyz = modes.coordinates_angstrom
    for m in range(min(ANIMATED_MODES, modes.n_modes)):
        amplitude = 2.0 * np.sqrt(xyz.shape[0])  # 2 Å RMSD at the extremes
        t = np.sin(2 * np.pi * np.arange(20) / 20)[:, None, None]
        frames = xyz[None] + amplitude * t * modes.eigenvectors[:, m].reshape(-1, 3)[None]
        name = f"mode_{m + 1}.pdb"
        _write_animation(out / name, structure, frames)
        links.append(f"<a href='{name}'>{name}</a>")
    return "<p>Animations (20 frames, ±2 Å RMSD; multi-model PDB): " + ", ".join(links)


def write_nma_report(
    out: str | os.PathLike,
    modes: NormalModes,
    *,
    source: str | os.PathLike,
    bfactors: np.ndarray | None,
    structure: gemmi.Structure,
) -> Path:
    """Write ``out/report.html`` with its figures and (ANM) animation files.

    Files: ``spectrum.svg`` (eigenvalues, log scale), ``fluctuations.svg`` (square
    fluctuations, or B-factors against the ANM's fitted B-factors), ``mode_1.pdb`` …
    ``mode_3.pdb`` (ANM only) and ``report.html``; existing files are replaced.

    Parameters
    ----------
    out : path-like
        Existing folder.
    modes : NormalModes
        ANM or GNM result.
    source : path-like
        The input, named in the report.
    bfactors : ndarray (N,) or None
        Crystallographic B-factors [Å²] of the nodes (None for pseudo-atoms).
    structure : gemmi.Structure
        The nodes as atoms (first model, N atoms in node order), animated along the modes.

    Returns
    -------
    Path
        ``out/report.html``.
    """
    import html

    from cryoglass.nma.analysis import collectivity, fit_bfactors, square_fluctuations

    out = Path(out)
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
    movies = _animations(out, modes, structure) if modes.kind == "anm" else ""
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
    return write_text_atomic(out / "report.html", page)
