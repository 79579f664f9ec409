"""Peer benchmark: N astigmatic 2D CTFs on the rfft grid with cryojax or plain numpy (PEER python).

    /work/peers/bin/python benchmarks/peers/peer_ctf.py --n 1000 --box 256 --tool cryojax \
        --repeat 3 [--out ctf.npy]

Same workload as ``benchmarks/bench_ctf.py`` (its "B = 0" case): seed-0 draws of defocus U in
[5000, 25000] Å, V = U + [-1000, 1000] Å, astigmatism angle in [-180, 180] deg, 300 kV, Cs 2.7 mm,
amplitude contrast 0.1, pixel 1 Å, float32, rfft grid (box, box//2 + 1).  Prints one JSON line
``{"tool", "version", "n_images", "box", "seconds_median", "seconds_all", "images_per_s", ...}``.
Only the CTF evaluation is timed (median of ``--repeat`` after one untimed warm-up/compile call);
the frequency grid is built once outside the timing, for both tools.

``--out`` saves the CTFs in cryoglass's layout and sign (RELION's): (N, box, box//2 + 1) float32,
rows centred (ky = 0 at row box//2), kx >= 0 along the last axis.

cryojax conventions (verified against ``cryoglass.ctf.ctf_2d``, see README.md):
``AstigmaticCTF(defocus_in_angstroms=(U + V)/2, astigmatism_in_angstroms=U - V,
astigmatism_angle=90 - angle_RELION)`` evaluated with ``amplitude_contrast_ratio=Q0`` equals
**minus** RELION's CTF (cryojax measures the azimuth from the ky axis, and its sin() argument has
the opposite sign).  Its frequency grid has ky in FFT order (DC in row 0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

ELECTRON_REST_ENERGY_EV = 510998.95
HC_EV_ANGSTROM = 12398.419843320026


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--box", type=int, default=256)
    parser.add_argument("--tool", choices=("cryojax", "numpy"), required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    return parser.parse_args()


def limit_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
    ).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def draw_parameters(n: int) -> dict[str, np.ndarray]:
    """The same seed-0 draws, in the same order, as benchmarks/bench_ctf.py."""
    rng = np.random.default_rng(0)
    u = rng.uniform(5000, 25000, n).astype(np.float32)
    v = (u + rng.uniform(-1000, 1000, n)).astype(np.float32)
    angle = rng.uniform(-180, 180, n).astype(np.float32)
    return {"u": u, "v": v, "angle": angle, "kv": 300.0, "cs": 2.7, "q0": 0.1, "pixel": 1.0}


def wavelength_angstrom(kv: float) -> float:
    """Relativistic electron wavelength λ = hc / sqrt(E (2 m c² + E)), E = e·V."""
    energy = kv * 1e3
    return HC_EV_ANGSTROM / np.sqrt(energy * (2 * ELECTRON_REST_ENERGY_EV + energy))


def numpy_runner(p: dict, box: int):
    """Plain numpy float32: CTF = sin(π λ Δf(α) k² − π/2 Cs λ³ k⁴ + asin Q0), centred rows."""
    ky = ((np.arange(box) - box // 2) / (box * p["pixel"])).astype(np.float32)[:, None]
    kx = (np.arange(box // 2 + 1) / (box * p["pixel"])).astype(np.float32)[None, :]
    k2 = kx * kx + ky * ky
    azimuth = np.arctan2(ky, kx)
    lam = np.float32(wavelength_angstrom(p["kv"]))
    cs_a = np.float32(p["cs"] * 1e7)
    mean = (0.5 * (p["u"] + p["v"]))[:, None, None]
    half_diff = (0.5 * (p["u"] - p["v"]))[:, None, None]
    angle = np.deg2rad(p["angle"])[:, None, None]
    spherical = np.float32(0.5 * np.pi) * cs_a * lam**3 * k2 * k2 - np.float32(np.arcsin(p["q0"]))

    def run():
        defocus = mean + half_diff * np.cos(2 * (azimuth - angle))
        return np.sin(np.float32(np.pi) * lam * defocus * k2 - spherical)

    return np.__version__, run, lambda ctf: ctf


def cryojax_runner(p: dict, box: int):
    import cryojax
    import cryojax.simulator as cxs
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from cryojax.constants import wavelength_from_kilovolts
    from cryojax.ndimage import make_frequency_grid

    grid = make_frequency_grid((box, box), p["pixel"], outputs_rfftfreqs=True)
    wavelength = wavelength_from_kilovolts(p["kv"])
    mean = jnp.asarray(0.5 * (p["u"] + p["v"]))
    astigmatism = jnp.asarray(p["u"] - p["v"])
    angle = jnp.asarray(90.0 - p["angle"])  # RELION angle from kx -> cryojax angle from ky

    @eqx.filter_jit
    def evaluate(grid, mean, astigmatism, angle):
        def one(df, ast, ang):
            ctf = cxs.AstigmaticCTF(
                defocus_in_angstroms=df,
                astigmatism_in_angstroms=ast,
                astigmatism_angle=ang,
                spherical_aberration_in_mm=p["cs"],
            )
            return ctf(grid, wavelength, amplitude_contrast_ratio=p["q0"])

        return jax.vmap(one)(mean, astigmatism, angle)

    def run():
        return evaluate(grid, mean, astigmatism, angle).block_until_ready()

    def to_relion_layout(ctf):
        # cryojax = -CTF_RELION; rows in FFT order -> centred rows.
        return -np.fft.fftshift(np.asarray(ctf, dtype=np.float32), axes=-2)

    return cryojax.__version__, run, to_relion_layout


def main() -> None:
    args = parse_args()
    limit_threads(args.threads)
    params = draw_parameters(args.n)
    runner = cryojax_runner if args.tool == "cryojax" else numpy_runner
    version, run, convert = runner(params, args.box)

    ctf = run()  # warm-up / compile
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        ctf = run()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    if args.out:
        np.save(args.out, convert(ctf))
    print(
        json.dumps(
            {
                "tool": args.tool,
                "version": version,
                "n_images": args.n,
                "box": args.box,
                "grid": [args.box, args.box // 2 + 1],
                "dtype": str(np.asarray(ctf).dtype),
                "seconds_median": round(median, 4),
                "seconds_all": [round(t, 4) for t in times],
                "images_per_s": round(args.n / median, 1),
                "threads": args.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
