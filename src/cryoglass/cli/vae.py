"""`cryoglass vae`: heterogeneity with a cryoDRGN-style variational autoencoder.

Sub-commands: ``train``, ``analyze``, ``volumes``, ``traverse``, ``select``.  A training
folder holds ``config.json`` (inputs and architecture), ``checkpoint.E.pt`` and
``latents.E.npy`` after each epoch E, ``latents.npy`` (the latest), ``train_log.json`` and
``learning_curve.png``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli.options import DataDir, Overwrite

app = typer.Typer(
    help="Heterogeneity with a cryoDRGN-style VAE: train, analyze, volumes, traverse, select.",
    no_args_is_help=True,
)

# ----------------------------------------------------------------------------- helpers


def _load_particles(
    star: Path, poses: Path | None, ctf_pkl: Path | None, datadir: Path | None = None
):
    """ParticleSet with poses (and CTF) and its single pixel size; exits with a message."""
    import dataclasses

    from cryoglass.io import (
        check_particle_set,
        read_cryodrgn_ctf,
        read_cryodrgn_poses,
        read_particles,
    )

    with failing(ValueError, KeyError, OSError, prefix=f"{star}: "):
        particles = read_particles(star, datadir=datadir)
    with failing():
        pixel = check_particle_set(particles, source=str(star), purpose="the VAE")
    d = particles.image_size
    with failing(ValueError, FileNotFoundError):
        if poses is not None:
            euler, shift = read_cryodrgn_poses(poses, image_size=d, pixel_size_angstrom=pixel)
            if euler.shape[0] != len(particles):
                fail(f"{poses}: {euler.shape[0]} poses for {len(particles)} particles in {star}")
            particles = dataclasses.replace(
                particles, euler_deg=euler, shift_angstrom=shift, in_plane_only=False
            )
        if ctf_pkl is not None:
            ctf, ctf_size, _ = read_cryodrgn_ctf(ctf_pkl)
            if ctf_size != d:
                fail(f"{ctf_pkl}: CTF for box {ctf_size}, but the images in {star} are {d}")
            if ctf.batch_shape[0] != len(particles):
                fail(f"{ctf_pkl}: {ctf.batch_shape[0]} rows for {len(particles)} particles")
            particles = dataclasses.replace(particles, ctf=ctf)
    with failing():
        check_particle_set(
            particles,
            source=str(star),
            purpose="the VAE",
            poses=True,
            poses_hint="run a consensus refinement first, or give --poses poses.pkl",
        )
    return particles, pixel


def _particle_data(particles, pixel: float):
    from cryoglass.geometry import euler_to_matrix
    from cryoglass.hetero import ParticleData
    from cryoglass.io import ParticleStack

    stack = ParticleStack(particles)
    return ParticleData(
        read_images=stack.read,
        rotations=euler_to_matrix(particles.euler_deg).float(),
        shift_angstrom=particles.shift_angstrom,
        ctf=particles.ctf,
        pixel_size_angstrom=pixel,
        image_size=particles.image_size,
    )


def _epochs_done(folder: Path) -> list[int]:
    found = [re.fullmatch(r"checkpoint\.(\d+)\.pt", p.name) for p in folder.glob("checkpoint.*.pt")]
    return sorted(int(m.group(1)) for m in found if m)


def _checkpoint(folder: Path, epoch: int | None) -> tuple[Path, int]:
    done = _epochs_done(folder)
    if not done:
        fail(f"{folder}: no checkpoint.E.pt (not a `cryoglass vae train` folder?)")
    epoch = done[-1] if epoch is None else epoch
    if epoch not in done:
        fail(f"{folder}: no checkpoint for epoch {epoch} (have {done})")
    return folder / f"checkpoint.{epoch}.pt", epoch


def _load_model(folder: Path, epoch: int | None, device: str):
    path, epoch = _checkpoint(folder, epoch)
    model, _ = _read_checkpoint(path, device)
    return model, epoch


def _read_checkpoint(path: Path, device: str):
    """(model, payload) of a VAE checkpoint file; fails with one line otherwise."""
    from cryoglass.hetero import model_from_checkpoint
    from cryoglass.io.checkpoint import load_tensors

    with failing(ValueError, FileNotFoundError):
        payload = load_tensors(path, device=device)
        return model_from_checkpoint(payload, device=device, source=str(path)), payload


def _latents(folder: Path, epoch: int):
    import numpy as np
    import torch

    path = folder / f"latents.{epoch}.npy"
    if not path.is_file():
        fail(f"{path}: not found")
    return torch.as_tensor(np.load(path))


def _write_volumes(volumes, out: Path, pixel: float, prefix: str = "vol") -> list[str]:
    from cryoglass.io import write_mrc

    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i, volume in enumerate(volumes):
        name = f"{prefix}_{i:03d}.mrc"
        write_mrc(out / name, volume, pixel_size_angstrom=pixel, overwrite=True)
        names.append(name)
    return names


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        fail(f"{path}: not found (not a `cryoglass vae train` folder?)")
    return json.loads(path.read_text())


def _check_folder_out(out: Path, overwrite: bool, *, inputs: list) -> None:
    """An output folder: not a file, empty unless --overwrite, no output named like an input."""
    if out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        fail(f"{out}: folder is not empty; pass --overwrite to replace its files")
    names = ("z_values.npy", "path_indices.txt", "report.html", "labels.npy", "vol_000.mrc")
    check_outputs([out / n for n in names], inputs=inputs, overwrite=True, creates=[out])


_OverwriteFolder = typer.Option(
    False, "--overwrite", help="Replace the files in a non-empty --out."
)


# ----------------------------------------------------------------------------- train


@contextlib.contextmanager
def _option_names() -> Iterator[None]:
    """Exit on a ValueError from TrainConfig, naming the command's options, not its fields."""
    names = {
        "point_fraction": "--point-fraction",
        "dense_radius_fraction": "--dense-radius",
        "radius_fraction": "--radius-fraction",
        "batch_size": "--batch-size",
        "learning_rate": "--lr",
        "epochs": "--epochs",
        "beta": "--beta",
    }
    try:
        yield
    except ValueError as error:
        message = str(error)
        for field_name, option in names.items():  # longest names first: no partial matches
            message = message.replace(field_name, option)
        fail(message)


