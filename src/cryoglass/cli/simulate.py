"""`cryoglass simulate`: a simulated dataset (images, STAR, cryoDRGN pickles, truth, report)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json

#: Files the command writes into DIR (it refuses to touch anything else).
OUTPUTS = ("particles.mrcs", "particles.star", "poses.pkl", "ctf.pkl", "truth.mrc", "report.html")
_FIGURES = ("examples.png", "spectra.png", "orientations.png")


def _parse_views(text: str):
    """``uniform`` | ``vmf:KAPPA`` | ``topside:F`` | ``topuniform:F`` | ``star:FILE`` → views."""
    from cryoglass.simulate.distributions import ResampledViews
    from cryoglass.validate.planner import orientation_model

    kind, _, value = text.partition(":")
    if kind == "star" and value:
        from cryoglass.io import read_particles

        path = Path(value)
        if not path.is_file():
            fail(f"--views {text}: STAR file {path} not found")
        try:
            particles = read_particles(path, pixel_size_angstrom=1.0, image_size=1)
        except (ValueError, KeyError, OSError) as error:
            fail(f"--views {text}: cannot read {path}: {error}")
        if particles.euler_deg is None:
            fail(f"--views {text}: {path} has no rlnAngleRot/Tilt/Psi columns")
        return ResampledViews(euler_deg=particles.euler_deg)
    try:
        return orientation_model(text)
    except ValueError as error:
        fail(f"--views {text}: {error} (or star:FILE)")


def _check_out(out: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse a non-empty DIR (unless --overwrite) and any output that is an input."""
    targets = {(out / name).resolve() for name in (*OUTPUTS, *_FIGURES)}
    for path in inputs:
        if path.resolve() in targets:
            fail(f"{path}: is an input and would be overwritten by the outputs in {out}")
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        fail(
            f"--out {out}: folder is not empty; pass --overwrite to replace cryoglass outputs there"
        )


def _fit_box(volume, box: int, *, pixel: float, where: str):
    """Pad or crop a cubic map (origin N//2) to ``box``; refuse to cut the particle."""
    import torch

    from cryoglass.simulate.dataset import particle_diameter_angstrom

    n = volume.shape[-1]
    needed = int(
        torch.tensor(particle_diameter_angstrom(volume, pixel_size_angstrom=pixel) / pixel).ceil()
    )
    if box < needed:
        fail(
            f"--box {box}: too small for the particle in {where} (diameter {needed * pixel:.1f} Å "
            f"at {pixel:.4g} Å/px); the box needed is at least {needed} px"
        )
    if box == n:
        return volume
    if box < n:
        start = n // 2 - box // 2
        return volume[start : start + box, start : start + box, start : start + box].clone()
    out = volume.new_zeros((box, box, box))
    start = box // 2 - n // 2
    out[start : start + n, start : start + n, start : start + n] = volume
    return out


def _load_volume(path: Path, apix: float | None):
    """Read a map; resample to --apix when the header gives another pixel size."""
    from cryoglass.fourier import rescale
    from cryoglass.io import read_mrc

    if not path.is_file():
        fail(f"--volume {path}: map not found")
    try:
        volume, info = read_mrc(path)
    except (ValueError, OSError) as error:
        fail(f"--volume {path}: cannot read the map: {error}")
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        fail(f"--volume {path}: the map must be a cubic 3D volume, got shape {tuple(volume.shape)}")
    header = info.pixel_size_angstrom
    if header is None and apix is None:
        fail(f"--volume {path}: the header has no pixel size; give it with --apix")
    if header is None or apix is None or abs(header - apix) <= 1e-4 * apix:
        return volume, float(apix if apix is not None else header)
    resampled, actual = rescale(
        volume, pixel_size_angstrom=header, new_pixel_size_angstrom=apix, ndim=3
    )
    return resampled, float(actual)


