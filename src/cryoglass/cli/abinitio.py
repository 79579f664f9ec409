"""`cryoglass abinitio`: an initial model from particles alone (stochastic gradient descent)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cryoglass.cli._common import fail, failing, print_json, read_particles_checked, torch_device
from cryoglass.cli.options import Device, JsonOutput, OffsetRange, OffsetStep, Overwrite, UseCTF

HEADLINE = ["maps", "iterations", "seconds"]


def _map_names(k: int) -> list[str]:
    return (
        ["initial_model.mrc"]
        if k == 1
        else [f"initial_model_class{c:03d}.mrc" for c in range(1, k + 1)]
    )


def _check_out(out: Path, *, overwrite: bool, inputs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        fail(f"{out}: folder is not empty; pass --overwrite to replace its results")
    for path in inputs:
        if path.resolve().parent == out.resolve() and path.name.startswith("initial_model"):
            fail(f"{path}: is an input and would be overwritten by the outputs in {out}")


def _write_outputs(out: Path, state, *, pixel: float, settings, seconds: float) -> dict:
    from cryoglass.io import write_mrc, write_text_atomic
    from cryoglass.report.class3d import write_abinitio_report

    k = state.references.shape[0]
    maps = [out / name for name in _map_names(k)]
    for c, path in enumerate(maps):
        write_mrc(path, state.references[c].cpu(), pixel_size_angstrom=pixel, overwrite=True)
    history = list(state.history)
    write_text_atomic(out / "history.json", json.dumps(history, indent=2) + "\n")
    write_abinitio_report(out / "report.html", state, maps=maps, pixel_size_angstrom=pixel)
    return {
        "headline": HEADLINE,
        "maps": [str(m) for m in maps],
        "iterations": state.iteration,
        "seconds": round(seconds, 1),
        "class_distribution": [round(float(p), 4) for p in state.class_prior.cpu()],
        "final_resolution_angstrom": settings.final_resolution_angstrom,
        "symmetry": settings.symmetry,
        "hand": "undetermined (projections cannot tell a map from its mirror image)",
        "files": {"history": str(out / "history.json"), "report": str(out / "report.html")},
    }


def main(
    star: Path = typer.Argument(..., metavar="IN", help="Particles (.star); no poses needed."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    particle_diameter: float | None = typer.Option(
        None, "--particle-diameter", help="Mask diameter [Å] (default: 0.9 × box)."
    ),
    classes: int = typer.Option(1, "--classes", "-K", min=1, help="Maps made at once."),
    symmetry: str = typer.Option("C1", "--symmetry", help="Point group: C<n>, D<n>, T, O, I."),
    iterations: int = typer.Option(120, "--iterations", min=1, help="Minibatch steps."),
    ini_resolution: float = typer.Option(
        35.0, "--ini-resolution", help="Resolution of the first steps [Å]."
    ),
    final_resolution: float = typer.Option(
        15.0, "--final-resolution", help="Resolution of the last steps [Å]."
    ),
    ini_batch: int = typer.Option(100, "--ini-batch", min=10, help="First minibatch size."),
    final_batch: int = typer.Option(300, "--final-batch", min=10, help="Last minibatch size."),
    offset_range: OffsetRange = 4.0,
    offset_step: OffsetStep = 2.0,
    ctf: UseCTF = True,
    seed: int = typer.Option(0, "--seed", help="Seed of the random start and the minibatches."),
    device: Device = "cpu",
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
) -> None:
    """Make an initial model from particles alone, by stochastic gradient descent.

    From a reconstruction of random particles at random orientations, each iteration aligns a
    random minibatch to the current map (coarse global search over orientations and origins),
    back-projects the posterior-weighted residuals and moves the map along this preconditioned
    gradient with momentum (Punjani et al. 2017, cryoSPARC; RELION 3.1's --sgd), inside a soft
    sphere of --particle-diameter and, at first, positive.  The resolution grows from
    --ini-resolution to --final-resolution and the minibatch from --ini-batch to --final-batch
    over --iterations.  One line every 10 iterations.

    Projections cannot determine the hand: the map may be the mirror image of the true
    structure; check it elsewhere.  Refine it with cryoglass refine3d.

    One process only (no --workers/--scheduler): the SGD steps are small and sequential, each
    needing the previous one's map, so a cluster would spend each step shipping maps and
    gradients (docs/scaling.md).  Downsample the particles to the resolution ab initio
    reaches (box 64 or less) instead; refine3d and class3d scale out.

    Files in DIR: initial_model.mrc (initial_model_classNNN.mrc for --classes > 1),
    history.json, report.html.

    \b
    Example:
      cryoglass abinitio particles.star --out abinitio --particle-diameter 150
      cryoglass refine3d particles.star --ref abinitio/initial_model.mrc --out refine \\
          --particle-diameter 150
    The RELION equivalent is
      relion_refine --i particles.star --o abinitio/run --sgd --denovo_3dref --K 1 \\
          --particle_diameter 150 --sym C1 --ctf --zero_mask --healpix_order 1 \\
          --offset_range 6 --offset_step 4
    """
    import time

    from cryoglass.io import ParticleStack
    from cryoglass.refine.abinitio import AbinitioSettings, abinitio, check_abinitio_inputs

    _check_out(out, overwrite=overwrite, inputs=[star])
    target = torch_device(device)
    particles, pixel = read_particles_checked(star, purpose="ab initio", ctf=ctf)
    box = particles.image_size
    diameter = particle_diameter if particle_diameter is not None else 0.9 * box * pixel
    settings = AbinitioSettings(
        pixel_size_angstrom=pixel,
        particle_diameter_angstrom=diameter,
        n_classes=classes,
        symmetry=symmetry,
        iterations=iterations,
        initial_resolution_angstrom=max(ini_resolution, 2 * pixel),
        final_resolution_angstrom=max(final_resolution, 2 * pixel),
        initial_batch=ini_batch,
        final_batch=final_batch,
        offset_range_px=offset_range,
        offset_step_px=offset_step,
        seed=seed,
    )
    with failing(prefix=f"{star}: "):
        check_abinitio_inputs(len(particles), box, settings)
    ctf_rows = particles.ctf.expand(len(particles)) if ctf else None
    out.mkdir(parents=True, exist_ok=True)

    def on_iteration(state) -> None:
        r = state.history[-1]
        if r["iteration"] % 10 == 0 or r["iteration"] == settings.iterations:
            typer.echo(
                f"iteration {r['iteration']:>4}/{settings.iterations}: "
                f"{r['resolution_angstrom']:.1f} Å, {r['batch']} particles, "
                f"{r['angular_step_deg']:g}°, max P {r['mean_max_probability']:.2f}, "
                f"{r['seconds']:.2f} s",
                err=True,
            )

    started = time.perf_counter()
    with ParticleStack(particles) as stack, failing(ValueError, OSError, prefix=f"{star}: "):
        state = abinitio(
            stack.read,
            n_particles=len(particles),
            size=box,
            ctf=ctf_rows,
            settings=settings,
            device=target,
            on_iteration=on_iteration,
        )
    seconds = time.perf_counter() - started
    summary = _write_outputs(out, state, pixel=pixel, settings=settings, seconds=seconds)
    typer.echo(
        f"wrote {', '.join(Path(m).name for m in summary['maps'])} and report.html in {out} "
        f"({seconds:.0f} s); the hand is undetermined",
        err=True,
    )
    if json_output:
        print_json(summary)
