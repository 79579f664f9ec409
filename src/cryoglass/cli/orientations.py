"""`cryoglass orientations`: orientation distribution of a particle STAR file: SCF, SCF*, plots."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, print_json, require_memory
from cryoglass.cli.options import DataDir, Overwrite


def read_directions(star: Path, symmetry: str, datadir: Path | None = None):
    """Read Euler angles from a STAR/.cs file and return (directions, n_particles) or fail."""
    from cryoglass.geometry import group_order
    from cryoglass.io import read_particles
    from cryoglass.io.particles import check_3d_poses
    from cryoglass.validate.orientations import projection_directions

    if not star.is_file():
        fail(f"{star}: no such file")
    try:
        particles = read_particles(star, pixel_size_angstrom=1.0, image_size=2, datadir=datadir)
    except (OSError, ValueError, KeyError) as error:
        fail(f"{star}: {error}")
    if particles.euler_deg is None:
        fail(f"{star}: no particle angles (rlnAngleRot/rlnAngleTilt/rlnAnglePsi) in the file")
    try:
        check_3d_poses(particles, source=str(star), purpose="an orientation distribution")
    except ValueError as error:
        fail(str(error))
    n = int(particles.euler_deg.shape[0])
    try:
        order = group_order(symmetry)
    except ValueError as error:
        fail(f"--symmetry {symmetry}: {error}")
    # n·G directions, with the expanded poses and matrices: about 200 bytes each
    require_memory(
        200.0 * n * order, what=f"--symmetry {symmetry} ({n} particles × {order} operators)"
    )
    try:
        directions = projection_directions(particles.euler_deg, symmetry=symmetry)
    except ValueError as error:
        fail(f"--symmetry {symmetry}: {error}")
    return directions, int(particles.euler_deg.shape[0])


def main(
    star: Path = typer.Argument(..., help="Particles with angles (.star or cryoSPARC .cs)."),
    symmetry: str = typer.Option(
        "C1", "--symmetry", help="Point group to expand (C1, C4, D7, O, I...)."
    ),
    tilt_deg: float = typer.Option(0.0, "--tilt-deg", help="In-silico stage tilt [degrees]."),
    fourier_radius: float = typer.Option(
        50.0, "--fourier-radius", help="Fourier radius R [Fourier pixels] of the SCF shell."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random tilt axes (with --tilt-deg)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a Mollweide density map (PNG)."),
    bild: Path | None = typer.Option(
        None, "--bild", help="Write a ChimeraX .bild of the distribution."
    ),
    datadir: DataDir = None,
    overwrite: Overwrite = False,
) -> None:
    """Orientation distribution: SCF, SCF*, empty fraction and efficiency (Baldwin & Lyumkis).

    Projection directions d = Aᵀ e_z of every particle (expanded by --symmetry) are counted
    in the unit-thickness central slabs through an equal-area set of 5000 Fourier rays at
    radius R; SCF = 1/(<S><1/S>), SCF* additionally penalises unsampled regions.  With
    --tilt-deg every direction is tilted by that angle about a random in-plane axis, i.e.
    the same particles collected at that stage tilt.

    Examples:

    \b
      cryoglass orientations run_data.star --json
      cryoglass orientations run_data.star --symmetry C4 --plot orient.png --bild orient.bild
      cryoglass orientations run_data.star --tilt-deg 30 --json
    """
    import torch

    from cryoglass.validate.orientations import (
        orientation_bild,
        orientation_statistics,
        tilt_directions,
    )

    if not fourier_radius > 0:
        fail(f"--fourier-radius must be positive, got {fourier_radius}")
    check_outputs((plot, bild), inputs=(star,), overwrite=overwrite)
    directions, n_particles = read_directions(star, symmetry, datadir)
    if tilt_deg != 0.0:
        generator = torch.Generator().manual_seed(seed)
        directions = tilt_directions(directions, tilt_deg, generator=generator)
    stats = orientation_statistics(
        directions, fourier_radius=fourier_radius, n_particles=n_particles
    )
    result = stats.as_dict() | {"symmetry": symmetry, "tilt_deg": tilt_deg}
    if plot is not None:
        from cryoglass.report.figures import plot_direction_density, save_figure

        fig = plot_direction_density(
            directions, title=f"{star.name}: SCF* = {stats.scf_star:.3f}, {n_particles} particles"
        )
        save_figure(fig, plot)
    if bild is not None:
        from cryoglass.io import write_text_atomic

        write_text_atomic(bild, orientation_bild(directions), overwrite=overwrite)
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            typer.echo(
                f"{key:>16}: {value:.4g}" if isinstance(value, float) else f"{key:>16}: {value}"
            )
