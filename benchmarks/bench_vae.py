"""Benchmark: cryoglass VAE vs `cryodrgn train_vae` (CPU), same particles, poses, CTF, zdim.

Data: 1000 × 64² images of a Gaussian-blob map whose moving part is displaced by a known
amplitude (uniform), uniform poses, CTF, SNR 0.1.  Reports seconds per epoch and |ρ|(PC1 of the
latent means, true amplitude) for cryoglass (256×3 encoder/decoder), cryoDRGN with the same
architecture, and cryoDRGN's default model (1024×3, 1 epoch).

Both programs run with the same number of CPU threads (``--threads``: torch.set_num_threads here,
OMP_NUM_THREADS/MKL_NUM_THREADS for the cryoDRGN subprocess).

Run:  /work/venv/bin/python benchmarks/bench_vae.py [--n 1000] [--size 64] [--epochs 1] \
      [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cryoglass.geometry import euler_to_matrix
from cryoglass.hetero import (
    ParticleData,
    TrainConfig,
    VAEConfig,
    blob_model,
    blob_particles,
    build_model,
    fit,
    pca,
)
from cryoglass.io import write_cryodrgn_ctf, write_cryodrgn_poses, write_mrc

CRYODRGN = Path("/work/peers/bin/cryodrgn")


def pc1_correlation(latents: np.ndarray, truth: np.ndarray) -> float:
    pc1 = pca(torch.as_tensor(latents)).projections[:, 0].numpy()
    return abs(float(np.corrcoef(pc1, truth)[0, 1]))


def run_cryodrgn(
    folder: Path, *, epochs: int, zdim: int, dims: int | None, threads: int
) -> tuple[float, np.ndarray]:
    """Wall time per epoch (start-up included) and the last epoch's latents of train_vae."""
    out = folder / f"drgn_{dims or 'default'}"
    args = [
        str(CRYODRGN),
        "train_vae",
        str(folder / "particles.mrcs"),
        "--poses",
        str(folder / "poses.pkl"),
        "--ctf",
        str(folder / "ctf.pkl"),
        "--zdim",
        str(zdim),
        "-n",
        str(epochs),
        "-o",
        str(out),
    ]
    if dims:
        args += [
            "--enc-dim",
            str(dims),
            "--enc-layers",
            "3",
            "--dec-dim",
            str(dims),
            "--dec-layers",
            "3",
        ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    print(
        f"  (cryodrgn {dims or 'default'}: {seconds:.1f} s wall for {epochs} epoch(s))", flush=True
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    with open(out / "z.pkl", "rb") as handle:  # cryoDRGN 4: the final epoch's latents
        z = pickle.load(handle)
    return seconds / epochs, z


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--skip-default", action="store_true")
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"loadavg {open('/proc/loadavg').read().split()[:3]}"
    )
    d, px, g = a.size, 3.0, torch.Generator().manual_seed(0)
    model = blob_model(radius_angstrom=0.3 * d * px, sigma_angstrom=2 * px, generator=g)
    amp = 0.15 * d * px * (2 * torch.rand(a.n, generator=g, dtype=torch.float64) - 1)
    sp = blob_particles(
        model,
        amp,
        image_size=d,
        pixel_size_angstrom=px,
        snr=0.1,
        max_shift_angstrom=2 * px,
        generator=g,
    )
    print(f"data: {a.n} × {d}² images, zdim {a.zdim}, {a.epochs} epochs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_mrc(folder / "particles.mrcs", sp.images, pixel_size_angstrom=px, stack=True)
        write_cryodrgn_poses(
            folder / "poses.pkl",
            sp.euler_deg,
            sp.shift_angstrom,
            image_size=d,
            pixel_size_angstrom=px,
        )
        write_cryodrgn_ctf(folder / "ctf.pkl", sp.ctf, image_size=d, pixel_size_angstrom=px)

        images = sp.images
        data = ParticleData(
            lambda i: images[i],
            euler_to_matrix(sp.euler_deg).float(),
            sp.shift_angstrom,
            sp.ctf,
            px,
            d,
        )
        vae = build_model(VAEConfig(image_size=d, zdim=a.zdim), seed=0)
        latents = []
        history = fit(
            vae,
            data,
            config=TrainConfig(epochs=a.epochs),
            on_epoch_end=lambda stats, z: latents.append(z.numpy()),
        )
        ours = float(np.mean([h["seconds"] for h in history]))
        rho_ours = pc1_correlation(latents[-1], amp.numpy())
        print(
            f"cryoglass vae (256x3, batch 8):      {ours:8.1f} s/epoch   "
            f"|rho(PC1, a)| = {rho_ours:.3f}"
        )
        if CRYODRGN.exists():
            t_same, z_same = run_cryodrgn(
                folder, epochs=a.epochs, zdim=a.zdim, dims=256, threads=a.threads
            )
            rho_same = pc1_correlation(z_same, amp.numpy())
            print(
                f"cryodrgn train_vae (256x3, batch 8): {t_same:8.1f} s/epoch   "
                f"|rho(PC1, a)| = {rho_same:.3f}   ratio {t_same / ours:.1f}x"
            )
            if not a.skip_default:
                t_def, z_def = run_cryodrgn(
                    folder, epochs=1, zdim=a.zdim, dims=None, threads=a.threads
                )
                rho_def = pc1_correlation(z_def, amp.numpy())
                print(
                    f"cryodrgn train_vae (default 1024x3): {t_def:8.1f} s/epoch   "
                    f"|rho(PC1, a)| = {rho_def:.3f} (1 epoch)   ratio {t_def / ours:.1f}x"
                )
        else:
            print("cryodrgn not installed in /work/peers: peer skipped")
        print(f"loadavg after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
