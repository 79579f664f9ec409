"""Benchmark: multislice of a 256² × 400 Å specimen at 0.5 Å sampling, and thickness scaling.

The specimen is TRPV1's potential (bundled model, B = 20 Å²) at 0.5 Å/px, stacked along z
(``cryoglass.simulate.stack_volume``) to the thickness; slices of 2 Å (4 voxels).  Times cover
the multislice propagation + lens + |ψ|² only (the potential is built once).  No peer (abTEM is
not installed).

    python benchmarks/bench_multislice.py [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from cryoglass.ctf import CTFParams
from cryoglass.data import trpv1_model_path
from cryoglass.io import read_structure
from cryoglass.simulate import multislice_image, potential_map, stack_volume


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slice", type=float, default=2.0, help="slice thickness [Å]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    model = read_structure(trpv1_model_path())
    pixel = 0.5
    t = time.perf_counter()
    particle = potential_map(
        model.coordinates_angstrom.float(),
        model.elements,
        shape=(224, 256, 256),
        pixel_size_angstrom=pixel,
        bfactors_a2=20.0,
    )
    print(f"TRPV1 potential 224×256×256 at 0.5 Å/px: {time.perf_counter() - t:.2f} s")
    ctf = CTFParams(10000.0, 10000.0, amplitude_contrast=0.07)
    generator = torch.Generator().manual_seed(0)
    for thickness in (100.0, 200.0, 400.0):
        specimen = stack_volume(
            particle, thickness_angstrom=thickness, pixel_size_angstrom=pixel, generator=generator
        )
        multislice_image(
            specimen[:8], ctf, pixel_size_angstrom=pixel, slice_thickness_angstrom=args.slice
        )
        t = time.perf_counter()
        multislice_image(
            specimen, ctf, pixel_size_angstrom=pixel, slice_thickness_angstrom=args.slice
        )
        elapsed = time.perf_counter() - t
        n_slices = -(-specimen.shape[0] * pixel // args.slice)
        print(
            f"256² × {thickness:.0f} Å ({specimen.shape[0]} voxels, "
            f"{n_slices:.0f} slices of {args.slice} Å): "
            f"{elapsed:.3f} s  ({1e3 * elapsed / n_slices:.2f} ms/slice)"
        )


if __name__ == "__main__":
    main()