#: Files ``vae train`` writes in --out (besides checkpoint.E.pt per epoch).
_TRAIN_OUTPUTS = ("config.json", "train_log.json", "learning_curve.png", "latents.npy")


def _set_threads_and_device(threads: int | None, device: str) -> None:
    """``--threads`` for torch; fail when ``--device cuda`` has no CUDA device."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device available")


def _read_for_training(star, poses, ctf_pkl, datadir, *, out: Path, resume, overwrite):
    """Check --out's state, read the particles, refuse an output that is one of the inputs."""
    _check_out(out, resume, overwrite)
    particles, pixel = _load_particles(star, poses, ctf_pkl, datadir)
    check_outputs(
        [out / name for name in _TRAIN_OUTPUTS],
        inputs=[star, poses, ctf_pkl, *particles.image_files],
        overwrite=True,  # the folder's state was checked above
        creates=[out],
    )
    return particles, pixel


def _check_out(out: Path, resume: bool, overwrite: bool = False) -> None:
    """Exit unless OUT holds a run exactly when --continue is given (or --overwrite)."""
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    if resume and overwrite:
        fail("--continue and --overwrite exclude each other")
    done = _epochs_done(out) if out.is_dir() else []
    if done and not (resume or overwrite):
        fail(
            f"{out}: already holds a training run (epoch {done[-1]}); use --continue, "
            "--overwrite or a new --out"
        )
    if out.is_dir() and not done and any(out.iterdir()) and not overwrite:
        fail(f"{out}: folder is not empty; pass --overwrite to replace its files")
    if resume and not done:
        fail(f"{out}: nothing to continue (no checkpoint.E.pt)")


