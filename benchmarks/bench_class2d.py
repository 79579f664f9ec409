"""Benchmark: `cryoglass class2d` vs `relion_refine` 2D classification (same star, same options).

Data (not timed): ``n`` particles (default 1200 × 64², 3 Å/px) of K = 4 known views of the
TRPV1 model map (top, two sides, one oblique), each with a random in-plane angle, a random
origin within 6 Å, a CTF (defocus 1–2.5 µm) and white noise at SNR 0.1; images divided by the
noise σ (RELION expects normalised particles).  Both programs get the same STAR file, K,
iterations, psi step 10°, offsets ±9 Å in 3 Å steps (RELION: pixels), --ctf, T = 2, mask
diameter 170 Å, seed 0, two threads:

    relion_refine --i particles.star --o relion/run --K 4 --iter 10 --psi_step 10
        --offset_range 3 --offset_step 1 --ctf --tau2_fudge 2 --particle_diameter 170
        --zero_mask --flatten_solvent --oversampling 1 --j 2 --pool 3
        --dont_combine_weights_via_disc --random_seed 0 --dont_check_norm
    cryoglass class2d particles.star --classes 4 --iterations 10 --psi-step-deg 10
        --offset-range-angstrom 9 --offset-step-angstrom 3 --ctf --tau2-fudge 2
        --particle-diameter-angstrom 170 --seed 0          (OMP/torch threads: 2)

Each is scored by the adjusted Rand index of its final classes against the true views and by
the median in-plane angle error (after removing one rotation per class, which also checks
that both report rlnAnglePsi with the same meaning).  Goal: cryoglass wall time ≤ RELION's at
ARI ≥ RELION's.  CPU-heavy: run once, note the load average.

Run: python benchmarks/bench_class2d.py [--count 1200] [--iterations 10] [--skip-relion]
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

N, PIXEL, K = 64, 3.0, 4
VIEWS = [[0.0, 0.0], [0.0, 90.0], [45.0, 90.0], [30.0, 45.0]]


def _write_inputs(folder: Path, count: int, seed: int = 0):
    """The star + stack; returns (true labels, true psi)."""
    import torch

    from cryoglass.classify.synthetic import simulate_views
    from cryoglass.data import model_map
    from cryoglass.io import make_particle_set, write_mrc, write_relion_star

    volume = model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=3.0)[0]
    data = simulate_views(
        volume,
        view_euler_deg=torch.tensor(VIEWS),
        n=count,
        pixel_size_angstrom=PIXEL,
        snr=0.1,
        generator=torch.Generator().manual_seed(seed),
        shift_range_angstrom=6.0,
    )
    images = data.images / data.noise_std
    write_mrc(folder / "particles.mrcs", images, pixel_size_angstrom=PIXEL, stack=True)
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(count)]
    particles = make_particle_set(
        names, pixel_size_angstrom=PIXEL, image_size=N, ctf=data.ctf, image_root=folder
    )
    write_relion_star(folder / "particles.star", particles)
    return data.labels, data.euler_deg[:, 2]


def _score(star: Path, labels, true_psi) -> tuple[float, float]:
    import starfile
    import torch

    from cryoglass.classify import adjusted_rand_index, inplane_error_deg

    table = starfile.read(star)
    table = table["particles"] if isinstance(table, dict) else table
    index = torch.as_tensor(
        [int(name.split("@")[0]) - 1 for name in table["rlnImageName"]], dtype=torch.int64
    )
    classes = torch.as_tensor(table["rlnClassNumber"].to_numpy().astype("int64"))
    psi = torch.as_tensor(table["rlnAnglePsi"].to_numpy().astype("float64"))
    ari = adjusted_rand_index(labels[index], classes)
    error = inplane_error_deg(psi, true_psi[index].double(), classes)
    return ari, float(error.median())


def _timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1200)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-relion", action="store_true")
    args = parser.parse_args()

    import torch

    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}"
    )
    print(
        f"data: {args.count} × {N}² at {PIXEL} Å/px, K = {K} views, SNR 0.1, CTF, "
        f"{args.iterations} iterations, psi step 10°, offsets ±9 Å step 3 Å, T = 2"
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(prefix="bench_class2d_") as tmp:
        folder = Path(tmp)
        labels, true_psi = _write_inputs(folder, args.count)
        ours = [
            sys.executable,
            "-c",
            "import typer; from cryoglass.cli.class2d import main; typer.run(main)",
            "particles.star",
            "--classes",
            str(K),
            "--iterations",
            str(args.iterations),
            "--out",
            "cg",
            "--psi-step-deg",
            "10",
            "--offset-range-angstrom",
            "9",
            "--offset-step-angstrom",
            "3",
            "--ctf",
            "--tau2-fudge",
            "2",
            "--particle-diameter-angstrom",
            "170",
            "--seed",
            "0",
        ]
        print(f"load average before: {os.getloadavg()}")
        wall = _timed(ours, folder, env)
        ari, psi_error = _score(folder / "cg" / "particles.star", labels, true_psi)
        print(
            f"cryoglass class2d: {wall:.1f} s, ARI {ari:.3f}, median psi error "
            f"{psi_error:.1f}° (load {os.getloadavg()[0]:.2f})"
        )
        if args.skip_relion or shutil.which("relion_refine") is None:
            print("relion_refine: skipped")
            return
        (folder / "relion").mkdir()
        relion = [
            "relion_refine",
            "--i",
            "particles.star",
            "--o",
            "relion/run",
            "--K",
            str(K),
            "--iter",
            str(args.iterations),
            "--psi_step",
            "10",
            "--offset_range",
            "3",
            "--offset_step",
            "1",
            "--ctf",
            "--tau2_fudge",
            "2",
            "--particle_diameter",
            "170",
            "--zero_mask",
            "--flatten_solvent",
            "--oversampling",
            "1",
            "--j",
            str(args.threads),
            "--pool",
            "3",
            "--dont_combine_weights_via_disc",
            "--random_seed",
            "0",
            "--dont_check_norm",
        ]
        relion_wall = _timed(relion, folder, env)
        star = folder / "relion" / f"run_it{args.iterations:03d}_data.star"
        relion_ari, relion_psi = _score(star, labels, true_psi)
        print(
            f"relion_refine: {relion_wall:.1f} s, ARI {relion_ari:.3f}, median psi error "
            f"{relion_psi:.1f}° (load {os.getloadavg()[0]:.2f})"
        )
        print(f"ratio cryoglass / RELION wall time: {wall / relion_wall:.2f}")


if __name__ == "__main__":
    main()
