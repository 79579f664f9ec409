"""Benchmark: atomic model → electrostatic potential map at 1 Å/px (goal < 1 s on 2 cores).

Models: the bundled TRPV1 (PDB 3J5P, 15,820 atoms) and, when present, PDB 7PBL from the shared
data.  Reference in the same run: the dense separable sum (every atom's five Gaussians evaluated
on the full x, y, z axes and contracted by matrix products, as ``cryoglass.simulate.gaussian_map``
does for phantoms), which is what the windowed splatting replaces.  No external peer (abTEM is
not installed).

    python benchmarks/bench_potential.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from cryoglass.data import trpv1_model_path
from cryoglass.io import read_structure
from cryoglass.simulate import (
    POTENTIAL_CONSTANT_VOLT_ANGSTROM2,
    model_center_angstrom,
    potential_map,
    required_box_size,
    scattering_parameters,
)

SHARED = Path(os.environ.get("CRYOGLASS_SHARED_DATA", "/work/shared/data"))


def dense_reference(xyz, elements, bfactors, shape, pixel, origin):
    """Σ_atoms Σ_i C a_i g_z g_y g_x with every Gaussian on the full axes (point sampling)."""
    a, b = scattering_parameters(elements, dtype=xyz.dtype)
    widths = (b + bfactors[:, None]).reshape(-1)
    amps = (a * POTENTIAL_CONSTANT_VOLT_ANGSTROM2).reshape(-1)
    centers = ((xyz - origin) / pixel).repeat_interleave(5, dim=0)
    d, h, w = shape

    def axis(n, c, wid):
        x = ((torch.arange(n, dtype=xyz.dtype) - n // 2)[None, :] - c[:, None]) * pixel
        return torch.sqrt(4 * math.pi / wid)[:, None] * torch.exp(
            -4 * math.pi**2 * x * x / wid[:, None]
        )

    out = torch.zeros(d * h, w, dtype=xyz.dtype)
    for chunk in torch.split(torch.arange(centers.shape[0]), 8192):
        gz = axis(d, centers[chunk, 2], widths[chunk]) * amps[chunk, None]
        gy = axis(h, centers[chunk, 1], widths[chunk])
        gx = axis(w, centers[chunk, 0], widths[chunk])
        out += (gz[:, :, None] * gy[:, None, :]).reshape(len(chunk), -1).T @ gx
    return out.reshape(d, h, w)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def bench_model(name: str, path: Path, repeats: int) -> None:
    """Time one model (and the dense reference for TRPV1)."""
    model = read_structure(path)
    xyz = model.coordinates_angstrom.float()
    bfac = model.bfactors_a2.float()
    center = model_center_angstrom(xyz, model.elements)
    box = required_box_size(
        xyz, pixel_size_angstrom=1.0, origin_angstrom=center, margin_angstrom=4.0
    )
    shape = (box, box, box)

    def ours(sampling):
        return potential_map(
            xyz,
            model.elements,
            shape=shape,
            pixel_size_angstrom=1.0,
            bfactors_a2=bfac,
            origin_angstrom=center,
            sampling=sampling,
        )

    potential_map(
        xyz[:100],
        model.elements[:100],
        shape=(32, 32, 32),
        pixel_size_angstrom=1.0,
        outside="ignore",
    )  # warm-up
    t_int, v_int = timed(lambda: ours("integrated"), repeats)
    t_pt, v_pt = timed(lambda: ours("point"), repeats)
    print(
        f"{name}: {len(model.elements)} atoms, box {box}^3 at 1 Å/px, B {float(bfac.min()):.0f}–"
        f"{float(bfac.max()):.0f} Å²"
    )
    print(
        f"  cryoglass potential_map integrated: {t_int:.3f} s   point: {t_pt:.3f} s   (goal < 1 s)"
    )
    if name.startswith("TRPV1"):
        t_ref, v_ref = timed(
            lambda: dense_reference(xyz, model.elements, bfac, shape, 1.0, center), 1
        )
        err = float((v_ref - v_pt).norm() / v_ref.norm())
        print(
            f"  dense separable reference: {t_ref:.3f} s   "
            f"ratio ours/reference {t_pt / t_ref:.3f}   "
            f"relative difference (point) {err:.2e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    models = [("TRPV1 3J5P (bundled)", trpv1_model_path())]
    if (SHARED / "models" / "pdb7pbl.pdb").exists():
        models.append(("7PBL (shared data)", SHARED / "models" / "pdb7pbl.pdb"))
    for name, path in models:
        bench_model(name, path, args.repeats)


if __name__ == "__main__":
    main()