def _resume(out: Path, star: Path, requested: dict, *, image_size: int, epochs: int, device: str):
    """(model, optimizer, train config, history, epochs done) of the run in OUT."""
    from cryoglass.hetero import TrainConfig
    from cryoglass.hetero.train import make_optimizer

    path, start = _checkpoint(out, None)
    model, payload = _read_checkpoint(path, device)
    have = model.config.as_dict()
    clash = [
        f"--{k.replace('_', '-')} {v} (checkpoint: {have[k]})"
        for k, v in requested.items()
        if v is not None and v != have[k]
    ]
    if clash:
        fail(f"{path}: checkpoint has another architecture: {', '.join(clash)}")
    if model.config.image_size != image_size:
        fail(
            f"{star}: images are {image_size}x{image_size} but the model in {path} is for "
            f"{model.config.image_size}x{model.config.image_size}"
        )
    saved = TrainConfig(**payload["train_config"])
    train_config = TrainConfig(**{**saved.__dict__, "epochs": epochs})
    optimizer = make_optimizer(model, train_config)
    optimizer.load_state_dict(payload["optimizer"])
    return model, optimizer, train_config, list(payload["history"]), start


def _new_run(out: Path, inputs: dict, requested: dict, *, train_config, seed: int, device: str):
    """A new model; OUT/config.json records ``inputs`` (files, sizes) and both configs."""
    from cryoglass.hetero import VAEConfig, build_model
    from cryoglass.io import write_text_atomic

    d = inputs["image_size"]
    values = {k: v for k, v in requested.items() if v is not None}
    values.setdefault("enc_size", min(d, 64))
    with failing(ValueError):
        config = VAEConfig(image_size=d, **values)
    model = build_model(config, seed=seed, device=device)
    out.mkdir(parents=True, exist_ok=True)
    for epoch in _epochs_done(out):  # --overwrite: an earlier run's checkpoints and latents go
        (out / f"checkpoint.{epoch}.pt").unlink()
        (out / f"latents.{epoch}.npy").unlink(missing_ok=True)
    record = {**inputs, "vae_config": config.as_dict(), "train_config": train_config.__dict__}
    write_text_atomic(out / "config.json", json.dumps(record, indent=2))
    return model


def _epoch_writer(out: Path, model, optimizer, train_config, history: list[dict], *, json_out):
    """``on_epoch_end(stats, latents)``: checkpoint, latents, log and learning curve in OUT."""
    from cryoglass.hetero import checkpoint_payload
    from cryoglass.io import save_tensors, write_npy, write_text_atomic
    from cryoglass.report.vae import save_learning_curve

    def on_epoch_end(stats: dict, latents) -> None:
        history.append(stats)
        epoch = int(stats["epoch"])
        payload = checkpoint_payload(
            model, optimizer, config=train_config, epoch=epoch, history=history
        )
        save_tensors(out / f"checkpoint.{epoch}.pt", payload, overwrite=True)
        for name in (f"latents.{epoch}.npy", "latents.npy"):
            write_npy(out / name, latents.numpy())
        write_text_atomic(out / "train_log.json", json.dumps(history, indent=2))
        save_learning_curve(history, out / "learning_curve.png")
        typer.echo(
            f"epoch {epoch}/{train_config.epochs}: loss {stats['loss']:.5f} "
            f"(reconstruction {stats['reconstruction']:.5f}, KL {stats['kl']:.3f}) "
            f"{stats['seconds']:.1f} s",
            err=json_out,
        )

    return on_epoch_end


def _batch_lines(*, first_epoch: int, epochs: int, every_seconds: float = 5.0):
    """``progress(done, total)`` for :func:`cryoglass.hetero.fit`: lines on stderr.

    One line at the first batch of the run, then at most one every ``every_seconds`` —
    ``epoch 3/20: 1,200/4,000 particles (30%), 12.5 s`` — so a long epoch shows it is moving
    and a short one stays quiet; the epoch's summary line follows at its end.
    """
    import time

    state = {"epoch": first_epoch + 1, "last": None, "start": time.perf_counter()}

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if state["last"] is None or now - state["last"] >= every_seconds:
            typer.echo(
                f"epoch {state['epoch']}/{epochs}: {done:,}/{total:,} particles "
                f"({100 * done / total:.0f}%), {now - state['start']:.1f} s",
                err=True,
            )
            state["last"] = now
        if done >= total:
            state["epoch"] += 1
            state["start"] = time.perf_counter()

    return progress


