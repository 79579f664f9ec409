"""`cryoglass project`: project a map at the poses (and CTFs) of a particle STAR file."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json, torch_device
from cryoglass.cli.options import DataDir, JsonOutput


def _pixel_size(
    star: Path,
    map_path: Path,
    header_pixel: float | None,
    override: float | None,
    datadir: Path | None = None,
):
    """Read the particles and decide the pixel size [Å]; exit with a message on conflicts."""
    from cryoglass.io import check_pixel_size, read_particles

    try:
        particles = read_particles(star, pixel_size_angstrom=override, datadir=datadir)
    except ValueError as error:
        if "pixel size" not in str(error) or header_pixel is None:
            fail(str(error))
        particles = read_particles(star, pixel_size_angstrom=header_pixel, datadir=datadir)
    pixel = particles.pixel_size_angstrom
    if float(pixel.max() - pixel.min()) > 0.01 * float(pixel.min()):
        fail(
            f"{star}: particles have different pixel sizes ({float(pixel.min()):.4f}–"
            f"{float(pixel.max()):.4f} Å); one map needs one pixel size"
        )
    value = float(pixel[0])
    try:
        check_pixel_size(value, header_pixel, tolerance=0.01, source=f"{star} vs {map_path}")
    except ValueError as error:
        fail(str(error))
    return particles, value


def _project_all(volume, particles, out: Path, *, ctf: bool, pixel: float, target, **how):
    """Project ``volume`` at every particle's pose into the stack ``out``, batch by batch."""
    import torch
    from rich.progress import Progress

    from cryoglass.geometry.euler import euler_to_matrix
    from cryoglass.io import MRCStackWriter
    from cryoglass.projection import prepare_volume_fourier, project_prepared

    n, box, batch_size = len(particles), volume.shape[-1], how["batch_size"]
    rotations = euler_to_matrix(particles.euler_deg.to(torch.float32))
    shifts = particles.shift_angstrom
    shifts = None if shifts is None else shifts.to(torch.float32)
    ctf_params = particles.ctf.as_tensors(dtype=torch.float32) if ctf else None
    prepared = prepare_volume_fourier(volume.to(target), pad=how["pad"])
    try:
        with (
            MRCStackWriter(
                out,
                n_images=n,
                image_shape=(box, box),
                pixel_size_angstrom=pixel,
                overwrite=how["overwrite"],
            ) as writer,
            Progress(transient=True, console=None) as progress,
        ):
            task = progress.add_task("projecting", total=n)
            for start in range(0, n, batch_size):
                part = slice(start, min(start + batch_size, n))
                images = project_prepared(
                    prepared,
                    rotations[part].to(target),
                    shift_angstrom=None if shifts is None else shifts[part],
                    pixel_size_angstrom=pixel,
                    ctf=None if ctf_params is None else ctf_params[part],
                )
                if not bool(torch.isfinite(images).all()):
                    raise ValueError(f"{out}: projections are not finite (NaN or inf)")
                writer.write(start, images)
                progress.update(task, advance=part.stop - part.start)
    except ValueError as error:
        fail(str(error))


def main(
    map_path: Path = typer.Argument(..., metavar="MAP", help="Input map (.mrc), cubic box."),
    star: Path = typer.Option(..., "--star", help="Particle STAR file with poses."),
    out: Path = typer.Option(..., "--out", help="Output stack (.mrcs); also writes OUT.star."),
    ctf: bool = typer.Option(False, "--ctf/--no-ctf", help="Multiply by each particle's CTF."),
    pad: int = typer.Option(2, "--pad", min=1, help="Padding factor (RELION: 2)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Images per batch."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (cuda:0, ...)."),
    pixel_size: float | None = typer.Option(
        None, "--apix", help="Pixel size [Å]; overrides the STAR file and the map header."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing OUT files."),
    datadir: DataDir = None,
    json_output: JsonOutput = False,
) -> None:
    """Project a map at the poses (and CTFs) of a particle STAR file, like relion_project.

    Reads MAP (MRC) and the particles' RELION STAR file (rlnAngleRot/Tilt/Psi, origins
    rlnOriginX/YAngst, optionally the CTF), computes one projection per particle by the
    Fourier-slice theorem (padded 3D transform, trilinear interpolation, as RELION), shifts it
    by the particle's origin (and multiplies by its CTF with --ctf) and writes OUT (an .mrcs
    stack in STAR order) and OUT with suffix .star (the input rows; rlnImageName points at the
    new stack). The pixel size comes from the STAR file's optics group, else the map header
    (or --apix); the command refuses STAR/map pixel sizes that differ by more than 1 %.

    Agreement with relion_project 3.1: to single precision for even boxes (with and without
    --ctf).  For odd boxes RELION 3.1 puts the projection one pixel further along +x and +y;
    cryoglass keeps the origin at N//2 on every axis (docs/conventions.md, item 2), so odd-box
    outputs differ from RELION's by that one-pixel move.  2D alignments (cryoSPARC
    alignments2D, RELION Class2D files) are refused: they are not 3D poses.

    \b
    Example:
      cryoglass project class001.mrc --star particles.star --ctf --out proj.mrcs
    writes proj.mrcs and proj.star; the RELION equivalent (even box) is
      relion_project --i class001.mrc --ang particles.star --ctf --o proj
    """
    from cryoglass.io import read_mrc, write_relion_star
    from cryoglass.io.particles import check_3d_poses

    out_star = out.with_suffix(".star")
    check_outputs([out, out_star], inputs=[map_path, star], overwrite=overwrite)
    if not map_path.is_file():
        fail(f"{map_path}: map not found")
    if not star.is_file():
        fail(f"{star}: STAR file not found")
    try:
        volume, info = read_mrc(map_path)
    except ValueError as error:
        fail(str(error))
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        fail(f"{map_path}: the map must be a cubic 3D volume, got shape {tuple(volume.shape)}")
    particles, pixel = _pixel_size(star, map_path, info.pixel_size_angstrom, pixel_size, datadir)
    box = volume.shape[-1]
    if particles.euler_deg is None:
        fail(f"{star}: no Euler angles (rlnAngleRot, rlnAngleTilt, rlnAnglePsi)")
    with failing():
        check_3d_poses(particles, source=str(star), purpose="projection")
    if ctf and particles.ctf is None:
        fail(f"{star}: --ctf given but the file has no CTF columns (rlnDefocusU, rlnDefocusV)")
    target = torch_device(device)

    n = len(particles)
    if n == 0:
        fail(f"{star}: no particles")
    _project_all(
        volume,
        particles,
        out,
        ctf=ctf,
        pixel=pixel,
        target=target,
        overwrite=overwrite,
        pad=pad,
        batch_size=batch_size,
    )
    names = [f"{k:06d}@{out.name}" for k in range(1, n + 1)]
    result = particles.with_image_names(names, image_root=out.parent)
    write_relion_star(out_star, result, overwrite=overwrite)
    typer.echo(f"wrote {n} projections ({box}² px, {pixel:g} Å) to {out} and {out_star}", err=True)
    if json_output:
        print_json(
            {
                "headline": ["projections", "box", "pixel_size_angstrom"],
                "projections": n,
                "box": box,
                "pixel_size_angstrom": pixel,
                "ctf": ctf,
                "odd_box": bool(box % 2),
                "outputs": [str(out), str(out_star)],
            }
        )
