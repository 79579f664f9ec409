"""Benchmark: a batch of 2D CTFs (1000 particles, 256² images, rfft grid, float32).

Compares cryoglass.ctf.ctf_2d with a plain numpy implementation of the same formula
(frequency grid computed once, broadcast over particles, angle form of the astigmatism), in the
same run, and — when the peer environment exists (/work/peers or $CRYOGLASS_PEERS_PYTHON, see
benchmarks/peers/README.md) — with cryojax on the same draws (benchmarks/peers/peer_ctf.py, the
"B = 0" case).  Goal: ≤ 0.3 s for 1000 × 256² on 2 cores.

    python benchmarks/bench_ctf.py [--n 1000] [--box 256] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cryoglass.ctf import CTFParams, ctf_2d


def numpy_ctf(u, v, angle_deg, kv, cs_mm, q0, bfactor, box, pixel):
    """The same CTF in plain numpy float32 (rfft grid, centred rows), broadcast over particles."""
    ky = ((np.arange(box) - box // 2) / (box * pixel)).astype(np.float32)[:, None]
    kx = (np.arange(box // 2 + 1) / (box * pixel)).astype(np.float32)[None, :]
    k2 = kx**2 + ky**2
    alpha = np.arctan2(ky, kx)
    lam = 12398.419843320026 / np.sqrt(kv * 1e3 * (2 * 510998.95 + kv * 1e3))
    col = (slice(None), None, None)
    defocus = 0.5 * (u + v)[col] + 0.5 * (u - v)[col] * np.cos(
        2 * (alpha - np.deg2rad(angle_deg)[col])
    )
    chi = (
        np.float32(math.pi) * lam[col] * defocus * k2
        - np.float32(0.5 * math.pi) * (cs_mm * 1e7 * lam**3)[col] * k2 * k2
        + np.arcsin(q0)[col]
    )
    return np.sin(chi) * np.exp(-0.25 * bfactor[col] * k2)


PEERS_PYTHON = Path(os.environ.get("CRYOGLASS_PEERS_PYTHON", "/work/peers/bin/python"))
PEER_SCRIPT = Path(__file__).resolve().parent / "peers" / "peer_ctf.py"


def _load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"


def peer_cryojax(ours: np.ndarray, seconds: float, *, n: int, box: int, threads: int, repeats: int):
    """Time cryojax on the same CTFs (peer venv) and compare with ours (B = 0)."""
    if not PEERS_PYTHON.exists():
        print("peer cryojax: not available (create /work/peers as in benchmarks/peers/README.md)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ctf.npy"
        command = [
            str(PEERS_PYTHON), str(PEER_SCRIPT), "--n", str(n), "--box", str(box),
            "--tool", "cryojax", "--repeat", str(repeats), "--threads", str(threads),
            "--out", str(out),
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            print(f"peer cryojax: failed ({run.stderr.strip().splitlines()[-1:]})")
            return
        result = json.loads(run.stdout.strip().splitlines()[-1])
        theirs = np.load(out)
    diff = np.abs(theirs.astype(np.float64) - ours)
    rel = np.linalg.norm(diff) / np.linalg.norm(ours)
    peer_s = result["seconds_median"]
    print(
        f"peer cryojax {result['version']} (B = 0): {peer_s:.3f} s "
        f"({result['images_per_s']:8.0f} images/s) | ratio cryoglass/cryojax {seconds / peer_s:.2f}"
        f" | max |diff| {diff.max():.1e}, rel diff {rel:.1e} [load {_load()}]"
    )


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--box", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    n, box, pixel = args.n, args.box, 1.0
    u = rng.uniform(5000, 25000, n).astype(np.float32)
    v = (u + rng.uniform(-1000, 1000, n)).astype(np.float32)
    angle = rng.uniform(-180, 180, n).astype(np.float32)
    kv = np.full(n, 300.0, np.float32)
    cs = np.full(n, 2.7, np.float32)
    q0 = np.full(n, 0.1, np.float32)
    zero_b = np.zeros(n, np.float32)
    some_b = rng.uniform(0, 100, n).astype(np.float32)

    def params(b: np.ndarray) -> CTFParams:
        t = torch.from_numpy
        return CTFParams(t(u), t(v), t(angle), t(kv), t(cs), t(q0), bfactor_a2=t(b))

    print(f"machine: {platform.machine()} {platform.processor() or ''} | {os.cpu_count()} CPUs")
    print(f"torch {torch.__version__} ({args.threads} threads), numpy {np.__version__}")
    print(f"workload: {n} CTFs of {box}x{box} (rfft grid {box}x{box // 2 + 1}), float32")
    ours_zero_b = None
    for label, b in (("B = 0", zero_b), ("B per particle", some_b)):
        p = params(b)
        ours = median_time(
            lambda p=p: ctf_2d(p, image_size=box, pixel_size_angstrom=pixel), args.repeats
        )
        ref = median_time(
            lambda b=b: numpy_ctf(u, v, angle, kv, cs, q0, b, box, pixel), args.repeats
        )
        a = ctf_2d(p, image_size=box, pixel_size_angstrom=pixel).numpy()
        diff = float(np.abs(a - numpy_ctf(u, v, angle, kv, cs, q0, b, box, pixel)).max())
        print(
            f"{label:15s} cryoglass {ours:.3f} s ({n / ours:8.0f} images/s) | "
            f"numpy {ref:.3f} s ({n / ref:7.0f} images/s) | speed-up x{ref / ours:.1f} | "
            f"max |diff| {diff:.1e} [load {_load()}]"
        )
        if ours_zero_b is None:
            ours_zero_b = (a.astype(np.float64), ours)
    peer_cryojax(
        ours_zero_b[0],
        ours_zero_b[1],
        n=n,
        box=box,
        threads=args.threads,
        repeats=args.repeats,
    )


if __name__ == "__main__":
    main()
