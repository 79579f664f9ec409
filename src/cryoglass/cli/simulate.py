"""`cryoglass simulate`: a simulated dataset (images, STAR, cryoDRGN pickles, truth, report)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cryoglass.cli._common import fail, failing, print_json, require_memory, torch_device
from cryoglass.cli.options import Device, JsonOutput, Scheduler, Workers

#: Files the command writes into DIR (it refuses to touch anything else).
OUTPUTS = ("particles.mrcs", "particles.star", "poses.pkl", "ctf.pkl", "truth.mrc", "report.html")
_FIGURES = ("examples.png", "spectra.png", "orientations.png")


# The command's options: flag and help text (the signature of `main` gives their defaults).
_VolumePath = Annotated[Path | None, typer.Option("--volume", help="Input map (.mrc), cubic.")]
_ModelPath = Annotated[
    Path | None, typer.Option("--model", help="Atomic model (.pdb/.cif) instead of a map.")
]
_N = Annotated[int, typer.Option("--n-particles", help="Number of particles (≥ 1).")]
_Out = Annotated[Path, typer.Option("--out", help="Output folder (created; must be empty).")]
_Box = Annotated[
    int | None,
    typer.Option("--box", help="Image box [px] (default: the map's; --model: 1.5 × its extent)."),
]
_Apix = Annotated[
    float | None,
    typer.Option(
        "--apix", help="Pixel size [Å]; --volume: resample from the header's; --model: default 1 Å."
    ),
]
_Snr = Annotated[float | None, typer.Option("--snr", help="Gaussian noise at this SNR.")]
_Dose = Annotated[
    float | None,
    typer.Option("--dose", help="Poisson shot noise at this dose [e⁻/Å²] (map in volts)."),
]
_DefocusMin = Annotated[
    float, typer.Option("--defocus-min", help="Smallest defocus [Å] (positive = underfocus).")
]
_DefocusMax = Annotated[float, typer.Option("--defocus-max", help="Largest defocus [Å].")]
# the same in µm (the spelling before defocus was in Å everywhere; hidden, still accepted)
_DefocusMinUm = Annotated[float | None, typer.Option("--defocus-min-um", hidden=True)]
_DefocusMaxUm = Annotated[float | None, typer.Option("--defocus-max-um", hidden=True)]
_AstigmatismAngstrom = Annotated[
    float, typer.Option("--astigmatism-angstrom", help="Largest ΔU − ΔV [Å] (random angle).")
]
_ShiftStdAngstrom = Annotated[
    float, typer.Option("--shift-std-angstrom", help="σ of Gaussian in-plane origins per axis [Å].")
]
_BfactorMaxA2 = Annotated[
    float,
    typer.Option("--bfactor-max-a2", help="Per-particle CTF B-factor uniform in [0, this] [Å²]."),
]
_Views = Annotated[
    str,
    typer.Option(
        "--views", help="uniform | vmf:KAPPA | topside:FRACTION | topuniform:FRACTION | star:FILE."
    ),
]
_VoltageKv = Annotated[float, typer.Option("--voltage-kv", help="Voltage [kV].")]
_CsMm = Annotated[float, typer.Option("--cs-mm", help="Spherical aberration [mm].")]
_AmplitudeContrast = Annotated[
    float, typer.Option("--amplitude-contrast", help="Amplitude contrast Q0.")
]
_Multislice = Annotated[
    bool,
    typer.Option(
        "--multislice", help="Multislice image formation (the map read as a potential in volts)."
    ),
]
_SliceThicknessAngstrom = Annotated[
    float,
    typer.Option(
        "--slice-thickness-angstrom",
        help="Multislice slice thickness [Å], a whole multiple of the pixel size.",
    ),
]
_Seed = Annotated[int, typer.Option("--seed", help="Seed of the whole dataset.")]
_ChunkSize = Annotated[
    int,
    typer.Option("--chunk-size", help="Images per chunk (memory only; data do not depend on it)."),
]
_Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Write into a non-empty DIR, replacing cryoglass outputs."),
]


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
        if particles.in_plane_only:
            fail(f"--views {text}: {path} holds 2D alignments (in-plane angles), not 3D views")
        return ResampledViews(euler_deg=particles.euler_deg)
    try:
        return orientation_model(text)
    except ValueError as error:
        fail(f"--views {text}: {error} (or star:FILE)")


def _check_out(out: Path, overwrite: bool, *, volume_path, model_path, views: str) -> None:
    """Refuse a non-empty DIR (unless --overwrite) and any output that is an input."""
    inputs = [p for p in (volume_path, model_path) if p is not None]
    if views.startswith("star:"):
        inputs.append(Path(views[5:]))
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
    from cryoglass.simulate.box import fit_to_box, particle_box_size

    needed = particle_box_size(volume, pixel_size_angstrom=pixel)
    if box < needed:
        fail(
            f"--box {box}: too small for the particle in {where} (diameter {needed * pixel:.1f} Å "
            f"at {pixel:.4g} Å/px); the box needed is at least {needed} px"
        )
    return fit_to_box(volume, box)


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


def _read_source(volume_path: Path | None, model_path: Path | None, *, box, apix):
    """(map at the output box, its pixel size [Å], its file name) from --volume or --model."""
    if volume_path is not None:
        volume, pixel = _load_volume(volume_path, apix)
        where = str(volume_path)
        return _fit_box(volume, box or volume.shape[-1], pixel=pixel, where=where), pixel, where
    volume, pixel = _load_model(model_path, apix, box)
    return volume, pixel, str(model_path)


def _write_stack(out: Path, chunks, *, n: int, box: int, pixel: float, advance):
    """Stream the chunks into DIR/particles.mrcs; (parameters, first 8 noisy and clean images)."""
    import torch

    from cryoglass.io import MRCStackWriter
    from cryoglass.simulate.dataset import ParticleParameters

    parts, first = [], None
    with MRCStackWriter(
        out / "particles.mrcs",
        n_images=n,
        image_shape=(box, box),
        pixel_size_angstrom=pixel,
        overwrite=True,
    ) as writer:
        for chunk in chunks:
            writer.write(chunk.start, chunk.images)
            parts.append(chunk.parameters)
            if first is None:
                noisy = chunk.images[:8].detach().to("cpu", torch.float32).numpy().copy()
                first = (noisy, chunk.clean[:8].detach().cpu())
            advance(len(chunk.images))
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


def _write_outputs(out: Path, volume, params, examples, *, pixel: float, summary: dict) -> None:
    """Everything but the stack: particles.star, the pickles, truth.mrc and report.html."""
    from cryoglass.io import write_mrc
    from cryoglass.report.simulate import write_simulate_report

    _write_metadata(out, params, n=len(params), box=volume.shape[-1], pixel=pixel)
    write_mrc(out / "truth.mrc", volume.cpu(), pixel_size_angstrom=pixel, overwrite=True)
    write_simulate_report(
        out, parameters=params, examples=examples, pixel_size_angstrom=pixel, summary=summary
    )


def _check_values(n, volume_path, model_path, snr, dose, box, apix, defocus_min, defocus_max):
    """Refuse option values that cannot make a dataset (before anything is read)."""
    if n < 1:
        fail(f"--n-particles {n}: the number of particles must be at least 1")
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
    if not 0 <= defocus_min <= defocus_max:
        fail(f"--defocus-min {defocus_min:g} / --defocus-max {defocus_max:g} Å: need 0 ≤ min ≤ max")


def _check_box_memory(box: int, chunk_size: int) -> None:
    """Refuse a box whose map and image chunks cannot fit in memory, before allocating.

    Peak memory above the interpreter's, measured for 1000 images in one chunk: +470 MB at
    box 128, +1280 MB at box 192 (``peak_rss_mib``); ``96·B³`` (map, its 2× padded
    transform) plus ``24·chunk·B²`` (a chunk's images, transforms, CTFs) bounds both.
    """
    need = 96.0 * float(box) ** 3 + 24.0 * chunk_size * float(box) ** 2
    require_memory(need, what=f"--box {box} (chunk of {chunk_size} images)")


def _check_run(chunk_size: int, workers, scheduler, device: str, thickness) -> None:
    """Refuse a bad chunking, contradictory --workers/--scheduler/--device, a bad thickness."""
    if chunk_size < 1:
        fail(f"--chunk-size {chunk_size}: must be ≥ 1")
    if workers is not None and scheduler is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    if (workers is not None or scheduler is not None) and device != "cpu":
        fail("--workers/--scheduler simulate on the workers' CPUs; drop --device")
    if thickness is not None and not thickness > 0:
        fail(f"--slice-thickness-angstrom {thickness}: must be > 0 Å")


def _device(device: str):
    """The torch device of --device, or exit when it is not available."""

    target = torch_device(device)
    return target


def _check_thickness(thickness: float | None, pixel: float) -> None:
    """A multislice slice must be a whole number of voxels thick."""
    voxels = None if thickness is None else thickness / pixel
    if voxels is not None and abs(voxels - round(voxels)) > 1e-6:
        fail(
            f"--slice-thickness-angstrom {thickness}: must be a whole multiple "
            f"of the pixel size {pixel:g} Å (choose it or --apix accordingly)"
        )


def _peak_rss() -> dict:
    """This process's peak resident memory [MiB], for the summary of a one-process run."""
    from cryoglass.distributed.cluster import peak_rss_bytes

    return {"peak_rss_mib": round(peak_rss_bytes() / 2**20, 1)}


def _simulate(
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
    device,
    workers,
    scheduler,
    thickness,
):
    """Write DIR/particles.mrcs in this process, or on Dask workers (--workers/--scheduler).

    Returns the particles' parameters, the first images (noisy, clean), the seconds taken
    and the peak memory of the client and workers (None without workers).
    """
    from cryoglass.simulate.dataset import calibrate_noise_std, simulate_dataset

    started = time.perf_counter()
    if workers is None and scheduler is None:
        from rich.progress import Progress

        chunks = simulate_dataset(
            volume,
            n=n,
            pixel_size_angstrom=pixel,
            distributions=distributions,
            snr=snr,
            dose_e_per_a2=dose,
            chunk_size=chunk_size,
            seed=seed,
            device=device,
            keep_clean=True,
            multislice_thickness_angstrom=thickness,
        )
        with Progress(transient=True) as progress:
            task = progress.add_task("simulating", total=n)
            params, examples = _write_stack(
                out,
                chunks,
                n=n,
                box=volume.shape[-1],
                pixel=pixel,
                advance=lambda k: progress.update(task, advance=k),
            )
        return params, examples, time.perf_counter() - started, None

    from cryoglass.distributed import SimulateSettings
    from cryoglass.distributed.commands import distributed_simulate
    from cryoglass.io import write_mrc

    truth = out / "truth.mrc"  # the workers read the map from here
    write_mrc(truth, volume.cpu(), pixel_size_angstrom=pixel, overwrite=True)
    noise_std = None
    if snr is not None:
        noise_std = calibrate_noise_std(
            volume,
            pixel_size_angstrom=pixel,
            snr=snr,
            distributions=distributions,
            seed=seed,
            multislice_thickness_angstrom=thickness,
        )
    settings = SimulateSettings(
        volume_path=str(truth.resolve()),
        n=n,
        pixel_size_angstrom=pixel,
        distributions=distributions,
        noise_std=noise_std,
        dose_e_per_a2=dose,
        seed=seed,
        multislice_thickness_angstrom=thickness,
    )
    params, examples, memory = distributed_simulate(
        out / "particles.mrcs",
        settings=settings,
        box=volume.shape[-1],
        workers=workers,
        scheduler=scheduler,
        chunk_size=chunk_size,
        echo=lambda text: typer.echo(text, err=True),
    )
    return params, examples, time.perf_counter() - started, memory


def _summary(
    n,
    box,
    pixel,
    source,
    snr,
    dose,
    views,
    seed,
    defocus,
    thickness,
    device,
    seconds,
    *,
    out,
    memory,
) -> dict:
    """The --json summary (and the report's table)."""
    return {
        "particles": n,
        "box_px": box,
        "pixel_size_angstrom": round(pixel, 6),
        "source": source,
        "noise": f"snr {snr}" if snr is not None else (f"dose {dose} e/A^2" if dose else "none"),
        "defocus_um": [defocus[0] / 1e4, defocus[1] / 1e4],
        "views": views,
        "image_formation": f"multislice ({thickness:g} A slices)" if thickness else "projection",
        "seed": seed,
        "device": str(device),
        "seconds": round(seconds, 3),
        "out": str(out),
        **(memory or _peak_rss()),
    }


def main(
    volume_path: _VolumePath = None,
    model_path: _ModelPath = None,
    n: _N = ...,
    out: _Out = ...,
    box: _Box = None,
    apix: _Apix = None,
    snr: _Snr = None,
    dose: _Dose = None,
    defocus_min: _DefocusMin = 10000.0,
    defocus_max: _DefocusMax = 25000.0,
    defocus_min_um: _DefocusMinUm = None,
    defocus_max_um: _DefocusMaxUm = None,
    astigmatism_angstrom: _AstigmatismAngstrom = 0.0,
    shift_std_angstrom: _ShiftStdAngstrom = 0.0,
    bfactor_max_a2: _BfactorMaxA2 = 0.0,
    views: _Views = "uniform",
    voltage_kv: _VoltageKv = 300.0,
    cs_mm: _CsMm = 2.7,
    amplitude_contrast: _AmplitudeContrast = 0.1,
    multislice: _Multislice = False,
    slice_thickness_angstrom: _SliceThicknessAngstrom = 2.0,
    seed: _Seed = 0,
    device: Device = "cpu",
    chunk_size: _ChunkSize = 1000,
    overwrite: _Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
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

    DIR must be empty or new (--overwrite replaces the files above and leaves others alone);
    inputs are never overwritten.

    \b
    Example:
      cryoglass simulate --volume emd.mrc --n-particles 10000 --box 128 --apix 1.5 --snr 0.1 \\
        --out sim
      relion_reconstruct --i sim/particles.star --ctf --o sim/rec.mrc   # gives back truth.mrc
    With --workers N (local Dask processes) or --scheduler ADDRESS (docs/scaling.md) each task
    simulates whole seeding blocks and writes them into its rows of particles.mrcs: the same
    dataset as without them (also with --multislice, where most of the time goes).
      cryoglass simulate --volume emd.mrc --n-particles 100000 --snr 0.1 --out sim --workers 2
    """
    from cryoglass.simulate.dataset import ParticleDistributions

    defocus_min = defocus_min if defocus_min_um is None else 1e4 * defocus_min_um
    defocus_max = defocus_max if defocus_max_um is None else 1e4 * defocus_max_um
    _check_values(n, volume_path, model_path, snr, dose, box, apix, defocus_min, defocus_max)
    thickness = slice_thickness_angstrom if multislice else None
    _check_run(chunk_size, workers, scheduler, device, thickness)
    _check_out(out, overwrite, volume_path=volume_path, model_path=model_path, views=views)

    if box is not None:
        _check_box_memory(box, chunk_size)
    target = _device(device)
    view_spec = _parse_views(views)
    volume, pixel, source = _read_source(volume_path, model_path, box=box, apix=apix)
    _check_box_memory(volume.shape[-1], chunk_size)
    _check_thickness(thickness, pixel)
    lens = {"voltage_kv": voltage_kv, "cs_mm": cs_mm, "amplitude_contrast": amplitude_contrast}
    distributions = ParticleDistributions(
        views=view_spec,
        defocus_min_um=defocus_min / 1e4,  # the library's unit; the flags are in Å
        defocus_max_um=defocus_max / 1e4,
        astigmatism_angstrom=astigmatism_angstrom,
        shift_scale_angstrom=shift_std_angstrom,
        bfactor_max_a2=bfactor_max_a2,
        **lens,
    )
    noise, dask = {"snr": snr, "dose": dose}, {"workers": workers, "scheduler": scheduler}
    out.mkdir(parents=True, exist_ok=True)
    with failing(ValueError):
        params, examples, seconds, memory = _simulate(
            out,
            volume,
            n=n,
            pixel=pixel,
            distributions=distributions,
            seed=seed,
            chunk_size=chunk_size,
            device=target,
            thickness=thickness,
            **noise,
            **dask,
        )
    box = volume.shape[-1]
    defocus = (defocus_min, defocus_max)
    run = (n, box, pixel, source, snr, dose, views, seed, defocus, thickness, target, seconds)
    summary = _summary(*run, out=out, memory=memory)
    _write_outputs(out, volume, params, examples, pixel=pixel, summary=summary)
    if json_output:
        print_json(summary)
        return
    typer.echo(
        f"wrote {n} particles ({box}² px, {pixel:g} Å/px) to {out} in {seconds:.1f} s", err=True
    )
