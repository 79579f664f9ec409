"""Benchmark: `cryoglass class3d` vs `relion_refine` 3D classification (same star, same options).

Data (not timed): ``count`` particles (default 1,500 × 48²), half of each of two real
conformations of the 50S ribosomal subunit (EMPIAR-10076 classes D and E, 32³ at 13.1 Å/px from
tomodrgn's test data, Fourier-padded to 48³ at 8.73 Å/px), at uniformly random orientations,
with random origins (disc of 2 px), a CTF (defocus 1–2.5 µm, 300 kV) and white noise at the
given SNR (signal variance over the whole box / noise variance); images divided by the noise σ
(RELION expects normalised particles).  The reference is the mean of the two maps (what a
consensus refinement gives).  Both programs get the same STAR file, reference, K = 2,
iterations, initial low-pass 40 Å, 15° coarse / 7.5° fine orientations, origins ±5 px
(coarse 2 px, fine 1 px), T = 4, mask 360 Å, seed 0, two threads:

    relion_refine --i particles.star --ref reference.mrc --o relion/run --K 2 --iter 15
        --ini_high 40 --particle_diameter 360 --healpix_order 2 --oversampling 1
        --offset_range 5 --offset_step 2 --tau2_fudge 4 --ctf --firstiter_cc
        --flatten_solvent --zero_mask --sym C1 --pad 2 --j 2 --pool 3
        --dont_combine_weights_via_disc --random_seed 0 --dont_check_norm
    cryoglass class3d particles.star --ref reference.mrc --classes 2 --iterations 15
        --ini-high 40 --particle-diameter 360 --healpix-order 3 --offset-range 5
        --offset-step 1 --tau2-fudge 4 --seed 0        (torch threads: 2)

Scores: the adjusted Rand index of the final classes against the true conformations, and
each true map's best FSC (0.5) against the class maps.  Goal: ARI ≥ RELION's in less wall
time.  CPU-heavy: note the load average printed beside every time.

Run: python benchmarks/bench_class3d.py [--count 1500] [--iterations 15] [--snr 0.05]
     [--skip-relion] [--keep DIR]
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

N, K, DIAMETER = 48, 2, 360.0
MAPS = ("10076_classD_32.mrc", "10076_classE_32.mrc")
DATA = Path("/work/shared/data/maps")
SOURCE_PIXEL = 13.1  # tomodrgn testing/data/commands.txt: --Apix 13.1 (the header says 1.0)


def _maps():
    """The two conformations on a 48³ box (Fourier padding), and the pixel size [Å]."""
    from cryoglass.fourier.rescale import fourier_pad
    from cryoglass.io import read_mrc

    volumes = []
    for name in MAPS:
        volume, _ = read_mrc(DATA / name)
        volumes.append(fourier_pad(volume.double(), (N, N, N)).float())
    return volumes, SOURCE_PIXEL * 32 / N


def write_inputs(folder: Path, count: int, snr: float, seed: int = 0):
    """particles.star/.mrcs, reference.mrc, truth_1/2.mrc; returns (labels, maps, pixel)."""
    import torch

    from cryoglass.ctf import CTFParams
    from cryoglass.geometry import random_rotations
    from cryoglass.io import make_particle_set, write_mrc, write_relion_star
    from cryoglass.projection import project

    volumes, pixel = _maps()
    g = torch.Generator().manual_seed(seed)
    labels = torch.randperm(count, generator=g) % 2
    rotations = random_rotations(count, generator=g, dtype=torch.float32)
    radius = 2.0 * torch.sqrt(torch.rand(count, generator=g))
    angle = 2 * torch.pi * torch.rand(count, generator=g)
    origins = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1) * pixel
    defocus = 10000 + 15000 * torch.rand(count, generator=g, dtype=torch.float64)
    ctf = CTFParams(defocus_u_angstrom=defocus, defocus_v_angstrom=defocus)
    images = torch.empty(count, N, N)
    for k, volume in enumerate(volumes):
        rows = torch.nonzero(labels == k).reshape(-1)
        images[rows] = project(
            volume,
            rotations[rows],
            shift_angstrom=origins[rows],
            ctf=CTFParams(defocus_u_angstrom=defocus[rows], defocus_v_angstrom=defocus[rows]),
            pixel_size_angstrom=pixel,
        )
    sigma = float(images.std()) / snr**0.5
    images = (images + sigma * torch.randn(images.shape, generator=g)) / sigma
    write_mrc(folder / "particles.mrcs", images, pixel_size_angstrom=pixel, stack=True)
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(count)]
    particles = make_particle_set(
        names, pixel_size_angstrom=pixel, image_size=N, ctf=ctf.expand(count), image_root=folder
    )
    write_relion_star(folder / "particles.star", particles)
    scale = 1.0 / sigma  # the maps on the images' grey scale
    write_mrc(
        folder / "reference.mrc", (volumes[0] + volumes[1]) * scale / 2, pixel_size_angstrom=pixel
    )
    return labels, [v * scale for v in volumes], pixel


def score(star: Path, class_maps: list[Path], labels, truths, pixel: float) -> tuple[float, list]:
    """(ARI, per true map the best FSC-0.5 resolution [Å] among the class maps)."""
    import starfile
    import torch

    from cryoglass.classify import adjusted_rand_index
    from cryoglass.io import read_mrc
    from cryoglass.validate.fsc import fourier_shell_correlation, resolution_at_threshold

    table = starfile.read(star)
    table = table["particles"] if isinstance(table, dict) else table
    index = torch.as_tensor(
        [int(name.split("@")[0]) - 1 for name in table["rlnImageName"]], dtype=torch.int64
    )
    classes = torch.as_tensor(table["rlnClassNumber"].to_numpy().astype("int64"))
    ari = adjusted_rand_index(labels[index], classes)
    maps = [read_mrc(p)[0].double() for p in class_maps]
    best = []
    for truth in truths:
        resolutions = [
            float(
                resolution_at_threshold(
                    fourier_shell_correlation(truth.double(), m),
                    threshold=0.5,
                    box_size=N,
                    pixel_size_angstrom=pixel,
                )
            )
            for m in maps
        ]
        best.append(round(min(resolutions), 1))
    return ari, best


def _timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall


def _ours(iterations: int) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import typer; from cryoglass.cli.class3d import main; typer.run(main)",
        "particles.star",
        "--ref",
        "reference.mrc",
        "--classes",
        str(K),
        "--iterations",
        str(iterations),
        "--out",
        "cg",
        "--ini-high",
        "40",
        "--particle-diameter",
        str(DIAMETER),
        "--healpix-order",
        "3",
        "--offset-range",
        "5",
        "--offset-step",
        "1",
        "--tau2-fudge",
        "4",
        "--seed",
        "0",
    ]


def _relion(iterations: int, threads: int) -> list[str]:
    return [
        "relion_refine",
        "--i",
        "particles.star",
        "--ref",
        "reference.mrc",
        "--o",
        "relion/run",
        "--K",
        str(K),
        "--iter",
        str(iterations),
        "--ini_high",
        "40",
        "--particle_diameter",
        str(DIAMETER),
        "--healpix_order",
        "2",
        "--oversampling",
        "1",
        "--offset_range",
        "5",
        "--offset_step",
        "2",
        "--tau2_fudge",
        "4",
        "--ctf",
        "--firstiter_cc",
        "--flatten_solvent",
        "--zero_mask",
        "--sym",
        "C1",
        "--pad",
        "2",
        "--j",
        str(threads),
        "--pool",
        "3",
        "--dont_combine_weights_via_disc",
        "--random_seed",
        "0",
        "--dont_check_norm",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--snr", type=float, nargs="+", default=[0.05])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-relion", action="store_true")
    parser.add_argument("--keep", type=Path, help="Keep the data and outputs in this folder.")
    args = parser.parse_args()

    import torch

    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}"
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for snr in args.snr:
        with tempfile.TemporaryDirectory(prefix="bench_class3d_") as tmp:
            folder = args.keep / f"snr{snr:g}" if args.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            labels, truths, pixel = write_inputs(folder, args.count, snr)
            print(
                f"data: {args.count} × {N}² at {pixel:.2f} Å/px, two 50S conformations, SNR "
                f"{snr:g}, CTF, K = {K}, {args.iterations} iterations"
            )
            print(f"load average before: {os.getloadavg()}")
            wall = _timed(_ours(args.iterations), folder, env)
            it = f"run_it{args.iterations:03d}"
            cg = folder / "cg"
            ari, res = score(
                cg / f"{it}_data.star",
                [cg / f"{it}_class{c:03d}.mrc" for c in range(1, K + 1)],
                labels,
                truths,
                pixel,
            )
            print(
                f"cryoglass class3d: {wall:.1f} s, ARI {ari:.3f}, FSC-0.5 to the truths {res} Å "
                f"(load {os.getloadavg()[0]:.2f})"
            )
            if args.skip_relion or shutil.which("relion_refine") is None:
                print("relion_refine: skipped")
                continue
            (folder / "relion").mkdir(exist_ok=True)
            relion_wall = _timed(_relion(args.iterations, args.threads), folder, env)
            rl = folder / "relion"
            relion_ari, relion_res = score(
                rl / f"{it}_data.star",
                [rl / f"{it}_class{c:03d}.mrc" for c in range(1, K + 1)],
                labels,
                truths,
                pixel,
            )
            print(
                f"relion_refine: {relion_wall:.1f} s, ARI {relion_ari:.3f}, FSC-0.5 to the "
                f"truths {relion_res} Å (load {os.getloadavg()[0]:.2f})"
            )
            print(f"ratio cryoglass / RELION wall time: {wall / relion_wall:.2f}")


if __name__ == "__main__":
    main()
