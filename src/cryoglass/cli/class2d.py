"""`cryoglass class2d`: maximum-likelihood 2D classification of particle images."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json

_STATE = "checkpoint.pt"
_STATE_JSON = "checkpoint.json"


def _settings_dict(settings) -> dict:
    from dataclasses import asdict

    return asdict(settings)


def _read_particles(star: Path, use_ctf: bool):
    """Particles with one pixel size and image size; exits with a message otherwise."""
    import torch

    from cryoglass.io import read_particles

    if not star.is_file():
        fail(f"{star}: particle file not found")
    try:
        particles = read_particles(star)
    except (ValueError, KeyError, OSError) as error:
        fail(f"{star}: {error}")
    if len(particles) == 0:
        fail(f"{star}: no particles")
    pixel = particles.pixel_size_angstrom
    if float(pixel.max() - pixel.min()) > 0.01 * float(pixel.min()):
        fail(f"{star}: particles have different pixel sizes; 2D classification needs one")
    if use_ctf and particles.ctf is None:
        fail(f"{star}: --ctf needs CTF columns (rlnDefocusU, rlnDefocusV); use --no-ctf")
    missing = [p for p in particles.image_files if not Path(p).exists()]
    if missing:
        fail(f"{star}: {len(missing)} image file(s) missing, e.g. {missing[0]}")
    from cryoglass.io.mrc import read_mrc_header

    for path in particles.image_files:
        header = read_mrc_header(path)
        shape = tuple(int(v) for v in header.shape[-2:])
        if shape != (particles.image_size, particles.image_size):
            fail(
                f"{path}: images are {shape[1]}×{shape[0]} px but {star} says "
                f"{particles.image_size} px (rlnImageSize); all images must have one size"
            )
    ctf = None
    if use_ctf:
        from dataclasses import fields, replace

        ctf = replace(
            particles.ctf,
            **{
                f.name: torch.as_tensor(getattr(particles.ctf, f.name), dtype=torch.float64)
                .expand(len(particles))
                .clone()
                for f in fields(particles.ctf)
            },
        )
    return particles, float(pixel[0]), ctf


def _save_state(out: Path, model, assignments, log: list[dict], meta: dict) -> None:
    """Checkpoint after a completed iteration: tensors in .pt (weights-only), the rest in JSON."""
    import os
    import tempfile

    import torch

    from cryoglass.io import write_text_atomic

    tensors = {
        "classes": model.classes.cpu(),
        "class_prior": model.class_prior.cpu(),
        "sigma2": model.sigma2.cpu(),
        "tau2": model.tau2.cpu(),
        "resolution_angstrom": model.resolution_angstrom.cpu(),
        "class_index": assignments.class_index,
        "psi_deg": assignments.psi_deg,
        "shift_angstrom": assignments.shift_angstrom,
        "max_probability": assignments.max_probability,
        "log_likelihood": assignments.log_likelihood,
    }
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".checkpoint.", suffix=".pt")
    os.close(fd)
    torch.save(tensors, tmp)
    os.replace(tmp, out / _STATE)
    payload = {**meta, "iteration": model.iteration, "log": log}
    write_text_atomic(out / _STATE_JSON, json.dumps(payload, indent=2) + "\n")


def _load_state(out: Path):
    """(model, assignments, log, meta) from DIR's checkpoint."""
    import torch

    from cryoglass.classify import Assignments, Class2DModel

    if not (out / _STATE).is_file() or not (out / _STATE_JSON).is_file():
        fail(f"{out}: no checkpoint ({_STATE}, {_STATE_JSON}) to continue from")
    meta = json.loads((out / _STATE_JSON).read_text())
    t = torch.load(out / _STATE, weights_only=True)
    model = Class2DModel(
        classes=t["classes"],
        class_prior=t["class_prior"],
        sigma2=t["sigma2"],
        tau2=t["tau2"],
        resolution_angstrom=t["resolution_angstrom"],
        iteration=int(meta["iteration"]),
    )
    assignments = Assignments(
        class_index=t["class_index"],
        psi_deg=t["psi_deg"],
        shift_angstrom=t["shift_angstrom"],
        max_probability=t["max_probability"],
        log_likelihood=t["log_likelihood"],
    )
    return model, assignments, meta.pop("log"), meta


