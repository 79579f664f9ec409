"""`cryoglass postprocess`: masked corrected FSC, B-factor and sharpened map from two half maps."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["resolution_angstrom", "bfactor"]

#: Files written into --out (documented in the command's help).
OUTPUT_FILES = {
    "map": "postprocess.mrc",
    "map_unmasked": "postprocess_unmasked.mrc",
    "map_unsharpened": "postprocess_unsharpened.mrc",
    "mask": "postprocess_mask.mrc",
    "fsc_plot": "postprocess_fsc.png",
    "guinier_plot": "postprocess_guinier.png",
    "json": "postprocess.json",
    "chimerax": "postprocess.cxc",
}


def _parse_bfactor(text: str) -> str | float:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        fail(f"--bfactor must be 'auto' or a number in Å² (negative sharpens), got {text!r}")


def _write_maps(paths: dict, result, mask, *, pixel: float, auto_mask: bool, overwrite: bool):
    """The sharpened/unsharpened maps (masked when a mask is used), the auto mask, the .cxc."""
    from cryoglass.io import write_mrc, write_text_atomic
    from cryoglass.io.chimerax import postprocess_script

    final = result.sharpened if mask is None else result.sharpened * mask
    unsharpened = result.unsharpened if mask is None else result.unsharpened * mask
    write = dict(pixel_size_angstrom=pixel, overwrite=overwrite)
    write_mrc(paths["map"], final.float(), **write)
    write_mrc(paths["map_unsharpened"], unsharpened.float(), **write)
    written = ["map", "map_unsharpened"]
    if mask is not None:
        write_mrc(paths["map_unmasked"], result.sharpened.float(), **write)
        written.append("map_unmasked")
    if auto_mask:
        write_mrc(paths["mask"], mask.float(), **write)
        written.append("mask")
    inside = final[mask > 0.5] if mask is not None else final.flatten()
    script = postprocess_script(
        map_name=OUTPUT_FILES["map"],
        unsharpened_name=OUTPUT_FILES["map_unsharpened"],
        unmasked_name=OUTPUT_FILES["map_unmasked"] if mask is not None else None,
        pixel_size_angstrom=pixel,
        level=float(inside.mean() + 2.5 * inside.std()),
    )
    write_text_atomic(paths["chimerax"], script)
    return written + ["chimerax"]


def _summary(result, mask, *, box: int, pixel: float):
    """The corrected FSC as the one FSC summary, with the other curves beside it."""
    from cryoglass.validate import fsc_summary

    curves = {"fsc_unmasked": result.fsc_unmasked}
    if mask is not None:
        curves |= {"fsc_masked": result.fsc_masked, "fsc_phase_randomized": result.fsc_randomized}
    return fsc_summary(
        result.fsc_corrected,
        box_size=box,
        pixel_size_angstrom=pixel,
        label="fsc_corrected",
        curves=curves,
    )


def _payload(
    result, summary, *, fit_low: float, fit_high, no_lowpass: bool, inputs: dict, files: dict
) -> dict:
    """postprocess.json: numbers, the B-factor fit, inputs, files, FSC shells, Guinier table."""
    from cryoglass.validate.postprocess import guinier_rows

    fit, box = result.fit, summary.box_size
    return {
        "headline": HEADLINE,
        "resolution_angstrom": result.resolution_angstrom,
        "resolution_shell_angstrom": result.resolution_shell_angstrom,
        "crossed_0143": summary.crossed_0143,
        "bfactor": result.bfactor_a2,
        "bfactor_fit": None
        if fit is None
        else {
            "slope": float(fit.slope),
            "intercept": float(fit.intercept),
            "correlation": float(fit.correlation),
            "n_shells": int(fit.n_points),
            "low_resolution_angstrom": fit_low,
            "high_resolution_angstrom": result.resolution_angstrom
            if fit_high is None
            else fit_high,
        },
        "pixel_size_angstrom": summary.pixel_size_angstrom,
        "box_size": box,
        "masked": result.fsc_masked is not None,
        "randomize_from_angstrom": None
        if result.randomize_shell is None or result.randomize_shell >= box // 2 + 1
        else box * summary.pixel_size_angstrom / result.randomize_shell,
        "lowpass_angstrom": None if no_lowpass else result.resolution_angstrom,
        "inputs": inputs,
        "files": files,
        "shells": summary.shells(),
        "guinier": guinier_rows(result),
        "warnings": list(result.warnings),
    }


def main(
    half1: Path = typer.Argument(..., help="Half map 1 (.mrc), unfiltered."),
    half2: Path = typer.Argument(..., help="Half map 2 (.mrc), same box and pixel size."),
    out: Path = typer.Option(..., "--out", help="Output folder (created if missing)."),
    mask: Path | None = typer.Option(
        None, "--mask", help="Soft solvent mask (.mrc, values in [0, 1])."
    ),
    auto_mask: bool = typer.Option(
        False,
        "--auto-mask",
        help="Make the mask from the average map: 15 Å low-pass, Otsu threshold, grow 3 px, "
        "6 px cosine edge.",
    ),
    bfactor: str = typer.Option(
        "auto",
        "--bfactor",
        help="'auto' (Guinier fit from 10 Å to the final resolution) or a B-factor in Å² "
        "(negative sharpens, positive blurs).",
    ),
    fit_low_angstrom: float = typer.Option(
        10.0, "--fit-low-angstrom", help="Coarsest resolution in the B-factor fit [Å]."
    ),
    fit_high_angstrom: float | None = typer.Option(
        None,
        "--fit-high-angstrom",
        help="Finest resolution in the fit [Å] (default: the final resolution; 0: Nyquist, "
        "as relion_postprocess 3.1's default).",
    ),
    no_lowpass: bool = typer.Option(
        False, "--no-lowpass", help="Do not low-pass the output at the final resolution."
    ),
    apix: float | None = typer.Option(
        None, "--apix", help="Pixel size [Å] (default: from the MRC headers)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the phase randomisation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Post-process half maps: corrected FSC, resolution, B-factor, sharpened map.

    As relion_postprocess: FSC of the unmasked and masked halves, phase-randomisation
    correction of the masked FSC (Chen et al. 2013), resolution at FSC = 0.143 (interpolated
    between shells), FSC weighting sqrt(2FSC/(1+FSC)), B-factor from a Guinier fit
    (B = 4 × slope: negative when sharpening, RELION's sign), exp(-B k²/4), and a low-pass at
    the resolution.

    Files in --out: postprocess.mrc (sharpened; masked when a mask is used),
    postprocess_unmasked.mrc (sharpened, no mask — RELION's postprocess.mrc),
    postprocess_unsharpened.mrc (FSC-weighted and low-passed, no B; masked like the first),
    postprocess_mask.mrc (with --auto-mask), postprocess_fsc.png, postprocess_guinier.png,
    postprocess.json (all numbers and curves) and postprocess.cxc (ChimeraX: opens the maps at
    a starting threshold).

    Examples:

    \b
      cryoglass postprocess half1.mrc half2.mrc --mask mask.mrc --out post
      cryoglass postprocess half1.mrc half2.mrc --auto-mask --out post --json
      cryoglass postprocess half1.mrc half2.mrc --mask mask.mrc --bfactor -60 --out post_b60
    """
    import json

    import torch

    from cryoglass.io import write_text_atomic
    from cryoglass.io.maps import read_map_pair, read_mask
    from cryoglass.report.figures import fsc_summary_figure, save_guinier_figure
    from cryoglass.validate import auto_mask as make_auto_mask
    from cryoglass.validate import postprocess

    if mask is not None and auto_mask:
        fail("give either --mask or --auto-mask, not both")
    b_value = _parse_bfactor(bfactor)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a folder")
    paths = {key: out / name for key, name in OUTPUT_FILES.items()}
    check_outputs(paths.values(), inputs=[half1, half2, mask], overwrite=overwrite, creates=[out])
    with failing():
        a, b, pixel = read_map_pair(half1, half2, pixel_size_angstrom=apix)
        m = None if mask is None else read_mask(mask, tuple(a.shape))
    if auto_mask:
        m = make_auto_mask(0.5 * (a + b), pixel_size_angstrom=pixel)
    with failing():
        result = postprocess(
            a.to(torch.float64),
            b.to(torch.float64),
            pixel_size_angstrom=pixel,
            mask=None if m is None else m.to(torch.float64),
            bfactor=b_value,
            fit_low_resolution_angstrom=fit_low_angstrom,
            fit_high_resolution_angstrom=fit_high_angstrom,
            lowpass=not no_lowpass,
            generator=torch.Generator().manual_seed(seed),
        )
    for note in result.warnings:
        typer.echo(f"warning: {note.rstrip('.')} (e.g. --bfactor -50).", err=True)
    out.mkdir(parents=True, exist_ok=True)
    written = _write_maps(paths, result, m, pixel=pixel, auto_mask=auto_mask, overwrite=overwrite)
    summary = _summary(result, m, box=a.shape[-1], pixel=pixel)
    fsc_summary_figure(paths["fsc_plot"], summary, title="postprocess")
    save_guinier_figure(paths["guinier_plot"], result)
    written += ["fsc_plot", "guinier_plot", "json"]
    inputs = {"half1": str(half1), "half2": str(half2), "mask": None if mask is None else str(mask)}
    payload = _payload(
        result,
        summary,
        fit_low=fit_low_angstrom,
        fit_high=fit_high_angstrom,
        no_lowpass=no_lowpass,
        inputs=inputs,
        files={k: str(paths[k]) for k in sorted(written, key=list(OUTPUT_FILES).index)},
    )
    write_text_atomic(paths["json"], json.dumps(payload, indent=2) + "\n")
    if as_json:
        print_json(payload)
        return
    typer.echo(summary.describe(0.143))
    fitted = "" if result.fit is not None or b_value != "auto" else " (not fitted: see warning)"
    typer.echo(f"B-factor: {result.bfactor_a2:.1f} Å²{fitted}")
    typer.echo(f"wrote {len(written)} files to {out}/ (postprocess.mrc, postprocess.json, ...)")
