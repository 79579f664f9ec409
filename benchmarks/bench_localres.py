"""Benchmark: local resolution, `cryoglass localres` vs `relion_postprocess --locres`, same maps.

The same half maps (an atom-like map whose right half is blurred by B = +500 Å², white noise per
half, an automatic mask), the same settings (RELION's defaults: 25 Å sampling, windows of radius
12.5 Å with a 25 Å soft edge, phases randomised beyond 25 Å), timed in the same run as whole
processes (read, compute, write).  Printed: wall times, their ratio, the median local resolution
inside the mask of each and their ratio (goal: within 5 %).

    python benchmarks/bench_localres.py [--box 128] [--pixel 1.5] [--sampling 25] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cryoglass.fourier import apply_bfactor
from cryoglass.io import read_mrc, write_mrc
from cryoglass.simulate import gaussian_map
from cryoglass.validate import auto_mask


def make_maps(folder: Path, *, box: int, pixel: float, noise: float) -> None:
    g = torch.Generator().manual_seed(1)
    n = int(3000 * (box / 96) ** 3)
    directions = torch.randn(n, 3, generator=g, dtype=torch.float64)
    radii = 0.36 * box * pixel * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    centers = directions / directions.norm(dim=1, keepdim=True) * radii
    truth = gaussian_map(centers, shape=(box,) * 3, pixel_size_angstrom=pixel, sigma_angstrom=1.0)
    blurred = apply_bfactor(truth, ndim=3, bfactor_a2=500.0, pixel_size_angstrom=pixel)
    truth = torch.where(torch.arange(box) >= box // 2, blurred, truth)
    truth = apply_bfactor(truth, ndim=3, bfactor_a2=30.0, pixel_size_angstrom=pixel)
    sigma = noise * float(truth.std())
    for name in ("half1", "half2"):
        half = truth + sigma * torch.randn(truth.shape, generator=g, dtype=torch.float64)
        write_mrc(folder / f"{name}.mrc", half.float(), pixel_size_angstrom=pixel)
    mask = auto_mask(truth, pixel_size_angstrom=pixel)
    write_mrc(folder / "mask.mrc", mask.float(), pixel_size_angstrom=pixel)


def timed(command: list[str], *, cwd: Path, env: dict) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--pixel", type=float, default=1.5)
    parser.add_argument("--sampling", type=float, default=25.0)
    parser.add_argument("--noise", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    relion = shutil.which("relion_postprocess")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"torch {torch.__version__} ({args.threads} threads); load {os.getloadavg()[0]:.1f}"
    )
    print(f"maps: {args.box}³ at {args.pixel} Å, sampling {args.sampling} Å")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_maps(folder, box=args.box, pixel=args.pixel, noise=args.noise)
        ours_cmd = [sys.executable, "-m", "cryoglass", "localres", "half1.mrc", "half2.mrc"]
        ours_cmd += ["--mask", "mask.mrc", "--sampling", str(args.sampling), "--out", "ours"]
        ours_s, ours_cpu = timed([*ours_cmd, "--json"], cwd=folder, env=env)
        payload = json.loads((folder / "ours" / "localres.json").read_text())
        mask = read_mrc(folder / "mask.mrc")[0] > 0.5
        print(
            f"cryoglass localres: {ours_s:.2f} s whole process (CPU {ours_cpu:.2f} s; "
            f"{payload['seconds']:.2f} s in "
            f"local_resolution), {payload['n_windows']} windows, FFT box {payload['fft_box']}, "
            f"median {payload['median_resolution_angstrom']:.3f} Å"
        )
        if relion is None:
            print("relion_postprocess not found: no comparison")
            return
        (folder / "rel").mkdir()
        rel_cmd = ["relion_postprocess", "--i", "half1.mrc", "--i2", "half2.mrc", "--locres"]
        rel_cmd += ["--mask", "mask.mrc", "--locres_sampling", str(args.sampling)]
        rel_cmd += ["--angpix", str(args.pixel), "--o", "rel/postprocess"]
        # RELION's locres is single-threaded (no --j); its MPI version splits windows
        rel_s, rel_cpu = timed(rel_cmd, cwd=folder, env=env)
        rel = read_mrc(folder / "rel" / "postprocess_locres.mrc")[0]
        rel_median = float(rel[mask].double().median())
        ours_median = payload["median_resolution_angstrom"]
        print(
            f"relion_postprocess --locres: {rel_s:.2f} s whole process (CPU {rel_cpu:.2f} s), "
            f"median {rel_median:.3f} Å"
        )
        print(
            f"ratio cryoglass / RELION: wall {ours_s / rel_s:.3f}, CPU {ours_cpu / rel_cpu:.3f}, "
            f"median resolution "
            f"{ours_median / rel_median:.4f} ({100 * (ours_median / rel_median - 1):+.1f} %); "
            f"load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
