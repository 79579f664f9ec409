"""Benchmark: whole-process `cryoglass simulate` vs `relion_project --add_noise`, 10,000 × 128².

Both programs project the same map (TRPV1 as a sum of Gaussians, 128³ at 1.5 Å) at the same
poses, origins and CTFs (cryoglass draws them and writes particles.star; relion_project reads
that file with --ang), multiply by the CTF, add white Gaussian noise of the same σ and write an
.mrcs stack.  cryoglass also writes the STAR file, cryoDRGN pickles, truth map and report.
Wall time of each whole process is compared.  Goal: ratio ≤ 1.0.

Run: python benchmarks/bench_simulate.py [--n 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

BOX, PIXEL, SNR, SEED = 128, 1.5, 0.1, 0

_LOCAL_APP = (
    "import sys, typer; from cryoglass.cli.simulate import main; "
    "app = typer.Typer(); app.command()(main); app(sys.argv[1:])"
)


def _ours_command() -> list[str]:
    """`python -m cryoglass simulate` once registered, else the command module directly."""
    from cryoglass.cli.main import COMMANDS

    if any(name == "simulate" for name, _ in COMMANDS):
        return [sys.executable, "-m", "cryoglass", "simulate"]
    return [sys.executable, "-c", _LOCAL_APP]


def _time(command: list[str], folder: Path, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from cryoglass.data import model_map
    from cryoglass.io import write_mrc
    from cryoglass.simulate.dataset import calibrate_noise_std

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, torch {torch.__version__}, threads {args.threads}"
    )
    print(f"job: {args.n} images {BOX}² at {PIXEL} Å, CTF (1–2.5 µm), white noise SNR {SNR}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        volume, _, _ = model_map(box=BOX, pixel_size_angstrom=PIXEL, sigma_angstrom=1.5)
        write_mrc(folder / "map.mrc", volume, pixel_size_angstrom=PIXEL)
        sigma = calibrate_noise_std(volume, pixel_size_angstrom=PIXEL, snr=SNR, seed=SEED)
        ours_cmd = [
            *_ours_command(),
            "--volume",
            "map.mrc",
            "--n",
            str(args.n),
            "--box",
            str(BOX),
            "--snr",
            str(SNR),
            "--seed",
            str(SEED),
            "--out",
            "sim",
            "--shift-std-angstrom",
            "3",
        ]
        t_ours = _time(ours_cmd, folder, args.threads)
        print(
            f"cryoglass simulate: {t_ours:.2f} s ({args.n / t_ours:.0f} images/s), "
            f"noise σ {sigma:.4g}"
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
            "sim/particles.star",
            "--ctf",
            "--add_noise",
            "--white_noise",
            f"{sigma:.6g}",
            "--o",
            "rel",
            "--angpix",
            str(PIXEL),
        ]
        t_rel = _time(rel_cmd, folder, args.threads)
        print(f"relion_project:     {t_rel:.2f} s ({args.n / t_rel:.0f} images/s)")
        print(f"ratio cryoglass/relion: {t_ours / t_rel:.2f} (goal ≤ 1.0)")
        ours = mrcfile.mmap(folder / "sim" / "particles.mrcs", mode="r")
        rel = mrcfile.mmap(folder / "rel.mrcs", mode="r")
        a = np.asarray(ours.data[:500], dtype=np.float64)
        b = np.asarray(rel.data[:500], dtype=np.float64)
        print(
            f"stack std: cryoglass {a.std():.4g}, relion {b.std():.4g} (same noise σ, same signal)"
        )
        ours.close()
        rel.close()


if __name__ == "__main__":
    main()
