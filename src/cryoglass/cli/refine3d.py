"""`cryoglass refine3d`: gold-standard 3D auto-refinement of particles against a reference."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cryoglass.cli._common import (
    CHECKPOINT,
    CHECKPOINT_JSON,
    fail,
    failing,
    load_checkpoint,
    print_json,
    read_particles_checked,
    save_checkpoint,
    torch_device,
)
from cryoglass.cli.options import (
    BatchSize,
    ChunkSize,
    ContinueRun,
    Device,
    JsonOutput,
    OffsetRange,
    OffsetStep,
    Overwrite,
    RefApix,
    Scheduler,
    UseCTF,
    Workers,
)

_STATE, _STATE_JSON = CHECKPOINT, CHECKPOINT_JSON
#: RELION's output names (Refine3D/jobNNN/…), and ours beside them.
OUTPUTS = {
    "data": "run_data.star",
    "map": "run_class001.mrc",
    "half1": "run_half1_class001_unfil.mrc",
    "half2": "run_half2_class001_unfil.mrc",
    "fsc": "run_fsc.json",
    "fsc_plot": "run_fsc.png",
    "history": "run_history.json",
    "report": "report.html",
}
HEADLINE = ["resolution_angstrom", "iterations", "median_max_probability"]


def _save_state(out: Path, state, description: dict) -> None:
    from cryoglass.refine.checkpoint import state_record, state_tensors

    save_checkpoint(out, state_tensors(state), state_record(state, description))


def _load_state(out: Path, description: dict, device):
    from cryoglass.refine.checkpoint import state_from_checkpoint

    return load_checkpoint(out, description, state_from_checkpoint, device=device)


def _check_out(out: Path, *, continue_run: bool, overwrite: bool, inputs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    if continue_run and overwrite:
        fail("--continue and --overwrite exclude each other")
    if continue_run and not (out / _STATE).is_file():
        fail(f"{out}: no checkpoint ({_STATE}) to continue from")
    if out.is_dir() and any(out.iterdir()) and not (continue_run or overwrite):
        fail(f"{out}: folder is not empty; pass --continue to resume or --overwrite to restart")
    targets = {(out / name).resolve() for name in (*OUTPUTS.values(), _STATE, _STATE_JSON)}
    for path in inputs:
        if path.resolve() in targets:
            fail(f"{path}: is an input and would be overwritten by the outputs in {out}")


def _read_reference(path: Path, *, box: int, pixel: float, ref_apix: float | None):
    """The reference on the particles' pixel size and box (resampled and padded/cropped)."""
    from cryoglass.fourier.rescale import rescale
    from cryoglass.io.maps import read_map
    from cryoglass.simulate.box import fit_to_box

    with failing():
        volume, header = read_map(path)
    if len(set(volume.shape)) != 1:
        fail(f"{path}: the reference must be a cubic map, got shape {tuple(volume.shape)}")
    ref_pixel = ref_apix if ref_apix is not None else header
    if ref_pixel is None:
        fail(f"{path}: the header has no pixel size; pass --ref-apix")
    if abs(ref_pixel - pixel) > 0.01 * pixel:
        typer.echo(f"resampling {path} from {ref_pixel:g} to {pixel:g} Å/px", err=True)
        with failing(prefix=f"{path}: "):
            volume, actual = rescale(
                volume, ndim=3, pixel_size_angstrom=ref_pixel, new_pixel_size_angstrom=pixel
            )
        if abs(actual - pixel) > 0.01 * pixel:
            fail(
                f"{path}: cannot resample {volume.shape[-1]}-px boxes from {ref_pixel:g} to "
                f"{pixel:g} Å/px closer than {actual:g}; resample it first (cryoglass resample)"
            )
    if volume.shape[-1] != box:
        typer.echo(f"{path}: box {volume.shape[-1]} → {box} px (the particles')", err=True)
        with failing(prefix=f"{path}: "):
            volume = fit_to_box(volume, box)
    return volume


def _labels(particles, star: Path, seed: int):
    import torch

    from cryoglass.reconstruct import split_halves

    table = particles.particles_table
    subset = None
    if table is not None and "rlnRandomSubset" in table.columns:
        subset = torch.as_tensor(table["rlnRandomSubset"].to_numpy().astype("int64"))
    with failing(prefix=f"{star}: "):
        return split_halves(
            len(particles), random_subset=subset, generator=torch.Generator().manual_seed(seed)
        )


def _progress_line(state) -> str:
    r = state.history[-1]
    kind = "local" if r["local_search"] else "global"
    return (
        f"iteration {r['iteration']:>2}: {r['resolution_angstrom']:.2f} Å, "
        f"{r['angular_step_deg']:g}° {kind}, offsets step {r['origin_step_px']:g} px, "
        f"E-step to shell {r['estep_max_shell']}, median change {r['median_angle_change_deg']:.2f}°"
        f" / {r['median_origin_change_px']:.2f} px, max P {r['mean_max_probability']:.2f}, "
        f"{r['seconds']:.1f} s"
    )


