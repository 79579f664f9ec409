"""Benchmark: `cryoglass refine3d` vs RELION 3.1 auto-refine on the same particles without poses.

Data (not timed): ``count`` particles of the TRPV1 model map (box ``box``, pixel size so that
the box spans 125 Å … the map's extent), uniform random poses, origins with σ = 1.5 px, a CTF
(defocus 1–2.5 µm) and white noise at ``--snr``; images divided by the noise σ (RELION expects
normalised particles).  Both programs get the same STAR file, the truth low-passed to 30 Å as
the reference (``--ini_high 30``), 7.5° initial sampling with a 15° coarse pass, local searches
from 3.75°, offsets ±5 px, the same mask diameter and C1 (the map is C4-symmetric, so errors are
measured modulo C4):

    mpirun -np 3 relion_refine_mpi --i particles.star --ref reference.mrc --o relion/run
        --auto_refine --split_random_halves --ini_high 30 --particle_diameter D --ctf
        --flatten_solvent --zero_mask --oversampling 1 --healpix_order 2
        --auto_local_healpix_order 4 --offset_range 5 --offset_step 1 --sym C1
        --low_resol_join_halves 40 --norm --scale --firstiter_cc --j 1 --pool 3
        --dont_combine_weights_via_disc --random_seed 0
    cryoglass refine3d particles.star --ref reference.mrc --out cryoglass --ini-high 30
        --particle-diameter D --healpix-order 3 --offset-range 5 --offset-step 1
        (2 torch threads: the same two cores RELION's two worker ranks use)

Scores: FSC of the final map (run_class001.mrc) against the truth at 0.5 (both masked by a
soft sphere of the particle diameter), the gold-standard resolution each program reports,
the median angular error of the final poses (modulo C4), wall time and peak resident memory
(the largest process; RELION: its largest rank).  Goal: cryoglass at least RELION's resolution
and angular accuracy, in at most RELION's wall time (goal: a quarter).  CPU-heavy: run on a
quiet machine and note the load average.

Run: python benchmarks/bench_refine3d.py [--count 1500] [--box 48] [--snr 0.1] [--skip-relion]
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

EXTENT_ANGSTROM = 125.0  # the field of view: the box spans this many Å


def _write_inputs(folder: Path, count: int, box: int, snr: float, seed: int):
    """particles.star/.mrcs, reference.mrc, truth.mrc; returns (pixel, true euler)."""
    import torch

    from cryoglass.data import model_map
    from cryoglass.fourier import lowpass
    from cryoglass.io import make_particle_set, write_mrc, write_relion_star
    from cryoglass.simulate.dataset import (
        ParticleDistributions,
        ParticleParameters,
        simulate_dataset,
    )

    pixel = EXTENT_ANGSTROM / box
    truth = model_map(box=box, pixel_size_angstrom=pixel, sigma_angstrom=max(1.5, pixel))[0]
    truth = truth.float()
    dist = ParticleDistributions(shift_scale_angstrom=1.5 * pixel)
    chunks = list(
        simulate_dataset(
            truth,
            n=count,
            pixel_size_angstrom=pixel,
            distributions=dist,
            snr=snr,
            seed=seed,
            keep_clean=True,
        )
    )
    images = torch.cat([c.images for c in chunks])
    noise_std = float(torch.cat([c.images - c.clean for c in chunks]).std())
    params = ParticleParameters.concatenate([c.parameters for c in chunks])
    images = images / noise_std  # normalised particles: noise σ = 1
    write_mrc(folder / "particles.mrcs", images, pixel_size_angstrom=pixel, stack=True)
    write_mrc(folder / "truth.mrc", truth, pixel_size_angstrom=pixel)
    reference = lowpass(truth, ndim=3, resolution_angstrom=30.0, pixel_size_angstrom=pixel)
    write_mrc(folder / "reference.mrc", reference, pixel_size_angstrom=pixel)
    particles = make_particle_set(
        [f"{i + 1}@particles.mrcs" for i in range(count)],
        image_root=folder,
        pixel_size_angstrom=pixel,
        image_size=box,
        ctf=params.ctf,
    )
    write_relion_star(folder / "particles.star", particles)
    return pixel, params.euler_deg


def _angular_error(star: Path, true_euler):
    """Median angle [deg] between found and true poses, modulo C4 (the map's symmetry)."""
    import torch

    from cryoglass.geometry import euler_to_matrix, symmetry_matrices
    from cryoglass.io import read_particles

    found = read_particles(star).euler_deg
    a, b = euler_to_matrix(found.double()), euler_to_matrix(true_euler.double())
    best = None
    for op in symmetry_matrices("C4", dtype=torch.float64):
        trace = (a.transpose(1, 2) @ (b @ op)).diagonal(dim1=1, dim2=2).sum(-1)
        angle = torch.rad2deg(torch.acos(((trace - 1) / 2).clamp(-1, 1)))
        best = angle if best is None else torch.minimum(best, angle)
    return float(best.median())


def _fsc_to_truth(map_path: Path, truth_path: Path, diameter: float) -> float:

    from cryoglass.io import read_mrc
    from cryoglass.validate import fourier_shell_correlation, fsc_summary
    from cryoglass.validate.masks import soft_sphere_mask

    volume, info = read_mrc(map_path)
    truth, _ = read_mrc(truth_path)
    n, pixel = truth.shape[-1], float(info.pixel_size_angstrom or 1.0)
    mask = soft_sphere_mask((n,) * 3, radius_px=diameter / (2 * pixel), edge_width_px=5.0)
    fsc = fourier_shell_correlation((volume * mask).double(), (truth * mask).double())
    return fsc_summary(fsc, box_size=n, pixel_size_angstrom=pixel).resolution_05_angstrom


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], cwd: Path, env: dict) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (all descendants) and the peak RSS [MiB] of the largest one."""
    start, cpu = time.perf_counter(), _cpu_children()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, _cpu_children() - cpu, peak


def finish(rows: dict, folder: Path) -> None:
    """Print the time ratios and the load, and write ``folder/bench.json``."""
    if "relion" in rows:
        ratio = rows["cryoglass"]["wall_s"] / rows["relion"]["wall_s"]
        cpu_ratio = rows["cryoglass"]["cpu_s"] / rows["relion"]["cpu_s"]
        print(f"time ratio cryoglass/relion: {ratio:.3g} wall, {cpu_ratio:.3g} CPU")
    print(f"load after: {os.getloadavg()[0]:.2f}; folder {folder}")
    (folder / "bench.json").write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--box", type=int, default=48)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-relion", action="store_true")
    parser.add_argument("--keep", type=Path, help="Keep the work folder here.")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench_refine3d_"))
    folder.mkdir(parents=True, exist_ok=True)
    pixel, true_euler = _write_inputs(folder, args.count, args.box, args.snr, args.seed)
    diameter = 0.9 * args.box * pixel
    env = dict(os.environ, OMP_NUM_THREADS="1")
    print(
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.2f}; {args.count} × {args.box}², {pixel:.3f} Å/px, SNR {args.snr}"
    )
    rows = {}
    if not args.skip_relion and shutil.which("relion_refine_mpi"):
        (folder / "relion").mkdir(exist_ok=True)
        command = [
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "3",
            "relion_refine_mpi",
            "--i",
            "particles.star",
            "--ref",
            "reference.mrc",
            "--o",
            "relion/run",
            "--auto_refine",
            "--split_random_halves",
            "--ini_high",
            "30",
            "--particle_diameter",
            f"{diameter:.1f}",
            "--ctf",
            "--flatten_solvent",
            "--zero_mask",
            "--oversampling",
            "1",
            "--healpix_order",
            "2",
            "--auto_local_healpix_order",
            "4",
            "--offset_range",
            "5",
            "--offset_step",
            "1",
            "--sym",
            "C1",
            "--low_resol_join_halves",
            "40",
            "--norm",
            "--scale",
            "--firstiter_cc",
            "--j",
            "1",
            "--pool",
            "3",
            "--dont_combine_weights_via_disc",
            "--random_seed",
            "0",
            "--pad",
            "2",
        ]
        wall, cpu, peak = _run(command, folder, env)
        model = folder / "relion" / "run_model.star"
        reported = None
        if model.is_file():
            for line in model.read_text().splitlines():
                if line.startswith("_rlnCurrentResolution"):
                    reported = float(line.split()[1])
        rows["relion"] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_mib": peak,
            "reported_resolution": reported,
            "fsc05_to_truth": _fsc_to_truth(
                folder / "relion" / "run_class001.mrc", folder / "truth.mrc", diameter
            ),
            "median_angle_error_deg": _angular_error(
                folder / "relion" / "run_data.star", true_euler
            ),
        }
    env_cg = dict(os.environ, OMP_NUM_THREADS="2")
    command = [
        sys.executable,
        "-m",
        "cryoglass",
        "refine3d",
        "particles.star",
        "--ref",
        "reference.mrc",
        "--out",
        "cryoglass",
        "--ini-high",
        "30",
        "--particle-diameter",
        f"{diameter:.1f}",
        "--healpix-order",
        "3",
        "--offset-range",
        "5",
        "--offset-step",
        "1",
        "--json",
        "--overwrite",
    ]
    start, cpu = time.perf_counter(), _cpu_children()
    proc = subprocess.run(
        command, cwd=folder, env=env_cg, check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    summary = json.loads(proc.stdout)
    rows["cryoglass"] = {
        "wall_s": wall,
        "cpu_s": _cpu_children() - cpu,
        "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "reported_resolution": summary["resolution_angstrom"],
        "iterations": summary["iterations"],
        "fsc05_to_truth": _fsc_to_truth(
            folder / "cryoglass" / "run_class001.mrc", folder / "truth.mrc", diameter
        ),
        "median_angle_error_deg": _angular_error(
            folder / "cryoglass" / "run_data.star", true_euler
        ),
    }
    for name, row in rows.items():
        print(
            f"{name:>10}: {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU, "
            f"peak {row['peak_mib']:.0f} MiB, reported "
            f"{row['reported_resolution']} Å, FSC-to-truth 0.5 at {row['fsc05_to_truth']:.2f} Å, "
            f"median angular error {row['median_angle_error_deg']:.2f}°"
        )
    finish(rows, folder)


if __name__ == "__main__":
    main()
