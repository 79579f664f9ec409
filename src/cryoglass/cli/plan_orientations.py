"""`cryoglass plan-orientations`: predict directional resolution, SCF and the best stage tilt."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, print_json
from cryoglass.cli.options import Overwrite


def _plot(path: Path, plan, scan, title: str) -> None:
    from cryoglass.report.figures import pyplot

    plt = pyplot()

    from cryoglass.report.figures import save_figure

    freq = plan.frequency_inv_angstrom.numpy()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot(freq, plan.uniform_fsc.numpy(), "k--", label="uniform views")
    ax[0].plot(freq, plan.global_fsc.numpy(), color="#d62728", lw=2, label="global")
    lo, hi = plan.cone_fsc.min(0).values.numpy(), plan.cone_fsc.max(0).values.numpy()
    ax[0].fill_between(freq, lo, hi, color="#4878cf", alpha=0.3, label="cones (min–max)")
    ax[0].axhline(0.143, color="grey", lw=0.8)
    ax[0].set(xlabel="frequency [1/Å]", ylabel="predicted FSC", title=title)
    ax[0].legend(fontsize=8)
    rows = scan.table()
    tilts = [r["tilt_deg"] for r in rows]
    ax[1].plot(tilts, [r["resolution_max_angstrom"] for r in rows], "o-", label="worst cone")
    ax[1].plot(tilts, [r["global_resolution_angstrom"] for r in rows], "s-", label="global")
    ax[1].axvline(scan.best_tilt_deg, color="grey", ls=":", label="best tilt")
    ax[1].set(xlabel="stage tilt [°]", ylabel="predicted resolution [Å]", title="tilt scan")
    ax[1].legend(fontsize=8)
    save_figure(fig, path)


def main(
    star: Path | None = typer.Argument(
        None, help="Particles with angles (.star or .cs) whose distribution is planned."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help=(
            "Named distribution instead of a file: vmf:KAPPA, topside:FRACTION or "
            "topuniform:FRACTION."
        ),
    ),
    n_particles: int = typer.Option(
        ..., "--n-particles", help="Particles to plan for (both halves)."
    ),
    symmetry: str = typer.Option("C1", "--symmetry", help="Point group (C1, C4, D7, O, I...)."),
    box_size: int = typer.Option(128, "--box", help="Box size [pixels]."),
    apix: float = typer.Option(1.0, "--apix", help="Pixel size [Å]."),
    reference_resolution: float = typer.Option(
        4.0, "--reference-resolution", help="Resolution [Å] uniform views would reach with ..."
    ),
    reference_particles: int = typer.Option(
        10_000, "--reference-particles", help="... this many particles (calibrates the SSNR)."
    ),
    bfactor: float = typer.Option(100.0, "--bfactor", help="Overall B-factor [Å²]."),
    seed: int = typer.Option(0, "--seed", help="Seed (model samples, tilt axes)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Write FSC and tilt-scan plots (PNG)."),
    overwrite: Overwrite = False,
) -> None:
    """Predict directional SSNR/resolution, SCF and the best stage tilt for a view distribution.

    The half-map SSNR of a Fourier voxel is the number of particles whose central slabs
    contain it times a per-image SNR (Baldwin & Lyumkis 2020, Eq. 2.10-2.13), calibrated by
    "uniform views of --reference-particles reach --reference-resolution" and a B-factor.
    Conical FSCs (20°) give a predicted 3DFSC: directional resolutions and sphericity.
    Stage tilts 0-50° are scanned; the best tilt minimises the worst directional resolution
    (per-image SNR taken to fall as cos(tilt)).

    Examples:

    \b
      cryoglass plan-orientations run_data.star --n-particles 200000 --json
      cryoglass plan-orientations --model vmf:10 --n-particles 100000 --plot plan.png
      cryoglass plan-orientations --model topside:0.9 --n-particles 50000 --apix 1.1 --box 200
    """
    import torch

    from cryoglass.geometry import symmetry_matrices
    from cryoglass.validate.orientations import projection_directions
    from cryoglass.validate.planner import (
        SSNRModel,
        orientation_model,
        plan_orientations,
        plan_tilt_scan,
    )

    if (star is None) == (model is None):
        fail("give either a STAR file or --model (vmf:KAPPA, topside:F, topuniform:F), not both")
    if n_particles < 2:
        fail(f"--n-particles must be >= 2, got {n_particles}")
    check_outputs([plot], inputs=[star], overwrite=overwrite)
    if box_size < 8 or not apix > 0:
        fail(f"--box must be >= 8 and --apix > 0, got {box_size}, {apix}")
    try:
        order = int(symmetry_matrices(symmetry).shape[0])
    except ValueError as error:
        fail(f"--symmetry {symmetry}: {error}")
    if star is not None:
        from cryoglass.cli.orientations import read_directions

        directions, _ = read_directions(star, symmetry)
        source = star.name
    else:
        try:
            views = orientation_model(model)
        except ValueError as error:
            fail(f"--model: {error}")
        euler = views.sample(20_000, generator=torch.Generator().manual_seed(seed))
        directions = projection_directions(euler, symmetry=symmetry)
        source = model
    ssnr = SSNRModel(
        reference_particles=reference_particles,
        reference_resolution_angstrom=reference_resolution,
        bfactor_a2=bfactor,
    )
    common = dict(
        n_particles=n_particles,
        symmetry_order=order,
        box_size=box_size,
        pixel_size_angstrom=apix,
        model=ssnr,
    )
    plan = plan_orientations(directions, **common)
    scan = plan_tilt_scan(directions, seed=seed, max_directions=10_000, **common)
    result = plan.summary() | {
        "source": source,
        "symmetry": symmetry,
        "best_tilt_deg": scan.best_tilt_deg,
        "tilt_scan": scan.table(),
    }
    if plot is not None:
        _plot(plot, plan, scan, f"{source}, {n_particles} particles")
    if as_json:
        print_json(result)
        return
    for key, value in result.items():
        if key == "tilt_scan":
            typer.echo("   tilt  worst[Å]  global[Å]  sphericity  SCF*")
            for row in value:
                typer.echo(
                    f"  {row['tilt_deg']:5.1f}  {row['resolution_max_angstrom']:8.2f}  "
                    f"{row['global_resolution_angstrom']:9.2f}  {row['sphericity']:10.3f}  "
                    f"{row['scf_star']:.3f}"
                )
        elif isinstance(value, float):
            typer.echo(f"{key:>28}: {value:.4g}")
        else:
            typer.echo(f"{key:>28}: {value}")
