"""`cryoglass filter`: low-pass, high-pass, blur or sharpen a map by a B-factor."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli.options import JsonOutput


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
    json_output: JsonOutput = False,
) -> None:
    """Blur or sharpen a map: B-factor, low-pass and/or high-pass in Fourier space.

    Filters combine (applied in one pass): B-factor envelope exp(-B k²/4), then a
    raised-cosine low-pass (edge two Fourier pixels, half height at the cut-off) and a
    high-pass.  The input file is never modified.  The output keeps the input's header except
    what filtering changes (the values, their statistics and the mode, float32): origin
    (nxstart…), cell and per-axis voxel sizes, axis order, space group, labels and extended
    header.  Frequencies use each axis's own voxel size; non-orthogonal (crystallographic)
    cells are refused.

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
    check_outputs([out], inputs=[map_in], overwrite=overwrite)

    import torch

    from cryoglass.fourier import apply_fourier_filter, bfactor_filter
    from cryoglass.fourier.filters import highpass_filter, lowpass_filter
    from cryoglass.io import read_mrc, write_mrc

    with failing():
        volume, info = read_mrc(map_in)
    if volume.ndim != 3 or info.is_stack:
        fail(f"{map_in}: expected a 3D map, got shape {tuple(volume.shape)}")
    pixel = _voxel_sizes(map_in, info, apix)
    nyquist = 2.0 * max(pixel)
    for name, value in (
        ("--lowpass-angstrom", lowpass_angstrom),
        ("--highpass-angstrom", highpass_angstrom),
    ):
        if value is not None and value < nyquist:
            fail(f"{name} {value} Å is finer than Nyquist ({nyquist:g} Å at {_describe(pixel)})")
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
    with failing():
        write_mrc(
            out, result.float(), pixel_size_angstrom=apix, header_from=map_in, overwrite=overwrite
        )
    summary = {
        "headline": ["output", "voxel_size_angstrom"],
        "input": str(map_in),
        "output": str(out),
        "shape": list(shape),
        "voxel_size_angstrom": list(pixel),
        "bfactor": bfactor,
        "lowpass_angstrom": lowpass_angstrom,
        "highpass_angstrom": highpass_angstrom,
        "header_kept_from": str(map_in),
    }
    if json_output:
        print_json(summary)
        return
    typer.echo(
        f"wrote {out} ({'×'.join(str(n) for n in shape[::-1])} at {_describe(pixel)}; header "
        f"of {map_in.name} kept: origin, cell, space group, axis order)"
    )


def _voxel_sizes(path: Path, info, apix: float | None) -> tuple[float, float, float]:
    """(x, y, z) voxel sizes [Å]: --apix, else the header's per-axis sizes; fail if unknown."""
    if apix is not None:
        if not (math.isfinite(apix) and apix > 0):
            fail(f"--apix must be positive and finite (a pixel size in Å), got {apix}")
        return (float(apix),) * 3
    if not info.orthogonal:
        angles = ", ".join(f"{a:g}" for a in info.cell_angles_deg)
        fail(
            f"{path}: the unit cell is not orthogonal (α, β, γ = {angles}°); filtering such a "
            "(crystallographic) map needs its reciprocal metric, which cryoglass does not do"
        )
    sizes = info.voxel_size_angstrom
    if any(v in (0.0, 1.0) for v in sizes):
        fail(f"{path}: the header has no pixel size (voxel size {sizes}); pass --apix")
    if not all(math.isfinite(v) and v > 0 for v in sizes):
        fail(f"{path}: the header's voxel size {sizes} Å is not positive; pass --apix")
    return tuple(float(v) for v in sizes)


def _describe(pixel: tuple[float, float, float]) -> str:
    if max(pixel) - min(pixel) <= 1e-6 * max(pixel):
        return f"{pixel[0]:g} Å/pixel"
    return "(" + ", ".join(f"{p:.4g}" for p in pixel) + ") Å/voxel in (x, y, z)"
