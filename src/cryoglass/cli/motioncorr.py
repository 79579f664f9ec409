"""`cryoglass motioncorr`: beam-induced motion correction of movies, RELION's output layout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli._micrograph_steps import run_per_micrograph
from cryoglass.cli.options import Apix, JsonOutput, Overwrite, Scheduler, Workers

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["movies", "mean_motion_total_px", "seconds_per_movie"]

_Star = Annotated[Path, typer.Argument(help="RELION movies.star (rlnMicrographMovieName).")]
_Out = Annotated[Path, typer.Option("--out", help="Output folder (created).")]
_Patches = Annotated[
    str, typer.Option("--patches", help="Patches for local motion, NXxNY (1x1: global only).")
]
_Dose = Annotated[
    float | None,
    typer.Option("--dose-per-frame", help="Exposure per frame [e⁻/Å²]: dose-weighted sums."),
]
_PreExposure = Annotated[
    float, typer.Option("--pre-exposure", help="Exposure before the first frame [e⁻/Å²].")
]
_Bin = Annotated[int, typer.Option("--bin", help="Bin the sums by this factor (Fourier crop).")]
_Group = Annotated[
    int | None,
    typer.Option(
        "--group-frames",
        help="Frames per group in the patch alignment (default: ~4 e⁻/Å² per group, else 1).",
    ),
]
_Bfactor = Annotated[
    float, typer.Option("--bfactor", help="B-factor of the alignment's weighting [pixel²].")
]
_Gain = Annotated[
    Path | None,
    typer.Option("--gain-reference", help="Gain reference (.mrc) to multiply the frames by."),
]
_NoDW = Annotated[
    bool, typer.Option("--save-no-dw", help="Also write the sums without dose weighting.")
]
_Plots = Annotated[bool, typer.Option("--plots/--no-plots", help="Trajectory plot per movie.")]


def _patches(text: str) -> tuple[int, int]:
    try:
        nx, ny = (int(v) for v in text.lower().split("x"))
    except ValueError:
        fail(f"--patches {text}: give NXxNY, e.g. 5x5 (1x1: global alignment only)")
    if nx < 1 or ny < 1:
        fail(f"--patches {text}: need at least 1 patch along each axis")
    return nx, ny


def _output_root(out: Path, name: str) -> Path:
    """RELION keeps the movie's relative path under the output folder (without extension)."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        path = Path(path.name)
    return out / path.with_suffix("")


def _check_movies(table, gain_option: Path | None):
    """Headers of every movie agree (frames, size); the gain exists and fits. → (n, h, w), gain."""
    from cryoglass.io import read_mrc_header

    shape, first = None, None
    for name, file in zip(table.names, table.files, strict=True):
        if not file.is_file():
            fail(f"{table.path}: movie {name} not found ({file})")
        with failing(ValueError, OSError, prefix=f"{file}: "):
            info = read_mrc_header(file)
        if len(info.shape) != 3 or info.shape[0] < 3:
            fail(f"{file}: a movie needs at least 3 frames, got shape {info.shape}")
        if shape is None:
            shape, first = info.shape, file
        elif info.shape != shape:
            fail(
                f"{file}: {info.shape[0]} frames of {info.shape[2]} × {info.shape[1]} px, but "
                f"{first} has {shape[0]} frames of {shape[2]} × {shape[1]} px: inconsistent movies"
            )
    gains = {table.gain_file(i) for i in range(len(table))}
    gain = (
        gain_option if gain_option is not None else next(iter(gains)) if len(gains) == 1 else None
    )
    if gain_option is None and len(gains) > 1:
        fail(f"{table.path}: optics groups name different gain references; give --gain-reference")
    if gain is not None:
        if not gain.is_file():
            fail(f"{gain}: gain reference not found (named by {table.path} or --gain-reference)")
        with failing(ValueError, OSError, prefix=f"{gain}: "):
            info = read_mrc_header(gain)
        if tuple(info.shape[-2:]) != tuple(shape[1:]) or len(info.shape) != 2:
            fail(
                f"{gain}: gain reference of {info.shape} px does not match the movies' "
                f"{shape[2]} × {shape[1]} px frames"
            )
    return shape, gain


