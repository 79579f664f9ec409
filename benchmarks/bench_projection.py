"""Benchmark: 1000 projections of a 128³ map (pad 2, float32, CPU) — speed and accuracy.

Prints machine info, sizes, the median of a few runs, the relative error against exact
(analytic) projections of a sum-of-Gaussians map, and the same job done by `relion_project`
(whole process, same map and poses).  Peers not measured here (quoted from the issue):
cryojax 0.59 s unpadded / 2.07 s padded, ASPIRE Volume.project 2.87 s.

Run: python benchmarks/bench_projection.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.projection import (
    gaussian_blobs_projection,
    gaussian_blobs_volume,
    prepare_volume_fourier,
    project,
    project_prepared,
)

N, B, PAD, PIXEL = 128, 1000, 2, 1.0


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = (torch.rand(12, 3, generator=g, dtype=torch.float64) - 0.5) * (N / 3)
    sigmas = 2.0 + 2.0 * torch.rand(12, generator=g, dtype=torch.float64)
    amplitudes = 0.5 + torch.rand(12, generator=g, dtype=torch.float64)
    euler = torch.rand(B, 3, generator=g, dtype=torch.float64) * torch.tensor([360.0, 180, 360])
    return (centers, sigmas, amplitudes), euler


def _write_relion_inputs(folder: Path, volume: torch.Tensor, euler: torch.Tensor) -> None:
    with mrcfile.new(folder / "map.mrc") as mrc:
        mrc.set_data(volume.numpy().astype(np.float32))
        mrc.voxel_size = PIXEL
    header = (
        "data_optics\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n_rlnImagePixelSize #3\n"
        "_rlnImageSize #4\n_rlnImageDimensionality #5\n_rlnVoltage #6\n"
        "_rlnSphericalAberration #7\n_rlnAmplitudeContrast #8\n"
        f"1 og1 {PIXEL} {N} 2 300 2.7 0.1\n\ndata_particles\nloop_\n_rlnImageName #1\n"
        "_rlnAngleRot #2\n_rlnAngleTilt #3\n_rlnAnglePsi #4\n_rlnOpticsGroup #5\n"
    )
    rows = [
        f"{i + 1:06d}@none.mrcs {a:.6f} {b:.6f} {c:.6f} 1"
        for i, (a, b, c) in enumerate(euler.tolist())
    ]
    (folder / "ang.star").write_text(header + "\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print(f"job: {B} projections of a {N}³ map, pad {PAD}, trilinear, float32, CPU")

    blobs, euler = _inputs()
    volume64 = gaussian_blobs_volume(N, *blobs)
    volume = volume64.float()
    rotations = euler_to_matrix(euler).float()

    totals, steady = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        images = project(volume, rotations, pad=PAD, batch_size=128)
        totals.append(time.perf_counter() - t0)
        prepared = prepare_volume_fourier(volume, pad=PAD)
        t1 = time.perf_counter()
        for start in range(0, B, 128):
            project_prepared(prepared, rotations[start : start + 128])
        steady.append(time.perf_counter() - t1)
    total, inner = statistics.median(totals), statistics.median(steady)
    print(
        f"cryoglass project(): median {total:.3f} s for {B} → {B / total:.0f} images/s "
        f"(incl. 3D FFT of the padded map); slices only: {inner:.3f} s → {B / inner:.0f} images/s"
    )

    subset = slice(0, 100)
    exact = gaussian_blobs_projection(N, *blobs, euler_to_matrix(euler[subset]))
    for pad in (1, 2):
        ours = project(volume64, euler_deg=euler[subset], pad=pad).float().double()
        error = float((ours - exact).norm() / exact.norm())
        print(f"relative error vs analytic Gaussian projections, pad {pad}: {error:.2e}")
    error32 = float((images[subset].double() - exact).norm() / exact.norm())
    print(f"relative error of the timed float32 run (pad {PAD}): {error32:.2e}")

    relion = shutil.which("relion_project")
    if relion is None:
        print("relion_project: not installed, peer not measured")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_relion_inputs(folder, volume, euler)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(
                [relion, "--i", "map.mrc", "--ang", "ang.star", "--o", "rel", "--angpix", "1"],
                cwd=folder,
                check=True,
                capture_output=True,
                env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)),
            )
            times.append(time.perf_counter() - t0)
        rel = statistics.median(times)
        relion_images = torch.tensor(mrcfile.read(folder / "rel.mrcs"), dtype=torch.float64)
    agree = float((images.double() - relion_images).norm() / relion_images.norm())
    print(
        f"relion_project (whole process, incl. writing): median {rel:.3f} s "
        f"→ {B / rel:.0f} images/s"
    )
    print(f"ratio cryoglass/relion (in-process incl. FFT vs whole process): {total / rel:.2f}")
    print(f"cryoglass vs relion images: relative difference {agree:.2e}")
    print(
        "not measured here (issue's reference numbers): cryojax 0.59 s unpadded / 2.07 s padded, "
        "ASPIRE Volume.project 2.87 s"
    )


if __name__ == "__main__":
    main()
