"""Benchmark: `cryoglass abinitio` vs RELION 3.1's SGD initial model on the same particles.

Data (not timed): the particles of ``bench_refine3d.py`` (TRPV1 model map, uniform random
poses, origins σ = 1.5 px, CTF, white noise at ``--snr``, normalised) — no poses are given to
either program.  Each makes one map from a random start:

    relion_refine --i particles.star --o relion/run --sgd --denovo_3dref --K 1 --sym C1
        --particle_diameter D --ctf --zero_mask --flatten_solvent --healpix_order 1
        --offset_range 6 --offset_step 2 --oversampling 1 --pad 1 --skip_gridding
        --dont_combine_weights_via_disc --pool 3 --j 2 --random_seed 1
        --sgd_ini_iter T/6 --sgd_inbetween_iter 4T/6 --sgd_fin_iter T/6
        --sgd_ini_subset 100 --sgd_fin_subset 300 --sgd_ini_resol 35 --sgd_fin_resol 15
    cryoglass abinitio particles.star --out cryoglass --particle-diameter D --seed 1
        --iterations T --ini-batch 100 --final-batch 300
        (2 torch threads)

The same budget for both: ``T = --iterations`` minibatch steps (default 120, cryoglass's
default; RELION 3.1's own default is 300 with minibatches up to 500), 35 → 15 Å, minibatches
100 → 300.

Scores: each final map is superposed on the truth over rotations, shifts and hand
(:func:`cryoglass.validate.align.align_maps` — projections cannot determine the hand), then
the FSC with the truth inside a soft sphere of the particle diameter: its 0.5 and 0.143
crossings, and the real-space correlation.  Wall time, CPU seconds of all processes, peak
memory.  Goal (issue 17): at least RELION's map, in less time.

Run: python benchmarks/bench_abinitio.py [--count 1000] [--box 48] [--snr 0.1] [--seed 0]
     [--iterations 120] [--skip-relion] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_here = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_refine3d", _here / "bench_refine3d.py")
refine_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refine_bench)


def _score(map_path: Path, truth_path: Path, diameter: float) -> dict:
    """Superpose on the truth (rotation, shift, hand), then FSC 0.5/0.143 and correlation."""
    from cryoglass.io import read_mrc
    from cryoglass.validate import fourier_shell_correlation, fsc_summary
    from cryoglass.validate.align import align_maps
    from cryoglass.validate.masks import soft_sphere_mask

    volume, info = read_mrc(map_path)
    truth, _ = read_mrc(truth_path)
    n, pixel = truth.shape[-1], float(info.pixel_size_angstrom or 1.0)
    found = align_maps(truth.double(), volume.double(), pixel_size_angstrom=pixel)
    mask = soft_sphere_mask((n,) * 3, radius_px=diameter / (2 * pixel), edge_width_px=5.0)
    fsc = fourier_shell_correlation((found.aligned * mask).double(), (truth * mask).double())
    summary = fsc_summary(fsc, box_size=n, pixel_size_angstrom=pixel)
    return {
        "fsc05_to_truth": summary.resolution_05_angstrom,
        "fsc0143_to_truth": summary.resolution_0143_angstrom,
        "correlation": found.correlation,
        "mirrored": found.mirrored,
    }


def _relion_final_map(folder: Path) -> Path:
    """The last iteration's class map RELION's SGD wrote (run_itNNN_class001.mrc)."""
    maps = sorted(folder.glob("run_it*_class001.mrc"))
    if not maps:
        raise SystemExit(f"relion_refine wrote no class map in {folder}")
    return maps[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--box", type=int, default=48)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the simulated data.")
    parser.add_argument("--iterations", type=int, default=120, help="SGD steps of both.")
    parser.add_argument("--skip-relion", action="store_true")
    parser.add_argument("--keep", type=Path, help="Keep the work folder here.")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench_abinitio_"))
    folder.mkdir(parents=True, exist_ok=True)
    pixel, _ = refine_bench._write_inputs(folder, args.count, args.box, args.snr, args.seed)
    diameter = 0.9 * args.box * pixel
    print(
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.2f}; {args.count} × {args.box}², {pixel:.3f} Å/px, SNR {args.snr}"
    )
    rows = {}
    if not args.skip_relion and shutil.which("relion_refine"):
        (folder / "relion").mkdir(exist_ok=True)
        outer = max(1, args.iterations // 6)
        command = [
            "relion_refine",
            *("--i", "particles.star", "--o", "relion/run", "--sgd", "--denovo_3dref"),
            *("--K", "1", "--sym", "C1", "--particle_diameter", f"{diameter:.1f}", "--ctf"),
            *("--zero_mask", "--flatten_solvent", "--healpix_order", "1"),
            *("--offset_range", "6", "--offset_step", "2", "--oversampling", "1"),
            *("--pad", "1", "--skip_gridding", "--dont_combine_weights_via_disc"),
            *("--pool", "3", "--j", "2", "--random_seed", "1"),
            *("--sgd_ini_iter", str(outer), "--sgd_fin_iter", str(outer)),
            *("--sgd_inbetween_iter", str(args.iterations - 2 * outer)),
            *("--sgd_ini_subset", "100", "--sgd_fin_subset", "300"),
            *("--sgd_ini_resol", "35", "--sgd_fin_resol", "15"),
        ]
        wall, cpu, peak = refine_bench._run(command, folder, dict(os.environ))
        final = _relion_final_map(folder / "relion")
        rows["relion"] = {"wall_s": wall, "cpu_s": cpu, "peak_mib": peak, "map": final.name}
        rows["relion"].update(_score(final, folder / "truth.mrc", diameter))
    command = [
        sys.executable,
        *("-m", "cryoglass", "abinitio", "particles.star", "--out", "cryoglass"),
        *("--particle-diameter", f"{diameter:.1f}", "--seed", "1", "--json", "--overwrite"),
        *("--iterations", str(args.iterations), "--ini-batch", "100", "--final-batch", "300"),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    start, cpu = time.perf_counter(), refine_bench._cpu_children()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rows["cryoglass"] = {
        "wall_s": wall,
        "cpu_s": refine_bench._cpu_children() - cpu,
        "peak_mib": refine_bench.resource.getrusage(refine_bench.resource.RUSAGE_CHILDREN).ru_maxrss
        / 1024,
        "map": "initial_model.mrc",
    }
    rows["cryoglass"].update(
        _score(folder / "cryoglass" / "initial_model.mrc", folder / "truth.mrc", diameter)
    )
    for name, row in rows.items():
        print(
            f"{name:>10}: {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU, "
            f"peak {row['peak_mib']:.0f} MiB; after superposition (mirrored: {row['mirrored']}) "
            f"FSC-to-truth 0.5 at {row['fsc05_to_truth']:.2f} Å, 0.143 at "
            f"{row['fsc0143_to_truth']:.2f} Å, correlation {row['correlation']:.3f}"
        )
    refine_bench.finish(rows, folder)


if __name__ == "__main__":
    main()
