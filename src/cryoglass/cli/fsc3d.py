"""`cryoglass 3dfsc`: conical FSC of two half maps: directional resolution and sphericity."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli.options import Overwrite

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["sphericity", "global_resolution_angstrom"]


def main(
    half1: Path = typer.Argument(..., help="First unfiltered half map (.mrc)."),
    half2: Path = typer.Argument(..., help="Second half map, same box and pixel size."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    full: Path | None = typer.Option(None, "--full", help="Full map to show next to the 3DFSC."),
    mask: Path | None = typer.Option(None, "--mask", help="Soft mask (.mrc, values in [0, 1])."),
    apix: float | None = typer.Option(None, "--apix", help="Pixel size [Å] (default: headers)."),
    cone_deg: float = typer.Option(
        20.0, "--cone-deg", help="Cone half-angle [degrees], in (0, 90)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    overwrite: Overwrite = False,
) -> None:
    """Conical FSC (3DFSC): directional resolution, sphericity and the 3DFSC map (Tan 2017).

    Writes OUT/3dfsc.mrc (each Fourier voxel holds the FSC of its cone; centred, DC at
    box/2), OUT/histogram.png (directional resolutions with the global FSC), OUT/fsc.png,
    OUT/result.json and OUT/chimerax.cxc (opens the full map and the 3DFSC coloured by
    spatial frequency).  Sphericity: Wadell's of the 3DFSC thresholded at 0.5 (shells coarser
    than 200 Å inside).  worst/best_direction: axes of least/greatest extent of that surface.

    Examples:

    \b
      cryoglass 3dfsc half1.mrc half2.mrc --out 3dfsc_run --json
      cryoglass 3dfsc half1.mrc half2.mrc --full map.mrc --mask mask.mrc --apix 1.06 --out r1
      cryoglass 3dfsc half1.mrc half2.mrc --out r1 --overwrite    # run again into r1
    """
    import json
    import shutil

    from cryoglass.io import atomic_write, write_mrc, write_text_atomic
    from cryoglass.io.chimerax import fsc3d_script
    from cryoglass.io.maps import read_map_pair, read_mask
    from cryoglass.report.figures import save_3dfsc_figures
    from cryoglass.validate import fsc_summary
    from cryoglass.validate.fsc3d import three_d_fsc

    if not 0.0 < cone_deg < 90.0:
        fail(f"--cone-deg must be in (0, 90) degrees, got {cone_deg}")
    if full is not None and not full.is_file():
        fail(f"{full}: no such file")
    names = ["3dfsc.mrc", "histogram.png", "fsc.png", "chimerax.cxc", "result.json"]
    # --full is copied next to the 3DFSC (for chimerax.cxc) unless it is there already
    copy_full = full is not None and (out / full.name).resolve() != full.resolve()
    inputs = (half1, half2, full, mask)
    outputs = [out / name for name in names + ([full.name] if copy_full else [])]
    check_outputs(outputs, inputs=inputs, overwrite=overwrite, creates=[out])
    with failing():
        map1, map2, pixel = read_map_pair(half1, half2, pixel_size_angstrom=apix)
        mask_data = None if mask is None else read_mask(mask, tuple(map1.shape))
    if len(set(map1.shape)) != 1:
        fail(f"{half1}: 3DFSC needs cubic maps, got shape {tuple(map1.shape)}")
    result = three_d_fsc(
        map1, map2, pixel_size_angstrom=pixel, cone_half_angle_deg=cone_deg, mask=mask_data
    )
    box = int(map1.shape[-1])
    out.mkdir(parents=True, exist_ok=True)
    write_mrc(out / "3dfsc.mrc", result.volume, pixel_size_angstrom=pixel, overwrite=overwrite)
    save_3dfsc_figures(out, result)
    full_name = None if full is None else full.name
    if copy_full:
        atomic_write(out / full.name, lambda tmp: shutil.copyfile(full, tmp), overwrite=overwrite)
    script = fsc3d_script(
        "3dfsc.mrc", full_name, box=box, pixel=pixel, threshold=result.fsc_threshold
    )
    write_text_atomic(out / "chimerax.cxc", script, overwrite=overwrite)
    summary = {
        "headline": HEADLINE,
        **result.summary(),
        "pixel_size_angstrom": pixel,
        "box_size": box,
    }
    global_fsc = fsc_summary(result.global_fsc, box_size=box, pixel_size_angstrom=pixel)
    summary["shells"] = global_fsc.shells()
    write_text_atomic(
        out / "result.json", json.dumps(summary, indent=2) + "\n", overwrite=overwrite
    )
    if as_json:
        print_json(summary)
        return
    for key, value in summary.items():
        if key not in ("headline", "shells"):
            typer.echo(f"{key:>28}: {value}")
