"""`cryoglass class2d`: maximum-likelihood 2D classification of particle images."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json, torch_device
from cryoglass.cli.options import DataDir, Oversampling

_STATE = "checkpoint.pt"
_STATE_JSON = "checkpoint.json"
_OUTPUTS = ("classes.mrcs", "particles.star", "model.json", "report.html")


def _check_options(
    out: Path,
    *,
    continue_run: bool,
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    device: str,
):
    """The torch device to use; exits with a message on options that exclude each other."""

    if out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a folder")
    if continue_run and overwrite:
        fail("--continue and --overwrite exclude each other")
    if out.is_dir() and any(out.iterdir()) and not (continue_run or overwrite):
        fail(f"{out}: folder is not empty; pass --continue to resume or --overwrite to restart")
    if workers is not None and scheduler is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    if (workers is not None or scheduler is not None) and device != "cpu":
        fail("--workers/--scheduler run the E-step on the workers' CPUs; drop --device")
    target = torch_device(device)
    return target


def _read_particles(star: Path, use_ctf: bool, datadir: Path | None = None):
    """(particles, pixel size [Å], CTF per particle or None); exits with a message otherwise."""
    import torch

    from cryoglass.io import check_particle_set, read_particles

    if not star.is_file():
        fail(f"{star}: particle file not found")
    with failing(ValueError, KeyError, OSError, prefix=f"{star}: "):
        particles = read_particles(star, datadir=datadir)
    with failing():
        pixel = check_particle_set(
            particles,
            source=str(star),
            purpose="2D classification",
            ctf=use_ctf,
            image_sizes=True,
            ctf_hint="use --no-ctf",
        )
    ctf = particles.ctf.expand(len(particles), dtype=torch.float64) if use_ctf else None
    return particles, pixel, ctf


def _progress_line(entry: dict) -> str:
    """One line per iteration: log-likelihood, occupancies, re-seeded classes, split trials."""
    occ = " ".join(f"{v:.2f}" for v in entry["occupancies"])
    line = f"iteration {entry['iteration']}: log p(X | model) {entry['log_likelihood']:.6g}, "
    line += f"occupancies {occ}"
    if entry.get("reseeded"):
        line += f"; re-seeded class {', '.join(map(str, entry['reseeded']))}"
    for test in entry.get("split_tests", []):
        verdict = "kept" if test["kept"] else "merged back"
        line += f"; split {test['parent']}/{test['class']} {verdict} (r = {test['ratio']:.2f})"
    return line


def _save_state(out: Path, model, assignments, log: list[dict], description: dict) -> None:
    """Checkpoint after a completed iteration: tensors in .pt (weights-only), the rest in JSON."""
    from cryoglass.classify import checkpoint_record, checkpoint_tensors
    from cryoglass.io import save_tensors, write_text_atomic

    save_tensors(out / _STATE, checkpoint_tensors(model, assignments), overwrite=True)
    record = checkpoint_record(model, log, description)
    write_text_atomic(out / _STATE_JSON, json.dumps(record, indent=2) + "\n")


def _load_state(out: Path, description: dict, device):
    """(model on ``device``, assignments, log) from DIR's checkpoint of the same run."""
    from cryoglass.classify import check_same_run, model_from_checkpoint
    from cryoglass.io import load_tensors

    if not (out / _STATE).is_file() or not (out / _STATE_JSON).is_file():
        fail(f"{out}: no checkpoint ({_STATE}, {_STATE_JSON}) to continue from")
    record = json.loads((out / _STATE_JSON).read_text())
    with failing(ValueError, prefix=f"{out}: "):
        check_same_run(record, description)
    model, assignments = model_from_checkpoint(load_tensors(out / _STATE), record, device=device)
    return model, assignments, record["log"]


def _engine(resources, particles, *, settings, ctf, batch, device, workers, scheduler, chunk_size):
    """(initial(generator, progress), iteration(model, progress)): local or on Dask workers."""
    from cryoglass.classify import em_iteration, initial_model
    from cryoglass.io import ParticleStack

    n, size = len(particles), particles.image_size
    if workers is None and scheduler is None:
        stack = resources.enter_context(ParticleStack(particles))

        def initial(generator, progress):
            return initial_model(
                stack.iter_batches(batch),
                n_particles=n,
                image_size=size,
                ctf=ctf,
                settings=settings,
                generator=generator,
                device=device,
            )

        def iteration(model, progress):
            return em_iteration(
                model,
                stack.iter_batches(batch),
                n_particles=n,
                ctf=ctf,
                settings=settings,
                progress=progress,
            )

        return initial, iteration, None
    from cryoglass.distributed import class2d_initial_model, class2d_iteration, make_chunks
    from cryoglass.distributed.commands import dask_session

    echo = lambda text: typer.echo(text, err=True)  # noqa: E731
    try:
        client = resources.enter_context(dask_session(workers, scheduler, echo=echo))
    except (OSError, TimeoutError) as error:
        fail(f"--scheduler {scheduler}: cannot connect ({error})")
    chunks = make_chunks(particles, chunk_size=chunk_size)

    def initial(generator, progress):
        return class2d_initial_model(
            client,
            particles,
            settings=settings,
            ctf=ctf is not None,
            batch_size=batch,
            chunk_size=chunk_size,
            generator=generator,
            progress=progress,
        )

    def iteration(model, progress):
        return class2d_iteration(
            client,
            chunks,
            model,
            settings=settings,
            ctf=ctf is not None,
            batch_size=batch,
            progress=progress,
        )

    return initial, iteration, client


