"""Dask-distributed, out-of-core jobs: reconstruct, simulate and 2D classification on a cluster.

A job is cut into chunks of particles; each chunk is one Dask task that reads its images
lazily from shared storage (memory-mapped MRC) and returns partial sums, which are added — on
the workers, in one chain of tasks per worker thread, for the large sums of reconstruct; on the
client as they arrive otherwise (:mod:`~cryoglass.distributed.reduce`) — which gives the
single-process result whatever the chunking or the number of workers.

* :mod:`~cryoglass.distributed.cluster` — ``open_client(workers=N | scheduler=ADDRESS)``,
  ``peak_memory``.
* :mod:`~cryoglass.distributed.tasks` — chunk tasks (``reconstruct_chunk``, ``simulate_chunk``,
  ``stack_sums_chunk``, ``class2d_chunk``, ``refine_chunk``, ``class3d_chunk``),
  ``make_chunks``; ``tune_allocator`` (from :mod:`cryoglass._allocator`: undoes the slow
  glibc setting Dask's nanny gives its workers).
* :mod:`~cryoglass.distributed.preload` — imported by every worker as it starts (Dask
  ``preload``): the task code and the allocator setting, before the first task.
* :mod:`~cryoglass.distributed.reduce` — ``add_sums``, checkpoints.
* :mod:`~cryoglass.distributed.jobs` — ``run_chunks`` (submit, reduce as completed,
  checkpoint), ``run_lanes`` (the same, summed on the workers in chains that pull their
  chunks) and the jobs
  ``reconstruct_sums``, ``simulate_stack``, ``stack_sums``, ``class2d_iteration``,
  ``refine_estep``, ``class3d_estep_sums`` (E-step on the workers, M-step on the client).

This is an orchestration layer (like ``cli/``): it takes file paths because workers must open
the files themselves; the science stays in :mod:`cryoglass.reconstruct` and friends.
"""

from cryoglass.distributed.cluster import ClusterInfo, open_client, peak_memory, peak_rss_bytes
from cryoglass.distributed.jobs import (
    RunStats,
    class2d_estep,
    class2d_initial_model,
    class2d_iteration,
    reconstruct_sums,
    run_chunks,
    run_lanes,
    simulate_stack,
    stack_sums,
)
from cryoglass.distributed.reduce import (
    PartialSums,
    accumulator_from_sums,
    accumulator_to_sums,
    add_estep_sums,
    add_sums,
    estep_from_sums,
    estep_to_sums,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from cryoglass.distributed.tasks import (
    Class2DTask,
    ParticleChunk,
    ReconstructSettings,
    SimulateSettings,
    class2d_chunk,
    class2d_initial_chunk,
    make_chunks,
    reconstruct_chunk,
    simulate_blocks,
    simulate_chunk,
    stack_sums_chunk,
    tune_allocator,
)

__all__ = [
    "Class2DTask",
    "ClusterInfo",
    "ParticleChunk",
    "PartialSums",
    "ReconstructSettings",
    "RunStats",
    "SimulateSettings",
    "accumulator_from_sums",
    "accumulator_to_sums",
    "add_estep_sums",
    "add_sums",
    "class2d_chunk",
    "class2d_estep",
    "class2d_initial_chunk",
    "class2d_initial_model",
    "class2d_iteration",
    "estep_from_sums",
    "estep_to_sums",
    "fingerprint",
    "load_checkpoint",
    "make_chunks",
    "open_client",
    "peak_memory",
    "peak_rss_bytes",
    "reconstruct_chunk",
    "reconstruct_sums",
    "run_chunks",
    "run_lanes",
    "save_checkpoint",
    "simulate_blocks",
    "simulate_chunk",
    "simulate_stack",
    "stack_sums",
    "stack_sums_chunk",
    "tune_allocator",
]