def _run_here(particles, volume, run, state, on_iteration, **how):
    """auto_refine in this process, images read batch by batch, a progress bar per iteration."""
    from rich.progress import Progress

    from cryoglass.io import ParticleStack
    from cryoglass.refine.auto import auto_refine

    with ParticleStack(particles) as stack, Progress(transient=True) as progress:
        task = progress.add_task("aligning", total=len(particles))

        def batches():
            progress.reset(task)
            return stack.iter_batches(how["batch_size"])

        with failing(ValueError, prefix=f"{how['star']}: "):
            return auto_refine(
                volume,
                batches,
                **run,
                state=state,
                on_iteration=on_iteration,
                progress=lambda count: progress.update(task, advance=count),
            )


def _run_on_dask(particles, volume, run, state, on_iteration, workers, scheduler, **how):
    """auto_refine with each iteration's E-step on a Dask cluster."""
    from rich.progress import Progress

    from cryoglass.distributed.commands import dask_session, refine_engine
    from cryoglass.refine.auto import auto_refine

    if workers is not None and scheduler is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    with dask_session(workers, scheduler, echo=lambda t: typer.echo(t, err=True)) as client:
        with Progress(transient=True) as progress:
            task = progress.add_task("aligning (chunks)", total=len(particles))

            def advance(count: int) -> None:
                progress.update(task, advance=count)
                if progress.tasks[0].completed >= len(particles):
                    progress.reset(task)

            estep = refine_engine(
                client,
                particles,
                labels=run["labels"],
                settings=run["settings"],
                ctf=how["ctf"],
                batch_size=how["batch_size"],
                chunk_size=how["chunk_size"],
                progress=advance,
            )
            with failing(ValueError, prefix=f"{how['star']}: "):
                return auto_refine(
                    volume,
                    lambda: iter(()),
                    **run,
                    state=state,
                    on_iteration=on_iteration,
                    estep=estep,
                )


def _write_outputs(out: Path, result, particles, labels, *, pixel: float, settings) -> dict:
    """RELION's files, the FSC, the history and the report; the JSON summary."""
    import torch

    from cryoglass.geometry import matrix_to_euler
    from cryoglass.io import write_mrc, write_refine3d_star, write_text_atomic
    from cryoglass.report.figures import fsc_summary_figure
    from cryoglass.report.refine import write_refine_report
    from cryoglass.validate import fsc_summary

    paths = {key: out / name for key, name in OUTPUTS.items()}
    poses = result.state.poses
    write_refine3d_star(
        paths["data"],
        particles,
        euler_deg=matrix_to_euler(poses.rotations.double()),
        origin_angstrom=poses.origins_px.double() * pixel,
        random_subset=labels,
        max_probability=poses.max_probability,
        n_significant=poses.n_significant,
        log_likelihood=poses.log_likelihood,
        overwrite=True,
    )
    write = {"pixel_size_angstrom": pixel, "overwrite": True}
    write_mrc(paths["map"], result.map.cpu(), **write)
    for h in (1, 2):
        write_mrc(paths[f"half{h}"], result.half_maps[h - 1].cpu(), **write)
    summary = fsc_summary(result.fsc, box_size=result.map.shape[-1], pixel_size_angstrom=pixel)
    fsc = {"headline": ["resolution_0143_angstrom"], **summary.to_dict()}
    write_text_atomic(paths["fsc"], json.dumps(fsc, indent=2) + "\n")
    fsc_summary_figure(paths["fsc_plot"], summary, title="refine3d, half maps")
    history = list(result.state.history)
    write_text_atomic(paths["history"], json.dumps(history, indent=2) + "\n")
    write_refine_report(paths["report"], result, poses=poses, pixel_size_angstrom=pixel)
    return {
        "headline": HEADLINE,
        "resolution_angstrom": summary.resolution_0143_angstrom,
        "crossed_0143": summary.crossed_0143,
        "iterations": result.state.iteration,
        "particles": len(particles),
        "half_sizes": [int((labels == h).sum()) for h in (1, 2)],
        "median_max_probability": float(torch.median(poses.max_probability)),
        "symmetry": settings.symmetry,
        "files": {k: str(v) for k, v in paths.items()},
        "history": history,
    }


