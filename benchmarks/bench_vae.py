"""Benchmark: cryoglass VAE vs `cryodrgn train_vae` (CPU), same particles, poses, CTF, zdim.

Data (``--dataset``):

* ``blobs`` (default): 1000 × 64² images of a Gaussian-blob map whose moving part is displaced
  by a known amplitude (uniform), uniform poses, CTF, SNR 0.1;
* ``nma``: adenylate kinase (4AKE chain A, ../shared/data) deformed along its first ANM mode
  by a known amplitude (uniform within ±5 Å Cα RMSD), 600 × 24² at 3.5 Å, SNR 2, B 100 Å² —
  the dataset of the test that pins latent quality, small enough to train both programs for
  tens of epochs here.

Reports seconds per epoch and |ρ|(PC1 of the latent means, true amplitude) for cryoglass and
cryoDRGN with the same architecture (``--dims``, ``--layers``), learning rate, batch size,
zdim, KL weight (cryoDRGN's default 1/zdim) and epochs, and (unless ``--skip-default``)
cryoDRGN's default model (1024×3, 1 epoch).

Both programs run with the same number of CPU threads (``--threads``: torch.set_num_threads here,
OMP_NUM_THREADS/MKL_NUM_THREADS for the cryoDRGN subprocess).

Run:  /work/venv/bin/python benchmarks/bench_vae.py [--n 1000] [--size 64] [--epochs 1] \
      [--threads 1]
      /work/venv/bin/python benchmarks/bench_vae.py --dataset nma --zdim 1 --dims 64 \
      --layers 2 --epochs 25 --lr 5e-3 --skip-default
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cryoglass._allocator import tune_allocator
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
    folder: Path,
    *,
    epochs: int,
    zdim: int,
    dims: int | None,
    threads: int,
    layers: int = 3,
    lr: float | None = None,
    seed: int = 0,
    batch: int = 8,
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
        "--seed",
        str(seed),
        "--batch-size",  # cryoDRGN 4's default is 16: always pass ours
        str(batch),
    ]
    if dims:
        args += [
            "--enc-dim",
            str(dims),
            "--enc-layers",
            str(layers),
            "--dec-dim",
            str(dims),
            "--dec-layers",
            str(layers),
        ]
    if lr is not None:
        args += ["--lr", str(lr)]
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
    run_cryodrgn.per_epoch = []  # latents of earlier epochs (z.E.pkl, 0-based E), in order
    for path in sorted(out.glob("z.*.pkl"), key=lambda p: int(p.name.split(".")[1])):
        with open(path, "rb") as handle:
            run_cryodrgn.per_epoch.append(pickle.load(handle))
    # its log: "# =====> Epoch: k ... Finished in H:MM:SS.ffffff" (training pass only, as ours)
    epoch_seconds = [
        sum(float(x) * 60**i for i, x in enumerate(reversed(m.split(":"))))
        for m in re.findall(r"Epoch: \d+ .*Finished in (\d+:\d+:[\d.]+)", log_text(out))
    ]
    training = float(np.mean(epoch_seconds)) if epoch_seconds else float("nan")
    return seconds / epochs, training, z


def log_text(out: Path) -> str:
    """cryoDRGN's run.log (empty when missing)."""
    path = out / "run.log"
    return path.read_text() if path.is_file() else ""