def _classify(
    out: Path,
    star: Path,
    particles,
    description: dict,
    *,
    continue_run: bool,
    iterations: int,
    seed: int,
    settings,
    ctf,
    batch: int,
    device,
    workers: int | None,
    scheduler: str | None,
    chunk_size: int,
):
    """Run or continue the EM iterations, checkpointing each: (model, assignments, log, memory)."""
    import contextlib

    import torch
    from rich.progress import Progress

    model, assignments, log = (
        _load_state(out, description, device) if continue_run else (None, None, [])
    )
    n, memory = len(particles), None
    with contextlib.ExitStack() as resources:
        initial, iteration, client = _engine(
            resources,
            particles,
            settings=settings,
            ctf=ctf,
            batch=batch,
            device=device,
            workers=workers,
            scheduler=scheduler,
            chunk_size=chunk_size,
        )
        progress = resources.enter_context(Progress(transient=True))
        with failing(ValueError, prefix=f"{star}: "):
            if model is None:
                task = progress.add_task("initial classes", total=n)
                generator = torch.Generator().manual_seed(seed)
                model = initial(generator, lambda k: progress.update(task, advance=k))
                progress.update(task, completed=n)
            for _ in range(model.iteration, iterations):
                task = progress.add_task(f"iteration {model.iteration + 1}/{iterations}", total=n)
                advance = lambda k, task=task: progress.update(task, advance=k)  # noqa: E731
                model, assignments, entry = iteration(model, advance)
                log.append(entry)
                _save_state(out, model, assignments, log, description)
                typer.echo(_progress_line(entry), err=True)
        if client is not None:
            from cryoglass.distributed.commands import memory_summary

            memory = memory_summary(client)
    if assignments is None:
        fail(f"{out}: already at iteration {model.iteration}; ask for more --iterations")
    return model, assignments, log, memory


def _write_outputs(out: Path, particles, model, assignments, log, description, *, memory) -> dict:
    """classes.mrcs, particles.star, model.json and report.html; the JSON summary."""
    from cryoglass.io import write_class2d_star, write_mrc, write_text_atomic
    from cryoglass.report.class2d import write_class2d_report

    pixel = description["settings"]["pixel_size_angstrom"]
    n = len(particles)
    classes = model.classes.cpu()
    write_mrc(out / "classes.mrcs", classes, pixel_size_angstrom=pixel, overwrite=True, stack=True)
    write_class2d_star(out / "particles.star", particles, assignments, overwrite=True)
    summary = {
        "particles": n,
        "classes": description["settings"]["n_classes"],
        "iterations": model.iteration,
        "pixel_size_angstrom": pixel,
        "log": log,
        "final_occupancies": [float(v) for v in model.class_prior.cpu()],
        "resolution_angstrom": [float(v) for v in model.resolution_angstrom.cpu()],
        "outputs": [str(out / f) for f in _OUTPUTS],
    }
    if memory is not None:
        summary["memory"] = memory
    write_text_atomic(out / "model.json", json.dumps({**description, **summary}, indent=2) + "\n")
    write_class2d_report(out, model, log, pixel_size_angstrom=pixel, n_particles=n)
    return summary


