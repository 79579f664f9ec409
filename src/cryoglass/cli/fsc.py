"""`cryoglass fsc`: Fourier shell correlation of two maps and the resolution at 0.143 and 0.5."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json


def read_map_pair(path_a: Path, path_b: Path, apix: float | None):
    """Read two volumes of one box and pixel size; return (a, b, pixel size) or fail."""
    from cryoglass.io import read_mrc

    maps, sizes = [], []
    for path in (path_a, path_b):
        if not path.is_file():
            fail(f"{path}: no such file")
        try:
            data, info = read_mrc(path)
        except (OSError, ValueError) as error:
            fail(str(error))
        if data.ndim != 3 or info.is_stack:
            fail(f"{path}: expected a 3D map, got shape {tuple(data.shape)} (an image or stack?)")
        maps.append(data)
        sizes.append(info.pixel_size_angstrom)
    if maps[0].shape != maps[1].shape:
        fail(
            f"{path_a} and {path_b} have different boxes: {tuple(maps[0].shape)} vs "
            f"{tuple(maps[1].shape)}"
        )
    if sizes[0] is not None and sizes[1] is not None and abs(sizes[0] - sizes[1]) > 1e-3 * sizes[0]:
        fail(f"{path_a} and {path_b} have different pixel sizes: {sizes[0]:g} Å vs {sizes[1]:g} Å")
    pixel = apix if apix is not None else (sizes[0] or sizes[1])
    if pixel is None:
        fail(f"{path_a}: the header has no pixel size; pass --apix")
    if not pixel > 0:
        fail(f"--apix must be positive, got {pixel}")
    return maps[0], maps[1], float(pixel)


def read_mask(path: Path, shape: tuple[int, ...]):
    """Read a mask of the given shape with values in [0, 1], or fail."""
    from cryoglass.io import read_mrc

    if not path.is_file():
        fail(f"{path}: no such file")
    try:
        mask, _ = read_mrc(path)
    except (OSError, ValueError) as error:
        fail(str(error))
    if tuple(mask.shape) != tuple(shape):
        fail(f"{path}: mask shape {tuple(mask.shape)} differs from the maps' {tuple(shape)}")
    lo, hi = float(mask.min()), float(mask.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        fail(f"{path}: mask values must lie in [0, 1], found [{lo:g}, {hi:g}]")
    return mask.clamp(0.0, 1.0)


def save_fsc_plot(path: Path, frequency, curves: dict, *, resolution_0143: float, title: str):
    """FSC curves against 1/Å with the 0.143 and 0.5 lines (atomic PNG)."""
    from cryoglass.report.figures import pyplot

    plt = pyplot()

    from cryoglass.report.figures import save_figure

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, values in curves.items():
        ax.plot(frequency, values, lw=1.8 if label.startswith("corrected") else 1.1, label=label)
    for level in (0.143, 0.5):
        ax.axhline(level, color="0.5", lw=0.7, ls="--")
    ax.axvline(1.0 / resolution_0143, color="k", lw=0.7, ls=":")
    ax.axhline(0.0, color="0.8", lw=0.5)
    ax.set(
        xlabel="spatial frequency [1/Å]",
        ylabel="Fourier shell correlation",
        xlim=(0, float(frequency[-1])),
        ylim=(-0.1, 1.02),
        title=f"{title}: {resolution_0143:.2f} Å at FSC = 0.143",
    )
    ax.legend(fontsize=8)
    save_figure(fig, path)


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
) -> None:
    """Fourier shell correlation of two maps: resolution at FSC = 0.143 and 0.5.

    Shell i holds the Fourier voxels with round(|k| * box * pixel) = i (RELION's shells),
    i = 0 .. box/2; resolutions are interpolated linearly between shells.  With --mask the
    masked FSC is corrected for the mask's own correlation by phase randomisation beyond the
    resolution where the unmasked FSC drops below 0.8 (as relion_postprocess).

    Examples:

    \b
      cryoglass fsc half1.mrc half2.mrc
      cryoglass fsc half1.mrc half2.mrc --mask mask.mrc --json
      cryoglass fsc map.mrc model_map.mrc --apix 1.06 --plot fsc.png
    """
    import torch

    from cryoglass.fourier import shell_frequencies
    from cryoglass.validate import fourier_shell_correlation, masked_fsc, resolution_at_threshold

    a, b, pixel = read_map_pair(map_a, map_b, apix)
    a, b = a.to(torch.float64), b.to(torch.float64)
    box = a.shape[-1]
    curves: dict[str, torch.Tensor] = {}
    if mask is not None:
        m = read_mask(mask, tuple(a.shape)).to(torch.float64)
        result = masked_fsc(a, b, m, generator=torch.Generator().manual_seed(seed))
        fsc = result.corrected
        curves = {
            "fsc_unmasked": result.unmasked,
            "fsc_masked": result.masked,
            "fsc_phase_randomized": result.randomized,
        }
    else:
        fsc = fourier_shell_correlation(a, b)
    freq = shell_frequencies(fsc.shape[-1], box_size=box, pixel_size_angstrom=pixel)
    res = {
        t: float(resolution_at_threshold(fsc, threshold=t, box_size=box, pixel_size_angstrom=pixel))
        for t in (0.143, 0.5)
    }
    shells = []
    for i in range(fsc.shape[-1]):
        row = {
            "frequency_inv_angstrom": float(freq[i]),
            "resolution_angstrom": float(box * pixel / i) if i > 0 else None,
            "fsc": float(fsc[i]),
        }
        row.update({name: float(curve[i]) for name, curve in curves.items()})
        shells.append(row)
    if plot is not None:
        named = {"corrected FSC" if mask is not None else "FSC": fsc.numpy()}
        named.update({name: curve.numpy() for name, curve in curves.items()})
        save_fsc_plot(plot, freq.numpy(), named, resolution_0143=res[0.143], title=map_a.name)
    if as_json:
        print_json(
            {
                "resolution_0143_angstrom": res[0.143],
                "resolution_05_angstrom": res[0.5],
                "pixel_size_angstrom": pixel,
                "box_size": box,
                "masked": mask is not None,
                "shells": shells,
            }
        )
        return
    typer.echo(f"pixel size {pixel:g} Å, box {box}, {'masked, corrected' if mask else 'unmasked'}")
    typer.echo(f"resolution at FSC = 0.143: {res[0.143]:.3f} Å")
    typer.echo(f"resolution at FSC = 0.5:   {res[0.5]:.3f} Å")
    if plot is not None:
        typer.echo(f"plot: {plot}")