def nma_dataset(n: int, size: int = 24):
    """Adenylate kinase along ANM mode 1 (as tests/unit/test_hetero_vae.py), 84 Å box.

    ``size`` 24 is the test's 24² at 3.5 Å; other sizes sample the same box more finely.
    """
    from cryoglass.io import read_structure
    from cryoglass.nma import amplitude_for_rmsd, anm, extend_modes, heterogeneous_dataset

    shared = Path(
        os.environ.get("CRYOGLASS_SHARED_DATA", Path(__file__).parents[2] / "shared/data")
    )
    if not shared.is_dir():
        shared = Path("/work/shared/data")
    atoms = read_structure(shared / "models" / "4akeA_alg_fixed.pdb", hydrogens=False, waters=False)
    ca = [i for i, name in enumerate(atoms.atom_names) if name == "CA"]
    keys = list(zip(atoms.chain_ids, atoms.residue_numbers.tolist(), strict=True))
    node = {keys[c]: k for k, c in enumerate(ca)}
    modes = anm(atoms.coordinates_angstrom[ca], n_modes=1)
    vectors = extend_modes(modes.eigenvectors[:, :1], torch.tensor([node[k] for k in keys]))
    g = torch.Generator().manual_seed(0)
    d, px = size, 3.5 * 24 / size
    largest = amplitude_for_rmsd(5.0, len(ca))
    amplitudes = largest * (2 * torch.rand(n, 1, generator=g, dtype=torch.float64) - 1)
    data = heterogeneous_dataset(
        atoms.coordinates_angstrom,
        atoms.elements,
        vectors,
        amplitudes,
        box=d,
        pixel_size_angstrom=px,
        snr=2.0,
        bfactors_a2=100.0,
        seed=0,
    )
    p = data.parameters
    truth = data.amplitudes_angstrom[:, 0]
    return data.images, p.euler_deg, p.shift_angstrom, p.ctf, truth, d, px


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=None, help="default 64 (blobs), 24 (nma)")
    parser.add_argument("--seed", type=int, default=0, help="network seed of both programs")
    parser.add_argument("--batch", type=int, default=8, help="minibatch of both programs")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument("--skip-peer", action="store_true", help="cryoglass only")
    parser.add_argument("--skip-ours", action="store_true", help="cryoDRGN only (more seeds)")
    parser.add_argument(
        "--dense-radius", type=float, default=0.3, help="with --point-fraction (× Nyquist)"
    )
    parser.add_argument("--dataset", choices=("blobs", "nma"), default="blobs")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--point-fraction", type=float, default=1.0, help="cryoglass only: points decoded per step"
    )
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    tune_allocator()  # as the cryoglass command does when it starts (cryoglass._allocator)
    a.size = a.size or (24 if a.dataset == "nma" else 64)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"loadavg {open('/proc/loadavg').read().split()[:3]}"
    )
    if a.dataset == "nma":
        images, euler, shifts, ctf, amp, d, px = nma_dataset(a.n, a.size)
    else:
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
        images, euler, shifts, ctf = sp.images, sp.euler_deg, sp.shift_angstrom, sp.ctf
    print(
        f"data: {a.dataset}, {len(images)} × {d}² images, zdim {a.zdim}, {a.epochs} epochs, "
        f"{a.dims}×{a.layers} encoder/decoder, lr {a.lr:g}, batch {a.batch}, cryoglass decodes "
        f"{a.point_fraction:g} of the points beyond {a.dense_radius:g} × Nyquist per step"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_mrc(folder / "particles.mrcs", images, pixel_size_angstrom=px, stack=True)
        write_cryodrgn_poses(
            folder / "poses.pkl", euler, shifts, image_size=d, pixel_size_angstrom=px
        )
        write_cryodrgn_ctf(folder / "ctf.pkl", ctf, image_size=d, pixel_size_angstrom=px)

        data = ParticleData(lambda i: images[i], euler_to_matrix(euler).float(), shifts, ctf, px, d)
        config = VAEConfig(
            image_size=d,
            zdim=a.zdim,
            enc_dim=a.dims,
            dec_dim=a.dims,
            enc_layers=a.layers,
            dec_layers=a.layers,
        )
        arch = f"{a.dims}x{a.layers}"
        if a.skip_ours:
            print("cryoglass not run (--skip-ours)")
            ours = float("nan")
        else:
            vae = build_model(config, seed=a.seed)
            latents = []
            history = fit(
                vae,
                data,
                config=TrainConfig(
                    epochs=a.epochs,
                    learning_rate=a.lr,
                    beta=1.0 / max(a.zdim, 1),  # cryoDRGN's default KL weight, 1/zdim
                    seed=a.seed,
                    batch_size=a.batch,
                    point_fraction=a.point_fraction,
                    dense_radius_fraction=a.dense_radius,
                ),
                on_epoch_end=lambda stats, z: latents.append(z.numpy()),
            )
            ours = float(np.mean([h["seconds"] for h in history]))
            rho_ours = pc1_correlation(latents[-1], amp.numpy())
            rho_epochs = [round(pc1_correlation(z, amp.numpy()), 3) for z in latents]
            print(f"  cryoglass |rho| per epoch: {rho_epochs}")
            print(
                f"cryoglass vae ({arch}, batch {a.batch}):      {ours:8.2f} s/epoch training "
                f"pass   |rho(PC1, a)| = {rho_ours:.3f}   (per epoch: "
                f"{[round(pc1_correlation(z, amp.numpy()), 3) for z in latents[4::5]]} every 5th)"
            )
        if a.skip_peer:
            print("cryodrgn not run (--skip-peer)")
        elif CRYODRGN.exists():
            t_same, train_same, z_same = run_cryodrgn(
                folder,
                epochs=a.epochs,
                zdim=a.zdim,
                dims=a.dims,
                threads=a.threads,
                layers=a.layers,
                lr=a.lr,
                seed=a.seed,
                batch=a.batch,
            )
            rho_same = pc1_correlation(z_same, amp.numpy())
            rho_epochs = [pc1_correlation(z, amp.numpy()) for z in run_cryodrgn.per_epoch]
            print(f"  cryoDRGN |rho| per epoch: {[round(r, 3) for r in rho_epochs]}")
            print(
                f"cryodrgn train_vae ({arch}, batch {a.batch}): {t_same:8.2f} s/epoch wall "
                f"(start-up included), {train_same:.2f} s/epoch training pass (its log)   "
                f"|rho(PC1, a)| = {rho_same:.3f}   ratio {t_same / ours:.1f}x wall, "
                f"{train_same / ours:.1f}x training"
            )
            if not a.skip_default:
                t_def, _, z_def = run_cryodrgn(
                    folder,
                    epochs=1,
                    zdim=a.zdim,
                    dims=None,
                    threads=a.threads,
                    seed=a.seed,
                    batch=a.batch,
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