def main(
    star: Path = typer.Argument(..., metavar="IN", help="Particles (.star), no poses needed."),
    classes: int = typer.Option(..., "--classes", "-K", min=1, help="Number of classes K."),
    iterations: int = typer.Option(25, "--iterations", min=1, help="EM iterations (total)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    particle_diameter: float | None = typer.Option(
        None, "--particle-diameter-angstrom", help="Mask diameter [Å] (default: the box)."
    ),
    psi_step: float = typer.Option(10.0, "--psi-step-deg", help="In-plane angular step (degrees)."),
    offset_range: float | None = typer.Option(
        None, "--offset-range-angstrom", help="Translation search radius [Å] (default 6 px)."
    ),
    offset_step: float | None = typer.Option(
        None, "--offset-step-angstrom", help="Translation step [Å], whole pixels (default 1 px)."
    ),
    tau2_fudge: float = typer.Option(
        2.0, "--tau2-fudge", help="RELION's T: larger trusts the data more (0: no prior)."
    ),
    ctf: bool = typer.Option(True, "--ctf/--no-ctf", help="Use the CTF (needs CTF columns)."),
    prune: float = typer.Option(
        0.0, "--prune", min=0.0, max=0.999, help="Drop posteriors below this × the best."
    ),
    recenter: bool = typer.Option(True, "--recenter/--no-recenter", help="Re-centre classes."),
    oversampling: Oversampling = 1,
    seed: int = typer.Option(0, "--seed", help="Seed of the random initial subsets."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (cuda:0, ...)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Images per batch."),
    continue_run: bool = typer.Option(
        False, "--continue", help="Resume from DIR's last completed iteration."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing DIR's results."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Run the E-steps on a local Dask cluster of N processes."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Run the E-steps on an existing Dask cluster (tcp://host:8786)."
    ),
    chunk_size: int = typer.Option(
        2048, "--chunk-size", min=1, help="Particles per Dask task (with --workers/--scheduler)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    datadir: DataDir = None,
) -> None:
    """Classify particle images into K 2D classes by maximum likelihood, like RELION's Class2D.

    Each iteration aligns every image to every class average at every in-plane angle and
    translation (posterior probabilities under a Gaussian noise model with CTF), then averages
    the images with those weights.  After each iteration DIR/checkpoint.pt/.json are written,
    so --continue picks up where a run stopped.  Outputs: DIR/classes.mrcs, DIR/particles.star
    (input rows + rlnClassNumber, rlnAnglePsi, rlnOriginX/YAngst, rlnMaxValueProbDistribution,
    rlnLogLikeliContribution), DIR/model.json (per-iteration log) and DIR/report.html.

    With --workers N (a local Dask cluster) or --scheduler ADDRESS (an existing one, see
    docs/scaling.md) each iteration's E-step runs on the workers, --chunk-size particles per
    task read from the shared stack; the client merges the statistics and does the M-step
    (same result as one process up to float rounding; --continue works the same way).

    An emptied class is re-seeded by splitting the largest one; five iterations later the split
    is kept only if its halves differ by more than noise, else merged back (the log says which).

    \b
    Example:
      cryoglass class2d particles.star --classes 20 --iterations 25 --out class2d \\
          --particle-diameter-angstrom 150 --psi-step-deg 10 --offset-range-angstrom 15
      cryoglass class2d particles.star -K 20 --out class2d --workers 4 --chunk-size 4096
    the RELION equivalent is
      relion_refine --i particles.star --o class2d/run --K 20 --iter 25 --ctf \\
          --particle_diameter 150 --psi_step 10 --offset_range 5 --tau2_fudge 2 \\
          --oversampling 1
    """
    from cryoglass.classify import Class2DSettings, default_batch_size, run_description

    checks = {"workers": workers, "scheduler": scheduler, "device": device}
    target = _check_options(out, continue_run=continue_run, overwrite=overwrite, **checks)
    particles, pixel, ctf_params = _read_particles(star, ctf, datadir)
    settings = Class2DSettings(
        n_classes=classes,
        pixel_size_angstrom=pixel,
        psi_step_deg=psi_step,
        offset_range_angstrom=offset_range if offset_range is not None else 6 * pixel,
        offset_step_angstrom=offset_step,
        tau2_fudge=tau2_fudge if tau2_fudge > 0 else None,
        particle_diameter_angstrom=particle_diameter,
        recenter=recenter,
        prune_fraction=prune,
        oversampling=oversampling,
        batch_size=batch_size,
    )
    with failing(ValueError):
        batch = default_batch_size(settings, particles.image_size)
    n = len(particles)
    description = run_description(source=str(star.resolve()), n_particles=n, settings=settings)
    # the non-empty folder needs --continue/--overwrite (above); no output may be an input
    check_outputs(
        [out / name for name in (*_OUTPUTS, _STATE, _STATE_JSON)],
        inputs=[star, *particles.image_files],
        overwrite=True,
        creates=[out],
    )
    out.mkdir(parents=True, exist_ok=True)
    model, assignments, log, memory = _classify(
        out,
        star,
        particles,
        description,
        continue_run=continue_run,
        iterations=iterations,
        seed=seed,
        settings=settings,
        ctf=ctf_params,
        batch=batch,
        device=target,
        workers=workers,
        scheduler=scheduler,
        chunk_size=chunk_size,
    )
    summary = _write_outputs(out, particles, model, assignments, log, description, memory=memory)
    typer.echo(f"wrote {out}/classes.mrcs, particles.star, model.json, report.html", err=True)
    if json_output:
        print_json(summary)
