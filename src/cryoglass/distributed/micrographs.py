"""Per-micrograph jobs: one task per movie or micrograph, in this process or on Dask workers.

The preprocessing steps (simulate-movies, motioncorr, extract, and the CTF and picking steps)
treat every micrograph independently: a task reads its own input files from shared storage,
writes its own outputs and returns a small summary (shifts, CTF values, coordinates) that the
client gathers into the step's STAR file.  :func:`map_micrographs` runs such a task function on
every item, either in a loop here or on a Dask cluster (``--workers N`` / ``--scheduler``,
docs/scaling.md), calls ``progress`` after each one and returns the results **in the items'
order**, whatever the order they finished in — so the outputs do not depend on the number of
workers.

A task function is a module-level function ``task(item, settings) -> result`` (pickled by
reference, so the workers import it); ``settings`` is a small frozen dataclass sent once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ExtractSettings",
    "MotionCorrectionSettings",
    "SimulateMoviesSettings",
    "extract_task",
    "map_micrographs",
    "motioncorr_task",
    "simulate_movie_task",
]


def _call(function: Callable, item: Any, settings: Any) -> Any:
    return function(item, settings)


def map_micrographs(
    function: Callable[[Any, Any], Any],
    items: Sequence[Any],
    *,
    settings: Any,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
    echo: Callable[[str], None] = print,
    label: str = "micrographs",
) -> tuple[list[Any], dict]:
    """Run ``function(item, settings)`` for every item; results in the items' order.

    Parameters
    ----------
    function : callable
        A module-level task function.
    items : sequence
        One per micrograph (an index, a file name, a small dataclass).
    settings
        Passed to every call (sent to the cluster once).
    workers, scheduler : optional
        A local Dask cluster of ``workers`` processes, or an existing scheduler; neither: run
        here, one item after the other.
    progress : callable, optional
        Called with 1 after each finished item.
    echo : callable
        Where the cluster's address is reported.
    label : str
        Names the tasks on the dashboard.

    Returns
    -------
    (results, summary)
        ``summary``: ``seconds`` and, on a cluster, the peak memory of the client and workers
        (:func:`cryoglass.distributed.commands.memory_summary`) and ``workers``.

    Examples
    --------
    >>> map_micrographs(pow, [1, 2, 3], settings=2)[0]
    [1, 4, 9]
    """
    started = time.perf_counter()
    if workers is None and scheduler is None:
        results = []
        for item in items:
            results.append(function(item, settings))
            if progress is not None:
                progress(1)
        return results, {"seconds": round(time.perf_counter() - started, 3)}

    from dask.distributed import as_completed

    from cryoglass.distributed.cluster import open_client
    from cryoglass.distributed.commands import memory_summary

    with open_client(workers=workers, scheduler=scheduler) as (client, info):
        where = f"local cluster, {info.workers} worker processes" if info.local else scheduler
        echo(f"dask: {where}; dashboard {info.dashboard or '(none)'}")
        shared = client.scatter(settings, broadcast=True)
        run = uuid.uuid4().hex[:8]
        futures = {
            client.submit(_call, function, item, shared, key=f"cryoglass-{label}-{run}-{i}"): i
            for i, item in enumerate(items)
        }
        results: list[Any] = [None] * len(items)
        try:
            for future, result in as_completed(futures, with_results=True):
                results[futures.pop(future)] = result
                future.release()
                if progress is not None:
                    progress(1)
        finally:
            for future in futures:
                future.cancel()
        summary = memory_summary(client)
        summary["workers"] = info.workers
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return results, summary


# ----------------------------------------------------------------------------- simulate-movies


@dataclass(frozen=True)
class SimulateMoviesSettings:
    """What every ``simulate-movies`` task needs (the map is read from ``volume_path``)."""

    volume_path: str
    out: str
    names: tuple[str, ...]
    microscope: Any
    specimen: Any
    exposure: Any
    seed: int
    movie: bool


def simulate_movie_task(index: int, settings: SimulateMoviesSettings):
    """Simulate micrograph ``index``, write its movie (or summed micrograph), return its truth.

    Returns
    -------
    (MicrographTruth, dict)
        The truth and ``{"mean_counts_per_pixel": …}`` of what was written.
    """
    from pathlib import Path

    from cryoglass.io import read_mrc, write_mrc
    from cryoglass.io.micrographs import write_movie
    from cryoglass.simulate.micrograph import simulate_micrograph

    volume, _ = read_mrc(settings.volume_path)
    result = simulate_micrograph(
        volume,
        index=index,
        microscope=settings.microscope,
        specimen=settings.specimen,
        exposure=settings.exposure,
        seed=settings.seed,
        movie=settings.movie,
    )
    path = Path(settings.out) / settings.names[index]
    pixel = settings.microscope.pixel_size_angstrom
    if settings.movie:
        write_movie(path, result.frames, pixel_size_angstrom=pixel, overwrite=True)
        mean = float(result.frames.mean()) * settings.exposure.n_frames
    else:
        write_mrc(path, result.micrograph, pixel_size_angstrom=pixel, overwrite=True)
        mean = float(result.micrograph.mean())
    return result.truth, {"mean_counts_per_pixel": mean}


# ----------------------------------------------------------------------------- motioncorr


@dataclass(frozen=True)
class MotionCorrectionSettings:
    """What every ``motioncorr`` task needs; paths are absolute (workers may run elsewhere)."""

    movies: tuple[str, ...]
    movie_names: tuple[str, ...]
    outputs: tuple[str, ...]  # per movie: output path without extension
    gain: str | None
    pixel_size_angstrom: float
    voltage_kv: float
    motion: Any  # cryoglass.preprocess.motion.MotionSettings
    dose_per_frame: float | None
    pre_exposure: float
    bin_factor: int
    save_no_dw: bool
    plots: bool
    early_dose: float = 4.0  # e/Å²: RELION's --dose_motionstats_cutoff


def _accumulated_motion(shifts, *, dose_per_frame: float, pre_exposure: float, cutoff: float):
    """RELION's rlnAccumMotionTotal/Early/Late [pixels]: path length of the global track."""
    import torch

    steps = (shifts[1:] - shifts[:-1]).norm(dim=-1)
    frames = torch.arange(2, len(shifts) + 1, dtype=steps.dtype)
    cutoff_frame = (cutoff - pre_exposure) / dose_per_frame
    early = float(steps[frames <= cutoff_frame].sum())
    total = float(steps.sum())
    return total, early, total - early


