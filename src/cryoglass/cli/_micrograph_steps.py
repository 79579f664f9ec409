"""What ``ctffind``, ``select-micrographs`` and ``pick`` share: reading and checking micrographs.

* :func:`read_micrographs` — the micrographs STAR file, every file present, one line otherwise.
* :func:`micrograph_shapes` — each micrograph's (h, w) from its header (no data read).
* :func:`names_for` — file names as the output STAR file (in another folder) must write them.
* :func:`optics_groups` — the distinct optics groups and each row's group number.
* :func:`run_per_micrograph` — a task on every micrograph, here or on Dask, with a progress bar.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing


def read_micrographs(star: Path, *, apix: float | None = None):
    """The micrographs of ``star`` (RELION 3.1 micrographs STAR file); exits on bad input.

    Returns
    -------
    (MicrographTable, list of float)
        The table and each micrograph's pixel size [Å] (``apix`` when given).
    """
    from cryoglass.io import read_micrograph_table

    if not star.is_file():
        fail(f"{star}: micrographs STAR file not found")
    with failing(ValueError, KeyError, OSError):
        table = read_micrograph_table(star, kind="micrographs")
    missing = [f for f in table.files if not f.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        fail(f"{star}: micrograph {missing[0]} not found{more}")
    stems = table.stems
    if len(set(stems)) != len(stems):
        twice = next(s for s in stems if stems.count(s) > 1)
        fail(f"{star}: two micrographs are named {twice}; their outputs would collide")
    if apix is not None and not apix > 0:
        fail(f"--apix {apix}: must be > 0 Å")
    pixels = [apix if apix is not None else table.pixel_size_angstrom(i) for i in range(len(table))]
    return table, pixels


def micrograph_shapes(table) -> list[tuple[int, int]]:
    """``(h, w)`` of every micrograph from its MRC header; exits on an unreadable file."""
    from cryoglass.io import read_mrc_header

    shapes = []
    for file in table.files:
        with failing(ValueError, OSError):
            shape = read_mrc_header(file).shape
        if len(shape) == 3 and shape[0] != 1:
            fail(f"{file}: has {shape[0]} frames; give motion-corrected micrographs, not movies")
        shapes.append(tuple(int(s) for s in shape[-2:]))
    return shapes


def names_for(out_folder: Path, table, files=None) -> list[str]:
    """How a STAR file in ``out_folder`` names the micrographs.

    A name that already works from the working directory (RELION's project-relative names) is
    kept as written; otherwise it is written relative to ``out_folder`` (cryoglass resolves
    names beside the STAR file).
    """
    files = table.files if files is None else files
    names = []
    for name, file in zip(table.names, files, strict=True):
        path = Path(name)
        if not path.is_absolute() and path.resolve() == Path(file).resolve():
            names.append(name)
        else:
            names.append(os.path.relpath(Path(file).resolve(), out_folder.resolve()))
    return names


def optics_groups(table) -> tuple[list, list[int]]:
    """The distinct optics groups (in order of appearance) and each row's 1-based group."""
    groups: list = []
    rows = []
    for optics in table.optics:
        if optics not in groups:
            groups.append(optics)
        rows.append(groups.index(optics) + 1)
    return groups, rows


def run_per_micrograph(task, count: int, settings, *, workers, scheduler, label: str):
    """``map_micrographs`` under a progress bar; exits with one line on a task's ValueError."""
    from rich.progress import Progress

    from cryoglass.distributed.micrographs import map_micrographs

    if workers is not None and scheduler is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    with Progress(transient=True) as progress:
        bar = progress.add_task(label, total=count)
        with failing(ValueError, OSError):
            return map_micrographs(
                task,
                list(range(count)),
                settings=settings,
                workers=workers,
                scheduler=scheduler,
                progress=lambda k: progress.update(bar, advance=k),
                echo=lambda text: typer.echo(text, err=True),
                label=label.replace(" ", "-"),
            )


def check_output_folder(out: Path, products: list[Path], inputs: list[Path], overwrite: bool):
    """Create ``out``; refuse existing products without ``overwrite`` and any input among them."""
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    check_outputs(products, inputs=inputs, overwrite=overwrite, creates=[out])
    out.mkdir(parents=True, exist_ok=True)
