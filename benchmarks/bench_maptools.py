"""Benchmark: `cryoglass mask` vs relion_mask_create, `cryoglass resample` vs relion_image_handler.

Whole processes on the same inputs, timed in the same run, and the agreement of the outputs:

* mask: a ``--box``³ atom-like map, low-pass 15 Å, threshold, extend 3 px, soft edge 6 px
  (RELION searches a (2R+1)³ cube around every voxel; cryoglass separates the distance search
  into one pass per axis);
* resample: a stack of ``--n-images`` random images of ``--image-box``² with its STAR file,
  ``--rescale_angpix`` to twice the pixel size (Fourier cropping, STAR rewritten).

    python benchmarks/bench_maptools.py [--box 160] [--n-images 2000] [--image-box 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cryoglass.ctf import CTFParams
from cryoglass.fourier.rescale import resize_fourier
from cryoglass.io import MRCStackWriter, make_particle_set, read_mrc, write_mrc, write_relion_star
from cryoglass.simulate import gaussian_map


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


def bench_mask(folder: Path, box: int, env: dict) -> None:
    pixel = 1.2
    g = torch.Generator().manual_seed(0)
    n = int(3000 * (box / 96) ** 3)
    centers = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.15 * box * pixel
    volume = gaussian_map(centers, shape=(box,) * 3, pixel_size_angstrom=pixel, sigma_angstrom=1.0)
    write_mrc(folder / "map.mrc", volume.float(), pixel_size_angstrom=pixel)
    threshold = f"{0.1 * float(volume.max()):.5f}"
    common = [
        "--threshold",
        threshold,
        "--lowpass",
        "15",
        "--extend-px",
        "3",
        "--soft-edge-px",
        "6",
    ]
    ours = timed(
        [sys.executable, "-m", "cryoglass", "mask", "map.mrc", *common, "--out", "ours.mrc"],
        cwd=folder,
        env=env,
    )
    rel_args = [
        "relion_mask_create",
        "--i",
        "map.mrc",
        "--o",
        "rel.mrc",
        "--ini_threshold",
        threshold,
    ]
    rel_args += ["--lowpass", "15", "--extend_inimask", "3", "--width_soft_edge", "6", "--j", "1"]
    rel = timed(rel_args, cwd=folder, env=env)
    diff = (read_mrc(folder / "ours.mrc")[0] - read_mrc(folder / "rel.mrc")[0]).abs().max()
    print(
        f"mask {box}³: cryoglass {ours[0]:.2f} s (CPU {ours[1]:.2f} s), relion_mask_create "
        f"{rel[0]:.2f} s (CPU {rel[1]:.2f} s), ratio {ours[0] / rel[0]:.3f}; "
        f"max |difference| {float(diff):.1e}"
    )


def bench_resample(folder: Path, n_images: int, image_box: int, env: dict) -> None:
    pixel = 1.1
    g = torch.Generator().manual_seed(1)
    with MRCStackWriter(
        folder / "parts.mrcs",
        n_images=n_images,
        image_shape=(image_box,) * 2,
        pixel_size_angstrom=pixel,
    ) as writer:
        for start in range(0, n_images, 500):
            count = min(500, n_images - start)
            writer.write(start, torch.randn(count, image_box, image_box, generator=g))
    names = [f"{i + 1:06d}@parts.mrcs" for i in range(n_images)]
    particles = make_particle_set(
        names,
        pixel_size_angstrom=pixel,
        image_size=image_box,
        shift_angstrom=torch.zeros(n_images, 2, dtype=torch.float64),
        ctf=CTFParams(
            defocus_u_angstrom=15000.0, defocus_v_angstrom=14000.0
        ),  # RELION wants optics
        image_root=folder,
    )
    write_relion_star(folder / "parts.star", particles)
    new = 2 * pixel
    ours = timed(
        [
            sys.executable,
            "-m",
            "cryoglass",
            "resample",
            "parts.star",
            "--apix",
            str(new),
            "--out",
            "ours.star",
        ],
        cwd=folder,
        env=env,
    )
    rel = timed(
        [
            "relion_image_handler",
            "--i",
            "parts.star",
            "--o",
            "rel",
            "--angpix",
            str(pixel),
            "--rescale_angpix",
            str(new),
        ],
        cwd=folder,
        env=env,
    )
    a = read_mrc(folder / "ours.mrcs")[0][:50].double()
    b = read_mrc(folder / "parts_rel.mrcs")[0][:50].double()
    m = a.shape[-1] - 2  # away from the new Nyquist, where the conventions differ
    diff = (resize_fourier(a, (m, m)) - resize_fourier(b, (m, m))).abs().max() / b.std()
    print(
        f"resample {n_images} × {image_box}² → {a.shape[-1]}²: cryoglass {ours[0]:.2f} s "
        f"(CPU {ours[1]:.2f} s), relion_image_handler {rel[0]:.2f} s (CPU {rel[1]:.2f} s), "
        f"ratio {ours[0] / rel[0]:.3f}; relative max |difference| below Nyquist {float(diff):.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--box", type=int, default=160)
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--image-box", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__} "
        f"({args.threads} threads); load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        bench_mask(Path(tmp), args.box, env)
        bench_resample(Path(tmp), args.n_images, args.image_box, env)
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
