"""`cryoglass resample`: Fourier-crop or pad a map, a particle stack or a STAR file's particles."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli.options import JsonOutput, Overwrite

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["pixel_size_angstrom", "box"]


def _kind(path: Path) -> str:
    """ "star", "stack" or "map" from the name and the MRC header."""
    from cryoglass.io import read_mrc_header

    if not path.is_file():
        fail(f"{path}: no such file")
    if path.suffix == ".star":
        return "star"
    with failing():
        info = read_mrc_header(path)
    return "stack" if info.is_stack or path.suffix == ".mrcs" else "map"


def _plan(box: int, pixel: float, apix: float | None, new_box: int | None) -> dict:
    """Fourier box, pixel size and final (windowed) box of the output."""
    from cryoglass.fourier.rescale import rescaled_box_size

    if apix is not None:
        with failing():
            fourier_box, new_pixel = rescaled_box_size(
                box, pixel_size_angstrom=pixel, new_pixel_size_angstrom=apix
            )
        final = fourier_box if new_box is None else new_box
    else:
        fourier_box, new_pixel, final = new_box, pixel * box / new_box, new_box
    return {"fourier_box": fourier_box, "pixel": new_pixel, "box": final}


def _resample(images, plan: dict, ndim: int):
    """Fourier crop/pad to the Fourier box, then (with both options) window in real space."""
    from cryoglass.fourier.rescale import center_window, resize_fourier

    shape = (plan["fourier_box"],) * ndim
    out = resize_fourier(images, shape)
    return center_window(out, (plan["box"],) * ndim).float()


def _map(source: Path, out: Path, *, input_apix, apix, new_box, overwrite) -> dict:
    from cryoglass.io import write_mrc
    from cryoglass.io.maps import read_map

    with failing():
        volume, header_pixel = read_map(source)
    pixel = input_apix or header_pixel
    if pixel is None:
        fail(f"{source}: the header has no pixel size; pass --input-apix")
    if len(set(volume.shape)) != 1:
        fail(f"{source}: resampling needs a cubic map, got {tuple(volume.shape)}")
    plan = _plan(volume.shape[-1], pixel, apix, new_box)
    with failing():
        write_mrc(
            out,
            _resample(volume.double(), plan, 3),
            pixel_size_angstrom=plan["pixel"],
            overwrite=overwrite,
        )
    return {"n_images": None, "old_box": volume.shape[-1], "old_pixel": pixel, **plan}


def _stream(read, n: int, stack_out: Path, plan: dict, *, batch_size: int, overwrite: bool):
    """Resample ``n`` images, ``read(indices)`` at a time, into ``stack_out`` (out of core)."""
    import torch
    from rich.console import Console
    from rich.progress import Progress

    from cryoglass.io import MRCStackWriter

    shape = (plan["box"], plan["box"])
    with (
        MRCStackWriter(
            stack_out,
            n_images=n,
            image_shape=shape,
            pixel_size_angstrom=plan["pixel"],
            overwrite=overwrite,
        ) as writer,
        Progress(console=Console(stderr=True), transient=True) as bar,
    ):
        task = bar.add_task("resampling", total=n)
        for start in range(0, n, batch_size):
            indices = torch.arange(start, min(start + batch_size, n))
            writer.write(start, _resample(read(indices), plan, 2))
            bar.update(task, advance=len(indices))


def _stack(source: Path, out: Path, *, input_apix, apix, new_box, batch_size, overwrite) -> dict:
    from cryoglass.io import open_mrc_stack

    with failing(), open_mrc_stack(source) as stack:
        pixel = input_apix or stack.info.pixel_size_angstrom
        if pixel is None:
            fail(f"{source}: the header has no pixel size; pass --input-apix")
        h, w = stack.image_shape
        if h != w:
            fail(f"{source}: resampling needs square images, got {h}×{w}")
        plan = _plan(w, pixel, apix, new_box)
        _stream(stack.read, len(stack), out, plan, batch_size=batch_size, overwrite=overwrite)
        return {"n_images": len(stack), "old_box": w, "old_pixel": pixel, **plan}


def _star(source: Path, out: Path, *, input_apix, apix, new_box, batch_size, overwrite) -> dict:
    from cryoglass.io import ParticleStack, read_particles, write_relion_star
    from cryoglass.io.restack import restacked

    stack_out = out.with_suffix(".mrcs")
    with failing():
        particles = read_particles(source, pixel_size_angstrom=input_apix)
    pixels = particles.pixel_size_angstrom.unique()
    if len(pixels) != 1:
        fail(f"{source}: optics groups have different pixel sizes {pixels.tolist()}; split it")
    check_outputs([stack_out], inputs=[source, *particles.image_files], overwrite=overwrite)
    plan = _plan(particles.image_size, float(pixels[0]), apix, new_box)
    with failing(), ParticleStack(particles) as stack:
        _stream(
            stack.read, len(particles), stack_out, plan, batch_size=batch_size, overwrite=overwrite
        )
        moved = restacked(
            particles, stack_out, pixel_size_angstrom=plan["pixel"], image_size=plan["box"]
        )
        write_relion_star(out, moved, overwrite=overwrite)
    return {
        "n_images": len(particles),
        "old_box": particles.image_size,
        "old_pixel": float(pixels[0]),
        "stack": str(stack_out),
        **plan,
    }


def main(
    source: Path = typer.Argument(
        ..., help="A map (.mrc), a particle stack (.mrcs) or a particle STAR file (.star)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output .mrc / .mrcs / .star (a STAR's stack is written beside it, "
        "named from its stem: out.star → out.mrcs).",
    ),
    apix: float | None = typer.Option(
        None,
        "--apix",
        help="Pixel size of the output [Å] (relion_image_handler "
        "--rescale_angpix; the box is rounded to an even size and the pixel size follows it).",
    ),
    new_box: int | None = typer.Option(
        None,
        "--box",
        help="Box of the output [px]. Alone: Fourier crop/pad to it (cryoDRGN "
        "downsample -D; the pixel size follows). With --apix: window the rescaled images in "
        "real space (relion_image_handler --new_box).",
    ),
    input_apix: float | None = typer.Option(
        None,
        "--input-apix",
        help="Pixel size of the input [Å] (default: the STAR file's "
        "optics group, else the MRC header).",
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Images per batch."),
    overwrite: Overwrite = False,
    as_json: JsonOutput = False,
) -> None:
    """Resample maps or particles by Fourier cropping/padding (a new pixel size or box).

    Cropping the centred spectrum to the central M of N bins down-samples without aliasing;
    zero-padding it interpolates by sinc. The field of view N × pixel stays, so the pixel
    size becomes pixel × N / M; values (and the mean) are kept. With a STAR file every
    particle image is rewritten, batch by batch, into one stack beside --out, and the STAR
    file gets the new rlnImagePixelSize, rlnImageSize and rlnImageName; origins stay in Å
    (rlnOriginX/YAngst), as RELION does. The result equals relion_image_handler's except
    at the new Nyquist frequency (two bins fold onto it: RELION keeps one, cryoglass their
    sum) and, up-sampling, in the corners beyond the input's Nyquist sphere (RELION zeroes
    them).

    Examples:

    \b
      cryoglass resample run_class001.mrc --apix 2.0 --out class001_2A.mrc
      cryoglass resample particles.star --box 128 --out particles_128.star
      cryoglass resample particles.mrcs --apix 1.5 --box 200 --out p_1.5A.mrcs --json
    """
    if apix is None and new_box is None:
        fail("give --apix (a new pixel size), --box (a new box) or both")
    if apix is not None and not apix > 0:
        fail(f"--apix must be a positive pixel size in Å, got {apix}")
    if input_apix is not None and not input_apix > 0:
        fail(f"--input-apix must be a positive pixel size in Å, got {input_apix}")
    if new_box is not None and (new_box < 2 or new_box % 2):
        fail(f"--box must be an even number of pixels >= 2, got {new_box}")
    kind = _kind(source)
    wanted = {"map": (".mrc", ".map"), "stack": (".mrcs",), "star": (".star",)}[kind]
    if out.suffix not in wanted:
        fail(f"--out {out}: a {kind} is written as {' or '.join(wanted)}")
    check_outputs([out], inputs=[source], overwrite=overwrite)
    options = dict(input_apix=input_apix, apix=apix, new_box=new_box, overwrite=overwrite)
    if kind == "map":
        done = _map(source, out, **options)
    else:
        runner = _stack if kind == "stack" else _star
        done = runner(source, out, batch_size=batch_size, **options)
    payload = {
        "headline": HEADLINE,
        "pixel_size_angstrom": done["pixel"],
        "box": done["box"],
        "fourier_box": done["fourier_box"],
        "input_pixel_size_angstrom": done["old_pixel"],
        "input_box": done["old_box"],
        "n_images": done["n_images"],
        "kind": kind,
        "files": {"out": str(out), **({"stack": done["stack"]} if "stack" in done else {})},
    }
    if as_json:
        print_json(payload)
        return
    count = f"{done['n_images']} images " if done["n_images"] else ""
    typer.echo(
        f"{count}{done['old_box']} px at {done['old_pixel']:g} Å → {done['box']} px at "
        f"{done['pixel']:.4g} Å; wrote {out}" + (f" and {done['stack']}" if "stack" in done else "")
    )
