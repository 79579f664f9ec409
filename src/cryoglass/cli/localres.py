"""`cryoglass localres`: local resolution of two half maps by windowed FSC (relion --locres)."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json, torch_device
from cryoglass.cli.options import Apix, Device, JsonOutput, Overwrite

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["median_resolution_angstrom", "resolution_5_95_angstrom", "n_windows"]

#: Files written into --out (documented in the command's help).
OUTPUT_FILES = {
    "localres": "localres.mrc",
    "filtered": "localres_filtered.mrc",
    "histogram": "localres_histogram.png",
    "slices": "localres_slices.png",
    "chimerax": "localres.cxc",
    "json": "localres.json",
}


def _params(sampling, randomize_at, min_resolution, bfactor, fft_box):
    from cryoglass.validate.localres import LocalResolutionParams

    for name, value in (("--sampling", sampling), ("--randomize-at", randomize_at)):
        if not value > 0:
            fail(f"{name} must be a positive length in Å, got {value}")
    if not min_resolution > 0:
        fail(f"--min-resolution must be positive [Å], got {min_resolution}")
    return LocalResolutionParams(
        sampling_angstrom=sampling,
        randomize_at_angstrom=randomize_at,
        min_resolution_angstrom=min_resolution,
        bfactor_a2=bfactor,
        fft_box=fft_box,
    )


def _run(a, b, m, *, pixel, params, batch_size, seed, device):
    """The library call with a progress bar on stderr; returns the result and its seconds."""
    import time

    import torch
    from rich.console import Console
    from rich.progress import Progress

    from cryoglass.validate.localres import local_resolution

    started = time.perf_counter()
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("windowed FSC", total=None)
        with failing():
            result = local_resolution(
                a.to(device),
                b.to(device),
                pixel_size_angstrom=pixel,
                params=params,
                mask=None if m is None else m.to(device),
                batch_size=batch_size,
                generator=torch.Generator().manual_seed(seed),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    return result, time.perf_counter() - started


def _summary(result, m) -> dict:
    """Numbers of the local-resolution map inside the mask (or wherever it is known)."""
    import torch

    res = result.resolution_angstrom.double().cpu()
    inside = (m.cpu() > 0.5) & (res > 0) if m is not None else res > 0
    values = res[inside]
    if values.numel() == 0:
        fail("the local-resolution map is empty inside the mask")
    q = torch.quantile(values, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64))
    return {
        "median_resolution_angstrom": float(q[2]),
        "resolution_5_95_angstrom": [float(q[0]), float(q[4])],
        "resolution_quartiles_angstrom": [float(q[1]), float(q[3])],
        "best_window_angstrom": float(result.window_resolution_angstrom.min()),
        "worst_window_angstrom": float(result.window_resolution_angstrom.max()),
        "n_windows": int(result.centers.shape[0]),
        "voxels": int(values.numel()),
        "inside_mask": m is not None,
    }


def _write(paths: dict, result, m, stats: dict, *, pixel: float, overwrite: bool) -> None:
    from cryoglass.io import write_mrc, write_text_atomic
    from cryoglass.io.chimerax import localres_script
    from cryoglass.report.maps import save_localres_histogram, save_localres_slices

    write = dict(pixel_size_angstrom=pixel, overwrite=overwrite)
    write_mrc(paths["localres"], result.resolution_angstrom.float().cpu(), **write)
    write_mrc(paths["filtered"], result.filtered.float().cpu(), **write)
    res = result.resolution_angstrom.cpu()
    inside = (m.cpu() > 0.5) if m is not None else res > 0
    save_localres_histogram(
        paths["histogram"],
        res[inside & (res > 0)],
        median_angstrom=stats["median_resolution_angstrom"],
        title="local resolution" + (" inside the mask" if m is not None else ""),
    )
    save_localres_slices(
        paths["slices"], result.filtered.cpu(), res, mask=None if m is None else m.cpu()
    )
    filtered = result.filtered.double().cpu()
    shown = filtered[inside] if bool(inside.any()) else filtered.flatten()
    script = localres_script(
        map_name=OUTPUT_FILES["filtered"],
        localres_name=OUTPUT_FILES["localres"],
        pixel_size_angstrom=pixel,
        level=float(shown.mean() + 1.5 * shown.std()),
        range_angstrom=tuple(stats["resolution_5_95_angstrom"]),
    )
    write_text_atomic(paths["chimerax"], script)


def main(
    half1: Path = typer.Argument(..., help="Half map 1 (.mrc), unfiltered and unmasked."),
    half2: Path = typer.Argument(..., help="Half map 2 (.mrc), same box and pixel size."),
    out: Path = typer.Option(..., "--out", help="Output folder (created if missing)."),
    mask: Path | None = typer.Option(
        None,
        "--mask",
        help="Soft mask (.mrc, values in [0, 1]): statistics and the histogram inside it "
        "(> 0.5); windows that do not reach it are skipped.",
    ),
    sampling: float = typer.Option(
        25.0,
        "--sampling",
        help="Spacing of the windows [Å] (--locres_sampling); window radius "
        "half of it, soft edge as wide as it.",
    ),
    randomize_at: float = typer.Option(
        25.0, "--randomize-at", help="Randomise phases beyond this resolution [Å]."
    ),
    min_resolution: float = typer.Option(
        50.0, "--min-resolution", help="Coarsest local resolution reported [Å]."
    ),
    bfactor: float = typer.Option(
        0.0, "--bfactor", help="B-factor of the filtered map [Å²] (negative sharpens)."
    ),
    fft_box: int | None = typer.Option(
        None, "--fft-box", min=8, help="FFT box of the windows [px] (default: twice a window)."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Windows per batch (default: by the FFT box)."
    ),
    apix: Apix = None,
    seed: int = typer.Option(0, "--seed", help="Seed of the phase randomisation."),
    device: Device = "cpu",
    overwrite: Overwrite = False,
    as_json: JsonOutput = False,
) -> None:
    """Local resolution of two half maps: windowed, phase-randomisation-corrected FSC.

    As relion_postprocess --locres: soft spherical windows every --sampling Å (radius half
    of it, cosine edge as wide as it) cut both half maps; the FSC of each window pair,
    corrected for the window's own correlation by phase randomisation beyond --randomize-at,
    falls to 0.143 at the window's resolution; every voxel gets the window-weighted
    harmonic mean. The windows are transformed in batches in a box twice their size (not
    the whole map, as RELION does), which changes no FSC.

    Files in --out: localres.mrc (local resolution [Å]; 0 where no window reaches),
    localres_filtered.mrc (the average of the halves FSC-weighted and low-passed to the
    local resolution), localres_histogram.png, localres_slices.png (central slices coloured
    by resolution), localres.cxc (ChimeraX: the filtered map coloured by localres.mrc) and
    localres.json.

    Examples:

    \b
      cryoglass localres run_half1_class001_unfil.mrc run_half2_class001_unfil.mrc \\
          --mask mask.mrc --out localres
      cryoglass localres half1.mrc half2.mrc --sampling 15 --out lr15 --json
    """
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a folder")
    paths = {key: out / name for key, name in OUTPUT_FILES.items()}
    check_outputs(paths.values(), inputs=[half1, half2, mask], overwrite=overwrite, creates=[out])
    params = _params(sampling, randomize_at, min_resolution, bfactor, fft_box)
    target = torch_device(device)

    import json

    from cryoglass.io import write_text_atomic
    from cryoglass.io.maps import read_map_pair, read_mask

    with failing():
        a, b, pixel = read_map_pair(half1, half2, pixel_size_angstrom=apix)
        m = None if mask is None else read_mask(mask, tuple(a.shape))
    if len(set(a.shape)) != 1:
        fail(f"{half1}: local resolution needs cubic maps, got {tuple(a.shape)}")
    result, seconds = _run(
        a, b, m, pixel=pixel, params=params, batch_size=batch_size, seed=seed, device=target
    )
    stats = _summary(result, m)
    out.mkdir(parents=True, exist_ok=True)
    with failing():
        _write(paths, result, m, stats, pixel=pixel, overwrite=overwrite)
    payload = {
        "headline": HEADLINE,
        **stats,
        "window_px": dict(zip(("step", "radius", "edge"), result.window_px, strict=True)),
        "fft_box": result.fft_box,
        "pixel_size_angstrom": pixel,
        "box": a.shape[-1],
        "seconds": round(seconds, 2),
        "inputs": {"half1": str(half1), "half2": str(half2), "mask": mask and str(mask)},
        "files": {k: str(v) for k, v in paths.items()},
        "windows": [
            {"center_zyx": c, "resolution_angstrom": r}
            for c, r in zip(
                result.centers.cpu().tolist(),
                result.window_resolution_angstrom.cpu().tolist(),
                strict=True,
            )
        ],
    }
    write_text_atomic(paths["json"], json.dumps(payload, indent=2) + "\n")
    if as_json:
        print_json(payload)
        return
    low, high = stats["resolution_5_95_angstrom"]
    where = "inside the mask" if m is not None else "where known"
    typer.echo(
        f"local resolution {where}: median {stats['median_resolution_angstrom']:.2f} Å, "
        f"5–95 % {low:.2f}–{high:.2f} Å ({stats['n_windows']} windows, {seconds:.1f} s)"
    )
    typer.echo(f"wrote {len(paths)} files to {out}/ (localres.mrc, localres.cxc, ...)")
