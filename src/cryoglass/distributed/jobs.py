"""Running a job on a Dask cluster: submit one task per chunk, reduce the results.

:func:`run_chunks` is the loop most distributed commands use: it submits the chunks not
yet in the checkpoint, adds each result into the running total as soon as it arrives
(``dask.distributed.as_completed``; the worker's copy is released at once, so memory stays
bounded by the tasks in flight), saves a checkpoint now and then and when interrupted, and
reports progress.  A worker that dies takes its running and queued chunks with it; the
scheduler sends them to the remaining (or restarted) workers, and since results are only
added once, the total is the same.

:func:`run_lanes` is its variant for large sums (reconstruct's Fourier tables): the chunks
form one chain per worker thread and each task adds its sums to its predecessor's on the
worker, so that only one total per chain travels to the client.

The job functions (:func:`reconstruct_sums`, :func:`simulate_stack`, :func:`stack_sums`,
:func:`class2d_iteration`) build the chunks and the settings and turn the total into cryoglass
objects.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cryoglass.distributed.reduce import (
    PartialSums,
    accumulator_from_sums,
    add_sums,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from cryoglass.distributed.tasks import (
    ParticleChunk,
    ReconstructSettings,
    SimulateSettings,
    make_chunks,
    reconstruct_chunk,
    simulate_chunk,
    stack_sums_chunk,
    trim_heap,
)

__all__ = [
    "RunStats",
    "class2d_estep",
    "class2d_initial_model",
    "class2d_iteration",
    "class3d_estep_sums",
    "reconstruct_sums",
    "run_chunks",
    "run_lanes",
    "simulate_stack",
    "stack_sums",
]

CHECKPOINT_NAME = "partial_sums.npz"

#: Tasks per lane submitted ahead in :func:`run_lanes`: one running, one waiting on the worker.
_LANE_DEPTH = 2


class RunStats:
    """Counters of one :func:`run_chunks` call (chunks computed now / taken from a checkpoint)."""

    def __init__(self) -> None:
        self.computed = 0
        self.resumed = 0
        self.seconds = 0.0

    def as_dict(self) -> dict:
        return {"chunks_computed": self.computed, "chunks_resumed": self.resumed}


def run_chunks(
    client,
    function: Callable,
    chunks: Sequence[ParticleChunk],
    *,
    settings,
    job: str,
    checkpoint: Path | None = None,
    checkpoint_seconds: float = 60.0,
    progress: Callable[[int], None] | None = None,
    stats: RunStats | None = None,
    workers: Sequence[str] | None = None,
    combine: Callable[[PartialSums | None, PartialSums, ParticleChunk], PartialSums] | None = None,
) -> PartialSums:
    """Run ``function(chunk, settings)`` on every chunk and return the sum of the results.

    Parameters
    ----------
    client : dask.distributed.Client
    function : callable
        A task of :mod:`cryoglass.distributed.tasks` returning :data:`PartialSums`.
    chunks : sequence of ParticleChunk
    settings
        Passed to every task.
    job : str
        Fingerprint of the job (task keys, checkpoint identity).
    checkpoint : Path, optional
        Checkpoint file: chunks already in it are skipped; the running total is saved there
        every ``checkpoint_seconds``, at the end, and when the run is interrupted.
    checkpoint_seconds : float
        Minimum time between checkpoint writes (0: after every chunk).
    progress : callable, optional
        Called with the number of particles of each finished chunk (including resumed ones).
    stats : RunStats, optional
        Filled with the number of computed and resumed chunks.
    workers : sequence of str, optional
        Addresses of the workers allowed to run the tasks (default: any).
    combine : callable, optional
        ``combine(total, part, chunk) -> total`` adds one chunk's result into the running
        total (``total`` is None for the first); default :func:`add_sums`.

    Returns
    -------
    PartialSums
    """
    from dask.distributed import as_completed

    stats = stats if stats is not None else RunStats()
    started = time.perf_counter()
    total, done = None, set()
    if checkpoint is not None:
        saved = load_checkpoint(checkpoint, job=job)
        if saved is not None:
            total, done = saved
    by_id = {chunk.chunk_id: chunk for chunk in chunks}
    stats.resumed = len(done & by_id.keys())
    if progress is not None and done:
        progress(sum(len(by_id[i]) for i in done if i in by_id))
    todo = [chunk for chunk in chunks if chunk.chunk_id not in done]
    run = uuid.uuid4().hex[:8]  # fresh keys: a rerun never picks up an old, cancelled task
    futures = {
        client.submit(
            _call,
            function,
            chunk,
            settings,
            key=f"cryoglass-{job[:8]}-{run}-{chunk.chunk_id}",
            workers=workers,
        ): chunk
        for chunk in todo
    }
    last_save, dirty = time.perf_counter(), False
    try:
        for future, part in as_completed(futures, with_results=True):
            chunk = futures.pop(future)
            total = add_sums(total, part) if combine is None else combine(total, part, chunk)
            del part
            future.release()
            done.add(chunk.chunk_id)
            stats.computed += 1
            dirty = True
            if checkpoint is not None and time.perf_counter() - last_save >= checkpoint_seconds:
                save_checkpoint(checkpoint, total, done, job=job)
                last_save, dirty = time.perf_counter(), False
            if progress is not None:
                progress(len(chunk))
    finally:
        for future in futures:
            future.cancel()
        if checkpoint is not None and dirty and total is not None:
            save_checkpoint(checkpoint, total, done, job=job)
        stats.seconds = time.perf_counter() - started
    if total is None:
        raise ValueError("no chunks to run")
    return total


#: After a task, the worker's free heap goes back to the kernel only when its resident memory is
#: above this fraction of its Dask memory limit (Dask pauses a worker at 80 %).
TRIM_FRACTION = 0.5


def near_memory_limit(*, fraction: float = TRIM_FRACTION) -> bool:
    """Whether this Dask worker's resident memory exceeds ``fraction`` of its memory limit.

    False outside a worker and for a worker without a limit.
    """
    from distributed import get_worker

    try:
        limit = get_worker().memory_manager.memory_limit
    except ValueError:  # not running in a worker
        return False
    if not limit:
        return False
    import psutil

    return psutil.Process().memory_info().rss > fraction * limit


def _call(function: Callable, chunk: ParticleChunk, settings):
    """``function(chunk, settings)``; then the free heap is trimmed if memory is getting short.

    Between tasks a worker keeps its freed heap (tables and work buffers, ~250 MB for a
    reconstruct chunk at box 128) for the next task, which would otherwise page-fault it all in
    again (:mod:`cryoglass.allocator`).  But Dask judges a worker by its resident memory, pauses
    it at 80 % of its limit and never resumes a worker paused by memory it no longer uses (a
    640 MiB limit hung that way), so above :data:`TRIM_FRACTION` of the limit the heap goes back
    to the kernel (:func:`cryoglass.allocator.trim_heap`, a few ms).
    """
    try:
        return function(chunk, settings)
    finally:
        if near_memory_limit():
            trim_heap()


def _fold(previous: PartialSums | None, function: Callable, chunk: ParticleChunk, settings):
    """``function(chunk, settings)`` plus the lane's running total (a new dict; inputs kept)."""
    part = _call(function, chunk, settings)
    return part if previous is None else add_sums(part, previous)


