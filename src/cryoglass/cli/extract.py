"""`cryoglass extract`: particles from micrographs, as ``relion_preprocess --extract --norm``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli._micrograph_steps import run_per_micrograph
from cryoglass.cli.options import Apix, JsonOutput, Overwrite, Scheduler, Workers

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["particles", "micrographs", "box_px", "pixel_size_angstrom"]

_Star = Annotated[
    Path, typer.Argument(help="Micrographs STAR file (rlnMicrographName; CTF columns if any).")
]
_Coords = Annotated[
    Path,
    typer.Option(
        "--coords",
        help="Folder of <micrograph>_autopick.star / _pick.star files, or one STAR file with "
        "rlnMicrographName.",
    ),
]
_Box = Annotated[int, typer.Option("--box", help="Extraction box [micrograph pixels], even.")]
_BgRadius = Annotated[
    float | None,
    typer.Option("--bg-radius", help="Background radius [output pixels] (default 0.375 × box)."),
]
_Invert = Annotated[
    bool, typer.Option("--invert-contrast", help="Negate the images (raw data: protein white).")
]
_Norm = Annotated[
    bool, typer.Option("--norm/--no-norm", help="Background to mean 0, std 1 (RELION's --norm).")
]
_Ramp = Annotated[
    bool, typer.Option("--ramp/--no-ramp", help="Subtract the background plane first.")
]
_Bin = Annotated[int, typer.Option("--bin", help="Bin the particles (Fourier crop to box/bin).")]
_Out = Annotated[Path, typer.Option("--out", help="Output folder: particles.star and stacks.")]


def _stack_path(out: Path, name: str) -> Path:
    """RELION: OUT/<micrograph path without extension>.mrcs (relative paths kept)."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        path = Path(path.name)
    return out / path.with_suffix(".mrcs")