def main(
    star: Path = typer.Argument(..., metavar="IN", help="Particles (.star) with CTF columns."),
    reference: Path = typer.Option(..., "--ref", help="Initial reference map (.mrc)."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    ini_high: float = typer.Option(30.0, "--ini-high", help="Low-pass the reference to [Å]."),
    particle_diameter: float | None = typer.Option(
        None, "--particle-diameter", help="Solvent-mask diameter [Å] (default: 0.9 × box)."
    ),
    symmetry: str = typer.Option("C1", "--symmetry", help="Point group: C<n>, D<n>, T, O, I."),
    join_halves: float = typer.Option(
        40.0, "--low-resol-join-halves", help="The halves share data below this [Å] (RELION)."
    ),
    healpix_order: int = typer.Option(
        3, "--healpix-order", min=1, max=6, help="Initial angular sampling: 60°/2^order."
    ),
    offset_range: OffsetRange = 5.0,
    offset_step: OffsetStep = 1.0,
    max_iterations: int = typer.Option(25, "--max-iterations", min=1, help="Stop after N."),
    ctf: UseCTF = True,
    ref_apix: RefApix = None,
    seed: int = typer.Option(0, "--seed", help="Seed of the half split without rlnRandomSubset."),
    batch_size: BatchSize = 128,
    device: Device = "cpu",
    continue_run: ContinueRun = False,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
    chunk_size: ChunkSize = 1024,
) -> None:
    """Refine poses and a map from particles and a reference, as RELION's 3D auto-refine.

    Two half sets (rlnRandomSubset, or a seeded split) are refined independently against their
    own references (starting from the reference low-passed to --ini-high), sharing data only
    below --low-resol-join-halves.  Each iteration computes every particle's posterior over
    poses (global searches on a HEALPix grid with a coarse pass at twice the step, then local
    searches around the previous pose once the step reaches 3.75°), inserts it at its
    significant poses, and regularises each half map with τ² from the halves' FSC; the angular
    step follows the resolution.  Converged (resolution stalled for two iterations at a fine
    enough step), a final iteration to Nyquist joins the halves.  One line per iteration;
    DIR/checkpoint.pt/.json after each, so --continue resumes.  With --workers N (a local Dask
    cluster) or --scheduler ADDRESS each iteration's alignment runs on the workers, chunks of
    --chunk-size particles read from the files by the workers; the client merges the exact sums.

    Files in DIR (RELION's names): run_data.star (input columns + rlnAngleRot/Tilt/Psi,
    rlnOriginX/YAngst, rlnRandomSubset, rlnMaxValueProbDistribution, rlnNrOfSignificantSamples,
    rlnLogLikeliContribution), run_class001.mrc, run_half1/2_class001_unfil.mrc, run_fsc.json
    and .png, run_history.json and report.html.

    \b
    Example:
      cryoglass refine3d particles.star --ref initial_model.mrc --out refine \\
          --particle-diameter 150 --symmetry C4
      cryoglass postprocess refine/run_half1_class001_unfil.mrc \\
          refine/run_half2_class001_unfil.mrc --auto-mask --out post
    The RELION equivalent is
      mpirun -np 3 relion_refine_mpi --i particles.star --ref initial_model.mrc --o refine/run \\
          --auto_refine --split_random_halves --ini_high 30 --particle_diameter 150 --sym C4 \\
          --ctf --firstiter_cc
    """
    from cryoglass.refine.auto import RefineSettings

    _check_out(out, continue_run=continue_run, overwrite=overwrite, inputs=[star, reference])
    target = torch_device(device)
    particles, pixel = read_particles_checked(star, purpose="3D refinement", ctf=ctf)
    box = particles.image_size
    diameter = particle_diameter if particle_diameter is not None else 0.9 * box * pixel
    if not 0 < diameter <= box * pixel:
        fail(f"--particle-diameter {diameter:g} Å must be in (0, {box * pixel:g}] (the box)")
    volume = _read_reference(reference, box=box, pixel=pixel, ref_apix=ref_apix)
    labels = _labels(particles, star, seed)
    settings = RefineSettings(
        pixel_size_angstrom=pixel, particle_diameter_angstrom=diameter, symmetry=symmetry,
        ini_high_angstrom=ini_high, low_resol_join_halves_angstrom=join_halves,
        initial_order=healpix_order, local_from_order=max(4, healpix_order + 1),
        offset_range_px=offset_range, offset_step_px=offset_step, max_iterations=max_iterations,
    )  # fmt: skip
    description = {"input": str(star), "reference": str(reference), "particles": len(particles)}
    description["settings"] = dict(vars(settings))
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out, description, target) if continue_run else None
    ctf_rows = particles.ctf.expand(len(particles)) if ctf else None

    def on_iteration(new_state) -> None:
        typer.echo(_progress_line(new_state), err=True)
        _save_state(out, new_state, description)

    run = {"n_particles": len(particles), "ctf": ctf_rows, "labels": labels, "settings": settings}
    how = {"ctf": ctf, "batch_size": batch_size, "chunk_size": chunk_size, "star": star}
    if workers is not None or scheduler is not None:
        result = _run_on_dask(
            particles, volume, run, state, on_iteration, workers, scheduler, **how
        )
    else:
        result = _run_here(particles, volume.to(target), run, state, on_iteration, **how)
    summary = _write_outputs(out, result, particles, labels, pixel=pixel, settings=settings)
    typer.echo(
        f"{summary['resolution_angstrom']:.2f} Å after {summary['iterations']} iterations; "
        f"wrote {out}/run_class001.mrc, run_data.star, …",
        err=True,
    )
    if json_output:
        print_json(summary)
