"""Benchmark: FSC of two 256³ maps (float32), cryoglass vs plain numpy, same run.

cryoglass.validate.fourier_shell_correlation (torch rfft, float64 shell sums) against a plain
numpy implementation of the same shells (numpy rfftn, np.bincount with the half-grid
multiplicity).  For context, the whole-process time of ``relion_postprocess`` on the same two
maps (no mask, ad-hoc B: reads, 1 FSC, sharpening, writes) when the binary is installed.

    python benchmarks/bench_fsc.py [--box 256] [--threads 2] [--repeats 3] [--no-relion]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cryoglass.io import write_mrc
from cryoglass.validate import fourier_shell_correlation


def numpy_fsc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plain numpy FSC on cryoglass's shells floor(r + 1/2), shells 0 .. w//2."""
    n = a.shape[-1]
    fa, fb = np.fft.rfftn(a), np.fft.rfftn(b)
    kz = np.fft.fftfreq(n, 1.0 / n)[:, None, None]
    ky = np.fft.fftfreq(n, 1.0 / n)[None, :, None]
    kx = np.arange(n // 2 + 1)[None, None, :]
    shell = np.floor(np.sqrt(kz**2 + ky**2 + kx**2) + 0.5).astype(np.int64)
    weight = np.where((kx >= 1) & (kx <= (n - 1) // 2), 2.0, 1.0)
    keep = shell <= n // 2
    idx = shell[keep]
    wk = np.broadcast_to(weight, shell.shape)[keep]

    def sums(values):
        return np.bincount(idx, weights=values[keep] * wk)

    num = sums(np.real(fa * np.conj(fb)))
    p1, p2 = sums(np.abs(fa) ** 2), sums(np.abs(fb) ** 2)
    return num / np.sqrt(p1 * p2)


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--box", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-relion", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.box
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, n, generator=g)
    b = 0.5 * a + torch.randn(n, n, n, generator=g)
    a_np, b_np = a.numpy(), b.numpy()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"torch {torch.__version__} ({args.threads} threads), numpy {np.__version__}"
    )
    print(f"size: two {n}³ float32 maps, {n // 2 + 1} shells")
    ours = fourier_shell_correlation(a, b)
    ref = numpy_fsc(a_np, b_np)
    print(f"max |ours - numpy| = {np.abs(ours.double().numpy() - ref).max():.2e}")
    t_ours = median_time(lambda: fourier_shell_correlation(a, b), args.repeats)
    t_np = median_time(lambda: numpy_fsc(a_np, b_np), args.repeats)
    print(f"cryoglass fourier_shell_correlation: {t_ours:.3f} s")
    print(
        f"numpy (rfftn + bincount):            {t_np:.3f} s   ratio numpy/cryoglass = "
        f"{t_np / t_ours:.2f}"
    )
    binary = shutil.which("relion_postprocess")
    if binary and not args.no_relion:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_mrc(folder / "half1.mrc", a, pixel_size_angstrom=1.0)
            write_mrc(folder / "half2.mrc", b, pixel_size_angstrom=1.0)
            cmd = [
                binary,
                "--i",
                "half1.mrc",
                "--i2",
                "half2.mrc",
                "--angpix",
                "1",
                "--adhoc_bfac",
                "-50",
                "--o",
                "post",
            ]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            start = time.perf_counter()
            subprocess.run(cmd, cwd=folder, env=env, capture_output=True, check=False)
            t_rel = time.perf_counter() - start
        print(f"relion_postprocess (whole process, context only): {t_rel:.2f} s")


if __name__ == "__main__":
    main()