def _lane_total(client, resumed: PartialSums | None, latest: Sequence) -> PartialSums | None:
    """The resumed total plus every lane's newest running total (fetched from the workers)."""
    total = None if resumed is None else add_sums(None, resumed)
    for part in client.gather([future for future in latest if future is not None]):
        total = add_sums(total, part)
    return total


def run_lanes(
    client,
    function: Callable,
    chunks: Sequence[ParticleChunk],
    *,
    settings,
    job: str,
    lanes: int | None = None,
    checkpoint: Path | None = None,
    checkpoint_seconds: float = 60.0,
    progress: Callable[[int], None] | None = None,
    stats: RunStats | None = None,
    workers: Sequence[str] | None = None,
) -> PartialSums:
    """Sum ``function(chunk, settings)`` over the chunks, adding on the workers.

    For large partial sums (a reconstruct chunk returns two 100 MB tables per half set at box
    128) sending every chunk's result to the client costs more than computing it on a small
    machine: serialising, copying and adding 200 MB per 2-second task kept the client busy on
    the cores the workers need.  Here the chunks go to ``lanes`` chains instead, and each task
    adds its chunk's sums to the running total of its lane's previous task (:func:`_fold`).
    Dask runs a task where its input lives, so each lane stays on one worker and only ``L``
    totals travel, at the end (and at each checkpoint).  The lanes pull their chunks: each
    starts with two, and a lane gets the next chunk in line when one of its tasks finishes, so a
    faster worker sums more chunks and the lanes end together (a fixed deal of chunks ``j, j +
    L, …`` to lane ``j`` made every lane wait for the slowest core).  The sum is the same as
    :func:`run_chunks`' up to float rounding.

    A worker that dies loses its lanes' running totals; the scheduler recomputes them from the
    task graph (the lane's chunks are read again), so the result is unchanged.

    Parameters
    ----------
    client, function, chunks, settings, job, checkpoint, checkpoint_seconds, progress, stats,
    workers
        As :func:`run_chunks` (a checkpoint fetches the lanes' newest totals from the workers).
    lanes : int, optional
        Number of chains (default: the worker threads allowed to run the tasks).

    Returns
    -------
    PartialSums
    """
    from dask.distributed import as_completed

    stats = stats if stats is not None else RunStats()
    started = time.perf_counter()
    resumed, done = None, set()
    if checkpoint is not None:
        saved = load_checkpoint(checkpoint, job=job)
        if saved is not None:
            resumed, done = saved
    by_id = {chunk.chunk_id: chunk for chunk in chunks}
    stats.resumed = len(done & by_id.keys())
    if progress is not None and done:
        progress(sum(len(by_id[i]) for i in done if i in by_id))
    todo = deque(chunk for chunk in chunks if chunk.chunk_id not in done)
    if lanes is None:
        threads = client.nthreads()
        lanes = sum(n for address, n in threads.items() if workers is None or address in workers)
    lanes = max(1, min(int(lanes), len(todo)))
    run = uuid.uuid4().hex[:8]  # fresh keys: a rerun never picks up an old, cancelled task
    pending = {}  # future → (lane, chunk)
    newest = [None] * lanes  # each lane's last submitted task

    def feed(lane: int):
        """Submit the next chunk to ``lane``, after (and adding to) the lane's last task."""
        chunk = todo.popleft()
        newest[lane] = client.submit(
            _fold,
            newest[lane],
            function,
            chunk,
            settings,
            key=f"cryoglass-{job[:8]}-{run}-lane{lane}-{chunk.chunk_id}",
            workers=workers,
        )
        pending[newest[lane]] = (lane, chunk)
        return newest[lane]

    for _ in range(_LANE_DEPTH):
        for lane in range(lanes):
            if todo:
                feed(lane)
    latest = [None] * lanes  # each lane's newest finished total (older ones are released)
    last_save, dirty = time.perf_counter(), False
    try:
        finished = as_completed(list(pending))
        for future in finished:
            lane, chunk = pending.pop(future)
            if future.status == "error":
                future.result()  # raises the task's exception
            if todo:  # the lane that finished first gets the next chunk
                finished.add(feed(lane))
            if latest[lane] is not None:
                latest[lane].release()
            latest[lane] = future
            done.add(chunk.chunk_id)
            stats.computed += 1
            dirty = True
            if checkpoint is not None and time.perf_counter() - last_save >= checkpoint_seconds:
                save_checkpoint(checkpoint, _lane_total(client, resumed, latest), done, job=job)
                last_save, dirty = time.perf_counter(), False
            if progress is not None:
                progress(len(chunk))
        total = _lane_total(client, resumed, latest)
    except BaseException:
        for future in pending:
            future.cancel()
        if checkpoint is not None and dirty:
            try:  # keep what the lanes have summed so far, if the cluster still answers
                save_checkpoint(checkpoint, _lane_total(client, resumed, latest), done, job=job)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise
    finally:
        stats.seconds = time.perf_counter() - started
    if checkpoint is not None and dirty:
        save_checkpoint(checkpoint, total, done, job=job)
    if total is None:
        raise ValueError("no chunks to run")
    return total


