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

__all__ = ["SimulateMoviesSettings", "map_micrographs", "simulate_movie_task"]


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
