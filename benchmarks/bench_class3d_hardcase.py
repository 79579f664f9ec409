"""Benchmark: RELION 3.1 Class3D on class3d's hard test case, beside cryoglass.

The data are those of the strict-xfail test in ``tests/unit/test_refine_class3d.py`` (two 24³
maps of 12 Gaussian blobs, 3 moved; 300 particles with CTF, random poses, white noise
``noise`` × the signal σ), background-normalised for RELION.  Both programs start from the mean
of the two maps, K = 2, 10 iterations, 15° sampling, origins ±2 px, T = 4; scored by the
adjusted Rand index of the classes against the truth:

    relion_refine --i particles.star --ref ref.mrc --o r/run --K 2 --iter 10 --ini_high 6
        --particle_diameter 20 --ctf --flatten_solvent --zero_mask --firstiter_cc
        --healpix_order 2 --offset_range 2 --offset_step 1 --tau2_fudge 4 --sym C1
        --oversampling 1 --pad 2 --j 1 --pool 3 --dont_combine_weights_via_disc
        --dont_check_norm --random_seed SEED

Run from the repository root: python benchmarks/bench_class3d_hardcase.py NOISE SEED [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))


def main() -> None:
    import starfile
    import test_refine_class3d as case
    import torch

    from cryoglass.classify import adjusted_rand_index
    from cryoglass.io import make_particle_set, write_mrc, write_relion_star

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("noise", type=float)
    parser.add_argument("seed", type=int)
    parser.add_argument("--keep", type=Path, help="Keep the work folder here.")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench_class3d_hard_"))
    (folder / "r").mkdir(parents=True, exist_ok=True)
    count, n = 300, case.N

    start = time.perf_counter()
    state, labels, maps, (images, ctf) = case._classify(
        noise=args.noise, seed=args.seed, count=count, iterations=10
    )
    cg_seconds = time.perf_counter() - start
    cg_ari = adjusted_rand_index(labels, state.classes)

    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    background = images[:, (yy**2 + xx**2) > 10**2]
    normalised = (images - background.mean(1)[:, None, None]) / background.std(1)[:, None, None]
    write_mrc(folder / "particles.mrcs", normalised, pixel_size_angstrom=1.0, stack=True)
    write_mrc(folder / "ref.mrc", (maps[0] + maps[1]) / 2, pixel_size_angstrom=1.0)
    particles = make_particle_set(
        [f"{i + 1}@particles.mrcs" for i in range(count)],
        image_root=folder,
        pixel_size_angstrom=1.0,
        image_size=n,
        ctf=ctf,
    )
    write_relion_star(folder / "particles.star", particles)
    command = [
        "relion_refine",
        *("--i", "particles.star", "--ref", "ref.mrc", "--o", "r/run", "--K", "2"),
        *("--iter", "10", "--ini_high", "6", "--particle_diameter", "20", "--ctf"),
        *("--flatten_solvent", "--zero_mask", "--firstiter_cc", "--healpix_order", "2"),
        *("--offset_range", "2", "--offset_step", "1", "--tau2_fudge", "4", "--sym", "C1"),
        *("--oversampling", "1", "--pad", "2", "--j", "1", "--pool", "3"),
        *("--dont_combine_weights_via_disc", "--dont_check_norm"),
        *("--random_seed", str(args.seed)),
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    relion_seconds = time.perf_counter() - start
    data = starfile.read(sorted((folder / "r").glob("run_it*_data.star"))[-1])["particles"]
    order = data["rlnImageName"].str.split("@").str[0].astype(int).to_numpy() - 1
    classes = torch.full((count,), -1)
    classes[torch.as_tensor(order)] = torch.as_tensor(data["rlnClassNumber"].to_numpy())
    relion_ari = adjusted_rand_index(labels, classes)
    print(
        f"noise {args.noise} seed {args.seed}: cryoglass ARI {cg_ari:.3f} ({cg_seconds:.1f} s), "
        f"RELION ARI {relion_ari:.3f} ({relion_seconds:.0f} s); folder {folder}"
    )


if __name__ == "__main__":
    main()