def _job_description(particles, chunk_size: int, settings, labels: np.ndarray) -> dict:
    """What identifies a reconstruct job: files (with sizes and times), chunking, settings."""
    files = [
        (str(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) if Path(p).exists() else str(p)
        for p in particles.image_files
    ]
    return {
        "kind": "reconstruct",
        "files": files,
        "n": len(particles),
        "chunk_size": chunk_size,
        "settings": repr(settings),
        "euler": fingerprint({"e": particles.euler_deg.numpy().tobytes().hex()}),
        "labels": fingerprint({"l": labels.tobytes().hex()}),
    }


def reconstruct_sums(
    client,
    particles,
    *,
    settings: ReconstructSettings,
    chunk_size: int,
    labels=None,
    work_dir: Path | None = None,
    checkpoint_seconds: float = 60.0,
    progress: Callable[[int], None] | None = None,
    stats: RunStats | None = None,
    workers: Sequence[str] | None = None,
) -> dict:
    """Back-project a particle set on a Dask cluster: one accumulator per group.

    Parameters
    ----------
    client : dask.distributed.Client
    particles : cryoglass.io.ParticleSet
        With poses (and CTF if ``settings.ctf``); image files on storage the workers see.
    settings : ReconstructSettings
        ``settings.groups`` must list every label.
    chunk_size : int
        Particles per task (the result does not depend on it beyond float rounding).
    labels : Tensor or ndarray (N,), optional
        Group of each particle (half sets 1/2); default all 1.
    work_dir : Path, optional
        Folder for the checkpoint (``partial_sums.npz``): rerunning the same job with the same
        folder skips the chunks already summed.
    checkpoint_seconds, progress, stats, workers
        See :func:`run_chunks`.

    Returns
    -------
    dict of int → cryoglass.reconstruct.Accumulator
        Equal (to float rounding) to accumulating every particle in one process.
    """
    chunks = make_chunks(particles, chunk_size=chunk_size, labels=labels)
    all_labels = np.concatenate([c.labels for c in chunks])
    missing = set(np.unique(all_labels).tolist()) - set(settings.groups)
    if missing:
        raise ValueError(f"labels {sorted(missing)} are not in settings.groups {settings.groups}")
    job = fingerprint(_job_description(particles, chunk_size, settings, all_labels))
    checkpoint = None
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        checkpoint = Path(work_dir) / CHECKPOINT_NAME
    total = run_lanes(
        client,
        reconstruct_chunk,
        chunks,
        settings=settings,
        job=job,
        checkpoint=checkpoint,
        checkpoint_seconds=checkpoint_seconds,
        progress=progress,
        stats=stats,
        workers=workers,
    )
    return {
        g: accumulator_from_sums(
            total,
            size=settings.box,
            pad=settings.pad,
            interpolation=settings.interpolation,
            prefix=f"{g}/",
        )
        for g in settings.groups
    }


def _stack_task(chunk: ParticleChunk, batch_size: int) -> PartialSums:
    return stack_sums_chunk(chunk, batch_size=batch_size)


def stack_sums(
    client,
    particles,
    *,
    chunk_size: int,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> PartialSums:
    """``Σ x``, ``Σ x²`` and the count of all images, read out of core by the workers."""
    chunks = make_chunks(particles, chunk_size=chunk_size)
    job = fingerprint({"kind": "stack", "files": [str(p) for p in particles.image_files]})
    return run_chunks(client, _stack_task, chunks, settings=batch_size, job=job, progress=progress)


def simulate_stack(
    client,
    out_path: Path,
    *,
    settings: SimulateSettings,
    box: int,
    chunk_size: int = 1024,
    examples: int = 8,
    progress: Callable[[int], None] | None = None,
):
    """Simulate ``settings.n`` particles on a Dask cluster into the MRC stack ``out_path``.

    The stack is an :class:`cryoglass.io.MRCStackWriter` (an existing ``out_path`` is
    replaced); each task makes whole seeding blocks (``chunk_size`` rounded up to a multiple
    of ``BLOCK_SIZE``), writes them into its rows of the writer's temporary file
    (:func:`cryoglass.io.write_stack_images`) and returns their parameters and statistics;
    the writer then sets the header statistics and renames the file to ``out_path``.  Same
    images as :func:`cryoglass.simulate.simulate_dataset` with the same settings, for any
    chunking.

    Returns
    -------
    parameters : ParticleParameters
        Of all particles, in order.
    examples : (ndarray, Tensor)
        First ``examples`` noisy and clean images.
    """
    from dask.distributed import as_completed

    from cryoglass.io import MRCStackWriter
    from cryoglass.simulate.dataset import BLOCK_SIZE, ParticleParameters

    n = settings.n
    blocks = math.ceil(n / BLOCK_SIZE)
    per_task = max(1, math.ceil(chunk_size / BLOCK_SIZE))
    with MRCStackWriter(
        out_path,
        n_images=n,
        image_shape=(box, box),
        pixel_size_angstrom=settings.pixel_size_angstrom,
        overwrite=True,
    ) as writer:
        futures, run = {}, uuid.uuid4().hex[:12]
        for first in range(0, blocks, per_task):
            stop = min(first + per_task, blocks)
            future = client.submit(
                simulate_chunk,
                first,
                stop,
                settings,
                out_path=str(writer.temporary_path),
                data_offset=writer.data_offset,
                byte_order=writer.byte_order,
                examples=examples if first == 0 else 0,
                key=f"cryoglass-simulate-{run}-{first}",
                pure=False,
            )
            futures[future] = first
        results = []
        for future, result in as_completed(futures, with_results=True):
            futures.pop(future)
            future.release()
            results.append(result)
            if progress is not None:
                progress(len(result["parameters"]))
        results.sort(key=lambda r: r["start"])
        for result in results:  # in stack order: the header is the same for any chunking
            writer.add_statistics(result["statistics"])
    parameters = ParticleParameters.concatenate([r["parameters"] for r in results])
    return parameters, results[0]["examples"]


def class2d_estep(
    client,
    chunks: Sequence[ParticleChunk],
    model,
    *,
    settings,
    ctf: bool,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
    stats: RunStats | None = None,
    workers: Sequence[str] | None = None,
):
    """The E-step of 2D classification on a Dask cluster: merged statistics and assignments.

    The model is scattered to every worker once (it is small: K class averages and a few
    spectra); each task reads its chunk's images and returns the chunk's
    :class:`~cryoglass.classify.em2d.EStepStats` and assignments, which are added / placed at
    the chunk's rows as they arrive.

    Parameters
    ----------
    client : dask.distributed.Client
    chunks : sequence of ParticleChunk
        From :func:`make_chunks` over the whole particle set (consecutive, covering it).
    model : cryoglass.classify.Class2DModel
        The E-step model (:func:`cryoglass.classify.em2d.estep_model`).
    settings : cryoglass.classify.Class2DSettings
    ctf : bool
    batch_size : int
        Images per E-step batch inside a task.
    progress, stats, workers
        See :func:`run_chunks`.

    Returns
    -------
    stats : EStepStats
        Of all particles, equal to one single-process pass up to float rounding.
    assignments : Assignments
        Of all particles, in order.
    """
    from cryoglass.distributed.reduce import add_estep_sums, estep_from_sums
    from cryoglass.distributed.tasks import Class2DTask, class2d_chunk

    n = sum(len(chunk) for chunk in chunks)
    task = Class2DTask.from_model(model, settings=settings, ctf=ctf, batch_size=batch_size)
    shared = client.scatter(task, broadcast=True, hash=False)
    job = fingerprint({"kind": "class2d", "n": n, "iteration": model.iteration})
    try:
        total = run_chunks(
            client,
            class2d_chunk,
            chunks,
            settings=shared,
            job=job,
            progress=progress,
            stats=stats,
            workers=workers,
            combine=lambda total, part, chunk: add_estep_sums(
                total, part, start=chunk.start, n_particles=n
            ),
        )
    finally:
        shared.release()
    return estep_from_sums(total)


def class2d_iteration(
    client,
    chunks: Sequence[ParticleChunk],
    model,
    *,
    settings,
    ctf: bool,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
    stats: RunStats | None = None,
    workers: Sequence[str] | None = None,
):
    """One EM iteration of 2D classification with the E-step on a Dask cluster.

    The same composition as :func:`cryoglass.classify.em_iteration` —
    ``estep_model`` (client) → E-step statistics (workers, :func:`class2d_estep`) → ``mstep``
    (client) — so the result equals the single-process iteration up to float rounding,
    whatever the chunking or the number of workers.

    Parameters
    ----------
    client, chunks, settings, ctf, batch_size, progress, stats, workers
        See :func:`class2d_estep`.
    model : cryoglass.classify.Class2DModel
        Current parameters (on the CPU).

    Returns
    -------
    (Class2DModel, Assignments, dict)
        As :func:`cryoglass.classify.em_iteration`.
    """
    from cryoglass.classify.em2d import check_inputs, estep_model, iteration_log, mstep

    n = sum(len(chunk) for chunk in chunks)
    check_inputs(n, model.classes.shape[-1], settings)
    current, reseeded = estep_model(model, settings)
    estats, assignments = class2d_estep(
        client,
        chunks,
        current,
        settings=settings,
        ctf=ctf,
        batch_size=batch_size,
        progress=progress,
        stats=stats,
        workers=workers,
    )
    if estats.count != n:
        raise ValueError(f"chunks covered {estats.count} images, expected {n}")
    new = mstep(current, estats, settings=settings)
    return new, assignments, iteration_log(new, estats, reseeded)


def class2d_initial_model(
    client,
    particles,
    *,
    settings,
    ctf: bool,
    batch_size: int,
    chunk_size: int,
    generator,
    progress: Callable[[int], None] | None = None,
    workers: Sequence[str] | None = None,
):
    """The seeded initial model of 2D classification with its pass over the images on a cluster.

    The client draws every particle's random start pose
    (:func:`cryoglass.classify.em2d.initial_poses`, the same draws as one process), the
    workers sum their chunks' images at those poses, and the client finishes the model
    (:func:`cryoglass.classify.em2d.initial_mstep`).

    Returns
    -------
    cryoglass.classify.Class2DModel
        Equal to :func:`cryoglass.classify.initial_model` up to float rounding.
    """
    from cryoglass.classify.em2d import check_inputs, initial_mstep, initial_poses
    from cryoglass.distributed.reduce import add_estep_sums, estep_from_sums
    from cryoglass.distributed.tasks import Class2DTask, class2d_initial_chunk

    n, size = len(particles), particles.image_size
    check_inputs(n, size, settings)
    poses = initial_poses(n, settings=settings, generator=generator)
    chunks = make_chunks(particles, chunk_size=chunk_size, labels=poses.numpy())
    task = Class2DTask(settings, {}, 0, bool(ctf), int(batch_size))
    job = fingerprint({"kind": "class2d-initial", "n": n})
    total = run_chunks(
        client,
        class2d_initial_chunk,
        chunks,
        settings=task,
        job=job,
        progress=progress,
        workers=workers,
        combine=lambda total, part, chunk: add_estep_sums(
            total, part, start=chunk.start, n_particles=n
        ),
    )
    stats, _ = estep_from_sums(total)
    if stats.count != n:
        raise ValueError(f"chunks covered {stats.count} images, expected {n}")
    return initial_mstep(stats, image_size=size, settings=settings)


def refine_estep(
    client,
    chunks: Sequence[ParticleChunk],
    task,
    *,
    n_particles: int,
    progress: Callable[[int], None] | None = None,
    workers: Sequence[str] | None = None,
):
    """One refine3d iteration's E-step and M-step sums on a Dask cluster.

    The task (references, noise model, previous poses: small) is scattered to every worker once;
    each chunk returns its halves' sums and poses, added / placed at its rows as they arrive.
    Sums of disjoint chunks add exactly, so the result is one single-process pass up to float
    rounding.

    Returns
    -------
    PartialSums
        ``"0/…"``, ``"1/…"`` accumulator sums, ``"noise"``, ``"counts"`` and ``"rows/…"`` of all
        particles in order.
    """
    from cryoglass.distributed.tasks import refine_chunk

    return _iteration_sums(
        client, refine_chunk, chunks, task, "refine3d", n_particles, progress, workers
    )


def _add_with_rows(n_particles: int):
    """``combine(total, part, chunk)``: sums added, ``rows/…`` placed at the chunk's rows."""

    def combine(total, part, chunk):
        start = int(part.pop("start"))
        rows = {k: part.pop(k) for k in [k for k in part if k.startswith("rows/")]}
        if total is None:
            total = {k: np.array(v, copy=True) for k, v in part.items()}
            total.update(
                {k: np.zeros((n_particles, *v.shape[1:]), dtype=v.dtype) for k, v in rows.items()}
            )
        else:
            for key, value in part.items():
                total[key] = total[key] + value
        for key, value in rows.items():
            total[key][start : start + len(value)] = value
        return total

    return combine


def _iteration_sums(client, function, chunks, task, kind, n_particles, progress, workers):
    """One iteration's chunks with the task scattered once; their sums and rows merged."""
    shared = client.scatter(task, broadcast=True, hash=False)
    try:
        return run_chunks(
            client,
            function,
            chunks,
            settings=shared,
            job=fingerprint({"kind": kind, "key": task.key, "n": n_particles}),
            progress=progress,
            workers=workers,
            combine=_add_with_rows(n_particles),
        )
    finally:
        shared.release()


def class3d_estep_sums(
    client,
    chunks: Sequence[ParticleChunk],
    task,
    *,
    n_particles: int,
    progress: Callable[[int], None] | None = None,
    workers: Sequence[str] | None = None,
):
    """One class3d iteration's E-step sums on a Dask cluster (as :func:`refine_estep`).

    The task (the state: K maps, noise model, priors; small) is scattered to every worker
    once; each chunk returns every class's sums and its particles' rows, added / placed at
    their rows as they arrive — one single-process pass up to float rounding.

    Returns
    -------
    PartialSums
        :func:`cryoglass.distributed.reduce.class3d_to_sums` of all particles (rows in order).
    """
    from cryoglass.distributed.tasks import class3d_chunk

    return _iteration_sums(
        client, class3d_chunk, chunks, task, "class3d", n_particles, progress, workers
    )
