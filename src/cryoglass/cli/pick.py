"""`cryoglass pick`: particle picking by LoG blobs (reference-free) or CTF-aware templates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cryoglass.cli._common import fail, failing, print_json
from cryoglass.cli.options import Apix, JsonOutput, Overwrite, Scheduler, Workers

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["micrographs", "picks", "picks_per_micrograph", "threshold", "method"]

_Star = Annotated[
    Path,
    typer.Argument(
        metavar="MICROGRAPHS", help="Micrographs (RELION 3.1 STAR; with CTF for templates)."
    ),
]
_Out = Annotated[Path, typer.Option("--out", help="Output folder (created if missing).")]
_Diameter = Annotated[float, typer.Option("--diameter", help="Particle diameter [Å].")]
_Reference = Annotated[
    Path | None,
    typer.Option("--reference", help="Templates: 2D class averages (.mrcs, protein white)."),
]
_Map = Annotated[
    Path | None, typer.Option("--map", help="Templates: projections of this map (.mrc).")
]
_ReferenceApix = Annotated[
    float | None,
    typer.Option("--reference-apix", help="Pixel size of --reference/--map [Å] (default: header)."),
]
_Threshold = Annotated[
    float | None,
    typer.Option("--threshold", help="Keep picks with FOM ≥ this (default: automatic)."),
]
_MinDistance = Annotated[
    float | None,
    typer.Option(
        "--min-distance", help="Smallest distance between picks [Å] (default 0.8 × diameter)."
    ),
]
_PsiStep = Annotated[
    float, typer.Option("--psi-step", help="In-plane angle step of the templates [degrees].")
]
_AngularStep = Annotated[
    float,
    typer.Option("--angular-step", help="Projection directions of --map, HEALPix step [degrees]."),
]
_Invert = Annotated[
    bool,
    typer.Option("--invert/--no-invert", help="Particles are dark (raw micrographs) / white."),
]
_PerDiameter = Annotated[
    float,
    typer.Option(
        "--pixels-per-diameter",
        min=8.0,
        help="Binning: a particle spans this many pixels (more: slower, finer).",
    ),
]
_Overlays = Annotated[
    int, typer.Option("--overlays", min=0, help="Micrographs drawn with their picks.")
]


def _templates(reference: Path | None, volume_path: Path | None, apix, angular_step: float):
    """(templates (T, b, b), their pixel size) — (None, 1.0) for LoG."""
    import torch

    from cryoglass.io import read_mrc

    if reference is None and volume_path is None:
        return None, 1.0
    if reference is not None and volume_path is not None:
        fail("give --reference CLASSES.mrcs or --map MAP.mrc, not both")
    source = reference if reference is not None else volume_path
    if not source.is_file():
        fail(f"{source}: not found")
    with failing(ValueError, OSError):
        data, info = read_mrc(source)
    pixel = apix if apix is not None else info.pixel_size_angstrom
    if pixel is None:
        fail(f"{source}: no pixel size in the header; pass --reference-apix")
    if reference is not None:
        stack = data if data.ndim == 3 else data[None]
        if stack.shape[-1] != stack.shape[-2]:
            fail(f"{source}: templates must be square, got {tuple(stack.shape[-2:])}")
        return stack.float(), pixel
    if data.ndim != 3 or len(set(data.shape)) != 1:
        fail(f"{source}: --map needs a cubic map, got shape {tuple(data.shape)}")
    from cryoglass.geometry.so3_grid import healpix_directions, order_for_angular_step
    from cryoglass.projection import project

    directions = healpix_directions(order_for_angular_step(angular_step), dtype=torch.float64)
    euler = torch.cat([directions, torch.zeros(len(directions), 1, dtype=torch.float64)], -1)
    projections = project(data.float(), euler_deg=euler.float(), pixel_size_angstrom=pixel)
    return projections, pixel


def _check(table, pixels, shapes, diameter: float, min_distance: float) -> None:
    if not diameter > 0:
        fail(f"--diameter {diameter:g}: must be > 0 Å")
    if not min_distance > 0:
        fail(f"--min-distance {min_distance:g}: must be > 0 Å")
    for file, pixel, (h, w) in zip(table.files, pixels, shapes, strict=True):
        if diameter >= min(h, w) * pixel:
            fail(
                f"{file}: --diameter {diameter:g} Å is larger than the micrograph "
                f"({w} × {h} px at {pixel:g} Å = {min(h, w) * pixel:g} Å)"
            )


def _threshold(results, threshold: float | None) -> tuple[float, bool]:
    import torch

    from cryoglass.preprocess.pick import mixture_threshold

    if threshold is not None:
        return threshold, False
    values = torch.cat([r["figure_of_merit"] for r in results])
    if values.numel() == 0:
        return 0.0, True
    return mixture_threshold(values), True


def _write(out: Path, table, results, threshold: float, *, overwrite: bool):
    """<stem>_autopick.star per micrograph and autopick.star with every pick."""
    import torch

    from cryoglass.cli._micrograph_steps import names_for
    from cryoglass.io import write_coordinates_star

    names = names_for(out, table)
    rows, coordinates, foms = [], [], []
    counts = []
    with failing():
        for i, (stem, r) in enumerate(zip(table.stems, results, strict=True)):
            keep = r["figure_of_merit"] >= threshold
            xy, fom = r["coordinates_px"][keep], r["figure_of_merit"][keep]
            write_coordinates_star(out / f"{stem}_autopick.star", xy, figure_of_merit=fom,
                                   overwrite=True)  # fmt: skip
            rows += [i] * len(xy)
            coordinates.append(xy)
            foms.append(fom)
            counts.append(len(xy))
        write_coordinates_star(
            out / "autopick.star",
            torch.cat(coordinates) if coordinates else torch.zeros(0, 2),
            micrograph_names=[names[i] for i in rows],
            figure_of_merit=torch.cat(foms) if foms else torch.zeros(0),
            overwrite=overwrite,
        )
    return counts


def _figures(out: Path, table, results, threshold, automatic, diameter, settings) -> list[str]:
    import torch

    from cryoglass.report.pick import save_fom_histogram, save_picks_overlay

    written = []
    every = torch.cat([r["figure_of_merit"] for r in results])
    save_fom_histogram(out / "fom_histogram.png", every, threshold=threshold, automatic=automatic,
                       title=f"{len(results)} micrographs")  # fmt: skip
    written.append(str(out / "fom_histogram.png"))
    for i, r in enumerate(results[: settings.overlays]):
        binning = r["binning"]
        keep = r["figure_of_merit"] >= threshold
        picks = binning.to_binned(r["coordinates_px"][keep])
        radius = diameter / (2 * settings.pixel_sizes_angstrom[i] * 0.5 * sum(binning.scale))
        path = out / "overlays" / f"{table.stems[i]}_picks.png"
        path.parent.mkdir(exist_ok=True)
        save_picks_overlay(path, r["image"].float(), picks, radius_px=radius,
                           title=table.names[i])  # fmt: skip
        written.append(str(path))
    return written


def main(
    star: _Star,
    out: _Out,
    diameter: _Diameter = ...,
    reference: _Reference = None,
    volume_path: _Map = None,
    reference_apix: _ReferenceApix = None,
    threshold: _Threshold = None,
    min_distance: _MinDistance = None,
    psi_step: _PsiStep = 10.0,
    angular_step: _AngularStep = 30.0,
    invert: _Invert = True,
    overlays: _Overlays = 8,
    pixels_per_diameter: _PerDiameter = 24.0,
    apix: Apix = None,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Pick particles: reference-free LoG blobs (as RELION's LoG picker) or CTF-aware templates.

    Each micrograph is binned so that a particle spans --pixels-per-diameter pixels (24).
    Without templates its figure of merit (FOM) is the scale-normalised Laplacian of Gaussian
    at diameters 0.75–1.25 × --diameter, in units of its robust standard deviation.  With
    --reference (2D class averages) or --map (projections every --angular-step degrees) the
    templates, turned every --psi-step degrees and multiplied by each micrograph's CTF (from
    micrographs_ctf.star), are matched by the locally normalised cross-correlation (Roseman
    2003).  Peaks at least --min-distance apart and a radius from the edges are candidates;
    those with FOM ≥ --threshold are picks.  Without --threshold it is chosen automatically: a
    mixture of two Gaussians (background, particles) is fitted to all candidates' FOMs and the
    threshold is where a candidate becomes more likely a particle.  Look at fom_histogram.png
    and rerun with --threshold to move it.  The science is cryoglass.preprocess.pick.

    Writes into OUT: <micrograph stem>_autopick.star per micrograph (rlnCoordinateX/Y in pixels,
    rlnAutopickFigureOfMerit, as relion_autopick), autopick.star (every pick with its
    rlnMicrographName), fom_histogram.png and overlays/<stem>_picks.png for the first
    --overlays micrographs.

    \b
    Examples:
      cryoglass pick CtfFind/micrographs_ctf.star --diameter 150 --out AutoPick
      cryoglass pick CtfFind/micrographs_ctf.star --diameter 150 --reference classes.mrcs \\
        --out AutoPick --threshold 0.25 --workers 2
      cryoglass pick micrographs_ctf.star --diameter 150 --map map.mrc --angular-step 20 --out P
    The RELION 3.1 LoG job it compares with:
      relion_autopick --i micrographs_ctf.star --odir AutoPick/ --pickname autopick --LoG \\
        --LoG_diam_min 120 --LoG_diam_max 180 --shrink 0 --lowpass 20
    """
    import torch

    from cryoglass.cli._micrograph_steps import (
        check_output_folder,
        micrograph_shapes,
        read_micrographs,
        run_per_micrograph,
    )
    from cryoglass.distributed.ctffind_pick import PickSettings, pick_task

    started = time.perf_counter()
    min_distance = 0.8 * diameter if min_distance is None else min_distance
    table, pixels = read_micrographs(star, apix=apix)
    _check(table, pixels, micrograph_shapes(table), diameter, min_distance)
    templates, template_pixel = _templates(reference, volume_path, reference_apix, angular_step)
    if templates is not None and table.ctf is None:
        typer.echo(f"{star}: no CTF columns: templates are matched without a CTF "
                   "(run cryoglass ctffind first for CTF-aware matching)", err=True)  # fmt: skip
    products = [out / "autopick.star", *(out / f"{s}_autopick.star" for s in table.stems)]
    check_output_folder(out, products, [star, *table.files], overwrite)
    ctfs = tuple(None if table.ctf is None or templates is None else table.ctf[i]
                 for i in range(len(table)))  # fmt: skip
    settings = PickSettings(
        files=tuple(str(f.resolve()) for f in table.files), pixel_sizes_angstrom=tuple(pixels),
        ctf=ctfs, diameter_angstrom=diameter, min_distance_angstrom=min_distance,
        templates=templates, template_pixel_size_angstrom=template_pixel,
        psi_deg=None if templates is None else tuple(torch.arange(0.0, 360.0, psi_step).tolist()),
        invert=invert, overlays=min(overlays, len(table)),
        pixels_per_diameter=pixels_per_diameter,
    )  # fmt: skip
    results, run = run_per_micrograph(pick_task, len(table), settings, workers=workers,
                                      scheduler=scheduler, label="picking")  # fmt: skip
    cut, automatic = _threshold(results, threshold)
    counts = _write(out, table, results, cut, overwrite=overwrite)
    figures = _figures(out, table, results, cut, automatic, diameter, settings)
    method = "LoG" if templates is None else ("classes" if reference is not None else "map")
    summary = {
        "headline": HEADLINE, "micrographs": len(table), "picks": sum(counts),
        "picks_per_micrograph": round(sum(counts) / len(table), 2), "threshold": round(cut, 5),
        "threshold_automatic": automatic, "method": method,
        "templates": 0 if templates is None else int(templates.shape[0]),
        "candidates": sum(len(r["figure_of_merit"]) for r in results),
        "seconds_per_micrograph": round(sum(r["seconds"] for r in results) / len(results), 3),
        "seconds": round(time.perf_counter() - started, 3), "star": str(out / "autopick.star"),
        "figures": figures, "per_micrograph": dict(zip(table.names, counts, strict=True)),
        **{k: v for k, v in run.items() if k != "seconds"},
    }  # fmt: skip
    if json_output:
        print_json(summary)
        return
    typer.echo(f"picked {sum(counts)} particles on {len(table)} micrographs ({method}, threshold "
               f"{cut:.4g}{' automatic' if automatic else ''}); wrote {out}/autopick.star, "
               f"{len(table)} *_autopick.star and {len(figures)} figures", err=True)  # fmt: skip
