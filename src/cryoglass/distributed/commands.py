"""What the ``--workers`` / ``--scheduler`` options of the commands call (client, progress, memory).

Kept here so that each command only adds a short branch: open the client, print the dashboard
address, run the job under a rich progress bar over chunks, collect peak memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["dask_session", "distributed_reconstruct", "distributed_simulate", "memory_summary"]


def memory_summary(client) -> dict:
    """Peak RSS [MiB] of the client process and of the largest / all live workers."""
    from cryoglass.distributed.cluster import peak_memory

    report = peak_memory(client)
    mib = 2**20
    return {
        "peak_rss_client_mib": round(report["client_bytes"] / mib, 1),
        "peak_rss_max_worker_mib": round(report["max_worker_bytes"] / mib, 1),
        "peak_rss_workers_mib": {a: round(b / mib, 1) for a, b in report["workers_bytes"].items()},
        "peak_rss_source": "VmHWM (Linux; else ru_maxrss) of the client and each live worker",
    }


@contextlib.contextmanager
def dask_session(
    workers: int | None,
    scheduler: str | None,
    *,
    memory_limit: str | None = None,
    echo: Callable[[str], None] = print,
) -> Iterator[object]:
    """A Dask client for a command that submits several rounds of tasks (class2d iterations).

    Prints where the work runs and the dashboard address; yields the client.
    """
    from cryoglass.distributed.cluster import open_client

    with open_client(workers=workers, scheduler=scheduler, memory_limit=memory_limit) as (
        client,
        info,
    ):
        where = f"local cluster, {info.workers} worker processes" if info.local else scheduler
        echo(f"dask: {where}; dashboard {info.dashboard or '(none)'}")
        yield client


def _run(
    workers, scheduler, memory_limit, echo: Callable[[str], None], total: int, label: str, job
):
    """Run ``job(client, progress)`` on a cluster; returns ``(result, summary)``.

    ``summary``: :func:`memory_summary` plus ``cluster_start_seconds`` (opening the client and,
    for ``--workers``, starting the local cluster) and ``distributed_seconds`` (the job itself:
    submitting the chunks, computing them and reducing their sums).
    """
    import time

    from rich.progress import Progress

    from cryoglass.distributed.cluster import open_client

    started = time.perf_counter()
    with open_client(workers=workers, scheduler=scheduler, memory_limit=memory_limit) as (
        client,
        info,
    ):
        opened = time.perf_counter()
        where = f"local cluster, {info.workers} worker processes" if info.local else scheduler
        echo(f"dask: {where}; dashboard {info.dashboard or '(none)'}")
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{label} (chunks)", total=total)
            result = job(client, lambda k: progress.update(task, advance=k))
        finished = time.perf_counter()
        summary = memory_summary(client)
        summary["cluster_start_seconds"] = round(opened - started, 2)
        summary["distributed_seconds"] = round(finished - opened, 2)
        return result, summary


def distributed_reconstruct(
    particles,
    *,
    labels,
    settings,
    workers: int | None,
    scheduler: str | None,
    chunk_size: int,
    work_dir: Path | None,
    memory_limit: str | None = None,
    echo: Callable[[str], None] = print,
):
    """Accumulators per label computed on a cluster; returns ``(accs, memory, stats)``."""
    from cryoglass.distributed.jobs import RunStats, reconstruct_sums

    stats = RunStats()

    def job(client, progress):
        return reconstruct_sums(
            client,
            particles,
            settings=settings,
            chunk_size=chunk_size,
            labels=labels,
            work_dir=work_dir,
            progress=progress,
            stats=stats,
        )

    accs, memory = _run(
        workers, scheduler, memory_limit, echo, len(particles), "back-projecting", job
    )
    if stats.resumed:
        echo(f"resumed {stats.resumed} chunk(s) from {work_dir}")
    return accs, memory, stats


def distributed_simulate(
    out_path: Path,
    *,
    settings,
    box: int,
    workers: int | None,
    scheduler: str | None,
    chunk_size: int,
    echo: Callable[[str], None] = print,
):
    """Simulated stack written by the workers; returns ``(parameters, examples, memory)``."""
    from cryoglass.distributed.jobs import simulate_stack

    def job(client, progress):
        return simulate_stack(
            client, out_path, settings=settings, box=box, chunk_size=chunk_size, progress=progress
        )

    (params, examples), memory = _run(workers, scheduler, None, echo, settings.n, "simulating", job)
    return params, examples, memory
