"""Benchmark: `cryoglass reconstruct` vs `relion_reconstruct --ctf` (whole process, same star).

1. Whole process, same run: 4000 × 128² particles with CTF and white noise, made by
   ``relion_project --ctf --add_noise`` (not timed); ``relion_reconstruct --ctf`` and
   ``cryoglass reconstruct --ctf`` each read the STAR file and the stack and write a map.  Both
   maps are scored by their FSC against the true map at 0.5 (interpolated).
   Goal: ratio ≤ 0.5 at equal or better FSC-to-truth.
2. In-process: ``cryoglass.reconstruct.reconstruct`` of 1000 × 128² images without CTF
   (accumulate + finalize, images already in memory).  Goal ≤ 1 s.
3. Optional peer (``--aspire``): ASPIRE 0.14's ``MeanEstimator`` (least squares by conjugate
   gradients in a Fourier–Bessel basis) on the first ``--aspire-count`` of those images, run
   with /work/peers's Python; its rotations are RELION's A transposed
   (``Rotation.from_euler(radians(rot, tilt, psi))``); cryoglass is timed on the same images.

``relion_reconstruct`` is single-threaded, so both programs run with ``--threads`` threads
(OMP_NUM_THREADS, default 1) for a like-for-like comparison.

Run: python benchmarks/bench_reconstruct.py [--count 4000] [--threads 1] [--aspire]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N, PIXEL, NOISE = 128, 1.5, 2.0


def _write_inputs(folder: Path, count: int, seed: int = 0) -> None:
    """128³ map of 60 Gaussian blobs; RELION 3.1 STAR with poses, origins and CTFs."""
    import torch

    from cryoglass.io import write_mrc
    from cryoglass.simulate.phantom import gaussian_map

    g = torch.Generator().manual_seed(seed)
    d = torch.randn(60, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    centres = d * 60.0 * torch.rand(60, 1, generator=g) ** (1 / 3)
    volume = gaussian_map(
        centres,
        shape=(N, N, N),
        pixel_size_angstrom=PIXEL,
        sigma_angstrom=2.5,
        weights=0.5 + torch.rand(60, generator=g),
    )
    write_mrc(folder / "map.mrc", volume, pixel_size_angstrom=PIXEL, overwrite=True)
    rng = np.random.default_rng(seed)
    rot, psi = rng.uniform(-180, 180, (2, count))
    tilt = np.degrees(np.arccos(rng.uniform(-1, 1, count)))
    ox, oy = rng.uniform(-8, 8, (2, count))
    du = rng.uniform(8000, 25000, count)
    dv = du - rng.uniform(0, 1500, count)
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
    (folder / "poses.star").write_text(head + "\n".join(rows) + "\n")


def _run(command: list[str], folder: Path, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return elapsed


def _ours_command() -> list[str]:
    """`python -m cryoglass reconstruct` when registered, else the command module directly."""
    probe = subprocess.run(
        [sys.executable, "-m", "cryoglass", "reconstruct", "--help"], capture_output=True
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "cryoglass", "reconstruct"]
    code = "import typer; from cryoglass.cli.reconstruct import main; typer.run(main)"
    return [sys.executable, "-c", code]


def _fsc05(path: Path, truth) -> float:
    from cryoglass.io import read_mrc
    from cryoglass.validate import fsc_against_reference

    volume, _ = read_mrc(path)
    _, resolution = fsc_against_reference(
        volume.double(), truth.double(), pixel_size_angstrom=PIXEL
    )
    return float(resolution)


def _in_process(count: int, threads: int, folder: Path, aspire: bool, aspire_count: int) -> None:
    import torch

    from cryoglass.geometry import random_rotations
    from cryoglass.io import read_mrc
    from cryoglass.projection import project
    from cryoglass.reconstruct import reconstruct

    torch.set_num_threads(threads)
    truth, _ = read_mrc(folder / "map.mrc")
    g = torch.Generator().manual_seed(1)
    rotations = random_rotations(count, generator=g)
    images = project(truth, rotations, pixel_size_angstrom=PIXEL)
    reconstruct(images[:64], rotations[:64])  # warm-up (allocator, FFT plans)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        volume = reconstruct(images, rotations, pixel_size_angstrom=PIXEL)
        times.append(time.perf_counter() - t0)
    from cryoglass.validate import fsc_against_reference

    _, res = fsc_against_reference(volume.double(), truth.double(), pixel_size_angstrom=PIXEL)
    print(
        f"in-process cryoglass reconstruct, {count} × {N}² no CTF ({threads} thread(s)): "
        f"median {sorted(times)[1]:.2f} s (goal ≤ 1 s); FSC-to-truth@0.5 {float(res):.2f} Å"
    )
    peer = Path("/work/peers/bin/python")
    if not aspire or not peer.exists():
        print("ASPIRE MeanEstimator: not run (pass --aspire; needs /work/peers)")
        return
    from cryoglass.geometry import matrix_to_euler

    count_a = min(aspire_count, count)
    sub_images, sub_rotations = images[:count_a], rotations[:count_a]
    t0 = time.perf_counter()
    ours = reconstruct(sub_images, sub_rotations, pixel_size_angstrom=PIXEL)
    t_ours = time.perf_counter() - t0
    np.save(folder / "images.npy", sub_images.numpy())
    np.save(folder / "angles.npy", matrix_to_euler(sub_rotations.double()).numpy())
    script = (
        "import sys, time, json, numpy as np\n"
        "from aspire.image import Image\nfrom aspire.source import ArrayImageSource\n"
        "from aspire.utils import Rotation\nfrom aspire.reconstruction import MeanEstimator\n"
        "from aspire.basis import FFBBasis3D\n"
        "imgs = np.load(sys.argv[1]).astype(np.float64); ang = np.load(sys.argv[2])\n"
        "rots = Rotation.from_euler(np.deg2rad(ang)).matrices\n"
        "src = ArrayImageSource(Image(imgs), angles=None, pixel_size=1.0)\n"
        "src.rotations = rots\n"
        "t = time.perf_counter(); basis = FFBBasis3D(imgs.shape[-1], dtype=np.float64)\n"
        "vol = MeanEstimator(src, basis=basis).estimate()\n"
        "print(json.dumps({'seconds': time.perf_counter() - t}))\n"
        "np.save(sys.argv[3], np.asarray(vol)[0])\n"
    )
    (folder / "aspire_mean.py").write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [str(peer), "aspire_mean.py", "images.npy", "angles.npy", "aspire.npy"],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    if proc.returncode != 0:
        print(f"ASPIRE MeanEstimator failed: {proc.stderr[-500:]}")
        return
    t_aspire = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    aspire = torch.from_numpy(np.load(folder / "aspire.npy")).double()
    _, r_aspire = fsc_against_reference(aspire, truth.double(), pixel_size_angstrom=PIXEL)
    _, r_ours = fsc_against_reference(ours.double(), truth.double(), pixel_size_angstrom=PIXEL)
    print(
        f"{count_a} × {N}² no CTF: ASPIRE MeanEstimator {t_aspire:.1f} s, FSC-to-truth@0.5 "
        f"{float(r_aspire):.2f} Å; cryoglass {t_ours:.2f} s, {float(r_ours):.2f} Å; "
        f"ratio {t_ours / t_aspire:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--in-process-count", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--aspire", action="store_true")
    parser.add_argument("--aspire-count", type=int, default=300)
    args = parser.parse_args()
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_inputs(folder, args.count)
        from cryoglass.io import read_mrc

        truth, _ = read_mrc(folder / "map.mrc")
        if shutil.which("relion_project") is None:
            print("RELION not installed: whole-process comparison skipped")
        else:
            _run(
                [
                    "relion_project",
                    "--i",
                    "map.mrc",
                    "--ang",
                    "poses.star",
                    "--ctf",
                    "--add_noise",
                    "--white_noise",
                    str(NOISE),
                    "--angpix",
                    str(PIXEL),
                    "--o",
                    "data",
                ],
                folder,
                1,
            )
            print(
                f"job: {args.count} × {N}² particles, CTF + white noise σ={NOISE}, pad 2, "
                f"{args.threads} thread(s), whole process"
            )
            t_rel = _run(
                [
                    "relion_reconstruct",
                    "--i",
                    "data.star",
                    "--o",
                    "relion.mrc",
                    "--ctf",
                    "--angpix",
                    str(PIXEL),
                ],
                folder,
                args.threads,
            )
            t_ours = _run(
                [*_ours_command(), "data.star", "--out", "ours.mrc", "--ctf", "--overwrite"],
                folder,
                args.threads,
            )
            r_rel, r_ours = _fsc05(folder / "relion.mrc", truth), _fsc05(folder / "ours.mrc", truth)
            print(f"relion_reconstruct --ctf: {t_rel:.2f} s, FSC-to-truth@0.5 {r_rel:.3f} Å")
            print(f"cryoglass reconstruct --ctf: {t_ours:.2f} s, FSC-to-truth@0.5 {r_ours:.3f} Å")
            print(f"ratio cryoglass/relion: {t_ours / t_rel:.2f} (goal ≤ 0.5)")
            t_halves = _run(
                [
                    *_ours_command(),
                    "data.star",
                    "--out",
                    "halves.mrc",
                    "--ctf",
                    "--halves",
                    "--overwrite",
                ],
                folder,
                args.threads,
            )
            r_halves = _fsc05(folder / "halves.mrc", truth)
            print(
                f"cryoglass reconstruct --ctf --halves (full map regularised by the half-map FSC, "
                f"+ 2 half maps + FSC): {t_halves:.2f} s, FSC-to-truth@0.5 {r_halves:.3f} Å, "
                f"ratio {t_halves / t_rel:.2f}"
            )
        _in_process(args.in_process_count, args.threads, folder, args.aspire, args.aspire_count)


if __name__ == "__main__":
    main()
