"""`cryoglass stack`: particle-stack utilities (convert an MRC stack to a chunked Zarr store)."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json
from cryoglass.cli.options import DataDir

app = typer.Typer(
    help="Particle-stack utilities: convert to a chunked Zarr store.",
    no_args_is_help=True,
)


def _source(path: Path, pixel_size: float | None, datadir: Path | None = None):
    """(reader with len/read, pixel size [Å], description) for a .star or an MRC stack."""
    if not path.exists():
        fail(f"{path}: not found")
    if path.suffix.lower() == ".star":
        from cryoglass.io import ParticleStack, read_particles
        from cryoglass.io.particles import missing_images_message

        try:
            particles = read_particles(path, datadir=datadir)
        except (ValueError, KeyError, OSError) as error:
            fail(f"{path}: {error}")
        if len(particles) == 0:
            fail(f"{path}: no particles")
        missing = missing_images_message(particles, source=str(path))
        if missing is not None:
            fail(missing)
        px = particles.pixel_size_angstrom
        if pixel_size is None:
            if float(px.max() - px.min()) > 0.01 * float(px.min()):
                fail(f"{path}: particles have different pixel sizes; one Zarr stack needs one")
            pixel_size = float(px[0])
        return ParticleStack(particles), pixel_size, f"{len(particles)} particles of {path}"
    if path.suffix.lower() in (".mrcs", ".mrc", ".st"):
        from cryoglass.io import open_mrc_stack

        try:
            stack = open_mrc_stack(path)
        except (ValueError, OSError) as error:
            fail(f"{path}: {error}")
        if pixel_size is None:
            pixel_size = stack.info.pixel_size_angstrom
        if pixel_size is None:
            stack.close()
            fail(f"{path}: header has no pixel size; give --apix")
        return stack, float(pixel_size), f"{len(stack)} images of {path}"
    fail(f"{path}: expected a .star file or an MRC stack (.mrcs, .mrc)")


def _write_zarr_star(particles, store: Path, star_out: Path, *, overwrite: bool) -> None:
    """``particles`` re-pointed at ``store`` (image i of the set is image i + 1 of the store)."""
    import os

    from cryoglass.io import write_relion_star

    star_dir = star_out.resolve().parent
    location = os.path.relpath(store.resolve(), star_dir)
    names = [f"{i + 1:06d}@{location}" for i in range(len(particles))]
    moved = particles.with_image_names(names, image_root=star_dir)
    write_relion_star(star_out, moved, overwrite=overwrite)


@app.command("convert")
def convert(
    source: Path = typer.Argument(..., metavar="IN", help="Particles (.star) or a stack (.mrcs)."),
    out: Path = typer.Option(..., "--out", help="Output Zarr store (a folder, NAME.zarr)."),
    chunk_images: int = typer.Option(
        1024, "--chunk-images", min=1, help="Images per Zarr chunk (and per read/write)."
    ),
    pixel_size: float | None = typer.Option(
        None, "--apix", help="Pixel size [Å] (default: from the STAR/MRC header)."
    ),
    star_out: Path | None = typer.Option(
        None,
        "--star-out",
        help="Also write this STAR file: IN's particles pointing at OUT (needs a .star IN).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    datadir: DataDir = None,
) -> None:
    """Convert particle images (STAR order, or an MRC stack) into a chunked Zarr store.

    The images are read and written --chunk-images at a time, so the stack never has to fit
    in memory.  OUT holds the float32 array OUT/images (n, h, w), chunked by whole images,
    and the pixel size as the group attribute pixel_size_angstrom (docs/scaling.md).  Read it
    back with cryoglass.io.zarr_stack.open_zarr_stack(OUT).read(indices).  With --star-out,
    a copy of the STAR file whose rlnImageName column points at OUT (N@OUT.zarr, in STAR
    order) is written too: every command reads particles from it as from the MRC stacks.

    \b
    Examples:
      cryoglass stack convert particles.star --out particles.zarr --star-out zarr.star
      cryoglass stack convert run_it025_data.mrcs --out run.zarr --chunk-images 4096
    """
    import time

    from cryoglass.distributed.cluster import peak_rss_bytes
    from cryoglass.io.zarr_stack import ZARR_MISSING, write_zarr_stack, zarr_available

    if not zarr_available():
        fail(f"stack convert: {ZARR_MISSING}")

    if out.exists() and not overwrite:
        fail(f"{out}: exists; pass --overwrite to replace it")
    if out.resolve() == source.resolve():
        fail(f"{out}: is the input")
    if pixel_size is not None and not pixel_size > 0:
        fail(f"--apix must be > 0, got {pixel_size}")
    if star_out is not None:
        if source.suffix.lower() != ".star":
            fail(f"--star-out needs particles from a .star file, got {source}")
        if star_out.suffix.lower() != ".star":
            fail(f"--star-out {star_out}: expected a .star file name")
        if star_out.resolve() == source.resolve():
            fail(f"--star-out {star_out}: would overwrite the input")
        if star_out.exists() and not overwrite:
            fail(f"{star_out}: exists; pass --overwrite to replace it")
    reader, pixel, what = _source(source, pixel_size, datadir)
    started = time.perf_counter()
    try:
        with reader:
            write_zarr_stack(
                out,
                reader,
                pixel_size_angstrom=pixel,
                chunk_images=chunk_images,
                overwrite=overwrite,
            )
            n, shape = len(reader), reader.image_shape
    except (ValueError, OSError) as error:
        fail(f"{source}: {error}")
    seconds = time.perf_counter() - started
    typer.echo(f"wrote {out}: {what}, {shape[1]}×{shape[0]} px, {pixel:g} Å/px", err=True)
    if star_out is not None:
        _write_zarr_star(reader.particles, out, star_out, overwrite=overwrite)
        typer.echo(f"wrote {star_out}: rlnImageName → {out.name}", err=True)
    if json_output:
        print_json(
            {
                "input": str(source),
                "output": str(out),
                "images": n,
                "image_shape": list(shape),
                "pixel_size_angstrom": pixel,
                "chunk_images": chunk_images,
                "star_out": None if star_out is None else str(star_out),
                "seconds": round(seconds, 3),
                "peak_rss_mib": round(peak_rss_bytes() / 2**20, 1),
            }
        )
