"""Benchmark: slowdown under load, `cryoglass project` vs `relion_project` (issue 21).

The same job (COUNT projections of a 128³ map with CTF, bench_project_cli's inputs) runs
quiet and beside a fixed background load that this script starts and stops itself: BUSY
processes spinning in a Python loop.  Each program's slowdown is its median time beside the
load over its median time without it; the programs run interleaved (cryoglass, cryoglass with
libgomp's default spinning, relion_project, again …) so a change of the machine's own load
(a shared machine) hits all of them alike.  Besides wall time the CPU time (user + sys) of
each run is printed: spin-waiting OpenMP threads show up as CPU time that does no work.

Variants of cryoglass:
  * ``cryoglass``: as shipped (``cryoglass._allocator.tune_threads``: OMP_WAIT_POLICY=PASSIVE
    unless the user set a wait policy);
  * ``cryoglass-spin``: GOMP_SPINCOUNT=300000, libgomp's default (what cryoglass did before:
    a thread that finds no work spins about a millisecond before it sleeps);
  * ``cryoglass-1thread`` (``--one-thread``): OMP_NUM_THREADS=1, one intra-op thread.

Run: python benchmarks/bench_load.py [--count 1500] [--repeats 3] [--busy 2] [--one-thread]
(about 4 minutes on a loaded 2-core machine with the defaults)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_project_cli import PIXEL, _write_inputs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _run(command: list[str], folder: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + sys)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=folder, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1500, help="projections per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="background busy-loop processes")
    parser.add_argument(
        "--one-thread", action="store_true", help="also cryoglass on one thread (OMP_NUM_THREADS=1)"
    )
    args = parser.parse_args()
    relion = shutil.which("relion_project")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(name, None)
    programs = {
        "cryoglass": ([sys.executable, "-m", "cryoglass"], {}),
        "cryoglass-spin": ([sys.executable, "-m", "cryoglass"], {"GOMP_SPINCOUNT": "300000"}),
    }
    if args.one_thread:
        programs["cryoglass-1thread"] = (
            [sys.executable, "-m", "cryoglass"],
            {"OMP_NUM_THREADS": "1"},
        )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs "
        f"(affinity {len(os.sched_getaffinity(0))}), python {platform.python_version()}"
    )
    print(f"job: {args.count} projections of a 128³ map with CTF; background: {args.busy} busy")
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_inputs(folder, args.count)
        tail = ["project", "map.mrc", "--star", "in.star", "--ctf", "--out", "o.mrcs"]
        commands = {
            name: ([*head, *tail, "--overwrite"], {**env, **extra})
            for name, (head, extra) in programs.items()
        }
        if relion is not None:
            rel = [relion, "--i", "map.mrc", "--ang", "in.star", "--ctf", "--o", "rel"]
            commands["relion_project"] = ([*rel, "--angpix", str(PIXEL)], env)
        for condition in ("quiet", "busy"):
            load = f"loadavg before {_loadavg()}"
            procs = _busy(args.busy) if condition == "busy" else []
            try:
                time.sleep(1.0 if procs else 0.0)
                for _ in range(args.repeats):
                    for name, (command, run_env) in commands.items():
                        times.setdefault((name, condition), []).append(
                            _run(command, folder, run_env)
                        )
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            print(f"{condition}: {load}, after {_loadavg()}")
    print(f"{'program':16s} {'quiet s':>8s} {'busy s':>8s} {'slowdown':>9s} {'CPU quiet':>10s} "
          f"{'CPU busy':>9s}")  # fmt: skip
    for name in commands:
        q = times[(name, "quiet")]
        b = times[(name, "busy")]
        wq, wb = statistics.median(w for w, _ in q), statistics.median(w for w, _ in b)
        cq, cb = statistics.median(c for _, c in q), statistics.median(c for _, c in b)
        print(f"{name:16s} {wq:8.2f} {wb:8.2f} {wb / wq:8.2f}× {cq:9.2f}s {cb:8.2f}s")
    if relion is None:
        print("relion_project: not installed, no ratio to RELION")


if __name__ == "__main__":
    main()
