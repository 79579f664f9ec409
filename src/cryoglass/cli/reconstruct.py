"""`cryoglass reconstruct`: a 3D map from posed particle images by direct Fourier inversion."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass._allocator import available_memory_bytes
from cryoglass.cli._common import check_outputs, fail, failing, print_json, torch_device
from cryoglass.cli.options import (
    Apix,
    ChunkSize,
    DataDir,
    Device,
    JsonOutput,
    Overwrite,
    Scheduler,
    Workers,
)


def _read(star: Path, pixel_size: float | None, *, ctf: bool, datadir: Path | None = None):
    """Particles with poses (and CTF), one pixel size; exits with a message otherwise."""
    from cryoglass.io import check_particle_set, read_particles

    with failing(ValueError, KeyError, OSError, prefix=f"{star}: "):
        particles = read_particles(star, pixel_size_angstrom=pixel_size, datadir=datadir)
    with failing():
        pixel = check_particle_set(
            particles,
            source=str(star),
            purpose="reconstruction",
            poses=True,
            ctf=ctf,
            ctf_hint="use --no-ctf",
        )
    return particles, pixel


def _labels(particles, *, halves: bool, seed: int):
    """Half set of every particle (rlnRandomSubset, else a seeded split), or all 1."""
    import torch

    from cryoglass.reconstruct import split_halves

    if not halves:
        return torch.ones(len(particles), dtype=torch.int64)
    table = particles.particles_table
    subset = None
    if table is not None and "rlnRandomSubset" in table.columns:
        subset = torch.as_tensor(table["rlnRandomSubset"].to_numpy().astype("int64"))
    generator = torch.Generator().manual_seed(seed)
    return split_halves(len(particles), random_subset=subset, generator=generator)


def _check_options(star: Path, outputs: list[Path], *, overwrite: bool, device: str, **how):
    """Refuse bad option combinations and existing outputs before reading anything."""

    if not star.is_file():
        fail(f"{star}: particle file not found")
    if how["workers"] is not None and how["scheduler"] is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    distributed = how["workers"] is not None or how["scheduler"] is not None
    if how["work_dir"] is not None and not distributed:
        fail("--work-dir checkpoints distributed runs: add --workers N or --scheduler ADDRESS")
    if distributed and device != "cpu":
        fail("--workers/--scheduler back-project on the workers' CPUs; drop --device")
    check_outputs(outputs, inputs=[star], overwrite=overwrite)
    with failing(prefix=f"--symmetry {how['symmetry']}: "):
        from cryoglass.geometry import group_order

        group_order(how["symmetry"])
    target = torch_device(device)
    return target


def _check_memory(need: int, target, summary: str) -> None:
    """Refuse when the estimate exceeds the available memory; else print it."""
    import torch

    have = torch.cuda.mem_get_info(target)[0] if target.type == "cuda" else available_memory_bytes()
    if have is not None and need > have:
        fail(
            f"not enough memory: {summary} needs {need / 2**30:.3g} GiB, {have / 2**30:.3g} GiB "
            "available; try --pad 1, a smaller --batch-size, or without --halves"
        )
    typer.echo(
        f"{summary}: needs about {need / 2**30:.2f} GiB"
        + (f" (available {have / 2**30:.2f} GiB)" if have else ""),
        err=True,
    )


def _backproject(particles, labels, *, pixel: float, ctf: bool, target, options: dict, dask: dict):
    """One accumulator per half set, in this process or on a Dask cluster; with timings."""
    import time

    from rich.progress import Progress

    from cryoglass.io import ParticleStack
    from cryoglass.reconstruct import accumulate_subsets

    groups = tuple(sorted(set(labels.tolist())))
    if dask["workers"] is not None or dask["scheduler"] is not None:
        from cryoglass.distributed import ReconstructSettings
        from cryoglass.distributed.commands import distributed_reconstruct

        settings = ReconstructSettings(
            box=particles.image_size, pixel_size_angstrom=pixel, groups=groups, ctf=ctf, **options
        )
        accs, memory, _ = distributed_reconstruct(
            particles,
            labels=labels,
            settings=settings,
            **dask,
            echo=lambda text: typer.echo(text, err=True),
        )
        return accs, memory
    from cryoglass.distributed.cluster import peak_rss_bytes

    started = time.perf_counter()
    with ParticleStack(particles) as stack, Progress(transient=True) as progress:
        task = progress.add_task("back-projecting", total=len(particles))
        accs = accumulate_subsets(
            stack.iter_batches(options["batch_size"]),
            labels=labels,
            euler_deg=particles.euler_deg,
            shift_angstrom=particles.shift_angstrom,
            ctf=particles.ctf if ctf else None,
            box=particles.image_size,
            pixel_size_angstrom=pixel,
            groups=groups,
            pad=options["pad"],
            symmetry=options["symmetry"],
            device=target,
            progress=lambda count: progress.update(task, advance=count),
        )
    memory = {
        "peak_rss_mib": round(peak_rss_bytes() / 2**20, 1),
        "backprojection_seconds": round(time.perf_counter() - started, 2),
    }
    return accs, memory


def _write_halves(accs, *, out: Path, pixel: float, options: dict, overwrite: bool) -> dict:
    """Half maps, their FSC (JSON and PNG) and the τ²-regularised full map (as RELION)."""
    import json

    from cryoglass.io import write_mrc, write_text_atomic
    from cryoglass.reconstruct import finalize, merge, tau2_from_fsc
    from cryoglass.report.figures import fsc_summary_figure
    from cryoglass.validate import fourier_shell_correlation, fsc_summary

    stem = out.with_suffix("")
    maps = {h: finalize(accs[h], **options).cpu() for h in (1, 2)}
    for h in (1, 2):
        write_mrc(f"{stem}_half{h}.mrc", maps[h], pixel_size_angstrom=pixel, overwrite=overwrite)
    fsc = fourier_shell_correlation(maps[1].double(), maps[2].double())
    summary = fsc_summary(fsc, box_size=maps[1].shape[-1], pixel_size_angstrom=pixel)
    payload = {"headline": ["resolution_0143_angstrom", "resolution_05_angstrom"]}
    payload.update(summary.to_dict())
    write_text_atomic(Path(f"{stem}_fsc.json"), json.dumps(payload, indent=2) + "\n")
    fsc_summary_figure(Path(f"{stem}_fsc.png"), summary, title=f"{out.name}, half maps")
    # the full map is regularised with the halves' FSC, as RELION's final reconstruction:
    # τ² = SSNR/⟨W⟩ with SSNR from sqrt(2 FSC/(1 + FSC)) (twice the data)
    both = merge(accs[1], accs[2])
    tau2 = tau2_from_fsc(both, summary.fsc.to(both.weight.device), whole_map=True)
    volume = finalize(both, **options, regularisation=tau2).cpu()
    write_mrc(out, volume, pixel_size_angstrom=pixel, overwrite=overwrite)
    return {
        "resolution_0143_angstrom": summary.resolution_0143_angstrom,
        "resolution_05_angstrom": summary.resolution_05_angstrom,
        "crossed_0143": summary.crossed_0143,
        "full_map_regularisation": "tau2 from half-map FSC (RELION)",
    }


def main(
    star: Path = typer.Argument(
        ..., metavar="IN", help="Particles (.star RELION 3.0/3.1/5 or .cs)."
    ),
    out: Path = typer.Option(..., "--out", help="Output map (.mrc)."),
    ctf: bool = typer.Option(
        True, "--ctf/--no-ctf", help="CTF-weighted insertion (needs CTF columns)."
    ),
    halves: bool = typer.Option(
        False, "--halves", help="Also write OUT_half1/2.mrc, OUT_fsc.json, OUT_fsc.png."
    ),
    symmetry: str = typer.Option("C1", "--symmetry", help="Point group: C<n>, D<n>, T, O, I."),
    pad: int = typer.Option(
        2, "--pad", min=1, help="Padding factor of the 3D transform (RELION: 2)."
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Images per batch."),
    device: Device = "cpu",
    wiener_constant: float = typer.Option(
        1e-3, "--wiener-constant", min=0.0, help="Regularisation λ relative to the mean weight."
    ),
    gridding_iterations: int = typer.Option(
        0, "--gridding-iterations", min=0, help="RELION-style iterative gridding (relion: 10)."
    ),
    sphere_mask: bool = typer.Option(
        True,
        "--sphere-mask/--no-sphere-mask",
        help="relion_reconstruct's soft sphere (radius N/2, 3 px edge).",
    ),
    pixel_size: Apix = None,
    datadir: DataDir = None,
    seed: int = typer.Option(0, "--seed", help="Seed of the half split without rlnRandomSubset."),
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
    chunk_size: ChunkSize = 2048,
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Checkpoint folder: a rerun resumes the finished chunks."
    ),
) -> None:
    """Reconstruct a map from posed particles by direct Fourier inversion, like relion_reconstruct.

    Each image's 2D transform (origin shift undone, multiplied by its CTF with --ctf) is
    inserted into a padded 3D transform with trilinear weights, together with the CTF² weights;
    the map is Σ CTF·F / (Σ CTF² + λ·mean weight), inverse-transformed, gridding-corrected
    (÷ sinc²) and, by default, masked with relion_reconstruct's soft sphere. With --halves the
    particles are split by rlnRandomSubset (else a seeded random split), both halves are
    reconstructed, their FSC is written, and the full map (both halves' data) is regularised
    with τ² from that FSC, as RELION's final reconstruction (SSNR = FSC/(1−FSC)).
    Before starting, the command prints the memory it will need and refuses when that exceeds
    the available memory.  It agrees with relion_reconstruct 3.1 for even boxes; for odd boxes
    RELION 3.1 is no reference (its map of exact 63³ projections correlates 0.71 with the
    truth; docs/conventions.md, item 12).

    \b
    Example:
      cryoglass reconstruct run_data.star --out map.mrc --halves --symmetry C4
    writes map.mrc, map_half1.mrc, map_half2.mrc, map_fsc.json and map_fsc.png; the RELION
    equivalent is
      relion_reconstruct --i run_data.star --o map.mrc --ctf --sym C4
    With --workers N (a local Dask cluster) or --scheduler ADDRESS (an existing one, see
    docs/scaling.md) chunks of --chunk-size particles are back-projected by the workers, which
    read the images from the files themselves; the partial sums add up to the same map.
    --work-dir keeps a checkpoint of the sums: rerun the same command to resume.
      cryoglass reconstruct run_data.star --out map.mrc --workers 2 --work-dir rec_work
    """
    from cryoglass.geometry import group_order
    from cryoglass.io import write_mrc
    from cryoglass.reconstruct import finalize, memory_estimate_bytes

    stem = out.with_suffix("")
    extra = ("half1.mrc", "half2.mrc", "fsc.json", "fsc.png") if halves else ()
    outputs = [out, *(Path(f"{stem}_{name}") for name in extra)]
    dask = {"workers": workers, "scheduler": scheduler, "chunk_size": chunk_size}
    dask["work_dir"] = work_dir
    target = _check_options(
        star, outputs, overwrite=overwrite, device=device, symmetry=symmetry, **dask
    )
    particles, pixel = _read(star, pixel_size, ctf=ctf, datadir=datadir)
    check_outputs(outputs, inputs=particles.image_files, overwrite=overwrite)  # the stacks too
    n, count = particles.image_size, len(particles)
    need = memory_estimate_bytes(
        n,
        pad=pad,
        accumulators=1 + halves,
        batch_size=batch_size,
        gridding_iterations=gridding_iterations,
        symmetry_order=group_order(symmetry),
    )
    _check_memory(
        need,
        target,
        f"reconstructing {count} particles, box {n}, {pixel:g} Å, pad {pad}, {symmetry}",
    )
    with failing(prefix=f"{star}: "):
        labels = _labels(particles, halves=halves, seed=seed)
        options = {"pad": pad, "symmetry": symmetry, "batch_size": batch_size}
        accs, memory = _backproject(
            particles, labels, pixel=pixel, ctf=ctf, target=target, options=options, dask=dask
        )
    summary: dict = {"particles": count, "box": n, "pixel_size_angstrom": pixel}
    summary |= {"symmetry": symmetry, "pad": pad, "outputs": [str(p) for p in outputs], **memory}
    finish = {"wiener_constant": wiener_constant, "gridding_iterations": gridding_iterations}
    finish["mask"] = "relion" if sphere_mask else None
    if halves:
        summary |= _write_halves(accs, out=out, pixel=pixel, options=finish, overwrite=overwrite)
        summary["half_sizes"] = [int((labels == h).sum()) for h in (1, 2)]
    else:
        volume = finalize(accs[1], **finish).cpu()
        write_mrc(out, volume, pixel_size_angstrom=pixel, overwrite=overwrite)
    typer.echo(f"wrote {', '.join(str(p) for p in outputs)}", err=True)
    if json_output:
        print_json({"headline": ["resolution_0143_angstrom"] if halves else [], **summary})
