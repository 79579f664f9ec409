"""Benchmark: 1000 projections of a 128³ map (pad 2, float32, CPU) — speed and accuracy.

Prints machine info, sizes, the median of a few runs, the relative error against exact
(analytic) projections of a sum-of-Gaussians map, and the same job done by `relion_project`
(whole process, same map and poses).  In the same run, when the peer environment exists
(/work/peers or $CRYOGLASS_PEERS_PYTHON, see benchmarks/peers/README.md), ASPIRE (NUFFT, no pad)
and cryojax (pad 1 and 2) project the same map at the same poses through
benchmarks/peers/peer_projection.py; their time is compared with ours "slices only" (like for
like: neither side counts preparing the volume), and their images with ours (median per-image
correlation and relative difference).

Run: python benchmarks/bench_projection.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
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
PEERS_PYTHON = Path(os.environ.get("CRYOGLASS_PEERS_PYTHON", "/work/peers/bin/python"))
MISSING_PEERS = "create /work/peers as in benchmarks/peers/README.md"
PEER_SCRIPT = Path(__file__).resolve().parent / "peers" / "peer_projection.py"


def _load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"


def _agreement(theirs: np.ndarray, ours: torch.Tensor) -> tuple[float, float]:
    """Median per-image Pearson correlation and median relative difference ‖a − b‖/‖b‖."""
    a = torch.from_numpy(theirs).double().flatten(1)
    b = ours.double().flatten(1)
    ac, bc = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    corr = (ac * bc).sum(1) / (ac.norm(dim=1) * bc.norm(dim=1))
    rel = (a - b).norm(dim=1) / b.norm(dim=1)
    return float(corr.median()), float(rel.median())


def _peers(volume, euler, ours_by_pad, seconds_by_pad, *, threads: int, repeats: int) -> None:
    """Run ASPIRE and cryojax on the same map and poses (peer venv) and print the comparison."""
    for tool, pad in (("aspire", 1), ("cryojax", 1), ("cryojax", 2)):
        if not PEERS_PYTHON.exists():
            print(f"peer {tool}: not available ({MISSING_PEERS})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            with mrcfile.new(folder / "map.mrc") as mrc:
                mrc.set_data(volume.numpy().astype(np.float32))
                mrc.voxel_size = PIXEL
            np.save(folder / "angles.npy", euler.numpy())
            command = [
                str(PEERS_PYTHON), str(PEER_SCRIPT), "--map", str(folder / "map.mrc"),
                "--angles", str(folder / "angles.npy"), "--pixel-size", str(PIXEL),
                "--tool", tool, "--pad", str(pad), "--repeat", str(repeats),
                "--threads", str(threads), "--out", str(folder / "peer.npy"),
            ]  # fmt: skip
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"peer {tool} pad {pad}: failed ({run.stderr.strip().splitlines()[-1:]})")
                continue
            result = json.loads(run.stdout.strip().splitlines()[-1])
            theirs = np.load(folder / "peer.npy")
        # ASPIRE has no padding; compare it with our pad-2 images (the more accurate ones).
        ref_pad = PAD if tool == "aspire" else pad
        corr, rel = _agreement(theirs, ours_by_pad[ref_pad])
        seconds = result["seconds_median"]
        print(
            f"peer {tool} {result['version']} ({result['method']}): median {seconds:.3f} s "
            f"→ {result['images_per_s']:.0f} images/s; ratio cryoglass/{tool} (slices only, "
            f"pad {ref_pad}) {seconds_by_pad[ref_pad] / seconds:.2f}; vs cryoglass pad {ref_pad}: "
            f"median corr {corr:.6f}, median rel diff {rel:.3f} [load {_load()}]"
        )


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
        f" [load {_load()}]"
    )

    prepared1 = prepare_volume_fourier(volume, pad=1)
    steady1 = []
    for _ in range(args.repeats):
        t1 = time.perf_counter()
        images1 = torch.cat(
            [project_prepared(prepared1, rotations[s : s + 128]) for s in range(0, B, 128)]
        )
        steady1.append(time.perf_counter() - t1)
    inner1 = statistics.median(steady1)
    print(f"cryoglass slices only, pad 1: {inner1:.3f} s → {B / inner1:.0f} images/s")
    _peers(
        volume,
        euler,
        {1: images1, PAD: images},
        {1: inner1, PAD: inner},
        threads=args.threads,
        repeats=args.repeats,
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
        f"→ {B / rel:.0f} images/s [load {_load()}]"
    )
    print(f"ratio cryoglass/relion (in-process incl. FFT vs whole process): {total / rel:.2f}")
    print(f"cryoglass vs relion images: relative difference {agree:.2e}")


if __name__ == "__main__":
    main()
