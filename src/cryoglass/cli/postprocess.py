"""`cryoglass postprocess`: masked corrected FSC, B-factor and sharpened map from two half maps."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json

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


def _guinier_figure(path: Path, result) -> None:
    from cryoglass.report.figures import pyplot

    plt = pyplot()

    from cryoglass.report.figures import save_figure

    k2 = result.guinier_k2.cpu().numpy()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, curve in (
        ("input (average of halves)", result.guinier_input),
        ("FSC-weighted", result.guinier_weighted),
        (f"sharpened, B = {result.bfactor_a2:.1f} Å²", result.guinier_sharpened),
    ):
        values = curve.cpu().numpy()
        keep = values > -1e30
        ax.plot(k2[keep][1:], values[keep][1:], lw=1.1, label=label)
    if result.fit is not None:
        x = k2[k2 >= 1.0 / 100.0]
        ax.plot(
            x,
            float(result.fit.intercept) + float(result.fit.slope) * x,
            "k--",
            lw=0.8,
            label=f"fit: slope {float(result.fit.slope):.2f} Å²",
        )
    ax.axvline(1.0 / result.resolution_angstrom**2, color="k", lw=0.7, ls=":")
    ax.set(xlabel="k² [1/Å²]", ylabel="ln <|F|>", title="Guinier plot")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _chimerax_script(level: float, pixel: float, has_unmasked: bool) -> str:
    lines = [
        "# ChimeraX: open with  chimerax postprocess.cxc  (run from this folder)",
        f"open {OUTPUT_FILES['map']}",
        f"volume #1 voxelSize {pixel:g} level {level:.6g} style surface",
        f"open {OUTPUT_FILES['map_unsharpened']}",
        f"volume #2 voxelSize {pixel:g} style surface hide",
    ]
    if has_unmasked:
        lines += [f"open {OUTPUT_FILES['map_unmasked']}", "volume #3 hide"]
    lines.append("view")
    return "\n".join(lines) + "\n"


def _curves_json(result, box: int, pixel: float) -> list[dict]:
    rows = []
    for i in range(result.fsc_corrected.shape[-1]):
        row = {
            "shell": i,
            "frequency_inv_angstrom": float(result.frequency_inv_angstrom[i]),
            "resolution_angstrom": float(box * pixel / i) if i > 0 else None,
            "fsc_corrected": float(result.fsc_corrected[i]),
            "fsc_unmasked": float(result.fsc_unmasked[i]),
        }
        if result.fsc_masked is not None:
            row["fsc_masked"] = float(result.fsc_masked[i])
            row["fsc_phase_randomized"] = float(result.fsc_randomized[i])
        rows.append(row)
    return rows


def _guinier_json(result) -> list[dict]:
    def clean(value: float) -> float | None:
        return value if value > -1e30 else None

    return [
        {
            "k2_inv_angstrom2": float(result.guinier_k2[i]),
            "ln_amplitude_input": clean(float(result.guinier_input[i])),
            "ln_amplitude_weighted": clean(float(result.guinier_weighted[i])),
            "ln_amplitude_sharpened": clean(float(result.guinier_sharpened[i])),
        }
        for i in range(result.guinier_k2.shape[-1])
    ]


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
    from cryoglass.cli.fsc import read_map_pair, read_mask, save_fsc_plot

    if mask is not None and auto_mask:
        fail("give either --mask or --auto-mask, not both")
    b_value = _parse_bfactor(bfactor)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a folder")
    a, b, pixel = read_map_pair(half1, half2, apix)

    import json

    import torch

    from cryoglass.io import write_mrc, write_text_atomic
    from cryoglass.validate import auto_mask as make_auto_mask
    from cryoglass.validate import postprocess

    m = None
    if mask is not None:
        m = read_mask(mask, tuple(a.shape))
    elif auto_mask:
        m = make_auto_mask(0.5 * (a + b), pixel_size_angstrom=pixel)
    paths = {key: out / name for key, name in OUTPUT_FILES.items()}
    if not overwrite:
        clash = [str(p) for p in paths.values() if p.exists()]
        if clash:
            fail(f"output files exist: {', '.join(clash)}; pass --overwrite or another --out")
    try:
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
    except ValueError as error:
        fail(str(error))
    out.mkdir(parents=True, exist_ok=True)

    final = result.sharpened if m is None else result.sharpened * m
    unsharpened = result.unsharpened if m is None else result.unsharpened * m
    write = dict(pixel_size_angstrom=pixel, overwrite=overwrite)
    write_mrc(paths["map"], final.float(), **write)
    write_mrc(paths["map_unsharpened"], unsharpened.float(), **write)
    written = {"map": paths["map"], "map_unsharpened": paths["map_unsharpened"]}
    if m is not None:
        write_mrc(paths["map_unmasked"], result.sharpened.float(), **write)
        written["map_unmasked"] = paths["map_unmasked"]
    if auto_mask:
        write_mrc(paths["mask"], m.float(), **write)
        written["mask"] = paths["mask"]

    box = a.shape[-1]
    curves = {"corrected FSC" if m is not None else "FSC": result.fsc_corrected.cpu().numpy()}
    if m is not None:
        curves["unmasked"] = result.fsc_unmasked.cpu().numpy()
        curves["masked"] = result.fsc_masked.cpu().numpy()
        curves["phase-randomised masked"] = result.fsc_randomized.cpu().numpy()
    save_fsc_plot(
        paths["fsc_plot"],
        result.frequency_inv_angstrom.cpu().numpy(),
        curves,
        resolution_0143=result.resolution_angstrom,
        title="postprocess",
    )
    _guinier_figure(paths["guinier_plot"], result)
    inside = final[m > 0.5] if m is not None else final.flatten()
    level = float(inside.mean() + 2.5 * inside.std())
    write_text_atomic(paths["chimerax"], _chimerax_script(level, pixel, m is not None))
    written.update({k: paths[k] for k in ("fsc_plot", "guinier_plot", "json", "chimerax")})

    fit = result.fit
    payload = {
        "resolution_angstrom": result.resolution_angstrom,
        "resolution_shell_angstrom": result.resolution_shell_angstrom,
        "bfactor": result.bfactor_a2,
        "bfactor_fit": None
        if fit is None
        else {
            "slope": float(fit.slope),
            "intercept": float(fit.intercept),
            "correlation": float(fit.correlation),
            "n_shells": int(fit.n_points),
            "low_resolution_angstrom": fit_low_angstrom,
            "high_resolution_angstrom": result.resolution_angstrom
            if fit_high_angstrom is None
            else fit_high_angstrom,
        },
        "pixel_size_angstrom": pixel,
        "box_size": box,
        "masked": m is not None,
        "randomize_from_angstrom": None
        if result.randomize_shell is None or result.randomize_shell >= box // 2 + 1
        else box * pixel / result.randomize_shell,
        "lowpass_angstrom": None if no_lowpass else result.resolution_angstrom,
        "inputs": {
            "half1": str(half1),
            "half2": str(half2),
            "mask": None if mask is None else str(mask),
        },
        "files": {k: str(v) for k, v in written.items()},
        "shells": _curves_json(result, box, pixel),
        "guinier": _guinier_json(result),
    }
    write_text_atomic(paths["json"], json.dumps(payload, indent=2) + "\n")
    if as_json:
        print_json(payload)
        return
    typer.echo(f"resolution (FSC = 0.143): {result.resolution_angstrom:.3f} Å")
    typer.echo(f"B-factor: {result.bfactor_a2:.1f} Å²")
    typer.echo(f"wrote {len(written)} files to {out}/ (postprocess.mrc, postprocess.json, ...)")