def _write_star(path: Path, particles, assignments) -> None:
    """Input rows plus RELION's 2D columns (rlnAnglePsi, origins, class, probability, log L)."""
    from dataclasses import replace

    import torch

    from cryoglass.io import write_relion_star

    table = particles.particles_table.copy()
    table = table.drop(columns=[c for c in ("rlnAngleRot", "rlnAngleTilt") if c in table])
    table["rlnAnglePsi"] = assignments.psi_deg.double().numpy()
    table["rlnClassNumber"] = (assignments.class_index + 1).numpy().astype(int)
    table["rlnMaxValueProbDistribution"] = assignments.max_probability.numpy()
    table["rlnLogLikeliContribution"] = assignments.log_likelihood.numpy()
    out = replace(
        particles,
        euler_deg=None,
        shift_angstrom=assignments.shift_angstrom.to(torch.float64),
        particles_table=table,
    )
    write_relion_star(path, out, overwrite=True)


def _report(out: Path, model, log: list[dict], *, pixel: float, n: int) -> None:
    """DIR/report.html: class gallery sorted by occupancy and the convergence plots."""
    from cryoglass.report.figures import pyplot

    plt = pyplot()

    from cryoglass.report.figures import save_figure
    from cryoglass.report.html import Section, write_html_report

    prior = model.class_prior.cpu()
    order = sorted(range(prior.shape[0]), key=lambda c: -float(prior[c]))
    cols = min(8, len(order))
    rows = (len(order) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, c in zip(axes.ravel(), order, strict=False):
        ax.imshow(model.classes[c].cpu().numpy(), cmap="gray", origin="lower")
        res = float(model.resolution_angstrom[c])
        ax.set_title(f"{c + 1}: {100 * float(prior[c]):.1f}%\n{res:.0f} Å", fontsize=8)
    save_figure(fig, out / "classes.png")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    its = [e["iteration"] for e in log]
    ax1.plot(its, [e["log_likelihood"] / n for e in log], "o-k")
    ax1.set(xlabel="iteration", ylabel="log-likelihood per particle")
    occ = [e["occupancies"] for e in log]
    for c in range(len(occ[0])):
        ax2.plot(its, [o[c] for o in occ], "o-", ms=3, label=f"class {c + 1}")
    ax2.set(xlabel="iteration", ylabel="occupancy")
    if len(occ[0]) <= 10:
        ax2.legend(fontsize=7)
    save_figure(fig, out / "convergence.png")
    table = tuple(
        (
            f"class {c + 1}",
            f"{100 * float(prior[c]):.1f} %, {float(model.resolution_angstrom[c]):.1f} Å",
        )
        for c in order
    )
    write_html_report(
        out / "report.html",
        title="cryoglass class2d",
        intro=f"{n} particles, {prior.shape[0]} classes, {model.iteration} iterations, "
        f"{pixel:g} Å/px.",
        sections=[
            Section(
                "Class averages",
                ("Sorted by occupancy; title: class number, occupancy, estimated resolution.",),
                table,
                (("classes.png", "class averages"),),
            ),
            Section(
                "Convergence",
                (
                    "Log-likelihood of the data under each iteration's input model "
                    "(over a frequency band that grows with the resolution), and occupancies.",
                ),
                figures=(("convergence.png", "log-likelihood and class occupancies"),),
            ),
        ],
    )


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

    \b
    Example:
      cryoglass class2d particles.star --classes 20 --iterations 25 --out class2d \\
          --particle-diameter-angstrom 150 --psi-step-deg 10 --offset-range-angstrom 15
      cryoglass class2d particles.star -K 20 --out class2d --workers 4 --chunk-size 4096
    the RELION equivalent is
      relion_refine --i particles.star --o class2d/run --K 20 --iter 25 --ctf \\
          --particle_diameter 150 --psi_step 10 --offset_range 5 --tau2_fudge 2
    """
    import contextlib

    import torch
    from rich.progress import Progress

    from cryoglass.classify import (
        Class2DSettings,
        default_batch_size,
        em_iteration,
        initial_model,
    )
    from cryoglass.io import ParticleStack, write_mrc

    if out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a folder")
    if continue_run and overwrite:
        fail("--continue and --overwrite exclude each other")
    if out.is_dir() and any(out.iterdir()) and not (continue_run or overwrite):
        fail(f"{out}: folder is not empty; pass --continue to resume or --overwrite to restart")
    if workers is not None and scheduler is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    distributed = workers is not None or scheduler is not None
    if distributed and device != "cpu":
        fail("--workers/--scheduler run the E-step on the workers' CPUs; drop --device")
    try:
        target = torch.device(device)
        torch.empty(0, device=target)
    except (RuntimeError, AssertionError) as error:
        fail(f"--device {device}: not available ({error})")
    particles, pixel, ctf_params = _read_particles(star, ctf)
    n, size = len(particles), particles.image_size
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
        batch_size=batch_size,
    )
    try:
        batch = default_batch_size(settings, size)
    except ValueError as error:
        fail(str(error))
    meta = {"input": str(star.resolve()), "particles": n, "settings": _settings_dict(settings)}
    out.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    model = assignments = None
    if continue_run:
        model, assignments, log, old = _load_state(out)
        if old.get("particles") != n or old.get("input") != meta["input"]:
            fail(
                f"{out}: checkpoint was made from {old.get('input')} "
                f"({old.get('particles')} particles)"
            )
        same = {k: v for k, v in meta["settings"].items() if k != "batch_size"}
        if {k: v for k, v in old.get("settings", {}).items() if k != "batch_size"} != same:
            fail(f"{out}: options differ from the checkpoint's: {old.get('settings')}")
        model = type(model)(
            **{
                **model.__dict__,
                "classes": model.classes.to(target),
                "class_prior": model.class_prior.to(target),
                "sigma2": model.sigma2.to(target),
                "tau2": model.tau2.to(target),
                "resolution_angstrom": model.resolution_angstrom.to(target),
            }
        )
    memory = None
    with contextlib.ExitStack() as resources:
        stack = resources.enter_context(ParticleStack(particles))
        client = chunks = None
        if distributed:
            from cryoglass.distributed import make_chunks
            from cryoglass.distributed.commands import dask_session

            echo = lambda text: typer.echo(text, err=True)  # noqa: E731
            try:
                client = resources.enter_context(dask_session(workers, scheduler, echo=echo))
            except (OSError, TimeoutError) as error:
                fail(f"--scheduler {scheduler}: cannot connect ({error})")
            chunks = make_chunks(particles, chunk_size=chunk_size)
        progress = resources.enter_context(Progress(transient=True))
        try:
            if model is None:
                task = progress.add_task("initial classes", total=n)
                generator = torch.Generator().manual_seed(seed)
                if client is None:
                    model = initial_model(
                        stack.iter_batches(batch),
                        n_particles=n,
                        image_size=size,
                        ctf=ctf_params,
                        settings=settings,
                        generator=generator,
                        device=target,
                    )
                else:
                    from cryoglass.distributed import class2d_initial_model

                    model = class2d_initial_model(
                        client,
                        particles,
                        settings=settings,
                        ctf=ctf,
                        batch_size=batch,
                        chunk_size=chunk_size,
                        generator=generator,
                        progress=lambda k, task=task: progress.update(task, advance=k),
                    )
                progress.update(task, completed=n)
            for _ in range(model.iteration, iterations):
                task = progress.add_task(f"iteration {model.iteration + 1}/{iterations}", total=n)
                advance = lambda k, task=task: progress.update(task, advance=k)  # noqa: E731
                if client is None:
                    model, assignments, entry = em_iteration(
                        model,
                        stack.iter_batches(batch),
                        n_particles=n,
                        ctf=ctf_params,
                        settings=settings,
                        progress=advance,
                    )
                else:
                    from cryoglass.distributed import class2d_iteration

                    model, assignments, entry = class2d_iteration(
                        client,
                        chunks,
                        model,
                        settings=settings,
                        ctf=ctf,
                        batch_size=batch,
                        progress=advance,
                    )
                log.append(entry)
                _save_state(out, model, assignments, log, meta)
                occ = " ".join(f"{v:.2f}" for v in entry["occupancies"])
                typer.echo(
                    f"iteration {entry['iteration']}: log L {entry['log_likelihood']:.6g}, "
                    f"occupancies {occ}",
                    err=True,
                )
        except ValueError as error:
            fail(f"{star}: {error}")
        if client is not None:
            from cryoglass.distributed.commands import memory_summary

            memory = memory_summary(client)
    if assignments is None:
        fail(f"{out}: already at iteration {model.iteration}; ask for more --iterations")
    write_mrc(
        out / "classes.mrcs",
        model.classes.cpu(),
        pixel_size_angstrom=pixel,
        overwrite=True,
        stack=True,
    )
    _write_star(out / "particles.star", particles, assignments)
    summary = {
        "particles": n,
        "classes": classes,
        "iterations": model.iteration,
        "pixel_size_angstrom": pixel,
        "log": log,
        "final_occupancies": [float(v) for v in model.class_prior.cpu()],
        "resolution_angstrom": [float(v) for v in model.resolution_angstrom.cpu()],
        "outputs": [
            str(out / f) for f in ("classes.mrcs", "particles.star", "model.json", "report.html")
        ],
    }
    if memory is not None:
        summary["memory"] = memory
    from cryoglass.io import write_text_atomic

    write_text_atomic(out / "model.json", json.dumps({**meta, **summary}, indent=2) + "\n")
    _report(out, model, log, pixel=pixel, n=n)
    typer.echo(f"wrote {out}/classes.mrcs, particles.star, model.json, report.html", err=True)
    if json_output:
        print_json(summary)