def _load_model(path: Path, apix: float | None, box: int | None):
    """Coulomb potential [V] of an atomic model (centre of mass at N//2), its pixel size."""
    import math

    import torch

    from cryoglass.io import read_structure
    from cryoglass.simulate.potential import (
        model_center_angstrom,
        potential_map,
        required_box_size,
    )

    if not path.is_file():
        fail(f"--model {path}: file not found")
    pixel = 1.0 if apix is None else apix
    try:
        model = read_structure(path, hydrogens=True, waters=False)
        if len(model) == 0:
            raise ValueError("the model has no atoms")
        coords = model.coordinates_angstrom
        centre = model_center_angstrom(coords, model.elements)
        needed = required_box_size(coords, pixel_size_angstrom=pixel, origin_angstrom=centre)
    except (ValueError, OSError, RuntimeError) as error:
        fail(f"--model {path}: {error}")
    if box is not None and box < needed:
        fail(
            f"--box {box}: too small for {path} at {pixel:g} Å/px; the box needed is at "
            f"least {needed} px (every atom plus a 5 Å margin)"
        )
    # Default: 1.5 × the model's extent (room for the CTF's delocalisation), even.
    size = box or 2 * math.ceil(0.75 * needed)
    try:
        volume = potential_map(
            coords,
            model.elements,
            shape=(size, size, size),
            pixel_size_angstrom=pixel,
            bfactors_a2=model.bfactors_a2,
            occupancies=model.occupancies,
            origin_angstrom=centre,
            dtype=torch.float32,
        )
    except (ValueError, OSError, RuntimeError) as error:
        fail(f"--model {path}: {error}")
    return volume, pixel


def _write_stack(out: Path, chunks, *, n: int, box: int, pixel: float, progress_task):
    """Stream chunks into DIR/particles.mrcs (temp name, renamed at the end); return params."""
    import mrcfile
    import numpy as np
    import torch

    from cryoglass.simulate.dataset import ParticleParameters

    final = out / "particles.mrcs"
    tmp = out / f".particles.mrcs.{os.getpid()}.tmp"
    parts, total, total2, low, high = [], 0.0, 0.0, np.inf, -np.inf
    first = None
    try:
        # The header (and the file's full size) comes from mrcfile; the images are then written
        # chunk by chunk with plain file writes, so the process holds one chunk at a time (a
        # memory map would count every written page in the process's resident memory).
        with mrcfile.new_mmap(tmp, shape=(n, box, box), mrc_mode=2, overwrite=True) as mrc:
            mrc.set_image_stack()
            mrc.voxel_size = pixel
            data_offset = mrc.header.nbytes + int(mrc.header.nsymbt)
            byte_order = mrc.data.dtype.byteorder
        image_bytes = box * box * 4
        with open(tmp, "r+b") as handle:
            for chunk in chunks:
                images = chunk.images.detach().to("cpu", torch.float32).numpy()
                handle.seek(data_offset + chunk.start * image_bytes)
                handle.write(
                    np.ascontiguousarray(
                        images, dtype=np.dtype("f4").newbyteorder(byte_order)
                    ).tobytes()
                )
                total += float(images.sum(dtype=np.float64))
                total2 += float(np.square(images, dtype=np.float64).sum())
                low, high = min(low, float(images.min())), max(high, float(images.max()))
                parts.append(chunk.parameters)
                if first is None:
                    first = (images[:8].copy(), chunk.clean[:8].detach().cpu())
                progress_task(len(images))
        count = n * box * box
        mean = total / count
        with mrcfile.mmap(tmp, mode="r+") as mrc:
            mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = low, high, mean
            mrc.header.rms = float(np.sqrt(max(total2 / count - mean * mean, 0.0)))
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ParticleParameters.concatenate(parts), first


def _write_metadata(out: Path, params, *, n: int, box: int, pixel: float) -> None:
    """particles.star (RELION 3.1), poses.pkl and ctf.pkl (cryoDRGN)."""
    import dataclasses

    import pandas as pd

    from cryoglass.io import (
        make_particle_set,
        write_cryodrgn_ctf,
        write_cryodrgn_poses,
        write_relion_star,
    )

    names = [f"{i:06d}@particles.mrcs" for i in range(1, n + 1)]
    particles = make_particle_set(
        names,
        pixel_size_angstrom=pixel,
        image_size=box,
        euler_deg=params.euler_deg,
        shift_angstrom=params.shift_angstrom,
        ctf=params.ctf,
        image_root=out,
    )
    table = pd.DataFrame({"rlnRandomSubset": params.random_subset.numpy().astype(int)})
    particles = dataclasses.replace(particles, particles_table=table)
    write_relion_star(out / "particles.star", particles, overwrite=True)
    write_cryodrgn_poses(
        out / "poses.pkl",
        params.euler_deg,
        params.shift_angstrom,
        image_size=box,
        pixel_size_angstrom=pixel,
        overwrite=True,
    )
    write_cryodrgn_ctf(
        out / "ctf.pkl", params.ctf, image_size=box, pixel_size_angstrom=pixel, overwrite=True
    )