def _check_inputs(table, found: dict, box: int, bin_factor: int, coords: Path):
    """Micrograph files and sizes, coordinates inside them, the box: refuse in one line."""
    from cryoglass.io import read_mrc_header

    if box < 4 or box % 2:
        fail(f"--box {box}: must be even and at least 4 px")
    if bin_factor < 1 or box % bin_factor or (box // bin_factor) % 2:
        fail(f"--bin {bin_factor}: box {box} / bin must be an even whole number")
    rows = [i for i, stem in enumerate(table.stems) if stem in found]
    if not rows:
        fail(f"{coords}: no coordinates for any micrograph of {table.path}")
    if len({table.optics[i] for i in rows}) > 1:
        fail(f"{table.path}: micrographs of several optics groups; extract each group separately")
    for i in rows:
        file = table.files[i]
        if not file.is_file():
            fail(f"{table.path}: micrograph {table.names[i]} not found ({file})")
        with failing(ValueError, OSError, prefix=f"{file}: "):
            info = read_mrc_header(file)
        h, w = info.shape[-2:]
        if len(info.shape) != 2 and not (len(info.shape) == 3 and info.shape[0] == 1):
            fail(f"{file}: a micrograph must be one 2D image, got shape {info.shape}")
        if box > min(h, w):
            fail(f"--box {box}: larger than micrograph {table.names[i]} ({w} × {h} px)")
        xy = found[table.stems[i]]["coordinates_px"]
        outside = (xy[:, 0] < 0) | (xy[:, 0] >= w) | (xy[:, 1] < 0) | (xy[:, 1] >= h)
        if bool(outside.any()):
            k = int(outside.nonzero()[0, 0])
            x, y = xy[k].tolist()
            fail(
                f"{found[table.stems[i]]['source']}: particle {k + 1} at ({x:g}, {y:g}) px lies "
                f"outside micrograph {table.names[i]} ({w} × {h} px)"
            )
    return rows


def _settings(table, rows, found, out, *, box, bin_factor, radius, norm, ramp, invert):
    from cryoglass.distributed.micrographs import ExtractSettings

    output = box // bin_factor
    if norm:
        r = round(0.375 * output) if radius is None else radius
        if 2 * r > output or r < 0:
            fail(f"--bg-radius {r:g}: 2 × radius must fit in the {output} px output box")
    return ExtractSettings(
        micrographs=tuple(str(table.files[i].resolve()) for i in rows),
        stacks=tuple(str(_stack_path(out, table.names[i]).resolve()) for i in rows),
        coordinates=tuple(found[table.stems[i]]["coordinates_px"] for i in rows),
        pixel_sizes=tuple(table.pixel_size_angstrom(i) * bin_factor for i in rows),
        box=box,
        bin_factor=bin_factor,
        radius_px=radius,
        normalise=norm,
        ramp=ramp,
        invert_contrast=invert,
    )


def _write_star(out: Path, table, rows, found, settings) -> tuple[Path, int]:
    """OUT/particles.star (RELION 3.1) naming each particle's stack image and micrograph."""
    import dataclasses

    import pandas as pd
    import torch

    from cryoglass.io import make_particle_set, write_relion_star

    names, micrographs, xy, fom, row_of = [], [], [], [], []
    for i, stack in zip(rows, settings.stacks, strict=True):
        entry = found[table.stems[i]]
        relative = Path(stack).relative_to(out.resolve())
        n = len(entry["coordinates_px"])
        names += [f"{k + 1:06d}@{relative}" for k in range(n)]
        micrographs += [table.names[i]] * n
        xy.append(entry["coordinates_px"])
        fom.append(entry.get("figure_of_merit", torch.full((n,), float("nan"))))
        row_of += [i] * n
    index = torch.tensor(row_of, dtype=torch.long)
    particles = make_particle_set(
        names,
        pixel_size_angstrom=torch.tensor([settings.pixel_sizes[rows.index(i)] for i in row_of]),
        image_size=settings.box // settings.bin_factor,
        ctf=None if table.ctf is None else table.ctf.expand(len(table))[index],
        optics_group=torch.ones(len(names), dtype=torch.long),
        image_root=out,
    )
    coordinates = torch.cat(xy).numpy()
    columns = {
        "rlnCoordinateX": coordinates[:, 0],
        "rlnCoordinateY": coordinates[:, 1],
        "rlnMicrographName": micrographs,
    }
    merit = torch.cat(fom)
    if not bool(merit.isnan().all()):
        columns["rlnAutopickFigureOfMerit"] = merit.numpy()
    for column in ("rlnCtfMaxResolution", "rlnCtfFigureOfMerit"):
        values = table.column(column)
        if values is not None:
            columns[column] = values[index.numpy()]
    lens = table.optics[rows[0]]
    optics = pd.DataFrame(
        [
            {
                "rlnOpticsGroup": 1,
                "rlnOpticsGroupName": lens.name,
                "rlnMicrographOriginalPixelSize": lens.original_pixel_size_angstrom,
                "rlnVoltage": lens.voltage_kv,
                "rlnSphericalAberration": lens.cs_mm,
                "rlnAmplitudeContrast": lens.amplitude_contrast,
            }
        ]
    )
    particles = dataclasses.replace(
        particles, particles_table=pd.DataFrame(columns), optics_table=optics
    )
    return write_relion_star(out / "particles.star", particles, overwrite=True), len(names)


def main(
    micrographs_star: _Star,
    coords: _Coords = ...,
    box: _Box = ...,
    out: _Out = ...,
    bg_radius: _BgRadius = None,
    invert_contrast: _Invert = False,
    norm: _Norm = True,
    ramp: _Ramp = True,
    bin_factor: _Bin = 1,
    apix: Apix = None,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Extract particles from micrographs as relion_preprocess --extract --norm does.

    For each coordinate (rlnCoordinateX/Y, pixels) a --box window centred on it (RELION's
    integer position; pixels beyond the micrograph repeat its edge), Fourier-cropped by --bin,
    normalised — the least-squares plane through the background (outside --bg-radius) removed,
    the background scaled to mean 0 and std 1 — and, with --invert-contrast, negated.  Each
    particle gets its micrograph's CTF (rlnDefocusU/V/Angle).  The science is
    cryoglass.preprocess.extract.

    Coordinates come as RELION keeps them: a folder searched for <micrograph stem>_autopick.star
    / _manualpick.star / _pick.star, or one STAR file with rlnMicrographName.  Writes
    OUT/<micrograph path>.mrcs (one stack per micrograph) and OUT/particles.star (RELION 3.1:
    optics with rlnImagePixelSize, rlnImageSize; rlnImageName, rlnMicrographName,
    rlnCoordinateX/Y, CTF).  Micrographs are processed independently: --workers/--scheduler
    spread them over Dask.

    \b
    Examples:
      cryoglass extract MC/corrected_micrographs.star --coords sim/truth/coordinates.star \\
        --box 256 --invert-contrast --bin 2 --out Extract
      cryoglass extract CTF/micrographs_ctf.star --coords AutoPick --box 200 --bg-radius 75 \\
        --invert-contrast --out Extract --workers 2
    """
    from cryoglass.io.micrographs import read_coordinates, read_micrograph_table

    started = time.perf_counter()
    with failing(ValueError, OSError):
        table = read_micrograph_table(
            micrographs_star, kind="micrographs", pixel_size_angstrom=apix
        )
        found = read_coordinates(coords, table.stems)
    rows = _check_inputs(table, found, box, bin_factor, coords)
    star = out / "particles.star"
    options = {"radius": bg_radius, "norm": norm, "ramp": ramp, "invert": invert_contrast}
    settings = _settings(table, rows, found, out, box=box, bin_factor=bin_factor, **options)
    check_outputs(
        [star, *settings.stacks],
        inputs=[micrographs_star, coords, *table.files],
        overwrite=overwrite,
        creates=[out, *(Path(s).parent for s in settings.stacks)],
    )
    with failing(OSError):
        for stack in settings.stacks:
            Path(stack).parent.mkdir(parents=True, exist_ok=True)
    from cryoglass.distributed.micrographs import extract_task

    results, run = run_per_micrograph(
        extract_task,
        len(settings.micrographs),
        settings,
        workers=workers,
        scheduler=scheduler,
        label="extract",
    )
    with failing():
        star, count = _write_star(out, table, rows, found, settings)
    seconds = time.perf_counter() - started
    summary = {
        "headline": HEADLINE,
        "particles": count,
        "micrographs": len(rows),
        "box_px": box // bin_factor,
        "pixel_size_angstrom": settings.pixel_sizes[0],
        "normalised": norm,
        "inverted": invert_contrast,
        "star": str(star),
        "seconds": round(seconds, 3),
        **{k: v for k, v in run.items() if k != "seconds"},
    }
    if json_output:
        print_json(summary)
        return
    typer.echo(
        f"extracted {count} particles ({box // bin_factor}² px, {settings.pixel_sizes[0]:g} Å/px) "
        f"from {len(rows)} micrographs in {seconds:.1f} s: {star}",
        err=True,
    )