def motioncorr_task(index: int, settings: MotionCorrectionSettings) -> dict:
    """Correct movie ``index``: write its sum(s), its motion STAR file and plot; return stats."""
    import time
    from pathlib import Path

    from cryoglass.io import read_mrc, write_mrc
    from cryoglass.io.micrographs import MotionTrack, read_movie, write_motion_star
    from cryoglass.preprocess.motion import estimate_motion, motion_corrected_sum

    started = time.perf_counter()
    frames = read_movie(settings.movies[index])
    if settings.gain is not None:
        gain, _ = read_mrc(settings.gain)
        frames *= gain
    estimate, spectra = estimate_motion(frames, settings=settings.motion)
    del frames
    pixel = settings.pixel_size_angstrom
    common = {"pixel_size_angstrom": pixel, "voltage_kv": settings.voltage_kv}
    common["bin_factor"] = settings.bin_factor
    image = motion_corrected_sum(
        spectra, estimate, dose_per_frame=settings.dose_per_frame,
        pre_exposure=settings.pre_exposure, **common,
    )  # fmt: skip
    out = Path(settings.outputs[index])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_mrc(out.with_suffix(".mrc"), image, pixel_size_angstrom=pixel * settings.bin_factor,
              overwrite=True)  # fmt: skip
    if settings.save_no_dw and settings.dose_per_frame is not None:
        plain = motion_corrected_sum(spectra, estimate, **common)
        write_mrc(out.with_name(out.name + "_noDW.mrc"), plain,
                  pixel_size_angstrom=pixel * settings.bin_factor, overwrite=True)  # fmt: skip
    n, (h, w) = estimate.n_frames, estimate.shape_px
    local = None
    if estimate.patch_observations is not None:
        obs = estimate.patch_observations.clone()
        obs[:, 0] += 1  # RELION writes 1-based frame numbers
        local = obs
    track = MotionTrack(
        movie_name=settings.movie_names[index],
        shape_px=(w, h, n),
        global_shifts_px=estimate.global_shifts_px,
        pixel_size_angstrom=pixel,
        binning=float(settings.bin_factor),
        dose_per_frame=settings.dose_per_frame or 0.0,
        pre_exposure=settings.pre_exposure,
        voltage_kv=settings.voltage_kv,
        gain_name=settings.gain,
        polynomial_x=estimate.polynomial_x,
        polynomial_y=estimate.polynomial_y,
        local_shifts=local,
    )
    write_motion_star(out.with_suffix(".star"), track, overwrite=True)
    if settings.plots:
        _motion_plot(out, estimate, settings.movie_names[index])
    total, early, late = _accumulated_motion(
        estimate.global_shifts_px,
        dose_per_frame=settings.dose_per_frame or 1.0,
        pre_exposure=settings.pre_exposure,
        cutoff=settings.early_dose,
    )
    return {
        "global_shifts_px": estimate.global_shifts_px,
        "motion_total_px": total,
        "motion_early_px": early,
        "motion_late_px": late,
        "local": estimate.polynomial_x is not None,
        "seconds": time.perf_counter() - started,
    }


