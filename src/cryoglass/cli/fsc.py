"""`cryoglass fsc`: Fourier shell correlation of two maps and the resolution at 0.143 and 0.5."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, failing, print_json
from cryoglass.cli.options import Overwrite

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["resolution_0143_angstrom", "resolution_05_angstrom"]


def _write_tables(summary, *, xml, star, maps, mask, overwrite: bool) -> None:
    """--xml (EMDB) and --star (RELION postprocess.star) from the one FSC summary."""
    from cryoglass.io.fsc_tables import write_fsc_star, write_fsc_xml

    if xml is not None:
        title = f"cryoglass FSC{' (masked, corrected)' if mask else ''}: {maps[0].name}"
        write_fsc_xml(xml, summary, title=title, overwrite=overwrite)
    if star is not None:
        write_fsc_star(
            star,
            summary,
            half_maps=(str(maps[0]), str(maps[1])),
            mask=None if mask is None else str(mask),
            overwrite=overwrite,
        )


def main(
    map_a: Path = typer.Argument(..., help="First map (.mrc), e.g. run_half1_class001_unfil.mrc."),
    map_b: Path = typer.Argument(..., help="Second map of the same box and pixel size."),
    mask: Path | None = typer.Option(
        None,
        "--mask",
        help="Soft mask (.mrc, values in [0, 1]): report the phase-randomisation-corrected "
        "masked FSC (Chen et al. 2013) as 'fsc'.",
    ),
    apix: float | None = typer.Option(
        None, "--apix", help="Pixel size [Å] (default: from the MRC headers)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the phase randomisation (with --mask)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the FSC curve to this PNG."),
    xml: Path | None = typer.Option(
        None, "--xml", help="Write the FSC as the EMDB's FSC XML (for map deposition)."
    ),
    star: Path | None = typer.Option(
        None, "--star", help="Write the FSC as RELION's postprocess.star tables (data_fsc)."
    ),
    overwrite: Overwrite = False,
) -> None:
    """Fourier shell correlation of two maps: resolution at FSC = 0.143 and 0.5.

    Shell i holds the Fourier voxels with round(|k| * box * pixel) = i (RELION's shells),
    i = 0 .. box/2; resolutions are interpolated linearly between shells.  A curve that never
    drops below a threshold is reported at Nyquist and flagged as Nyquist-limited (crossed_0143
    false in --json).  With --mask the masked FSC is corrected for the mask's own correlation
    by phase randomisation beyond the resolution where the unmasked FSC drops below 0.8 (as
    relion_postprocess).

    Examples:

    \b
      cryoglass fsc half1.mrc half2.mrc
      cryoglass fsc half1.mrc half2.mrc --mask mask.mrc --json
      cryoglass fsc map.mrc model_map.mrc --apix 1.06 --plot fsc.png
      cryoglass fsc half1.mrc half2.mrc --mask mask.mrc --xml fsc.xml --star fsc.star
    """
    check_outputs((plot, xml, star), inputs=(map_a, map_b, mask), overwrite=overwrite)
    import torch

    from cryoglass.io.maps import read_map_pair, read_mask
    from cryoglass.report.figures import fsc_summary_figure
    from cryoglass.validate import fourier_shell_correlation, fsc_summary, masked_fsc

    with failing():
        a, b, pixel = read_map_pair(map_a, map_b, pixel_size_angstrom=apix)
        m = None if mask is None else read_mask(mask, tuple(a.shape)).to(torch.float64)
    a, b = a.to(torch.float64), b.to(torch.float64)
    if m is None:
        fsc, curves = fourier_shell_correlation(a, b), {}
    else:
        result = masked_fsc(a, b, m, generator=torch.Generator().manual_seed(seed))
        fsc = result.corrected
        curves = {
            "fsc_unmasked": result.unmasked,
            "fsc_masked": result.masked,
            "fsc_phase_randomized": result.randomized,
        }
    summary = fsc_summary(fsc, box_size=a.shape[-1], pixel_size_angstrom=pixel, curves=curves)
    if plot is not None:
        with failing():
            fsc_summary_figure(plot, summary, title=map_a.name)
    with failing():
        _write_tables(
            summary, xml=xml, star=star, maps=(map_a, map_b), mask=mask, overwrite=overwrite
        )
    if as_json:
        print_json({"headline": HEADLINE, **summary.to_dict(), "masked": mask is not None})
        return
    typer.echo(
        f"pixel size {pixel:g} Å, box {a.shape[-1]}, {'masked, corrected' if mask else 'unmasked'}"
    )
    typer.echo(summary.describe(0.143))
    typer.echo(summary.describe(0.5))
    for name, path in (("plot", plot), ("EMDB FSC XML", xml), ("RELION FSC table", star)):
        if path is not None:
            typer.echo(f"{name}: {path}")
