"""`cryoglass class3d`: 3D classification of particles into K maps, as RELION's Class3D."""

from __future__ import annotations

import contextlib
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
HEADLINE = ["class_distribution", "resolution_angstrom", "iterations"]


def _save_state(out: Path, state, description: dict) -> None:
    from cryoglass.refine.class3d_checkpoint import class3d_record, class3d_tensors

    save_checkpoint(out, class3d_tensors(state), class3d_record(state, description))


def _load_state(out: Path, description: dict, device):
    from cryoglass.refine.class3d_checkpoint import class3d_from_checkpoint

    return load_checkpoint(out, description, class3d_from_checkpoint, device=device)


def _names(iteration: int, k: int) -> dict[str, str]:
    """RELION's Class3D output names of an iteration (Class3D/jobNNN/run_itNNN_…)."""
    stem = f"run_it{iteration:03d}"
    names = {"data": f"{stem}_data.star", "model": f"{stem}_model.star"}
    names.update({f"class{c:03d}": f"{stem}_class{c:03d}.mrc" for c in range(1, k + 1)})
    return names


def _check_out(out: Path, *, continue_run: bool, overwrite: bool, inputs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    if continue_run and overwrite:
        fail("--continue and --overwrite exclude each other")
    if continue_run and not (out / _STATE).is_file():
        fail(f"{out}: no checkpoint ({_STATE}) to continue from")
    if out.is_dir() and any(out.iterdir()) and not (continue_run or overwrite):
        fail(f"{out}: folder is not empty; pass --continue to resume or --overwrite to restart")
    for path in inputs:
        if path.resolve().parent == out.resolve() and path.name.startswith("run_it"):
            fail(f"{path}: is an input and would be overwritten by the outputs in {out}")


def _check_dask(workers: int | None, scheduler: str | None, device: str) -> None:
    if workers is not None and scheduler is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    if (workers is not None or scheduler is not None) and device != "cpu":
        fail("--workers/--scheduler run the E-step on the workers' CPUs; drop --device")


def _write_iteration(out: Path, state, particles, *, pixel: float, settings) -> dict[str, Path]:
    """RELION's run_itNNN_data.star, run_itNNN_classMMM.mrc and run_itNNN_model.star."""
    import torch

    from cryoglass.geometry import matrix_to_euler
    from cryoglass.io import write_class3d_model_star, write_mrc, write_refine3d_star

    k = state.n_classes
    paths = {key: out / name for key, name in _names(state.iteration, k).items()}
    poses = state.poses
    classes = state.classes + 1 if bool((state.classes >= 0).all()) else None
    write_refine3d_star(
        paths["data"],
        particles,
        euler_deg=matrix_to_euler(poses.rotations.double()),
        origin_angstrom=poses.origins_px.double() * pixel,
        class_number=classes,
        max_probability=poses.max_probability,
        n_significant=poses.n_significant,
        log_likelihood=poses.log_likelihood,
        overwrite=True,
    )
    for c in range(k):
        write_mrc(
            paths[f"class{c + 1:03d}"],
            state.references[c].cpu(),
            pixel_size_angstrom=pixel,
            overwrite=True,
        )
    record = state.history[-1]
    write_class3d_model_star(
        paths["model"],
        class_maps=[paths[f"class{c + 1:03d}"].name for c in range(k)],
        class_distribution=state.class_prior.cpu(),
        resolution_angstrom=state.resolution_angstrom,
        ssnr=state.ssnr,
        pixel_size_angstrom=pixel,
        tau2_fudge=settings.tau2_fudge,
        log_likelihood=float(record["log_likelihood"]),
        average_pmax=float(torch.as_tensor(record["mean_max_probability"])),
        overwrite=True,
    )
    return paths


def _progress_line(state) -> str:
    r = state.history[-1]
    distribution = " ".join(f"{p:.2f}" for p in r["class_distribution"])
    resolution = " ".join(f"{v:.1f}" for v in r["resolution_angstrom"])
    changes = "" if r["class_changes"] is None else f", class changes {r['class_changes']:.3f}"
    return (
        f"iteration {r['iteration']:>2} ({r['kind']}): classes {distribution}, "
        f"resolution {resolution} Å, E-step to shell {r['estep_max_shell']}, "
        f"max P {r['mean_max_probability']:.2f}{changes}, {r['seconds']:.1f} s"
    )


def _summary(out: Path, state, paths: dict[str, Path], particles) -> dict:
    import torch

    from cryoglass.report.class3d import write_class3d_report

    write_class3d_report(out / "report.html", state, paths=paths)
    counts = torch.bincount(state.classes.clamp_min(0), minlength=state.n_classes)
    return {
        "headline": HEADLINE,
        "class_distribution": [round(float(p), 4) for p in state.class_prior.cpu()],
        "resolution_angstrom": [round(float(r), 2) for r in state.resolution_angstrom],
        "iterations": state.iteration,
        "particles": len(particles),
        "particles_per_class": [int(v) for v in counts],
        "files": {k: str(v) for k, v in paths.items()} | {"report": str(out / "report.html")},
        "history": list(state.history),
    }


def _classify(star, out, particles, volume, state, *, ctf, settings, iterations, how):
    """Run the iterations with a progress bar; a line, the files and a checkpoint after each.

    ``how``: ``batch_size``, ``description``, and ``workers``/``scheduler``/``chunk_size``
    (each iteration's E-step on a Dask cluster when either of the first two is given).
    """
    from rich.progress import Progress

    from cryoglass.io import ParticleStack
    from cryoglass.refine.class3d import classify_3d

    pixel = settings.pixel_size_angstrom

    def on_iteration(new_state) -> None:
        typer.echo(_progress_line(new_state), err=True)
        _write_iteration(out, new_state, particles, pixel=pixel, settings=settings)
        _save_state(out, new_state, how["description"])

    with contextlib.ExitStack() as stack, Progress(transient=True) as progress:
        task = progress.add_task("classifying", total=len(particles))

        def advance(count: int) -> None:
            progress.update(task, advance=count)

        estep, batches = None, None
        if how["workers"] is not None or how["scheduler"] is not None:
            estep = _dask_estep(stack, particles, settings, ctf is not None, how, progress)
        else:
            images = stack.enter_context(ParticleStack(particles))

            def batches():
                progress.reset(task)
                return images.iter_batches(how["batch_size"])

        with failing(ValueError, prefix=f"{star}: "):
            return classify_3d(
                volume, batches, n_particles=len(particles), ctf=ctf, settings=settings,
                iterations=iterations, state=state, on_iteration=on_iteration,
                progress=advance, estep=estep,
            )  # fmt: skip


def _dask_estep(stack, particles, settings, ctf: bool, how, bar):
    """The E-step on a Dask cluster (client opened on ``stack``); the bar restarts per round."""
    from cryoglass.distributed.commands import class3d_engine, dask_session

    client = stack.enter_context(
        dask_session(how["workers"], how["scheduler"], echo=lambda t: typer.echo(t, err=True))
    )
    task = bar.tasks[0].id
    bar.update(task, description="classifying (chunks)")

    def progress(count: int) -> None:
        bar.update(task, advance=count)
        if bar.tasks[0].completed >= len(particles):
            bar.reset(task)

    return class3d_engine(
        client, particles, settings=settings, ctf=ctf, batch_size=how["batch_size"],
        chunk_size=how["chunk_size"], progress=progress,
    )  # fmt: skip


def main(
    star: Path = typer.Argument(..., metavar="IN", help="Particles (.star) with CTF columns."),
    reference: Path = typer.Option(..., "--ref", help="Initial reference map (.mrc)."),
    classes: int = typer.Option(..., "--classes", "-K", min=1, help="Number of classes K."),
    iterations: int = typer.Option(25, "--iterations", min=1, help="EM iterations (total)."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    particle_diameter: float | None = typer.Option(
        None, "--particle-diameter", help="Solvent-mask diameter [Å] (default: 0.9 × box)."
    ),
    symmetry: str = typer.Option("C1", "--symmetry", help="Point group: C<n>, D<n>, T, O, I."),
    ini_high: float = typer.Option(40.0, "--ini-high", help="Low-pass the reference to [Å]."),
    healpix_order: int = typer.Option(
        3, "--healpix-order", min=2, max=6, help="Angular sampling 60°/2^order (coarse: twice)."
    ),
    offset_range: OffsetRange = 5.0,
    offset_step: OffsetStep = 1.0,
    tau2_fudge: float = typer.Option(
        4.0, "--tau2-fudge", min=0.01, help="RELION's T: larger trusts the data more."
    ),
    ctf: UseCTF = True,
    ref_apix: RefApix = None,
    seed: int = typer.Option(0, "--seed", help="Seed of the random initial classes."),
    batch_size: BatchSize = 128,
    device: Device = "cpu",
    continue_run: ContinueRun = False,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
    chunk_size: ChunkSize = 1024,
) -> None:
    """Classify particles into K 3D classes by maximum likelihood, as RELION's Class3D.

    Iteration 1 aligns every particle to the reference (low-passed to --ini-high) by
    cross-correlation and reconstructs one map on the particles' grey scale; iteration 2 puts
    each particle into a random class (seeded) to make K different starting maps; later
    iterations compute every particle's posterior over classes × orientations × origins (a
    HEALPix grid with a coarse pass at twice the step, then a fine pass per class) with the
    class priors, and reconstruct each class from its weighted particles (τ² from the class's
    own power spectrum, --tau2-fudge).  No half sets: class resolutions are where SSNR = 1.
    One line per iteration; DIR/checkpoint.pt/.json after each, so --continue resumes (or
    extends a finished run with a larger --iterations).  With --workers N (a local Dask
    cluster) or --scheduler ADDRESS each iteration's E-step runs on the workers, chunks of
    --chunk-size particles read by the workers; the client adds their exact sums (the same
    result as one process, up to float rounding).

    Files in DIR (RELION's names), per iteration: run_itNNN_data.star (input columns +
    rlnClassNumber, rlnAngleRot/Tilt/Psi, rlnOriginX/YAngst, rlnMaxValueProbDistribution,
    rlnNrOfSignificantSamples, rlnLogLikeliContribution), run_itNNN_classMMM.mrc,
    run_itNNN_model.star; and report.html with the class occupancy per iteration.
    --healpix-order is the final step (3 = 7.5°, as RELION's --healpix_order 2 with
    --oversampling 1).

    \b
    Example:
      cryoglass class3d particles.star --ref initial_model.mrc --classes 3 --iterations 25 \\
          --out class3d --particle-diameter 150 --ini-high 40
      cryoglass class3d particles.star --ref initial_model.mrc --classes 3 --out class3d \\
          --workers 4 --chunk-size 2048      # E-steps on a local Dask cluster
    The RELION equivalent is
      relion_refine --i particles.star --ref initial_model.mrc --o class3d/run --K 3 \\
          --iter 25 --ini_high 40 --particle_diameter 150 --healpix_order 2 --oversampling 1 \\
          --offset_range 5 --offset_step 2 --tau2_fudge 4 --ctf --firstiter_cc --flatten_solvent
    """
    from cryoglass.cli.refine3d import _read_reference
    from cryoglass.refine.class3d import Class3DSettings, check_class3d_inputs

    _check_out(out, continue_run=continue_run, overwrite=overwrite, inputs=[star, reference])
    _check_dask(workers, scheduler, device)
    target = torch_device(device)
    particles, pixel = read_particles_checked(star, purpose="3D classification", ctf=ctf)
    box = particles.image_size
    diameter = particle_diameter if particle_diameter is not None else 0.9 * box * pixel
    settings = Class3DSettings(
        pixel_size_angstrom=pixel, particle_diameter_angstrom=diameter, n_classes=classes,
        symmetry=symmetry, ini_high_angstrom=ini_high, order=healpix_order,
        offset_range_px=offset_range, offset_step_px=offset_step, tau2_fudge=tau2_fudge,
        seed=seed,
    )  # fmt: skip
    with failing(prefix=f"{star}: "):
        check_class3d_inputs(len(particles), box, settings)
    volume = _read_reference(reference, box=box, pixel=pixel, ref_apix=ref_apix)
    description = {"input": str(star), "reference": str(reference), "particles": len(particles)}
    description["settings"] = dict(vars(settings))
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out, description, target) if continue_run else None
    if state is not None and state.iteration >= iterations:
        fail(f"{out}: already at iteration {state.iteration}; ask for more --iterations")
    ctf_rows = particles.ctf.expand(len(particles)) if ctf else None
    how = {"batch_size": batch_size, "description": description, "workers": workers}
    how.update(scheduler=scheduler, chunk_size=chunk_size)
    state = _classify(
        star, out, particles, volume.to(target), state, ctf=ctf_rows,
        settings=settings, iterations=iterations, how=how,
    )  # fmt: skip
    paths = {k: out / v for k, v in _names(state.iteration, state.n_classes).items()}
    summary = _summary(out, state, paths, particles)
    typer.echo(
        f"{state.n_classes} classes after {state.iteration} iterations; wrote "
        f"{paths['data'].name}, {paths['model'].name}, run_it{state.iteration:03d}_class*.mrc "
        f"and report.html in {out}",
        err=True,
    )
    if json_output:
        print_json(summary)
