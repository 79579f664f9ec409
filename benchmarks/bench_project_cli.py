"""Benchmark: whole-process `cryoglass project` vs `relion_project`, 8000 × 128² with CTF.

Both programs read the same map and STAR file and write an .mrcs stack; the wall time of the
whole process (start-up, reading, projecting, CTF, writing) is compared.  Goal: ratio ≤ 1.

Run: python benchmarks/bench_project_cli.py [--count 8000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

N, PIXEL = 128, 1.5


def _load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"


def _write_inputs(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    axis = np.arange(N) - N // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij", sparse=True)
    volume = np.zeros((N, N, N), np.float32)
    for _ in range(10):
        c = rng.uniform(-N / 6, N / 6, 3)
        s = rng.uniform(2, 5)
        volume += np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    with mrcfile.new(folder / "map.mrc") as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = PIXEL
    rot, psi = rng.uniform(-180, 180, (2, count))
    tilt = np.degrees(np.arccos(rng.uniform(-1, 1, count)))
    ox, oy = rng.uniform(-10, 10, (2, count))
    du = rng.uniform(5000, 25000, count)
    dv = du - rng.uniform(0, 2000, count)
    da = rng.uniform(-180, 180, count)
    head = (
        "\n# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n"
        "_rlnImagePixelSize #3\n_rlnImageSize #4\n_rlnImageDimensionality #5\n_rlnVoltage #6\n"
        f"_rlnSphericalAberration #7\n_rlnAmplitudeContrast #8\n1 og1 {PIXEL} {N} 2 300 2.7 0.1\n"
        "\n\n# version 30001\n\ndata_particles\n\nloop_\n_rlnImageName #1\n_rlnAngleRot #2\n"
        "_rlnAngleTilt #3\n_rlnAnglePsi #4\n_rlnOriginXAngst #5\n_rlnOriginYAngst #6\n"
        "_rlnDefocusU #7\n_rlnDefocusV #8\n_rlnDefocusAngle #9\n_rlnOpticsGroup #10\n"
    )
    rows = [
        f"{i + 1:06d}@none.mrcs {rot[i]:.4f} {tilt[i]:.4f} {psi[i]:.4f} {ox[i]:.4f} {oy[i]:.4f} "
        f"{du[i]:.2f} {dv[i]:.2f} {da[i]:.3f} 1"
        for i in range(count)
    ]
    (folder / "in.star").write_text(head + "\n".join(rows) + "\n")


def _time(command: list[str], folder: Path, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    subprocess.run(command, cwd=folder, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}"
    )
    print(f"job: {args.count} projections of a {N}³ map with CTF, pad 2, whole process")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_inputs(folder, args.count)
        ours_cmd = [
            sys.executable,
            "-m",
            "cryoglass",
            "project",
            "map.mrc",
            "--star",
            "in.star",
            "--ctf",
            "--out",
            "ours.mrcs",
            "--overwrite",
        ]
        ours = [_time(ours_cmd, folder, args.threads) for _ in range(args.repeats)]
        t_ours = statistics.median(ours)
        print(
            f"cryoglass project: median {t_ours:.2f} s ({args.count / t_ours:.0f} images/s) "
            f"[load {_load()}]"
        )
        relion = shutil.which("relion_project")
        if relion is None:
            print("relion_project: not installed, ratio not measured")
            return
        rel_cmd = [
            relion,
            "--i",
            "map.mrc",
            "--ang",
            "in.star",
            "--ctf",
            "--o",
            "rel",
            "--angpix",
            str(PIXEL),
        ]
        rel = [_time(rel_cmd, folder, args.threads) for _ in range(args.repeats)]
        t_rel = statistics.median(rel)
        print(
            f"relion_project:    median {t_rel:.2f} s ({args.count / t_rel:.0f} images/s) "
            f"[load {_load()}]"
        )
        print(f"ratio cryoglass/relion: {t_ours / t_rel:.2f} (goal ≤ 1.0)")
        a = mrcfile.read(folder / "ours.mrcs").astype(np.float64)
        b = mrcfile.read(folder / "rel.mrcs").astype(np.float64)
        print(f"relative difference of the stacks: {np.linalg.norm(a - b) / np.linalg.norm(b):.2e}")


if __name__ == "__main__":
    main()