@app.command()
def train(
    star: Path = typer.Argument(..., help="Particles with poses and CTF (RELION .star)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    zdim: int | None = typer.Option(None, help="Latent dimension (default 8; 0: homogeneous)."),
    epochs: int = typer.Option(20, "--epochs", "-n", help="Total number of epochs."),
    enc_dim: int | None = typer.Option(None, help="Encoder width (default 256)."),
    enc_layers: int | None = typer.Option(
        None, help="Encoder residual layers after the input layer, as cryoDRGN (default 3)."
    ),
    dec_dim: int | None = typer.Option(None, help="Decoder width (default 256)."),
    dec_layers: int | None = typer.Option(
        None, help="Decoder residual layers after the input layer, as cryoDRGN (default 3)."
    ),
    enc_size: int | None = typer.Option(None, help="Encoder input size [px] (default min(D, 64))."),
    encoding: str | None = typer.Option(
        None,
        help="Decoder positional encoding: gaussian (random Fourier features, cryoDRGN's "
        "default) or geometric (default gaussian).",
    ),
    feature_sigma: float | None = typer.Option(
        None, help="σ of the gaussian encoding, as cryoDRGN's --feat-sigma (default 0.5)."
    ),
    use_ctf: bool = typer.Option(True, "--ctf/--no-ctf", help="Multiply slices by the CTF."),
    batch_size: int = typer.Option(8, help="Images per minibatch."),
    learning_rate: float = typer.Option(1e-3, "--lr", help="Adam step size."),
    beta: float = typer.Option(1.0, help="Weight of the KL term."),
    radius_fraction: float = typer.Option(1.0, help="Fit Fourier points up to this × Nyquist."),
    point_fraction: float = typer.Option(
        1.0,
        help="Per step, decode the points below --dense-radius and this random fraction of "
        "the others (which then count that much less in the loss): about that share of the "
        "decoder's time. 0.05-0.1 trains the latent space fast (~7x faster epochs at 64²).",
    ),
    dense_radius: float = typer.Option(
        0.3, help="With --point-fraction: decode every point below this × Nyquist."
    ),
    seed: int = typer.Option(0, help="Random seed (initialisation, order, noise)."),
    device: str = typer.Option("cpu", help="cpu or cuda (bfloat16 autocast on CUDA)."),
    threads: int | None = typer.Option(None, help="CPU threads for torch (default: torch's)."),
    resume: bool = typer.Option(False, "--continue", help="Continue the run in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --out."),
    poses: Path | None = typer.Option(None, help="cryoDRGN poses.pkl (overrides the star's)."),
    ctf_pkl: Path | None = typer.Option(None, help="cryoDRGN ctf.pkl (overrides the star's)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    datadir: DataDir = None,
) -> None:
    """Train the VAE on particles with known poses; checkpoints and latents every epoch.

    Example: cryoglass vae train particles.star --zdim 8 --epochs 20 --out vae01
    """
    import dataclasses

    from cryoglass.hetero import TrainConfig, fit
    from cryoglass.hetero.train import make_optimizer

    _set_threads_and_device(threads, device)
    requested = {
        "zdim": zdim,
        "enc_dim": enc_dim,
        "enc_layers": enc_layers,
        "dec_dim": dec_dim,
        "dec_layers": dec_layers,
        "enc_size": enc_size,
        "encoding": encoding,
        "feature_sigma": feature_sigma,
    }
    with _option_names():  # options first: a bad one is refused before the data are read
        train_config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            beta=beta,
            seed=seed,
            use_ctf=use_ctf,
            radius_fraction=radius_fraction,
            point_fraction=point_fraction,
            dense_radius_fraction=dense_radius,
        )
    particles, pixel = _read_for_training(
        star, poses, ctf_pkl, datadir, out=out, resume=resume, overwrite=overwrite
    )
    train_config = dataclasses.replace(train_config, use_ctf=use_ctf and particles.ctf is not None)
    data = _particle_data(particles, pixel)
    d = particles.image_size
    if resume:
        model, optimizer, train_config, history, start = _resume(
            out, star, requested, image_size=d, epochs=epochs, device=device
        )
    else:
        inputs = {
            "star": str(star.resolve()),
            "poses": None if poses is None else str(poses.resolve()),
            "ctf_pkl": None if ctf_pkl is None else str(ctf_pkl.resolve()),
            "datadir": None if datadir is None else str(datadir.resolve()),
            "n_particles": len(particles),
            "image_size": d,
            "pixel_size_angstrom": pixel,
        }
        model = _new_run(
            out, inputs, requested, train_config=train_config, seed=seed, device=device
        )
        optimizer, history, start = make_optimizer(model, train_config), [], 0
    if start >= epochs:
        fail(f"{out}: already trained for {start} epochs; ask for more with --epochs")
    on_epoch_end = _epoch_writer(out, model, optimizer, train_config, history, json_out=json_out)
    with failing(ValueError, prefix=f"{star}: "):
        fit(
            model,
            data,
            config=train_config,
            optimizer=optimizer,
            start_epoch=start,
            on_epoch_end=on_epoch_end,
            progress=_batch_lines(first_epoch=start, epochs=epochs),
        )
    if json_out:
        print_json({"out": str(out), "epochs": history[-1]["epoch"], "history": history})


# ----------------------------------------------------------------------------- analyze


def _analysis_files(zdim: int, k: int, *, learning_curve: bool) -> list[str]:
    """Names of the files `vae analyze` writes (k-means volumes for k clusters)."""
    if zdim == 0:
        names = ["vol_000.mrc", "volumes.png"]
    else:
        names = ["labels.npy", "centers.npy", "centers_ind.txt", "pca.npy", "pca.png"]
        names += ["umap.npy", "umap.png", "kmeans_volumes.png"]
        names += [f"kmeans_{i:03d}.mrc" for i in range(k)]
    return [*names, "report.html"] + (["learning_curve.png"] if learning_curve else [])


def _analyze_latents(model, z, out: Path, *, k: int, pcs: int, seed: int, pixel: float):
    """k-means, PCA and UMAP of the latents ``z`` (n, zdim) and maps at the cluster centres.

    Writes them to OUT; returns the report section and the summary's entries.
    """
    import torch

    from cryoglass.hetero import generate_volumes, kmeans, nearest_points, pca, umap_embedding
    from cryoglass.io import write_index_list, write_npy
    from cryoglass.report.html import Section
    from cryoglass.report.vae import save_latent_scatter, save_volume_projections

    labels, centers = kmeans(z, k, seed=seed)
    on_data = nearest_points(z, centers)
    write_npy(out / "labels.npy", labels.numpy())
    write_npy(out / "centers.npy", z[on_data].numpy())
    write_index_list(out / "centers_ind.txt", on_data.numpy())
    result = pca(z, n_components=max(pcs, 2))
    write_npy(out / "pca.npy", result.projections.numpy())
    save_latent_scatter(
        result.projections[:, :2],
        labels.numpy(),
        out / "pca.png",
        title="latent PCA",
        labels=("PC1", "PC2"),
    )
    figures = [("pca.png", "PC1 vs PC2, coloured by k-means cluster")]
    ratio = (result.explained_variance / result.explained_variance.sum())[:pcs].tolist()
    paragraphs = ["Explained variance ratio: " + ", ".join(f"{v:.3f}" for v in ratio)]
    try:
        embedding = umap_embedding(z, seed=seed) if z.shape[0] > 15 else None
    except ImportError as error:
        embedding = None
        paragraphs.append(str(error))
    if embedding is not None:
        write_npy(out / "umap.npy", embedding.numpy())
        save_latent_scatter(
            embedding, labels.numpy(), out / "umap.png", title="UMAP", labels=("UMAP1", "UMAP2")
        )
        figures.append(("umap.png", "UMAP of the latents, coloured by k-means cluster"))
    volumes = generate_volumes(model, z[on_data].to(torch.float32))
    names = _write_volumes(volumes, out, pixel, prefix="kmeans")
    save_volume_projections(volumes, out / "kmeans_volumes.png")
    figures.append(("kmeans_volumes.png", f"Projections along z of the {k} k-means volumes"))
    counts = torch.bincount(labels, minlength=k).tolist()
    section = Section(
        "Latent space",
        paragraphs=tuple(paragraphs),
        table=tuple(
            (f"cluster {i}", f"{c} particles, centre particle {int(on_data[i])}")
            for i, c in enumerate(counts)
        ),
        figures=tuple(figures),
    )
    summary = {"kmeans": k, "counts": counts, "explained_variance_ratio": ratio, "volumes": names}
    return section, summary


@app.command()
def analyze(
    folder: Path = typer.Argument(..., help="A `cryoglass vae train` output folder."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: FOLDER/analyze.E, E the epoch)."
    ),
    epoch: int | None = typer.Option(None, help="Epoch to analyse (default: the last)."),
    kmeans_k: int = typer.Option(20, "--kmeans", help="k-means clusters (volumes at centres)."),
    pcs: int = typer.Option(2, help="Principal components to plot."),
    seed: int = typer.Option(0, help="Seed of k-means and UMAP."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    overwrite: Overwrite = False,
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """PCA/UMAP of the latents, k-means volumes and a report → --out (default FOLDER/analyze.E/).

    Writes labels.npy, centers.npy, centers_ind.txt, pca.npy/png, umap.npy/png,
    kmeans_NNN.mrc, kmeans_volumes.png and report.html (zdim 0: vol_000.mrc, volumes.png).

    Examples:

    \b
      cryoglass vae analyze vae01 --kmeans 20                  # → vae01/analyze.E/
      cryoglass vae analyze vae01 --epoch 10 --out vae01_e10   # its own folder
      cryoglass vae analyze vae01 --out vae01_e10 --overwrite  # run again into vae01_e10
    """
    from cryoglass.hetero import generate_volumes
    from cryoglass.io import write_bytes_atomic
    from cryoglass.report.html import Section, write_html_report
    from cryoglass.report.vae import save_volume_projections

    info = _config(folder)
    checkpoint, epoch = _checkpoint(folder, epoch)
    out = folder / f"analyze.{epoch}" if out is None else out
    if out.resolve() == folder.resolve():
        fail(f"{out}: is the training folder (an input); give --out another folder")
    if kmeans_k < 1:
        fail(f"--kmeans must be at least 1, got {kmeans_k}")
    model, _ = _read_checkpoint(checkpoint, device)
    zdim, pixel = model.config.zdim, info["pixel_size_angstrom"]
    z = None if zdim == 0 else _latents(folder, epoch)
    k = 0 if z is None else min(kmeans_k, z.shape[0])
    curve = folder / "learning_curve.png"
    names = _analysis_files(zdim, k, learning_curve=curve.is_file())
    inputs = [folder / "config.json", checkpoint, curve, folder / f"latents.{epoch}.npy"]
    check_outputs([out / n for n in names], inputs=inputs, overwrite=overwrite, creates=[out])
    out.mkdir(parents=True, exist_ok=True)
    summary = {"headline": ["epoch", "particles"], "out": str(out), "epoch": epoch}
    summary["particles"] = info["n_particles"]
    if z is None:
        volumes = generate_volumes(model)
        summary["volumes"] = _write_volumes(volumes, out, pixel)
        save_volume_projections(volumes, out / "volumes.png")
        figures = (("volumes.png", summary["volumes"][0]),)
        sections = [Section("Homogeneous map (zdim 0)", figures=figures)]
    else:
        section, found = _analyze_latents(model, z, out, k=k, pcs=pcs, seed=seed, pixel=pixel)
        sections, summary["headline"] = [section], ["epoch", "particles", "kmeans"]
        summary.update(found)
    if curve.is_file():
        write_bytes_atomic(out / "learning_curve.png", curve.read_bytes())
        sections.append(Section("Training", figures=(("learning_curve.png", "loss per epoch"),)))
    write_html_report(
        out / "report.html",
        title=f"cryoglass vae analyze — epoch {epoch}",
        intro=f"Training folder {folder}, {info['n_particles']} particles.",
        sections=sections,
    )
    summary["report"] = str(out / "report.html")
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"wrote {out}/report.html")


# ----------------------------------------------------------------------------- volumes


@app.command()
def volumes(
    folder: Path = typer.Argument(..., help="A `cryoglass vae train` output folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for MRC maps."),
    z_file: Path | None = typer.Option(None, "--z", help="Latent points (.npy or text, K × zdim)."),
    kmeans_k: int | None = typer.Option(None, "--kmeans", help="Maps at K k-means centres."),
    pc_traversal: int | None = typer.Option(None, help="Maps along this principal component."),
    n_points: int = typer.Option(10, help="Maps along a PC traversal."),
    epoch: int | None = typer.Option(None, help="Epoch (default: the last)."),
    seed: int = typer.Option(0, help="k-means seed."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    overwrite: bool = _OverwriteFolder,
) -> None:
    """Generate maps at chosen latent points (a file, k-means centres or a PC traversal).

    Example: cryoglass vae volumes vae01 --pc-traversal 1 --out pc1
    """
    import numpy as np
    import torch

    from cryoglass.hetero import generate_volumes, kmeans, nearest_points, pc_trajectory, pca
    from cryoglass.io import write_npy

    info = _config(folder)
    _check_folder_out(out, overwrite, inputs=[folder / "config.json", z_file])
    model, epoch = _load_model(folder, epoch, device)
    chosen = [x is not None for x in (z_file, kmeans_k, pc_traversal)]
    if model.config.zdim == 0:
        points = None
    elif sum(chosen) != 1:
        fail("give exactly one of --z FILE, --kmeans K, --pc-traversal PC")
    elif z_file is not None:
        with failing(OSError, ValueError, prefix=f"{z_file}: "):
            array = np.load(z_file) if z_file.suffix == ".npy" else np.loadtxt(z_file, ndmin=2)
        points = torch.as_tensor(np.asarray(array, dtype=np.float32)).reshape(-1, array.shape[-1])
        if points.shape[1] != model.config.zdim:
            fail(
                f"{z_file}: points have {points.shape[1]} dims, "
                f"the model zdim is {model.config.zdim}"
            )
    else:
        z = _latents(folder, epoch)
        if kmeans_k is not None:
            _, centers = kmeans(z, kmeans_k, seed=seed)
            points = z[nearest_points(z, centers)]
        else:
            with failing(ValueError):
                points = pc_trajectory(pca(z), pc_traversal, n_points=n_points)
    maps = generate_volumes(model, None if points is None else points.to(torch.float32))
    names = _write_volumes(maps, out, info["pixel_size_angstrom"])
    if points is not None:
        write_npy(out / "z_values.npy", points.numpy())
    typer.echo(f"wrote {len(names)} maps to {out}", err=json_out)
    if json_out:
        print_json(
            {
                "headline": ["maps", "out"],
                "maps": len(names),
                "out": str(out),
                "files": [str(out / n) for n in names],
                "z": None if points is None else points.tolist(),
                "epoch": epoch,
            }
        )


# ----------------------------------------------------------------------------- traverse


@app.command()
def traverse(
    folder: Path = typer.Argument(..., help="A `cryoglass vae train` output folder."),
    anchors: str = typer.Option(..., help="Particle indices (0-based, star order), e.g. 12,807."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    neighbours: int = typer.Option(10, help="Neighbours per particle in the kNN graph."),
    max_volumes: int = typer.Option(10, help="At most this many maps along the path."),
    epoch: int | None = typer.Option(None, help="Epoch (default: the last)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    overwrite: bool = _OverwriteFolder,
) -> None:
    """Shortest path between anchor particles through the latent kNN graph, with maps.

    Example: cryoglass vae traverse vae01 --anchors 12,807 --out path
    """
    import numpy as np

    from cryoglass.hetero import generate_volumes, graph_traversal
    from cryoglass.io import write_index_list, write_npy

    info = _config(folder)
    _check_folder_out(out, overwrite, inputs=[folder / "config.json"])
    model, epoch = _load_model(folder, epoch, device)
    if model.config.zdim == 0:
        fail("a zdim = 0 model has no latent space to traverse")
    try:
        ids = [int(a) for a in anchors.split(",")]
    except ValueError:
        fail(f"--anchors: expected comma-separated integers, got {anchors!r}")
    z = _latents(folder, epoch)
    with failing(ValueError):
        path, length = graph_traversal(z, ids, k=neighbours)
    out.mkdir(parents=True, exist_ok=True)
    write_index_list(out / "path_indices.txt", path.numpy())
    pick = np.unique(np.linspace(0, len(path) - 1, min(max_volumes, len(path))).round().astype(int))
    points = z[path[pick]]
    write_npy(out / "z_values.npy", points.numpy())
    names = _write_volumes(generate_volumes(model, points), out, info["pixel_size_angstrom"])
    typer.echo(
        f"path of {len(path)} particles (latent length {length:.3f}); {len(names)} maps in {out}",
        err=json_out,
    )
    if json_out:
        print_json(
            {
                "headline": ["path_particles", "latent_length", "maps"],
                "path_particles": len(path),
                "latent_length": float(length),
                "maps": len(names),
                "path_indices": [int(i) for i in path.tolist()],
                "files": [str(out / n) for n in names],
            }
        )


# ----------------------------------------------------------------------------- select


@app.command()
def select(
    folder: Path = typer.Argument(..., help="A `cryoglass vae train` output folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .star."),
    kmeans_labels: Path | None = typer.Option(None, help="labels.npy from `vae analyze`."),
    classes: str | None = typer.Option(None, help="Clusters to keep, e.g. 0,3 (with labels)."),
    indices: Path | None = typer.Option(None, help="Particle indices (.npy or text, 0-based)."),
    invert: bool = typer.Option(False, help="Keep the particles NOT selected."),
    epoch: int | None = typer.Option(None, help="Epoch of the latents written (default: last)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """A star subset by k-means cluster or index list, with latents as star columns.

    Example: cryoglass vae select vae01 --kmeans-labels vae01/analyze.20/labels.npy \\
    --classes 0,3 --out sel.star
    """
    import numpy as np
    import torch

    from cryoglass.io import read_particles, write_latent_star

    info = _config(folder)
    check_outputs(
        [out],
        inputs=[folder / "config.json", kmeans_labels, indices, info.get("star")],
        overwrite=overwrite,
    )
    _, epoch = _checkpoint(folder, epoch)
    z = _latents(folder, epoch)
    if (kmeans_labels is None) == (indices is None):
        fail("give exactly one of --kmeans-labels (with --classes) or --indices")
    n = info["n_particles"]
    keep = torch.zeros(n, dtype=torch.bool)
    with failing(OSError, ValueError):
        if kmeans_labels is not None:
            if classes is None:
                fail("--kmeans-labels needs --classes, e.g. --classes 0,3")
            labels = torch.as_tensor(np.load(kmeans_labels))
            if labels.shape != (n,):
                fail(f"{kmeans_labels}: {labels.shape[0]} labels for {n} particles")
            wanted = torch.tensor([int(c) for c in classes.split(",")])
            keep = torch.isin(labels, wanted)
        else:
            ids = np.load(indices) if indices.suffix == ".npy" else np.loadtxt(indices, ndmin=1)
            ids = torch.as_tensor(np.asarray(ids, dtype=np.int64)).reshape(-1)
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
                fail(f"{indices}: indices must be in 0..{n - 1}")
            keep[ids] = True
    if invert:
        keep = ~keep
    particles = read_particles(info["star"], datadir=info.get("datadir"))
    rows = torch.nonzero(keep).reshape(-1)
    with failing(FileExistsError, ValueError):
        write_latent_star(out, particles.subset(rows), z[rows], overwrite=overwrite)
    typer.echo(f"wrote {len(rows)} of {n} particles to {out}", err=json_out)
    if json_out:
        print_json(
            {"headline": ["selected", "total"], "selected": len(rows), "total": n, "out": str(out)}
        )
