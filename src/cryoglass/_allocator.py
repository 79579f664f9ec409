"""Process memory: let glibc reuse freed heap for the next batch of tensors.

Batched code frees and re-allocates the same large work tensors for every batch.  With glibc's
default settings the freed memory at the top of the heap goes back to the kernel as soon as
more than the *trim threshold* (at most 64 MiB by default) is free, and the next batch takes it
back page by page, each page zero-filled by the kernel on first touch.  One reconstruct batch
(256 × 128² images, CTF, one thread) allocates about 150 MB of temporaries: with the default
settings it page-faulted about 30,000 times per batch and took 0.26–0.29 s; with the heap kept
(:func:`tune_allocator`) it faulted 0 times and took 0.18–0.20 s, at the same peak resident
memory (825 MB against 833 MB).  Every ``cryoglass`` command calls :func:`tune_allocator` as
it starts, and so does every Dask worker (``cryoglass.distributed.preload``); library users
can call it themselves (public as ``cryoglass.distributed.tune_allocator``; this module is the
private runtime side of cryoglass).  Nothing changes off Linux/glibc.

:func:`trim_heap` hands the kept memory back (glibc ``malloc_trim``): Dask tasks call it when
they end, because a worker is judged by its resident memory between tasks.

:func:`tune_threads` is the thread side: idle OpenMP threads sleep instead of spinning
(``OMP_WAIT_POLICY=PASSIVE``), set by the entry point before torch is imported.  2000
projections beside two busy processes on a loaded 2-core machine: 36.9 s → 30.0 s, CPU time
8.8 s → 6.2 s (``benchmarks/bench_load.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from pathlib import Path

__all__ = [
    "single_thread",
    "NotEnoughMemoryError",
    "available_memory_bytes",
    "check_memory",
    "trim_heap",
    "tune_allocator",
    "tune_threads",
]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


@functools.cache
def _libc():
    """glibc's handle, or None (not Linux, or a C library without ``mallopt``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@functools.cache
