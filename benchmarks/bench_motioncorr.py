"""Benchmark: `cryoglass motioncorr` vs `relion_run_motioncorr --use_own` on simulated movies.

Movies from ``cryoglass simulate-movies`` (TRPV1, PDB 3J5P, as its Coulomb potential; vitreous
ice, drift and a smooth local deformation, dose per frame, radiation damage, a gain reference)
are corrected by both programs in the same run, whole process (read the movies, align, write
the dose-weighted sums and the per-movie STAR files), with the same patches, B-factor, gain
and dose.  Each program's trajectories (RELION's per-movie STAR: global shifts plus its
third-order polynomial; ours the same) are scored against the truth at the centres of a 6 × 6
grid of cells: RMS over frames and points of the error of the total shift [pixels], and of the
global shift.  The programs alternate ``--repeats`` times; the fastest run of each is reported.

Goal (issue 18): trajectory error ≤ RELION's, in less time.

Threads: RELION's ``--j`` and torch's intra-op threads are both ``--threads`` (OMP_NUM_THREADS).

Run: python benchmarks/bench_motioncorr.py [--movies 3] [--size 1024] [--frames 30]
     [--dose 1.33] [--patches 5] [--threads 1] [--repeats 2] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _simulate(folder: Path, args) -> Path:
    out = folder / "sim"
    if (out / "movies.star").is_file():
        return out
    model = Path(__file__).resolve().parents[1] / "src" / "cryoglass" / "data" / "trpv1_3j5p.cif.gz"
    command = [
        sys.executable, "-m", "cryoglass", "simulate-movies", "--model", str(model),
        "--apix", str(args.apix), "--n-micrographs", str(args.movies), "--size", str(args.size),
        "--frames", str(args.frames), "--dose-per-frame", str(args.dose), "--drift-angstrom",
        str(args.drift), "--local-motion-angstrom", str(args.local), "--crowding", "0.2",
        "--gain-spread", "0.05", "--seed", str(args.seed), "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return out


def _run(command: list[str], *, cwd: Path, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def _relion(sim: Path, args) -> float:
    out = sim / "MCR"
    shutil.rmtree(out, ignore_errors=True)
    command = [
        "relion_run_motioncorr", "--i", "movies.star", "--o", "MCR/", "--use_own", "--j",
        str(args.threads), "--gainref", "gain.mrc", "--patch_x", str(args.patches), "--patch_y",
        str(args.patches), "--bfactor", "150", "--dose_weighting", "--dose_per_frame",
        str(args.dose), "--group_frames", str(args.group),
    ]  # fmt: skip
    return _run(command, cwd=sim, threads=args.threads)


def _ours(sim: Path, args) -> float:
    out = sim / "MC"
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable, "-m", "cryoglass", "motioncorr", "movies.star", "--out", "MC",
        "--patches", f"{args.patches}x{args.patches}", "--dose-per-frame", str(args.dose),
        "--group-frames", str(args.group), "--no-plots",
    ]  # fmt: skip
    return _run(command, cwd=sim, threads=args.threads)


def _errors(sim: Path, folder: str) -> dict:
    """RMS error [px] of the total and of the global shift against the truth, per movie."""
    from cryoglass.io.micrographs import read_micrograph_table, read_motion_star, read_motion_truth
    from cryoglass.preprocess.motion import MotionEstimate

    table = read_micrograph_table(sim / "movies.star")
    truth = read_motion_truth(sim / "truth" / "motion.star")
    total, glob = [], []
    for stem in table.stems:
        track = read_motion_star(sim / folder / "Movies" / f"{stem}.star")
        w, h, _ = track.shape_px
        estimate = MotionEstimate(
            track.global_shifts_px, (h, w), track.polynomial_x, track.polynomial_y
        )
        true = truth[stem]
        error = (estimate.shifts_at(true["points"]) - true["local"]).norm(dim=-1)
        total.append(float(error.pow(2).mean().sqrt()))
        globe = (track.global_shifts_px - true["global"]).norm(dim=-1)
        glob.append(float(globe.pow(2).mean().sqrt()))
    return {
        "total_rms_px": round(sum(total) / len(total), 3),
        "global_rms_px": round(sum(glob) / len(glob), 3),
        "per_movie_total_rms_px": [round(e, 3) for e in total],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--dose", type=float, default=1.33)
    parser.add_argument("--apix", type=float, default=1.0)
    parser.add_argument("--drift", type=float, default=20.0)
    parser.add_argument("--local", type=float, default=3.0)
    parser.add_argument("--patches", type=int, default=5)
    parser.add_argument("--group", type=int, default=3, help="frames per patch group (both)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="reuse (or keep) the simulated movies here")
    args = parser.parse_args()
    folder = args.data or Path(tempfile.mkdtemp(prefix="bench_motioncorr_"))
    folder.mkdir(parents=True, exist_ok=True)
    sim = _simulate(folder, args)
    times = {"relion": [], "cryoglass": []}
    for _ in range(args.repeats):
        times["relion"].append(_relion(sim, args))
        times["cryoglass"].append(_ours(sim, args))
    report = {
        "movies": args.movies,
        "size_px": args.size,
        "frames": args.frames,
        "dose_per_frame": args.dose,
        "patches": args.patches,
        "group_frames": args.group,
        "threads": args.threads,
        "relion_seconds": round(min(times["relion"]), 2),
        "cryoglass_seconds": round(min(times["cryoglass"]), 2),
        "all_seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "relion": _errors(sim, "MCR"),
        "cryoglass": _errors(sim, "MC"),
        "load_average": os.getloadavg(),
    }
    report["time_ratio"] = round(report["cryoglass_seconds"] / report["relion_seconds"], 3)
    print(json.dumps(report, indent=2))
    if args.data is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