def _check_outputs(table, out: Path, overwrite: bool, bin_factor: int, shape) -> list[Path]:
    """Refuse outputs that exist (without --overwrite) or that would replace an input."""
    roots = [_output_root(out, name) for name in table.names]
    products = [r.with_suffix(suffix) for r in roots for suffix in (".mrc", ".star")]
    check_outputs(
        [out / "corrected_micrographs.star", *products],
        inputs=[table.path, *table.files],
        overwrite=overwrite,
        creates=[out, *(r.parent for r in roots)],
    )
    if bin_factor < 1 or (shape[1] // bin_factor) < 16:
        fail(f"--bin {bin_factor}: must be ≥ 1 and leave at least 16 px")
    return roots


def _settings(table, roots, gain, *, pixel, patches, group, bfactor, dose, pre, bin_factor,
              save_no_dw, plots, n_frames):  # fmt: skip
    from cryoglass.distributed.micrographs import MotionCorrectionSettings
    from cryoglass.preprocess.motion import MotionSettings

    if group is None:
        group = max(1, round(4.0 / dose)) if dose else 1
    if min(patches) >= 3 and n_frames // group < 3:
        fail(f"--group-frames {group}: {n_frames} frames make fewer than 3 groups")
    motion = MotionSettings(bfactor_px2=bfactor, patches=patches, group_frames=group)
    return MotionCorrectionSettings(
        movies=tuple(str(f.resolve()) for f in table.files),
        movie_names=table.names,
        outputs=tuple(str(r.resolve()) for r in roots),
        gain=None if gain is None else str(gain.resolve()),
        pixel_size_angstrom=pixel,
        voltage_kv=table.optics[0].voltage_kv,
        motion=motion,
        dose_per_frame=dose,
        pre_exposure=pre,
        bin_factor=bin_factor,
        save_no_dw=save_no_dw,
        plots=plots,
    )


def _write_star(out: Path, table, roots, results, settings) -> Path:
    from dataclasses import replace

    from cryoglass.io.micrographs import write_micrograph_table

    optics = [
        replace(
            o,
            pixel_size_angstrom=o.original_pixel_size_angstrom * settings.bin_factor,
            gain_name=None,
        )
        for o in dict.fromkeys(table.optics)
    ]
    group = {o: i + 1 for i, o in enumerate(dict.fromkeys(table.optics))}

    def relative(path: Path) -> str:
        return str(path.relative_to(out)) if path.is_relative_to(out) else str(path)

    return write_micrograph_table(
        out / "corrected_micrographs.star",
        [relative(r.with_suffix(".mrc")) for r in roots],
        kind="micrographs",
        optics=optics,
        optics_group=[group[o] for o in table.optics],
        metadata_names=[relative(r.with_suffix(".star")) for r in roots],
        motion_total_px=[r["motion_total_px"] for r in results],
        motion_early_px=[r["motion_early_px"] for r in results],
        motion_late_px=[r["motion_late_px"] for r in results],
        overwrite=True,
    )


def main(
    movies_star: _Star,
    out: _Out,
    patches: _Patches = "1x1",
    dose_per_frame: _Dose = None,
    pre_exposure: _PreExposure = 0.0,
    bin_factor: _Bin = 1,
    group_frames: _Group = None,
    bfactor: _Bfactor = 150.0,
    gain_reference: _Gain = None,
    save_no_dw: _NoDW = False,
    plots: _Plots = True,
    apix: Apix = None,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Correct beam-induced motion: align the frames of every movie and sum them.

    Each frame is aligned to the sum of the other frames (B-factor-weighted cross-correlation,
    its peak refined by upsampled correlation, the trajectory smoothed); with --patches NXxNY
    (≥ 3x3) the globally aligned frames are also aligned in overlapping patches (frames summed
    in groups) and RELION's third-order polynomial deformation is fitted to the patch tracks.
    With --dose-per-frame the frames are summed with Grant & Grigorieff's dose weights, as
    RELION.  The science is cryoglass.preprocess.motion (its docstring has the equations).

    Writes RELION's layout into DIR: for each movie DIR/<movie path>.mrc (the sum, pixel size
    × --bin), <movie path>.star (data_general, data_global_shift with rlnMicrographShiftX/Y in
    pixels and RELION's sign — the shift that re-aligns each frame to frame 1 —,
    data_local_motion_model, data_local_shift), <movie path>_shifts.png, and
    DIR/corrected_micrographs.star (rlnMicrographName, rlnMicrographMetadata,
    rlnAccumMotionTotal/Early/Late; optics with rlnMicrographOriginalPixelSize and
    rlnMicrographPixelSize).  The gain reference is --gain-reference or the movies.star's
    rlnMicrographGainName.  Every movie is corrected independently: --workers N /
    --scheduler ADDRESS spread them over Dask workers, with the same outputs.

    \b
    Examples:
      cryoglass motioncorr sim/movies.star --out MC --patches 5x5 --dose-per-frame 1.33
      cryoglass motioncorr movies.star --out MC --gain-reference gain.mrc --bin 2 --workers 2
      relion_run_motioncorr --i movies.star --o MCR/ --use_own --patch_x 5 --patch_y 5  # peer
    """
    from cryoglass.io.micrographs import read_micrograph_table

    started = time.perf_counter()
    nx_ny = _patches(patches)
    if dose_per_frame is not None and not dose_per_frame > 0:
        fail(f"--dose-per-frame {dose_per_frame}: must be > 0 e⁻/Å²")
    if group_frames is not None and group_frames < 1:
        fail(f"--group-frames {group_frames}: must be ≥ 1")
    with failing(ValueError, OSError):
        table = read_micrograph_table(movies_star, kind="movies", pixel_size_angstrom=apix)
    shape, gain = _check_movies(table, gain_reference)
    roots = _check_outputs(table, out, overwrite, bin_factor, shape)
    pixels = {o.original_pixel_size_angstrom for o in table.optics}
    if len(pixels) > 1:
        fail(f"{movies_star}: optics groups with different pixel sizes {sorted(pixels)}")
    settings = _settings(table, roots, gain, pixel=pixels.pop(), patches=nx_ny,
                         group=group_frames, bfactor=bfactor, dose=dose_per_frame,
                         pre=pre_exposure, bin_factor=bin_factor, save_no_dw=save_no_dw,
                         plots=plots, n_frames=shape[0])  # fmt: skip
    from cryoglass.distributed.micrographs import motioncorr_task

    results, run = run_per_micrograph(
        motioncorr_task,
        len(table),
        settings,
        workers=workers,
        scheduler=scheduler,
        label="motioncorr",
    )
    with failing():
        star = _write_star(out, table, roots, results, settings)
    seconds = time.perf_counter() - started
    summary = {
        "headline": HEADLINE,
        "movies": len(table),
        "frames": shape[0],
        "size_px": [shape[2], shape[1]],
        "patches": list(nx_ny),
        "group_frames": settings.motion.group_frames,
        "dose_weighted": dose_per_frame is not None,
        "mean_motion_total_px": round(sum(r["motion_total_px"] for r in results) / len(table), 3),
        "local_models": sum(bool(r["local"]) for r in results),
        "star": str(star),
        "seconds": round(seconds, 3),
        "seconds_per_movie": round(seconds / len(table), 3),
        **{k: v for k, v in run.items() if k != "seconds"},
    }
    if json_output:
        print_json(summary)
        return
    typer.echo(
        f"corrected {len(table)} movies ({shape[0]} frames, patches {patches}, "
        f"{'dose-weighted' if dose_per_frame else 'plain'} sums) in {seconds:.1f} s; "
        f"mean total motion {summary['mean_motion_total_px']:.2f} px; {star}",
        err=True,
    )
