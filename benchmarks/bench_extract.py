"""Benchmark: `cryoglass extract` vs `relion_preprocess --extract --norm --invert_contrast`.

Micrographs from ``cryoglass simulate-movies --no-movies`` (TRPV1 in ice, with their CTFs and
true coordinates as per-micrograph ``_pick.star`` files) are extracted by both programs in the
same run, whole process, with the same box, background radius and (optionally) binning.  The
images are compared one by one (normalised correlation; the issue asks ≥ 0.999) and the
programs alternate ``--repeats`` times; the fastest run of each is reported.

Run: python benchmarks/bench_extract.py [--micrographs 6] [--size 1024] [--box 192] [--bin 2]
     [--threads 1] [--repeats 2] [--data DIR]
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
    sim = folder / "sim"
    if (sim / "micrographs.star").is_file():
        return sim
    model = Path(__file__).resolve().parents[1] / "src" / "cryoglass" / "data" / "trpv1_3j5p.cif.gz"
    subprocess.run(
        [sys.executable, "-m", "cryoglass", "simulate-movies", "--model", str(model), "--apix",
         "1.0", "--n-micrographs", str(args.micrographs), "--size", str(args.size),
         "--no-movies", "--crowding", "0.3", "--out", str(sim)],
        check=True, capture_output=True,
    )  # fmt: skip
    from cryoglass.io.micrographs import read_coordinates, write_coordinates_star

    stems = [f"mic_{i + 1:04d}" for i in range(args.micrographs)]
    found = read_coordinates(sim / "truth" / "coordinates.star", stems)
    (sim / "coords" / "Micrographs").mkdir(parents=True, exist_ok=True)
    for stem, entry in found.items():
        write_coordinates_star(
            sim / "coords" / "Micrographs" / f"{stem}_pick.star", entry["coordinates_px"]
        )
    return sim


def _run(command: list[str], *, cwd: Path, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micrographs", type=int, default=6)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--box", type=int, default=192)
    parser.add_argument("--bin", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    folder = args.data or Path(tempfile.mkdtemp(prefix="bench_extract_"))
    folder.mkdir(parents=True, exist_ok=True)
    sim = _simulate(folder, args)
    out_box = args.box // args.bin
    radius = round(0.375 * out_box)
    relion = [
        "relion_preprocess", "--i", "truth/micrographs_ctf.star", "--coord_dir", "coords/",
        "--coord_suffix", "_pick.star", "--part_star", "R/particles.star", "--part_dir", "R/",
        "--extract", "--extract_size", str(args.box), "--norm", "--bg_radius", str(radius),
        "--invert_contrast",
    ] + (["--scale", str(out_box)] if args.bin > 1 else [])  # fmt: skip
    ours = [
        sys.executable, "-m", "cryoglass", "extract", "truth/micrographs_ctf.star", "--coords",
        "coords", "--box", str(args.box), "--bin", str(args.bin), "--bg-radius", str(radius),
        "--invert-contrast", "--out", "C", "--overwrite",
    ]  # fmt: skip
    times = {"relion": [], "cryoglass": []}
    for _ in range(args.repeats):
        shutil.rmtree(sim / "R", ignore_errors=True)
        times["relion"].append(_run(relion, cwd=sim, threads=args.threads))
        times["cryoglass"].append(_run(ours, cwd=sim, threads=args.threads))
    import torch

    from cryoglass.io import read_images, read_particles

    theirs = read_particles(sim / "R" / "particles.star", image_root=sim)
    mine = read_particles(sim / "C" / "particles.star")
    a = read_images(theirs, torch.arange(len(theirs))).double()
    b = read_images(mine, torch.arange(len(mine))).double()
    a, b = a - a.mean((1, 2), keepdim=True), b - b.mean((1, 2), keepdim=True)
    correlation = (a * b).sum((1, 2)) / (a.norm(dim=(1, 2)) * b.norm(dim=(1, 2)))
    report = {
        "micrographs": args.micrographs,
        "size_px": args.size,
        "particles": len(mine),
        "box_px": args.box,
        "bin": args.bin,
        "threads": args.threads,
        "relion_seconds": round(min(times["relion"]), 2),
        "cryoglass_seconds": round(min(times["cryoglass"]), 2),
        "all_seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "min_correlation": float(correlation.min()),
        "max_abs_difference": float((a - b).abs().max()),
        "load_average": os.getloadavg(),
    }
    report["time_ratio"] = round(report["cryoglass_seconds"] / report["relion_seconds"], 3)
    print(json.dumps(report, indent=2))
    if args.data is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
