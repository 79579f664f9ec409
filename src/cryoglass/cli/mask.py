"""`cryoglass mask`: a soft solvent mask from a map, as relion_mask_create."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli.options import Apix, JsonOutput, Overwrite

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["threshold", "mask_volume_nm3", "mask_fraction"]


def _check_options(threshold, auto_threshold, extend_px, soft_edge_px, lowpass) -> None:
    if (threshold is None) == (not auto_threshold):
        fail("give either --threshold T or --auto-threshold (one of them)")
    if soft_edge_px < 0:
        fail(f"--soft-edge-px must be >= 0, got {soft_edge_px}")
    if lowpass is not None and not lowpass > 0:
        fail(f"--lowpass must be a positive resolution in Å, got {lowpass}")


def _check_outputs(map_in: Path, out: Path, plot: Path | None, overwrite: bool) -> None:
    check_outputs([out, plot], inputs=[map_in], overwrite=overwrite)


def main(
    map_in: Path = typer.Argument(..., help="Map to threshold (.mrc), e.g. run_class001.mrc."),
    out: Path = typer.Option(..., "--out", help="Output mask (.mrc), values in [0, 1]."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Density threshold of the initial binary mask (relion_mask_create --ini_threshold): "
        "voxels >= T of the (low-passed) map.",
    ),
    auto_threshold: bool = typer.Option(
        False,
        "--auto-threshold",
        help="Choose the threshold automatically: Otsu's threshold of the (low-passed) map.",
    ),
    extend_px: float = typer.Option(
        3.0,
        "--extend-px",
        help="Grow the binary mask by this many pixels (negative shrinks) [px] (--extend_inimask).",
    ),
    soft_edge_px: float = typer.Option(
        6.0,
        "--soft-edge-px",
        help="Width of the raised-cosine soft edge around it [px] (--width_soft_edge).",
    ),
    lowpass: float | None = typer.Option(
        None,
        "--lowpass",
        help="Low-pass the map at this resolution before thresholding [Å] (--lowpass; rounded "
        "to a whole Fourier shell as RELION does).",
    ),
    apix: Apix = None,
    plot: Path | None = typer.Option(
        None, "--plot", help="Write central slices of the map with the mask outline (PNG)."
    ),
    overwrite: Overwrite = False,
    as_json: JsonOutput = False,
) -> None:
    """Make a soft mask from a map: low-pass, threshold, grow, raised-cosine edge.

    The recipe and the meaning of each number are relion_mask_create's: the map (optionally
    low-passed) is binarised at the threshold, grown by --extend-px pixels (every voxel
    closer than that to the binary mask joins; negative values shrink), and surrounded by
    a soft edge 0.5 + 0.5 cos(π s / W) at distance s < W = --soft-edge-px from it. The
    result agrees with relion_mask_create to float precision. Defaults (3 px, 6 px) are
    cryoglass's postprocess --auto-mask; relion_mask_create's own defaults are 0 and 0.

    Examples:

    \b
      cryoglass mask run_class001.mrc --threshold 0.02 --lowpass 15 --out mask.mrc
      cryoglass mask map.mrc --auto-threshold --lowpass 15 --extend-px 3 --soft-edge-px 6 \\
          --out mask.mrc --plot mask.png --json
    """
    _check_options(threshold, auto_threshold, extend_px, soft_edge_px, lowpass)
    _check_outputs(map_in, out, plot, overwrite)

    from cryoglass.io import write_mrc
    from cryoglass.io.maps import read_map
    from cryoglass.validate.masks import mask_from_map

    with failing():
        volume, header_pixel = read_map(map_in)
    pixel = apix if apix is not None else header_pixel
    if pixel is None or not (math.isfinite(pixel) and pixel > 0):
        fail(f"{map_in}: no pixel size in the header; pass --apix (a positive size in Å)")
    if float(volume.max()) == float(volume.min()):
        fail(f"{map_in}: every voxel is {float(volume.min()):g}: an empty map, nothing to mask")
    if lowpass is not None:
        if len(set(volume.shape)) != 1:
            fail(f"{map_in}: --lowpass needs a cubic map, got {tuple(volume.shape)}")
        if lowpass < 2 * pixel:
            fail(f"--lowpass {lowpass} Å is finer than Nyquist ({2 * pixel:g} Å)")
    if abs(extend_px) >= max(volume.shape) or soft_edge_px >= max(volume.shape):
        fail(f"--extend-px/--soft-edge-px must be smaller than the box {tuple(volume.shape)}")
    mask, used = mask_from_map(
        volume.double(),
        threshold=threshold,
        extend_px=extend_px,
        soft_edge_px=soft_edge_px,
        lowpass_angstrom=lowpass,
        pixel_size_angstrom=pixel,
    )
    with failing():
        write_mrc(out, mask.float(), pixel_size_angstrom=pixel, overwrite=overwrite)
        if plot is not None:
            from cryoglass.report.maps import save_mask_preview

            save_mask_preview(plot, volume, mask, title=f"{map_in.name}: threshold {used:.4g}")
    fraction = float((mask > 0.5).double().mean())
    voxel_nm3 = pixel**3 / 1000.0
    payload = {
        "headline": HEADLINE,
        "threshold": used,
        "threshold_source": "otsu" if auto_threshold else "given",
        "mask_fraction": fraction,
        "mask_volume_nm3": float((mask > 0.5).sum()) * voxel_nm3,
        "soft_volume_nm3": float(mask.sum()) * voxel_nm3,
        "extend_px": extend_px,
        "soft_edge_px": soft_edge_px,
        "lowpass_angstrom": lowpass,
        "pixel_size_angstrom": pixel,
        "box": list(volume.shape),
        "files": {"mask": str(out), **({"plot": str(plot)} if plot else {})},
    }
    if as_json:
        print_json(payload)
        return
    typer.echo(
        f"threshold {used:.4g} ({payload['threshold_source']}); mask > 0.5 covers "
        f"{100 * fraction:.1f} % of the box ({payload['mask_volume_nm3']:.1f} nm³)"
    )
    typer.echo(f"wrote {out}" + (f" and {plot}" if plot else ""))
