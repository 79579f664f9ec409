"""`cryoglass 3dfsc`: conical FSC of two half maps: directional resolution and sphericity."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json


def _plots(out: Path, result) -> None:
    from cryoglass.report.figures import pyplot

    plt = pyplot()
    import torch

    from cryoglass.report.figures import save_figure

    freq = result.frequency_inv_angstrom.numpy()
    res = result.directional_resolution_angstrom
    valid = res[~torch.isnan(res)]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if valid.numel():
        ax.hist(
            (1.0 / valid).numpy(),
            bins=20,
            range=(0, float(freq[-1])),
            color="#4878cf",
            alpha=0.7,
            weights=100.0 * torch.ones_like(valid).numpy() / res.numel(),
        )
    ax.set(xlabel="directional resolution at FSC = 0.143 [1/Å]", ylabel="% of cones")
    ax2 = ax.twinx()
    # a cone with no voxels in a (low) shell has FSC exactly 0: leave it out of the curves
    cones = torch.where(result.cone_fsc == 0, torch.nan, result.cone_fsc)
    mean_t = cones.nanmean(0)
    mean = mean_t.numpy()
    std = ((cones - mean_t) ** 2).nanmean(0).sqrt().numpy()
    ax2.plot(freq, result.global_fsc.numpy(), color="#d62728", lw=2.5, label="global FSC")
    ax2.plot(freq, mean + std, "g--", lw=1, label="directional FSC ± 1 SD")
    ax2.plot(freq, mean - std, "g--", lw=1)
    ax2.axhline(result.fsc_threshold, color="0.5", ls=":", lw=0.8)
    ax2.set(ylim=(-0.05, 1.02), ylabel="FSC", xlim=(0, float(freq[-1])))
    ax2.legend(fontsize=8, loc="upper right")
    g = result.global_resolution_angstrom
    ax.set_title(
        f"3DFSC: sphericity {result.sphericity:.3f}, global "
        + (f"{g:.2f} Å" if g is not None else "none"),
        fontsize=10,
    )
    save_figure(fig, out / "histogram.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i in torch.linspace(0, result.cone_fsc.shape[0] - 1, 60).long().tolist():
        ax.plot(freq, cones[i].numpy(), color="0.7", lw=0.5)
    ax.plot(freq, result.global_fsc.numpy(), color="k", lw=2, label="global FSC")
    for level in (0.143, 0.5):
        ax.axhline(level, color="0.5", ls="--", lw=0.7)
    ax.set(
        xlabel="spatial frequency [1/Å]",
        ylabel="FSC",
        ylim=(-0.1, 1.02),
        title=f"conical FSCs ({result.cone_half_angle_deg:g}° cones, 60 of "
        f"{result.cone_fsc.shape[0]}) and the global FSC",
    )
    ax.legend(fontsize=8)
    save_figure(fig, out / "fsc.png")


def chimerax_script(
    map_name: str, full_name: str | None, *, box: int, pixel: float, threshold: float
) -> str:
    """ChimeraX commands: the 3DFSC map in reciprocal-space units, coloured by frequency."""
    step = 1.0 / (box * pixel)
    nyquist = 0.5 / pixel
    lines = ["# cryoglass 3dfsc: open in ChimeraX with `open chimerax.cxc`"]
    model = 1
    if full_name is not None:
        lines += [f"open {full_name}", "volume #1 style surface", "view #1"]
        model = 2
    lines += [
        f"open {map_name}",
        f"volume #{model} voxelSize {step:.6g} originIndex {box // 2},{box // 2},{box // 2} "
        f"level {threshold:g} style surface",
        f"color radial #{model} center 0,0,0 palette red:yellow:green:cyan:blue "
        f"range 0,{nyquist:.6g}",
        f"# the surface is where the 3DFSC falls to {threshold:g}; colour = spatial frequency "
        "(red low, blue high), as the 3DFSC webserver's Chimera session",
    ]
    if full_name is not None:
        lines.append(f"tile #1,{model}")
    return "\n".join(lines) + "\n"


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
    """
    import json
    import shutil

    from cryoglass.cli.fsc import read_map_pair, read_mask
    from cryoglass.io import write_mrc, write_text_atomic
    from cryoglass.validate.fsc3d import three_d_fsc

    if not 0.0 < cone_deg < 90.0:
        fail(f"--cone-deg must be in (0, 90) degrees, got {cone_deg}")
    map1, map2, pixel = read_map_pair(half1, half2, apix)
    if len(set(map1.shape)) != 1:
        fail(f"{half1}: 3DFSC needs cubic maps, got shape {tuple(map1.shape)}")
    mask_data = read_mask(mask, tuple(map1.shape)) if mask is not None else None
    if full is not None and not full.is_file():
        fail(f"{full}: no such file")
    result = three_d_fsc(
        map1, map2, pixel_size_angstrom=pixel, cone_half_angle_deg=cone_deg, mask=mask_data
    )
    out.mkdir(parents=True, exist_ok=True)
    write_mrc(out / "3dfsc.mrc", result.volume, pixel_size_angstrom=pixel, overwrite=True)
    _plots(out, result)
    full_name = None
    if full is not None:
        full_name = full.name
        if (out / full.name).resolve() != full.resolve():
            shutil.copyfile(full, out / full.name)
    write_text_atomic(
        out / "chimerax.cxc",
        chimerax_script(
            "3dfsc.mrc", full_name, box=map1.shape[-1], pixel=pixel, threshold=result.fsc_threshold
        ),
    )
    summary = result.summary() | {"pixel_size_angstrom": pixel, "box_size": int(map1.shape[-1])}
    write_text_atomic(out / "result.json", json.dumps(summary, indent=2) + "\n")
    if as_json:
        print_json(summary)
    else:
        for key, value in summary.items():
            typer.echo(f"{key:>28}: {value}")
