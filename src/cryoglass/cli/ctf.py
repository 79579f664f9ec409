"""`cryoglass ctf`: compute, describe and plot a CTF (RELION 3.1 formula and sign)."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, print_json, require_memory
from cryoglass.cli.options import DataDir, Overwrite

#: CTF fields → the option that sets them (for messages about NaN/Inf values).
_OPTIONS = {
    "defocus_u_angstrom": "--defocus-u",
    "defocus_v_angstrom": "--defocus-v",
    "astigmatism_angle_deg": "--angle",
    "voltage_kv": "--voltage-kv",
    "cs_mm": "--cs-mm",
    "amplitude_contrast": "--amplitude-contrast",
    "phase_shift_deg": "--phase-shift-deg",
    "bfactor_a2": "--bfactor",
}


def _params_from_star(
    star: Path, row: int, box: int, amplitude_contrast: float | None, datadir: Path | None
):
    """(CTFParams of one particle, its pixel size [Å]) from a STAR or cryoSPARC .cs file.

    ``amplitude_contrast`` (the user's --amplitude-contrast) overrides or supplies Q0, as
    cryoDRGN's ``-w``; without it a file lacking rlnAmplitudeContrast is an error that says so.
    """
    from cryoglass.io import read_particles

    try:
        particles = read_particles(
            star, image_size=box, amplitude_contrast=amplitude_contrast, datadir=datadir
        )
    except (OSError, ValueError, KeyError) as error:
        hint = "; give --amplitude-contrast" if "rlnAmplitudeContrast" in str(error) else ""
        fail(f"{error}{hint}")
    if particles.ctf is None:
        fail(f"{star}: no CTF columns (rlnDefocusU, rlnDefocusV / ctf/df1_A, ctf/df2_A)")
    n = len(particles.image_index)
    if not 0 <= row < n:
        fail(f"{star}: --row {row} out of range (the file has {n} particles, rows 0..{n - 1})")
    return particles.ctf[row], float(particles.pixel_size_angstrom[row])


def _results(params, *, pixel_size_angstrom: float, n_zeros: int) -> dict:
    """Wavelength [Å], the first zeros of the mean defocus [1/Å and Å] and the parameters."""
    from dataclasses import fields

    import torch

    from cryoglass.ctf import ctf_zeros_inv_angstrom, electron_wavelength_angstrom

    zeros = ctf_zeros_inv_angstrom(params, n_zeros)
    parameters = {f.name: float(getattr(params, f.name)) for f in fields(params)}
    parameters["pixel_size_angstrom"] = pixel_size_angstrom
    zeros_list = [float(z) if torch.isfinite(z) else None for z in zeros]
    return {
        "wavelength_angstrom": float(electron_wavelength_angstrom(params.voltage_kv)),
        "zeros_inv_angstrom": zeros_list,
        "zeros_angstrom": [1.0 / z if z else None for z in zeros_list],
        "parameters": parameters,
    }


def _print_text(result: dict, plot: Path | None) -> None:
    """The results of :func:`_results` as lines of text."""
    parameters = result["parameters"]
    wavelength = result["wavelength_angstrom"]
    typer.echo(f"wavelength: {wavelength:.6f} Å at {parameters['voltage_kv']:g} kV")
    for key, value in parameters.items():
        typer.echo(f"{key}: {value:g}")
    typer.echo("zeros (mean defocus):")
    pairs = zip(result["zeros_inv_angstrom"], result["zeros_angstrom"], strict=True)
    for i, (k, a) in enumerate(pairs, start=1):
        typer.echo(f"  {i}: " + ("none" if k is None else f"{k:.5f} 1/Å = {a:.2f} Å"))
    if plot is not None:
        typer.echo(f"plot: {plot}")


def main(
    defocus_u: float | None = typer.Option(
        None, "--defocus-u", help="Defocus along the U axis [Å], positive = underfocus."
    ),
    defocus_v: float | None = typer.Option(
        None, "--defocus-v", help="Defocus along V [Å] (default: = U)."
    ),
    angle: float = typer.Option(
        0.0, "--angle", help="Astigmatism angle of U from the x axis [degrees]."
    ),
    voltage_kv: float = typer.Option(300.0, "--voltage-kv", help="Acceleration voltage [kV]."),
    cs_mm: float = typer.Option(2.7, "--cs-mm", help="Spherical aberration Cs [mm]."),
    amplitude_contrast: float | None = typer.Option(
        None,
        "--amplitude-contrast",
        help="Amplitude contrast fraction Q0, 0 <= Q0 < 1 (default 0.1; with --star it "
        "overrides the file's, or supplies it when the file has none).",
        show_default=False,
    ),
    phase_shift_deg: float = typer.Option(
        0.0, "--phase-shift-deg", help="Phase-plate shift [degrees]."
    ),
    bfactor: float = typer.Option(0.0, "--bfactor", help="Envelope B-factor [Å²]: exp(-B k²/4)."),
    pixel_size: float | None = typer.Option(
        None, "--apix", help="Pixel size [Å] (default 1.0, or the STAR file's)."
    ),
    box: int = typer.Option(256, "--box", help="Box size for the 2D CTF [pixels]."),
    star: Path | None = typer.Option(
        None,
        "--star",
        help="Take the parameters from a RELION STAR file (3.0/3.1/5) or a cryoSPARC .cs file.",
    ),
    row: int = typer.Option(0, "--row", help="Particle row in --star (0-based, file order)."),
    n_zeros: int = typer.Option(5, "--n-zeros", help="How many CTF zeros to report."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write a figure (1D CTF with zeros, 2D CTF) to this .png/.pdf/.svg."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    datadir: DataDir = None,
    overwrite: Overwrite = False,
) -> None:
    """Compute a CTF: wavelength, zeros (1/Å and Å) and an optional plot.

    Parameters come from the options, or from one particle of a RELION STAR file or a
    cryoSPARC .cs file (--star, --row), with its optics group's voltage, Cs, amplitude contrast
    and pixel size (--amplitude-contrast overrides the file's Q0 or supplies a missing one).  The
    formula and sign are RELION 3.1's: CTF = scale · sin(χ) · exp(-B k²/4) with
    χ = πλΔf k² − ½πCsλ³k⁴ + phase shift + asin(Q0); zeros are given for the mean defocus.

    Examples:

    \b
      cryoglass ctf --defocus-u 15000 --defocus-v 14000 --angle 30 --n-zeros 5
      cryoglass ctf --defocus-u 8000 --voltage-kv 200 --cs-mm 2.0 --apix 0.9 --plot ctf.png
      cryoglass ctf --star run_data.star --row 0 --json
      cryoglass ctf --defocus-u 3000 --phase-shift-deg 90 --bfactor 80 --plot vpp.png
    """
    check_outputs([plot], inputs=[star], overwrite=overwrite)

    import torch

    from cryoglass.ctf import CTFParams

    if box < 2:
        fail(f"--box must be >= 2 pixels, got {box}")
    if n_zeros < 1:
        fail(f"--n-zeros must be >= 1, got {n_zeros}")
    if star is not None:
        if not star.is_file():
            fail(f"{star}: no such file")
        params, star_pixel = _params_from_star(star, row, box, amplitude_contrast, datadir)
        pixel = star_pixel if pixel_size is None else pixel_size
    else:
        if defocus_u is None:
            fail("give --defocus-u (Å), or --star FILE --row K")
        params = CTFParams(
            defocus_u_angstrom=defocus_u,
            defocus_v_angstrom=defocus_u if defocus_v is None else defocus_v,
            astigmatism_angle_deg=angle,
            voltage_kv=voltage_kv,
            cs_mm=cs_mm,
            amplitude_contrast=0.1 if amplitude_contrast is None else amplitude_contrast,
            phase_shift_deg=phase_shift_deg,
            bfactor_a2=bfactor,
        )
        pixel = 1.0 if pixel_size is None else pixel_size
    params = params.as_tensors(dtype=torch.float64)
    if not (math.isfinite(pixel) and pixel > 0):
        fail(f"--apix must be positive and finite (a pixel size in Å), got {pixel}")
    for name, option in _OPTIONS.items():
        value = getattr(params, name)
        if not bool(torch.isfinite(value).all()):
            fail(f"{option}{f' (row {row} of {star})' if star else ''}: not a finite number")
    if not 0.0 <= float(params.amplitude_contrast) < 1.0:
        fail(f"amplitude contrast must satisfy 0 <= Q0 < 1, got {float(params.amplitude_contrast)}")
    if float(params.voltage_kv) <= 0:
        fail(f"voltage must be > 0 kV, got {float(params.voltage_kv)}")

    result = _results(params, pixel_size_angstrom=pixel, n_zeros=n_zeros)
    if plot is not None:
        # the 2D CTF and its figure: about a dozen float64 box² arrays
        require_memory(100.0 * box * box, what=f"--box {box} (the 2D CTF of --plot)")
        from cryoglass.report.ctf import save_ctf_figure

        try:
            save_ctf_figure(plot, params, pixel_size_angstrom=pixel, box=box, n_zeros=n_zeros)
        except ValueError as error:  # unsupported image format
            fail(f"--plot {plot}: {error}")
    if as_json:
        print_json(result)
    else:
        _print_text(result, plot)