def tune_allocator(
    *, mmap_threshold_bytes: int = 32 * 2**20, trim_threshold_bytes: int = 2**30
) -> bool:
    """Keep freed heap memory for reuse (once per process; Linux/glibc only).

    Parameters
    ----------
    mmap_threshold_bytes : int
        Blocks of this size and larger get their own ``mmap`` (fresh, zero-filled pages every
        time); smaller ones come from the heap and are reused after ``free``.  32 MiB is glibc's
        own ceiling for its dynamic threshold on 64-bit systems, i.e. what a process has
        anyway unless ``MALLOC_*`` variables were set (Dask's nanny sets
        ``MALLOC_TRIM_THRESHOLD_=65536``, which freezes this threshold at 128 KiB: a
        reconstruct chunk then ran 2.4× slower).
    trim_threshold_bytes : int
        Free memory at the top of the heap is handed back to the kernel only beyond this much
        (glibc's default is dynamic, at most 64 MiB, which one batch's temporaries exceed).
        The peak resident memory does not grow: the kept memory is what the next batch
        allocates again.  :func:`trim_heap` releases it on demand.

    Returns
    -------
    bool
        Whether the thresholds were set (False off glibc, where nothing is changed).
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold_bytes))
        and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold_bytes))
    )


def tune_threads(environ: dict | None = None) -> bool:
    """Let idle OpenMP threads sleep at once instead of spinning (before torch is imported).

    PyTorch's CPU kernels (and MKL's FFTs) run on GNU OpenMP threads.  By default a thread
    that reaches the end of a parallel region with nothing to do spins for about 300,000
    iterations (≈ 1 ms) before it sleeps, waiting for the next region.  On cores of its own
    that is cheap; on cores shared with other processes the spinning threads take the time
    slices that the thread still computing (or the other programs) needed, and a batched
    command, made of thousands of short parallel regions, slows down far more than the load
    explains.  ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep at once; the thread count
    stays (fewer threads would also lose the fair share of a busy machine that two threads
    get).  Measured in ``benchmarks/bench_load.py`` (benchmarks/RESULTS.md, issue 21).

    Only sets the variable when neither ``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT`` is set,
    so a user's choice wins, and only has an effect when called before OpenMP starts (before
    ``import torch``): the ``cryoglass`` entry point calls it first, and the setting reaches
    every process it starts (Dask workers, serve's workers) through the environment.

    Parameters
    ----------
    environ : dict, optional
        The environment to change (default ``os.environ``).

    Returns
    -------
    bool
        Whether the wait policy was set here.

    Examples
    --------
    >>> env = {}
    >>> tune_threads(env), env
    (True, {'OMP_WAIT_POLICY': 'PASSIVE'})
    >>> tune_threads({"GOMP_SPINCOUNT": "300000"})
    False
    """
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def trim_heap() -> bool:
    """Hand the heap's free memory back to the kernel (glibc ``malloc_trim(0)``; else no-op).

    Called after every Dask task (:func:`cryoglass.distributed.run_chunks` and ``run_lanes``):
    Dask judges a worker by its resident memory between tasks and pauses it at 80 % of its
    limit, and a worker paused by heap it no longer uses never resumes (seen with a 640 MiB
    limit).  Trimming once per task costs a few milliseconds.

    Returns
    -------
    bool
        Whether glibc released memory.
    """
    libc = _libc()
    return False if libc is None else bool(libc.malloc_trim(0))


class NotEnoughMemoryError(MemoryError):
    """A computation was refused before it started: it would need more memory than is free."""


def available_memory_bytes() -> int | None:
    """Memory the process can still take [bytes]: ``MemAvailable`` capped by a cgroup limit.

    ``MemAvailable`` from /proc/meminfo (Linux), else free pages × page size, else None; a
    cgroup v2/v1 memory limit (containers, batch schedulers) lowers it to the limit minus what
    the cgroup uses already.
    """
    have = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                have = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if have is None:
        try:
            have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            have = min(have, max(0, int(limit) - usage))
        break
    return have


def check_memory(need_bytes: float, *, what: str, available_bytes: int | None = None) -> int:
    """Refuse a computation that needs more memory than is available, before it allocates.

    Parameters
    ----------
    need_bytes : float
        Estimated peak memory of the computation [bytes] (from every size that matters:
        box, batch, symmetry order, classes ...).  May be astronomically large (a float).
    what : str
        What is refused, e.g. ``"--symmetry C100000000"``; starts the message.
    available_bytes : int, optional
        Memory that may be used (default: :func:`available_memory_bytes`; a GPU's free memory
        for device work).  Unknown (None) means no check.

    Returns
    -------
    int
        ``need_bytes`` rounded up.

    Raises
    ------
    NotEnoughMemoryError
        ``"{what}: needs N GiB, M GiB available"``.

    Examples
    --------
    >>> check_memory(2**30, what="a test", available_bytes=2**31)
    1073741824
    >>> check_memory(2**32, what="--box 100000", available_bytes=2**31)
    Traceback (most recent call last):
    ...
    cryoglass._allocator.NotEnoughMemoryError: --box 100000: needs 4 GiB, 2 GiB available
    """
    have = available_memory_bytes() if available_bytes is None else available_bytes
    if have is not None and need_bytes > have:
        raise NotEnoughMemoryError(
            f"{what}: needs {_gib(need_bytes)} GiB, {_gib(have)} GiB available"
        )
    return int(min(need_bytes, 2**62))


def _gib(n_bytes: float) -> str:
    """Bytes as GiB with 3 significant digits (``'0.0312'``, ``'4'``, ``'3.73e+06'``)."""
    return f"{n_bytes / 2**30:.3g}"


@contextlib.contextmanager
def single_thread():
    """Run the block with PyTorch on one intra-op thread (restored afterwards).

    For work made of many operations on small tensors (10⁴–10⁵ elements), where splitting each
    over threads costs more than it saves and a second thread spins on a shared machine.
    Measured on a busy 2-core VM: one 2k-micrograph CTF search took 1.3 s on one thread and 16 s
    on two; the demo's refinement section 26 s of CPU on one thread and 154 s on two.  Work in
    parallel runs as separate processes instead (``--workers``).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