def _motion_plot(out, estimate, title: str) -> None:
    """DIR/<movie>_shifts.png: the global track and the local tracks at a 5 × 5 grid."""
    import torch

    from cryoglass.report.preprocess import save_motion_figure

    tracks = points = None
    if estimate.polynomial_x is not None:
        h, w = estimate.shape_px
        grid = (torch.arange(5, dtype=torch.float64) + 0.5) / 5
        ys, xs = torch.meshgrid(grid * h, grid * w, indexing="ij")
        points = torch.stack([xs, ys], dim=-1).reshape(-1, 2)
        tracks = estimate.shifts_at(points) - estimate.global_shifts_px[:, None]
    save_motion_figure(
        out.with_name(out.name + "_shifts.png"),
        estimate.global_shifts_px,
        shape_px=estimate.shape_px,
        local_tracks_px=tracks,
        local_points_px=points,
        title=title,
    )


# ----------------------------------------------------------------------------- extract


@dataclass(frozen=True)
class ExtractSettings:
    """What every ``extract`` task needs; paths are absolute."""

    micrographs: tuple[str, ...]
    stacks: tuple[str, ...]  # per micrograph: the output .mrcs
    coordinates: tuple[Any, ...]  # per micrograph: (n, 2) float64 tensors
    pixel_sizes: tuple[float, ...]  # of the output images [Å]
    box: int
    bin_factor: int
    radius_px: float | None
    normalise: bool
    ramp: bool
    invert_contrast: bool


def extract_task(index: int, settings: ExtractSettings) -> dict:
    """Extract micrograph ``index``'s particles into its stack; return their count and stats."""
    from cryoglass.io import read_mrc, write_mrc
    from cryoglass.preprocess.extract import preprocess_particles

    micrograph, _ = read_mrc(settings.micrographs[index])
    images = preprocess_particles(
        micrograph,
        settings.coordinates[index],
        box=settings.box,
        bin_factor=settings.bin_factor,
        radius_px=settings.radius_px,
        normalise=settings.normalise,
        ramp=settings.ramp,
        invert_contrast=settings.invert_contrast,
    )
    write_mrc(settings.stacks[index], images, pixel_size_angstrom=settings.pixel_sizes[index],
              stack=True, overwrite=True)  # fmt: skip
    return {"particles": len(images), "mean": float(images.mean()), "std": float(images.std())}
