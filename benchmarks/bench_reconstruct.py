"""Benchmark: `cryoglass reconstruct` vs `relion_reconstruct --ctf` (whole process, same star).

1. Whole process, same run: 4000 × 128² particles with CTF and white noise, made by
   ``relion_project --ctf --add_noise`` (not timed); ``relion_reconstruct --ctf`` and
   ``cryoglass reconstruct --ctf`` each read the STAR file and the stack and write a map.  Both
   maps are scored by their FSC against the true map at 0.5 (interpolated).
   Goal: ratio ≤ 0.5 at equal or better FSC-to-truth.
2. In-process: ``cryoglass.reconstruct.reconstruct`` of 1000 × 128² images without CTF
   (accumulate + finalize, images already in memory).  Goal ≤ 1 s.
3. Optional peers (``--aspire``, ``--cryodrgn``), run at ``--peer-size`` (default 64: the true
   map Fourier-cropped) on ``--peer-count`` projections with white noise (``--peer-noise``
   × the signal's standard deviation), in the same run:

   * ASPIRE 0.14's ``MeanEstimator`` (least squares by conjugate gradients in a Fourier–Bessel
     basis) in-process in /work/peers's Python, no CTF; its rotations are RELION's A transposed
     (``Rotation.from_euler(radians(rot, tilt, psi))``); cryoglass is timed on the same images.
   * cryoDRGN's ``cryodrgn backproject_voxel`` command (whole process, /work/peers/bin), with
     CTF and origin shifts: particles.mrcs, poses.pkl and ctf.pkl written by cryoglass.io
     (``write_cryodrgn_poses``/``write_cryodrgn_ctf`` convert the conventions); cryoDRGN's CTF
     has the opposite sign to RELION's, so images made with RELION's CTF are what it expects
     with its default data inversion (``--uninvert-data`` gives the negated map: checked, FSC
     −0.99); ``--no-half-maps``.  cryoglass's
     ``reconstruct`` (in-process) runs on the same images, poses and CTFs.

``relion_reconstruct`` is single-threaded, so both programs run with ``--threads`` threads
(OMP_NUM_THREADS, default 1) for a like-for-like comparison.

Run: python benchmarks/bench_reconstruct.py [--count 4000] [--threads 1] [--aspire] [--cryodrgn]
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


def _in_process(count: int, threads: int, folder: Path) -> None:
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
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        volume = reconstruct(images, rotations, pixel_size_angstrom=PIXEL)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    from cryoglass.validate import fsc_against_reference

    _, res = fsc_against_reference(volume.double(), truth.double(), pixel_size_angstrom=PIXEL)
    print(
        f"in-process cryoglass reconstruct, {count} × {N}² no CTF ({threads} thread(s)): "
        f"median {sorted(times)[1]:.2f} s (goal ≤ 1 s), CPU time {sorted(cpu)[1]:.2f} s; "
        f"FSC-to-truth@0.5 {float(res):.2f} Å"
    )


PEERS = Path("/work/peers/bin")


def _peer_data(truth, count: int, size: int, noise: float, seed: int = 2):
    """Fourier-cropped truth (size³), random poses, origins, CTFs and the projections, plus
    white noise of ``noise`` × the standard deviation of the noise-free projections."""
    import torch

    from cryoglass.ctf import CTFParams
    from cryoglass.fourier import resize_fourier
    from cryoglass.geometry import matrix_to_euler, random_rotations
    from cryoglass.projection import project

    pixel = PIXEL * N / size
    small = resize_fourier(truth.double(), (size, size, size)).float()
    g = torch.Generator().manual_seed(seed)
    rotations = random_rotations(count, generator=g)
    shift = (torch.rand(count, 2, generator=g) - 0.5) * 4 * pixel
    du = 8000 + 17000 * torch.rand(count, generator=g)
    ctf = CTFParams(
        defocus_u_angstrom=du,
        defocus_v_angstrom=du - 1500 * torch.rand(count, generator=g),
        astigmatism_angle_deg=360 * torch.rand(count, generator=g) - 180,
    )
    plain = project(small, rotations, pixel_size_angstrom=pixel)
    with_ctf = project(small, rotations, shift_angstrom=shift, ctf=ctf, pixel_size_angstrom=pixel)
    sigma = noise * float(plain.std())
    plain = plain + sigma * torch.randn(plain.shape, generator=g)
    with_ctf = with_ctf + sigma * torch.randn(with_ctf.shape, generator=g)
    euler = matrix_to_euler(rotations.double())
    return small, pixel, rotations, euler, shift, ctf, plain, with_ctf


def _timed(function):
    t0 = time.perf_counter()
    out = function()
    return time.perf_counter() - t0, out


def _aspire(folder: Path, images, euler, small, pixel: float, threads: int) -> None:
    import torch

    from cryoglass.reconstruct import reconstruct
    from cryoglass.validate import fsc_against_reference

    t_ours, ours = _timed(
        lambda: reconstruct(images, euler_deg=euler.float(), pixel_size_angstrom=pixel)
    )
    np.save(folder / "images.npy", images.numpy())
    np.save(folder / "angles.npy", euler.numpy())
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
        [str(PEERS / "python"), "aspire_mean.py", "images.npy", "angles.npy", "aspire.npy"],
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
    _, r_aspire = fsc_against_reference(aspire, small.double(), pixel_size_angstrom=pixel)
    _, r_ours = fsc_against_reference(ours.double(), small.double(), pixel_size_angstrom=pixel)
    size = images.shape[-1]
    print(
        f"{images.shape[0]} × {size}² no CTF: ASPIRE MeanEstimator {t_aspire:.1f} s, "
        f"FSC-to-truth@0.5 {float(r_aspire):.2f} Å; cryoglass {t_ours:.2f} s, "
        f"{float(r_ours):.2f} Å; ratio {t_ours / t_aspire:.3f}"
    )


def _cryodrgn(folder: Path, images, euler, shift, ctf, small, pixel: float, threads: int) -> None:

    from cryoglass.io import read_mrc, write_cryodrgn_ctf, write_cryodrgn_poses, write_mrc
    from cryoglass.reconstruct import reconstruct
    from cryoglass.validate import fsc_against_reference

    size = images.shape[-1]
    t_ours, ours = _timed(
        lambda: reconstruct(
            images,
            euler_deg=euler.float(),
            shift_angstrom=shift,
            ctf=ctf,
            pixel_size_angstrom=pixel,
        )
    )
    write_mrc(
        folder / "particles.mrcs", images, pixel_size_angstrom=pixel, overwrite=True, stack=True
    )
    write_cryodrgn_poses(
        folder / "poses.pkl",
        euler,
        shift,
        image_size=size,
        pixel_size_angstrom=pixel,
        overwrite=True,
    )
    write_cryodrgn_ctf(
        folder / "ctf.pkl", ctf, image_size=size, pixel_size_angstrom=pixel, overwrite=True
    )
    command = [
        str(PEERS / "cryodrgn"),
        "backproject_voxel",
        "particles.mrcs",
        "--poses",
        "poses.pkl",
        "--ctf",
        "ctf.pkl",
        "--no-half-maps",
        "-o",
        "drgn",
    ]
    try:
        t_drgn = _run(command, folder, threads)
    except RuntimeError as error:
        print(f"cryoDRGN backproject_voxel failed: {str(error)[-500:]}")
        return
    volume, _ = read_mrc(folder / "drgn" / "backproject.mrc")
    _, r_drgn = fsc_against_reference(volume.double(), small.double(), pixel_size_angstrom=pixel)
    _, r_ours = fsc_against_reference(ours.double(), small.double(), pixel_size_angstrom=pixel)
    print(
        f"{images.shape[0]} × {size}² with CTF + shifts: cryodrgn backproject_voxel (whole "
        f"process) {t_drgn:.1f} s, FSC-to-truth@0.5 {float(r_drgn):.2f} Å; cryoglass in-process "
        f"{t_ours:.2f} s, {float(r_ours):.2f} Å; ratio {t_ours / t_drgn:.3f}"
    )


def _peers(args, folder: Path, truth) -> None:
    """ASPIRE / cryoDRGN at --peer-size on --peer-count images (see the module docstring)."""
    if not (args.aspire or args.cryodrgn):
        print("peers: not run (pass --aspire and/or --cryodrgn; needs /work/peers)")
        return
    if not PEERS.exists():
        print("peers: /work/peers not found")
        return
    small, pixel, _, euler, shift, ctf, plain, with_ctf = _peer_data(
        truth, args.peer_count, args.peer_size, args.peer_noise
    )
    print(
        f"peers: {args.peer_count} × {args.peer_size}² projections of the Fourier-cropped map, "
        f"white noise σ = {args.peer_noise} × signal std, {args.threads} thread(s)"
    )
    if args.aspire:
        _aspire(folder, plain, euler, small, pixel, args.threads)
    if args.cryodrgn:
        _cryodrgn(folder, with_ctf, euler, shift, ctf, small, pixel, args.threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--in-process-count", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--aspire", action="store_true")
    parser.add_argument("--cryodrgn", action="store_true")
    parser.add_argument("--peer-count", type=int, default=1000)
    parser.add_argument("--peer-size", type=int, default=64)
    parser.add_argument("--peer-noise", type=float, default=3.0)
    parser.add_argument("--skip-relion", action="store_true")
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
        if args.skip_relion:
            print("whole-process comparison skipped (--skip-relion)")
        elif shutil.which("relion_project") is None:
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
        _in_process(args.in_process_count, args.threads, folder)
        _peers(args, folder, truth)


if __name__ == "__main__":
    main()
