"""`cryoglass filter`: low-pass, high-pass, blur or sharpen a map by a B-factor."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail


def main(
    map_in: Path = typer.Argument(..., help="Input map (.mrc); never modified."),
    out: Path = typer.Option(..., "--out", help="Output map (.mrc), written atomically."),
    lowpass_angstrom: float | None = typer.Option(
        None, "--lowpass-angstrom", help="Raised-cosine low-pass at this resolution [Å]."
    ),
    bfactor: float | None = typer.Option(
        None,
        "--bfactor",
        help="Multiply amplitudes by exp(-B k²/4) [Å²]: B > 0 blurs, B < 0 sharpens.",
    ),
    highpass_angstrom: float | None = typer.Option(
        None,
        "--highpass-angstrom",
        help="Raised-cosine high-pass: remove features larger than this [Å].",
    ),
    apix: float | None = typer.Option(
        None, "--apix", help="Pixel size [Å] (default: from the MRC header)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Blur or sharpen a map: B-factor, low-pass and/or high-pass in Fourier space.

    Filters combine (applied in one pass): B-factor envelope exp(-B k²/4), then a
    raised-cosine low-pass (edge two Fourier pixels, half height at the cut-off) and a
    high-pass.  The input file is never modified.

    Examples:

    \b
      cryoglass filter map.mrc --lowpass-angstrom 8 --out map_8A.mrc
      cryoglass filter map.mrc --bfactor -80 --lowpass-angstrom 3.5 --out map_sharp.mrc
      cryoglass filter map.mrc --bfactor 200 --out map_blurred.mrc
      cryoglass filter map.mrc --highpass-angstrom 40 --out map_hp.mrc
    """
    if lowpass_angstrom is None and bfactor is None and highpass_angstrom is None:
        fail("give at least one of --lowpass-angstrom, --bfactor, --highpass-angstrom")
    for name, value in (
        ("--lowpass-angstrom", lowpass_angstrom),
        ("--highpass-angstrom", highpass_angstrom),
    ):
        if value is not None and not value > 0:
            fail(f"{name} must be a positive resolution in Å, got {value}")
    if not map_in.is_file():
        fail(f"{map_in}: no such file")
    if out.resolve() == map_in.resolve():
        fail(f"--out {out} is the input map; choose another file (the input is never modified)")
    if out.exists() and not overwrite:
        fail(f"{out}: file exists; pass --overwrite to replace it")

    import torch

    from cryoglass.fourier import apply_fourier_filter, bfactor_filter
    from cryoglass.fourier.filters import highpass_filter, lowpass_filter
    from cryoglass.io import read_mrc, write_mrc

    try:
        volume, info = read_mrc(map_in)
    except (OSError, ValueError) as error:
        fail(str(error))
    if volume.ndim != 3 or info.is_stack:
        fail(f"{map_in}: expected a 3D map, got shape {tuple(volume.shape)}")
    pixel = apix if apix is not None else info.pixel_size_angstrom
    if pixel is None:
        fail(f"{map_in}: the header has no pixel size; pass --apix")
    nyquist = 2.0 * pixel
    for name, value in (
        ("--lowpass-angstrom", lowpass_angstrom),
        ("--highpass-angstrom", highpass_angstrom),
    ):
        if value is not None and value < nyquist:
            fail(f"{name} {value} Å is finer than Nyquist ({nyquist:g} Å at {pixel:g} Å/pixel)")
    shape = tuple(volume.shape)
    grid = dict(pixel_size_angstrom=pixel, rfft=True, dtype=torch.float64)
    filt = torch.ones(shape[:-1] + (shape[-1] // 2 + 1,), dtype=torch.float64)
    if bfactor is not None:
        filt = filt * bfactor_filter(shape, bfactor_a2=bfactor, **grid)
    if lowpass_angstrom is not None:
        filt = filt * lowpass_filter(shape, resolution_angstrom=lowpass_angstrom, **grid)
    if highpass_angstrom is not None:
        filt = filt * highpass_filter(shape, resolution_angstrom=highpass_angstrom, **grid)
    result = apply_fourier_filter(volume.to(torch.float64), filt, ndim=3)
    try:
        write_mrc(out, result.float(), pixel_size_angstrom=pixel, overwrite=overwrite)
    except (OSError, ValueError) as error:
        fail(str(error))
    typer.echo(f"wrote {out} ({shape[0]}³ at {pixel:g} Å/pixel)")
