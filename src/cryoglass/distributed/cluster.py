"""Connecting to Dask: a LocalCluster of worker processes on this machine, or an existing cluster.

cryoglass does not schedule work itself: it cuts a job into chunks of particles, submits one
task per chunk to a ``dask.distributed`` scheduler and reduces the returned partial sums.  The
scheduler can be

* a :class:`~dask.distributed.LocalCluster` started here (``workers=N``): ``N`` worker
  *processes* with one thread each (PyTorch already uses several threads per process; one task
  per process avoids oversubscription), on the loopback interface;
* an existing cluster (``scheduler="tcp://host:8786"``): dask-jobqueue on SLURM/PBS,
  dask-kubernetes, or ``dask scheduler`` / ``dask worker`` started by hand (docs/scaling.md).

Workers read particle images from shared storage themselves; only metadata (a few numbers per
particle) and the partial sums travel over the network.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["ClusterInfo", "open_client", "peak_memory", "peak_rss_bytes"]


@dataclass(frozen=True)
class ClusterInfo:
    """What :func:`open_client` connected to.

    Attributes
    ----------
    dashboard : str or None
        URL of the Dask dashboard (progress, memory, task stream), if the scheduler serves one.
    workers : int
        Number of workers when the client connected.
    local : bool
        ``True`` for a LocalCluster started by cryoglass.
    """

    dashboard: str | None
    workers: int
    local: bool


#: Dask settings of the LocalClusters cryoglass starts: the event-loop watchdog ticks every
#: second instead of every 20 ms, the system monitors (CPU, network for the dashboard) poll
#: every 2 s instead of 0.5 s, and the workers' statistical profiler (which wakes every 10 ms to
#: sample the task's Python stack for the dashboard's "Profile" page) is off; the memory
#: monitor that pauses and restarts workers keeps its 100 ms.  On a laptop the workers get every
#: core, so the client, scheduler and nannies share cores with them: idle, a 2-worker cluster
#: used 1.85 s of CPU per 20 s with Dask's defaults, 1.25–1.34 s with the first two settings
#: and 0.49 s with all three (each worker 0.52 → 0.13 s; /proc, on a 2-core machine).
#:
#: The workers also start with ``MALLOC_ARENA_MAX=1``: Dask runs tasks in a thread, and glibc
#: gives a thread its own arena, whose 64 MiB sub-heaps are unmapped as soon as they are free,
#: whatever the trim threshold of :func:`cryoglass.distributed.tune_allocator`.  A reconstruct
#: batch then page-faulted its ~150 MB of work buffers in again every time (15,000–21,000 faults
#: and 0.22–0.25 s per 256 × 128² batch in a thread; 0 faults and 0.18 s with one arena).  With
#: one thread per worker there is no lock contention to lose.  A cluster reached with
#: ``scheduler=`` keeps its own configuration (docs/scaling.md says what to set there).
LOCAL_CLUSTER_CONFIG = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX": 1,
}


#: Module every local worker imports as it starts (torch and the task code; see its docstring).
PRELOAD = "cryoglass.distributed.preload"


@contextlib.contextmanager
def open_client(
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    memory_limit: str | int | None = None,
    threads_per_worker: int = 1,
    dashboard: bool = True,
) -> Iterator[tuple[object, ClusterInfo]]:
    """A ``dask.distributed.Client`` for ``workers`` local processes or an existing ``scheduler``.

    Parameters
    ----------
    workers : int, optional
        Start a LocalCluster of this many worker processes (each with a nanny that restarts it
        when it dies, :data:`LOCAL_CLUSTER_CONFIG`, and :data:`PRELOAD` imported as it
        starts).  Give this or ``scheduler``.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) or a scheduler file path
        (``*.json``, as written by ``dask scheduler --scheduler-file``).
    memory_limit : str or int, optional
        Per-worker memory limit of the LocalCluster (``"2GB"``; default: Dask's share of RAM).
        Dask pauses a worker at 80 % and its nanny restarts it at 95 %.
    threads_per_worker : int
        Threads per local worker (1: one chunk at a time per process).
    dashboard : bool
        Serve the dashboard of a LocalCluster on a free port.

    Yields
    ------
    (Client, ClusterInfo)
        The client is closed (and a LocalCluster shut down) on exit.
    """
    import dask
    from dask.distributed import Client, LocalCluster

    if (workers is None) == (scheduler is None):
        raise ValueError("give exactly one of workers (a local cluster) or scheduler (an address)")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if scheduler is not None:
        if scheduler.endswith(".json"):
            client = Client(scheduler_file=scheduler)
        else:
            client = Client(scheduler)
        try:
            n = len(client.scheduler_info(n_workers=-1)["workers"])
            yield client, ClusterInfo(client.dashboard_link, n, False)
        finally:
            client.close()
        return
    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read by the processes as they start
        cluster = LocalCluster(
            n_workers=workers,
            processes=True,
            threads_per_worker=threads_per_worker,
            host="127.0.0.1",
            dashboard_address=":0" if dashboard else None,
            memory_limit=memory_limit if memory_limit is not None else "auto",
            preload=[PRELOAD],
        )
        client = Client(cluster)
    try:
        yield client, ClusterInfo(client.dashboard_link if dashboard else None, workers, True)
    finally:
        client.close()
        cluster.close()


def peak_rss_bytes() -> int:
    """Peak resident set size of the calling process [bytes].

    On Linux ``VmHWM`` from ``/proc/self/status`` (the high-water mark of this process's own
    address space); elsewhere ``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux, bytes on
    macOS).  ``ru_maxrss`` alone is misleading for Dask workers: Linux carries the parent's
    peak over ``fork`` + ``exec``, so a worker started by a big client would report the
    client's peak.  Memory-mapped image pages that were touched count while the file is
    mapped, which is why chunk tasks close their stacks.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _worker_peak() -> tuple[int, int]:
    return os.getpid(), peak_rss_bytes()


def peak_memory(client) -> dict:
    """Peak RSS of this process and of every live worker process [bytes].

    Returns
    -------
    dict
        ``{"client_bytes", "workers_bytes": {address: bytes}, "max_worker_bytes"}``.  Each number
        is that process's lifetime ``ru_maxrss`` (a worker restarted after a crash starts
        again from zero; a dead worker is not counted).
    """
    workers = {address: peak for address, (_, peak) in client.run(_worker_peak).items()}
    return {
        "client_bytes": peak_rss_bytes(),
        "workers_bytes": workers,
        "max_worker_bytes": max(workers.values(), default=0),
    }