def _report(out: Path, *, params, examples, pixel: float, summary: dict) -> None:
    """DIR/report.html: example images, power spectra against CTF², orientation plot."""
    from cryoglass.report.figures import pyplot

    plt = pyplot()
    import numpy as np
    import torch

    from cryoglass.ctf import ctf_2d
    from cryoglass.fourier import fft2_centered
    from cryoglass.report.figures import save_figure
    from cryoglass.report.html import Section, write_html_report
    from cryoglass.simulate.distributions import viewing_direction

    examples, clean = examples
    k = len(examples)
    first = params[:k]
    fig, axes = plt.subplots(2, k, figsize=(2 * k, 4.2), squeeze=False)
    for i in range(k):
        for row, image in enumerate((examples[i], clean[i].numpy())):
            axes[row, i].imshow(image, cmap="gray", origin="lower")
            axes[row, i].axis("off")
        axes[0, i].set_title(f"#{i + 1}", fontsize=8)
    save_figure(fig, out / "examples.png")

    shown = min(k, 4)
    box = examples.shape[-1]
    power = fft2_centered(clean[:shown]).abs().square()
    ctf2 = ctf_2d(first.ctf[:shown], image_size=box, pixel_size_angstrom=pixel, rfft=False) ** 2
    fig, axes = plt.subplots(1, shown, figsize=(3 * shown, 3.2), squeeze=False)
    for i in range(shown):
        logp = torch.log(power[i] + 1e-12 * float(power[i].max()))
        low, high = torch.quantile(logp, torch.tensor([0.05, 0.995], dtype=logp.dtype))
        logp = ((logp - low) / (high - low + 1e-12)).clamp(0, 1)
        panel = torch.cat((logp[:, : box // 2], ctf2[i, :, box // 2 :].to(logp.dtype)), dim=1)
        zoom = slice(box // 4, box // 4 + box // 2)  # frequencies up to half Nyquist
        axes[0, i].imshow(panel[zoom, zoom].numpy(), cmap="gray", origin="lower")
        axes[0, i].axis("off")
        du = float(first.ctf.defocus_u_angstrom[i]) / 1e4
        axes[0, i].set_title(f"#{i + 1}: ΔU {du:.2f} µm", fontsize=8)
    save_figure(fig, out / "spectra.png")

    m = min(len(params), 20000)
    direction = viewing_direction(params.euler_deg[:m]).numpy()
    longitude = np.arctan2(direction[:, 1], direction[:, 0])
    latitude = np.arcsin(np.clip(direction[:, 2], -1, 1))
    fig = plt.figure(figsize=(7, 3.8))
    ax = fig.add_subplot(projection="mollweide")
    ax.scatter(longitude, latitude, s=1, alpha=0.3)
    ax.grid(True)
    ax.set_title("projection directions Aᵀe_z (longitude = rot, latitude = 90° − tilt)", fontsize=9)
    save_figure(fig, out / "orientations.png")

    write_html_report(
        out / "report.html",
        title="cryoglass simulate",
        intro=(
            "A simulated single-particle dataset. Images are projections of truth.mrc at the "
            "poses in particles.star (RELION 3.1), multiplied by each particle's CTF, plus noise."
        ),
        sections=[
            Section("Summary", table=tuple((key, str(value)) for key, value in summary.items())),
            Section(
                "Example images",
                figures=(("examples.png", "top: the images as written; bottom: without noise"),),
            ),
            Section(
                "Power spectra and CTF",
                figures=(
                    (
                        "spectra.png",
                        "up to half Nyquist; left half: log power spectrum of the noise-free "
                        "image; right half: "
                        "CTF² from the particle's STAR parameters (the Thon rings continue "
                        "across when the written CTF matches the images)",
                    ),
                ),
            ),
            Section(
                "Orientations",
                figures=(("orientations.png", f"projection directions of {m} particles"),),
            ),
        ],
    )


def _simulate_distributed(
    out: Path,
    volume,
    *,
    n,
    pixel,
    distributions,
    snr,
    dose,
    seed,
    chunk_size,
    workers,
    scheduler,
    multislice_thickness_angstrom=None,
):
    """The stack written by Dask workers (they read the map from DIR/truth.mrc)."""
    from cryoglass.distributed import SimulateSettings
    from cryoglass.distributed.commands import distributed_simulate
    from cryoglass.io import write_mrc
    from cryoglass.simulate.dataset import calibrate_noise_std

    truth = out / "truth.mrc"
    write_mrc(truth, volume.cpu(), pixel_size_angstrom=pixel, overwrite=True)
    noise_std = None
    if snr is not None:
        noise_std = calibrate_noise_std(
            volume,
            pixel_size_angstrom=pixel,
            snr=snr,
            distributions=distributions,
            seed=seed,
            multislice_thickness_angstrom=multislice_thickness_angstrom,
        )
    settings = SimulateSettings(
        volume_path=str(truth.resolve()),
        n=n,
        pixel_size_angstrom=pixel,
        distributions=distributions,
        noise_std=noise_std,
        dose_e_per_a2=dose,
        seed=seed,
        multislice_thickness_angstrom=multislice_thickness_angstrom,
    )
    return distributed_simulate(
        out / "particles.mrcs",
        settings=settings,
        box=volume.shape[-1],
        workers=workers,
        scheduler=scheduler,
        chunk_size=chunk_size,
        echo=lambda text: typer.echo(text, err=True),
    )


def main(
    volume_path: Path | None = typer.Option(None, "--volume", help="Input map (.mrc), cubic."),
    model_path: Path | None = typer.Option(
        None, "--model", help="Atomic model (.pdb/.cif) instead of a map."
    ),
    n: int = typer.Option(..., "--n", help="Number of particles (≥ 1)."),
    out: Path = typer.Option(..., "--out", help="Output folder (created; must be empty)."),
    box: int | None = typer.Option(
        None, "--box", help="Image box [px] (default: the map's; --model: 1.5 × its extent)."
    ),
    apix: float | None = typer.Option(
        None,
        "--apix",
        help="Pixel size [Å]; --volume: resample from the header's; --model: default 1 Å.",
    ),
    snr: float | None = typer.Option(None, "--snr", help="Gaussian noise at this SNR."),
    dose: float | None = typer.Option(
        None, "--dose", help="Poisson shot noise at this dose [e⁻/Å²] (map in volts)."
    ),
    defocus_min_um: float = typer.Option(1.0, "--defocus-min-um", help="Smallest defocus [µm]."),
    defocus_max_um: float = typer.Option(2.5, "--defocus-max-um", help="Largest defocus [µm]."),
    astigmatism_angstrom: float = typer.Option(
        0.0, "--astigmatism-angstrom", help="Largest ΔU − ΔV [Å] (random angle)."
    ),
    shift_std_angstrom: float = typer.Option(
        0.0, "--shift-std-angstrom", help="σ of Gaussian in-plane origins per axis [Å]."
    ),
    bfactor_max_a2: float = typer.Option(
        0.0, "--bfactor-max-a2", help="Per-particle CTF B-factor uniform in [0, this] [Å²]."
    ),
    views: str = typer.Option(
        "uniform",
        "--views",
        help="uniform | vmf:KAPPA | topside:FRACTION | topuniform:FRACTION | star:FILE.",
    ),
    voltage_kv: float = typer.Option(300.0, "--voltage-kv", help="Voltage [kV]."),
    cs_mm: float = typer.Option(2.7, "--cs-mm", help="Spherical aberration [mm]."),
    amplitude_contrast: float = typer.Option(
        0.1, "--amplitude-contrast", help="Amplitude contrast Q0."
    ),
    multislice: bool = typer.Option(
        False,
        "--multislice",
        help="Multislice image formation (the map read as a potential in volts).",
    ),
    slice_thickness_angstrom: float = typer.Option(
        2.0,
        "--slice-thickness-angstrom",
        help="Multislice slice thickness [Å], a whole multiple of the pixel size.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the whole dataset."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (cuda:0, ...)."),
    chunk_size: int = typer.Option(
        1000, "--chunk-size", help="Images per chunk (memory only; data do not depend on it)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into a non-empty DIR, replacing cryoglass outputs."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Simulate on a local Dask cluster of N processes."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Simulate on an existing Dask cluster (tcp://host:8786)."
    ),
) -> None:
    """Simulate a particle dataset: images, RELION STAR, cryoDRGN pickles, truth map, report.

    Each particle is the projection of the map (Fourier slice, as relion_project) at a random
    pose and in-plane origin, multiplied by its CTF (random defocus, RELION's convention), plus
    Gaussian noise at --snr (signal variance inside the particle's disc over the noise
    variance) or Poisson shot noise at --dose (the map read as a potential in volts), or no
    noise.  Writes into DIR: particles.mrcs, particles.star (RELION 3.1: optics group, angles,
    origins in Å, defocus, phase shift, rlnRandomSubset), poses.pkl and ctf.pkl (cryoDRGN),
    truth.mrc (the map at the output box and pixel size) and report.html.  The pixel size is
    the map header's; --apix resamples the map to another one.  The same --seed gives the
    same dataset whatever --chunk-size.

    With --multislice each particle's map is rotated to its pose (trilinear) and the electron
    wave is propagated through it in slices of --slice-thickness-angstrom (a whole multiple
    of the pixel size), imaged with the particle's lens (defocus measured from the
    particle's centre plane) and written in the same units and sign as the projection
    images, so that for a thin weak particle both agree; noise is added the same way.  The
    map must be a Coulomb potential in volts: --model makes one; a --volume map is assumed
    to be one (a density in other units gives a wrongly scaled phase).

    DIR must be empty or new (--overwrite replaces the
    files above and leaves others alone); inputs are never overwritten.

    \b
    Example:
      cryoglass simulate --volume emd.mrc --n 10000 --box 128 --apix 1.5 --snr 0.1 --out sim
      relion_reconstruct --i sim/particles.star --ctf --o sim/rec.mrc   # gives back truth.mrc
    With --workers N (local Dask processes) or --scheduler ADDRESS (docs/scaling.md) each task
    simulates whole seeding blocks and writes them into its rows of particles.mrcs: the same
    dataset as without them (also with --multislice, where most of the time goes).
      cryoglass simulate --volume emd.mrc --n 100000 --snr 0.1 --out sim --workers 2
    """
    if n < 1:
        fail(f"--n {n}: the number of particles must be at least 1")
    if (volume_path is None) == (model_path is None):
        fail("give exactly one of --volume MAP.mrc or --model MODEL.pdb|cif")
    if snr is not None and dose is not None:
        fail("give --snr or --dose, not both (Gaussian noise or shot noise)")
    if snr is not None and not snr > 0:
        fail(f"--snr {snr}: must be > 0")
    if dose is not None and not dose > 0:
        fail(f"--dose {dose}: must be > 0 e⁻/Å²")
    if box is not None and box < 8:
        fail(f"--box {box}: must be at least 8 px")
    if apix is not None and not apix > 0:
        fail(f"--apix {apix}: must be > 0 Å")
    if not 0 <= defocus_min_um <= defocus_max_um:
        fail(
            f"--defocus-min-um {defocus_min_um} / --defocus-max-um {defocus_max_um}: "
            "need 0 ≤ min ≤ max"
        )
    if chunk_size < 1:
        fail(f"--chunk-size {chunk_size}: must be ≥ 1")
    if workers is not None and scheduler is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    distributed = workers is not None or scheduler is not None
    if distributed and device != "cpu":
        fail("--workers/--scheduler simulate on the workers' CPUs; drop --device")
    if multislice and not slice_thickness_angstrom > 0:
        fail(f"--slice-thickness-angstrom {slice_thickness_angstrom}: must be > 0 Å")
    inputs = [p for p in (volume_path, model_path) if p is not None]
    if views.startswith("star:"):
        inputs.append(Path(views[5:]))
    _check_out(out, inputs, overwrite)

    import torch
    from rich.progress import Progress

    from cryoglass.io import write_mrc
    from cryoglass.simulate.dataset import ParticleDistributions, simulate_dataset

    try:
        target = torch.device(device)
        torch.empty(0, device=target)
    except (RuntimeError, AssertionError) as error:
        fail(f"--device {device}: not available ({error})")
    view_spec = _parse_views(views)
    if volume_path is not None:
        volume, pixel = _load_volume(volume_path, apix)
        source = str(volume_path)
        volume = _fit_box(volume, box or volume.shape[-1], pixel=pixel, where=source)
    else:
        volume, pixel = _load_model(model_path, apix, box)
        source = str(model_path)
    box = volume.shape[-1]
    voxels_per_slice = slice_thickness_angstrom / pixel
    if multislice and abs(voxels_per_slice - round(voxels_per_slice)) > 1e-6:
        fail(
            f"--slice-thickness-angstrom {slice_thickness_angstrom}: must be a whole multiple "
            f"of the pixel size {pixel:g} Å (choose it or --apix accordingly)"
        )
    distributions = ParticleDistributions(
        views=view_spec,
        defocus_min_um=defocus_min_um,
        defocus_max_um=defocus_max_um,
        astigmatism_angstrom=astigmatism_angstrom,
        shift_scale_angstrom=shift_std_angstrom,
        bfactor_max_a2=bfactor_max_a2,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
    )
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    memory = None
    try:
        if distributed:
            params, examples, memory = _simulate_distributed(
                out,
                volume,
                n=n,
                pixel=pixel,
                distributions=distributions,
                snr=snr,
                dose=dose,
                seed=seed,
                chunk_size=chunk_size,
                workers=workers,
                scheduler=scheduler,
                multislice_thickness_angstrom=slice_thickness_angstrom if multislice else None,
            )
        else:
            chunks = simulate_dataset(
                volume,
                n=n,
                pixel_size_angstrom=pixel,
                distributions=distributions,
                snr=snr,
                dose_e_per_a2=dose,
                chunk_size=chunk_size,
                seed=seed,
                device=target,
                keep_clean=True,
                multislice_thickness_angstrom=slice_thickness_angstrom if multislice else None,
            )
            with Progress(transient=True) as progress:
                task = progress.add_task("simulating", total=n)
                params, examples = _write_stack(
                    out,
                    chunks,
                    n=n,
                    box=box,
                    pixel=pixel,
                    progress_task=lambda k: progress.update(task, advance=k),
                )
    except ValueError as error:
        fail(str(error))
    elapsed = time.perf_counter() - started
    _write_metadata(out, params, n=n, box=box, pixel=pixel)
    write_mrc(out / "truth.mrc", volume.cpu(), pixel_size_angstrom=pixel, overwrite=True)
    summary = {
        "particles": n,
        "box_px": box,
        "pixel_size_angstrom": round(pixel, 6),
        "source": source,
        "noise": f"snr {snr}" if snr is not None else (f"dose {dose} e/A^2" if dose else "none"),
        "defocus_um": [defocus_min_um, defocus_max_um],
        "views": views,
        "image_formation": (
            f"multislice ({slice_thickness_angstrom:g} A slices)" if multislice else "projection"
        ),
        "seed": seed,
        "device": str(target),
        "seconds": round(elapsed, 3),
        "out": str(out),
    }
    if memory is not None:
        summary.update(memory)
    else:
        from cryoglass.distributed.cluster import peak_rss_bytes

        summary["peak_rss_mib"] = round(peak_rss_bytes() / 2**20, 1)
    _report(out, params=params, examples=examples, pixel=pixel, summary=summary)
    if json_output:
        print_json(summary)
    else:
        typer.echo(
            f"wrote {n} particles ({box}² px, {pixel:g} Å/px) to {out} in {elapsed:.1f} s", err=True
        )
