"""Worker processes live and die with their server; a restarted server finds what it left.

When ``cryoglass serve`` is killed (``kill -9``, out of memory, a closed terminal), its worker
processes must not outlive it: a leftover worker would go on writing a job folder that the
restarted server has marked failed, and could take queued jobs that the new server cannot
watch or cancel.  Three layers keep that from happening:

1. :func:`die_with_parent`, called first thing in a worker: on Linux the kernel sends the
   worker SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, through ctypes); on every
   platform a watchdog thread (:func:`parent_gone`) waits on the parent's multiprocessing
   sentinel (a pipe that closes when the parent dies) and ends the process.
2. Every worker and every server records who it is — process id and the process's start time
   (:func:`process_identity`, which a reused pid never shares) — in the job database, and a
   job is claimed with the worker's id, only while the worker's server is the current one.
3. A starting server ends, with :func:`kill_if_ours`, only leftovers it can prove are its own
   (same pid, same start time, a multiprocessing worker), before it marks their jobs failed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent", "kill_if_ours", "parent_gone", "process_alive", "process_identity"]

#: Environment variable that turns the parent-death signal off (tests of the watchdog).
NO_PDEATHSIG = "CRYOGLASS_SERVE_NO_PDEATHSIG"
#: Linux's ``PR_SET_PDEATHSIG`` (``<linux/prctl.h>``).
_PR_SET_PDEATHSIG = 1


def process_identity(pid: int) -> float | None:
    """A process's start time [s since the epoch], None when there is no such process.

    With the pid it names one process for good: a pid reused later has a later start time.
    """
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def process_alive(pid: int, started: float | None) -> bool:
    """Whether process ``pid`` started at ``started`` still runs (a zombie does not)."""
    import psutil

    if started is None:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - started) < 0.01
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return False


def kill_if_ours(pid: int, started: float | None, *, wait_s: float = 5.0) -> bool:
    """SIGKILL process ``pid`` if it is the worker recorded (same start time, a spawned
    multiprocessing child); wait until it is gone.  True if it was killed.

    Never touches a process that cannot be proven to be that worker: another process that
    reuses the pid has another start time, and anything else is not a multiprocessing child.
    """
    import psutil

    if started is None or pid == os.getpid() or not process_alive(pid, started):
        return False
    try:
        process = psutil.Process(pid)
        if "multiprocessing" not in " ".join(process.cmdline()):
            return False
        process.kill()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    deadline = time.monotonic() + wait_s
    while process_alive(pid, started) and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def parent_gone(parent_pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for this process's parent to die; True if it did.

    Portable: the multiprocessing parent's sentinel is a pipe end that becomes readable when
    the parent exits; besides, a parent pid other than ``parent_pid`` means it was reparented.
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        time.sleep(timeout_s)
    elif multiprocessing.connection.wait([parent.sentinel], timeout=timeout_s):
        return True
    return os.getppid() != parent_pid


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where unavailable.

    ``CRYOGLASS_SERVE_NO_PDEATHSIG=1`` leaves it off, so that the portable watchdog alone
    can be tested on Linux.
    """
    if not sys.platform.startswith("linux") or os.environ.get(NO_PDEATHSIG) == "1":
        return False
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    return False


def die_with_parent(parent_pid: int, *, poll_s: float = 0.5) -> None:
    """Make this (worker) process end when ``parent_pid`` does: parent-death signal + watchdog.

    Parameters
    ----------
    parent_pid : int
        The server's pid as the server saw it when it started the worker.
    poll_s : float
        How long the watchdog waits on the parent's sentinel per look [s].
    """
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(4)

    def watch() -> None:
        while not parent_gone(parent_pid, poll_s):
            pass
        os._exit(4)

    threading.Thread(target=watch, daemon=True, name="cryoglass-parent-watch").start()
