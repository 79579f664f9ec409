"""What the ``--workers`` / ``--scheduler`` options of the commands call (client, progress, memory).

Kept here so that each command only adds a short branch: open the client, print the dashboard
address, run the job under a rich progress bar over chunks, collect peak memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "class3d_engine",
    "dask_session",
    "distributed_reconstruct",
    "distributed_simulate",
    "memory_summary",
    "refine_engine",
]


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


def refine_engine(
    client,
    particles,
    *,
    labels,
    settings,
    ctf: bool,
    batch_size: int,
    chunk_size: int,
    progress: Callable[[int], None] | None = None,
):
    """The E-step of :func:`cryoglass.refine.auto_refine` on a Dask cluster.

    Returns ``estep(state, max_shell) -> (accumulators, sigma2, poses)`` for
    :func:`cryoglass.refine.refine_iteration`: each iteration scatters the references, the
    noise model and the previous poses once, and every chunk of ``chunk_size`` particles is
    aligned and back-projected by a worker that reads its images itself.
    """
    import uuid

    import numpy as np
    import torch

    from cryoglass.distributed.jobs import refine_estep
    from cryoglass.distributed.reduce import accumulator_from_sums
    from cryoglass.distributed.tasks import RefineTask, make_chunks
    from cryoglass.refine.auto import IterationSums, Poses

    chunks = make_chunks(particles, chunk_size=chunk_size, labels=np.asarray(labels))
    run = uuid.uuid4().hex[:8]
    n, size = len(particles), particles.image_size

    def estep(state, max_shell: int):
        task = RefineTask(
            key=f"{run}-{state.iteration}-{max_shell}",
            references=state.references.detach().cpu().numpy(),
            sigma2=state.sigma2.detach().cpu().numpy(),
            sampling=state.sampling,
            iteration=state.iteration,
            max_shell=max_shell,
            settings=settings,
            rotations=state.poses.rotations.numpy(),
            origins_px=state.poses.origins_px.numpy(),
            ctf=ctf,
            batch_size=batch_size,
        )
        total = refine_estep(client, chunks, task, n_particles=n, progress=progress)
        accs = [
            accumulator_from_sums(total, size=size, pad=settings.pad, prefix=f"{h}/")
            for h in (0, 1)
        ]
        sums = IterationSums(
            accs, torch.from_numpy(total["noise"]), torch.from_numpy(total["counts"])
        )
        names = ("rotations", "origins_px", "max_probability", "n_significant", "log_likelihood")
        poses = Poses(*(torch.from_numpy(total[f"rows/{name}"]) for name in names))
        return accs, sums.sigma2(), poses

    return estep


def class3d_engine(
    client,
    particles,
    *,
    settings,
    ctf: bool,
    batch_size: int,
    chunk_size: int,
    progress: Callable[[int], None] | None = None,
):
    """The E-step of :func:`cryoglass.refine.class3d.classify_3d` on a Dask cluster.

    Returns ``estep(state) -> (sums, rows)`` for :func:`cryoglass.refine.class3d_iteration`:
    each iteration scatters the state (K maps, σ², priors) once, and every chunk of
    ``chunk_size`` particles is aligned and back-projected by a worker that reads its images
    itself; the client adds the chunks' sums (the M-step stays on the client).
    """
    import dataclasses
    import uuid

    from cryoglass.distributed.jobs import class3d_estep_sums
    from cryoglass.distributed.reduce import class3d_from_sums
    from cryoglass.distributed.tasks import Class3DTask, make_chunks

    chunks = make_chunks(particles, chunk_size=chunk_size)
    run = uuid.uuid4().hex[:8]
    n, size = len(particles), particles.image_size

    def estep(state):
        task = Class3DTask(
            key=f"{run}-{state.iteration}",
            state=dataclasses.replace(state, history=()),
            settings=settings,
            ctf=ctf,
            batch_size=batch_size,
        )
        total = class3d_estep_sums(client, chunks, task, n_particles=n, progress=progress)
        return class3d_from_sums(total, size=size, pad=settings.pad)

    return estep
