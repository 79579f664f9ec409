"""`cryoglass convert`: particle metadata between RELION, cryoSPARC and cryoDRGN."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli.options import Apix, DataDir, JsonOutput, Overwrite

#: Keys of the --json output shown first.
HEADLINE = ["particles", "to", "output"]

#: --to choices → (kind, RELION dialect).
TARGETS = {
    "relion": ("star", "3.1"),
    "relion-3.1": ("star", "3.1"),
    "relion-5": ("star", "5"),
    "relion-3.0": ("star", "3.0"),
    "cryodrgn-poses": ("poses", None),
    "cryodrgn-ctf": ("ctf", None),
}


def _check_paths(source: Path, out: Path, to: str, extras: dict, *, overwrite: bool) -> None:
    """Refuse bad combinations, missing inputs and existing outputs before reading anything."""
    if to not in TARGETS:
        fail(f"--to {to!r}: choose one of {', '.join(TARGETS)}")
    suffix = source.suffix.lower()
    if suffix not in (".star", ".cs", ".pkl"):
        fail(f"{source}: expected a RELION .star, a cryoSPARC .cs or a cryoDRGN .pkl file")
    for name, path in {"IN": source, **extras}.items():
        if path is not None and not path.exists():
            fail(f"{path}: not found ({name})")
    if suffix == ".pkl" and extras["--stack"] is None:
        fail(f"{source}: cryoDRGN pickles name no images; give --stack particles.mrcs (or .txt)")
    if suffix != ".pkl" and (extras["--stack"] is not None or extras["--ctf"] is not None):
        fail("--stack and --ctf go with a cryoDRGN .pkl input")
    if suffix != ".cs" and extras["--passthrough"] is not None:
        fail("--passthrough goes with a cryoSPARC .cs input")
    expected = ".star" if TARGETS[to][0] == "star" else ".pkl"
    if out.suffix.lower() != expected:
        fail(f"--out {out}: --to {to} writes a {expected} file")
    check_outputs(
        [out], inputs=[source, *extras.values()], overwrite=overwrite, creates=[out.parent]
    )


#: Library wording in reader errors → the option that fixes it.
_HINTS = {
    "pass image_size": "give --box",
    "pass pixel_size_angstrom": "give --apix",
    "(neither in data_optics nor in the particle rows)": "(for rlnAmplitudeContrast: give "
    "--amplitude-contrast)",
}


def _read(source: Path, extras: dict, *, apix, box, amplitude_contrast, datadir, read_ctf):
    """The input as one ParticleSet (a cryoDRGN pickle with its stack and CTF)."""
    from cryoglass.io import cryodrgn_pickle_kind, read_cryodrgn_particles, read_particles

    if source.suffix.lower() == ".pkl":
        with failing():
            kind = cryodrgn_pickle_kind(source)
            if kind == "ctf" and extras["--ctf"] is not None:
                fail(f"{source} is a CTF table; give the poses pickle as IN and --ctf {source}")
            return read_cryodrgn_particles(
                extras["--stack"],
                poses=source if kind == "poses" else None,
                ctf=source if kind == "ctf" else extras["--ctf"],
                pixel_size_angstrom=apix,
            )
    with failing(ValueError, KeyError, OSError):
        try:
            return read_particles(
                source,
                pixel_size_angstrom=apix,
                image_size=box,
                amplitude_contrast=amplitude_contrast,
                datadir=datadir,
                passthrough=extras["--passthrough"],
                read_ctf=read_ctf,
            )
        except ValueError as error:
            message = str(error)
            for library, option in _HINTS.items():
                message = message.replace(library, option)
            raise ValueError(message) from None


def _write(particles, out: Path, to: str, *, source: Path, overwrite: bool) -> None:
    """Write ``particles`` as --to says; refuse what the target cannot mean."""
    from cryoglass.io import (
        check_3d_poses,
        write_cryodrgn_ctf,
        write_cryodrgn_poses,
        write_relion_star,
    )

    kind, dialect = TARGETS[to]
    with failing():
        if kind == "star":
            write_relion_star(out, particles, overwrite=overwrite, dialect=dialect)
            stacks = [f for f in particles.image_files if f.suffix.lower() == ".mrc"]
            if stacks:
                typer.echo(
                    f"warning: {len(stacks)} image stack(s) end in .mrc (cryoSPARC's), e.g. "
                    f"{stacks[0].name}; RELION reads stacks only as .mrcs: link each one "
                    "(ln -s NAME.mrc NAME.mrcs) and change the names in the STAR file, or read "
                    "them with cryoglass, which takes either (docs/bring-your-data.md)",
                    err=True,
                )
        elif kind == "poses":
            if particles.euler_deg is None:
                fail(f"{source}: no poses (rlnAngleRot/Tilt/Psi or alignments3D) to convert")
            check_3d_poses(particles, source=str(source), purpose="cryoDRGN's poses.pkl")
            write_cryodrgn_poses(
                out,
                particles.euler_deg,
                particles.shift_angstrom,
                image_size=particles.image_size,
                pixel_size_angstrom=particles.pixel_size_angstrom,
                overwrite=overwrite,
            )
        else:
            if particles.ctf is None:
                fail(f"{source}: no CTF parameters (rlnDefocusU/V or ctf/df1_A) to convert")
            write_cryodrgn_ctf(
                out,
                particles.ctf,
                image_size=particles.image_size,
                pixel_size_angstrom=particles.pixel_size_angstrom,
                overwrite=overwrite,
            )


def main(
    source: Path = typer.Argument(
        ..., metavar="IN", help="RELION .star (3.0/3.1/5), cryoSPARC .cs or cryoDRGN .pkl."
    ),
    to: str = typer.Option(
        ...,
        "--to",
        help="relion (= relion-3.1), relion-5, relion-3.0, cryodrgn-poses or cryodrgn-ctf.",
    ),
    out: Path = typer.Option(..., "--out", help="Output .star or .pkl (written atomically)."),
    ctf_pkl: Path | None = typer.Option(
        None, "--ctf", help="With a cryoDRGN poses.pkl IN: its ctf.pkl (D, pixel size, CTF)."
    ),
    stack: Path | None = typer.Option(
        None, "--stack", help="With a cryoDRGN .pkl IN: the images (.mrcs, or a .txt list)."
    ),
    passthrough: Path | None = typer.Option(
        None, "--passthrough", help="With a cryoSPARC .cs IN: the job's passthrough .cs."
    ),
    apix: Apix = None,
    box: int | None = typer.Option(
        None, "--box", min=1, help="Box size [px] when the file has none (cryoDRGN's -D)."
    ),
    amplitude_contrast: float | None = typer.Option(
        None,
        "--amplitude-contrast",
        help="Q0 for every particle, overriding the file's (cryoDRGN's -w).",
    ),
    datadir: DataDir = None,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
) -> None:
    """Convert particle metadata: RELION 3.0/3.1/5 ⇄ cryoSPARC ⇄ cryoDRGN.

    Poses, shifts and CTFs keep their meaning (docs/conventions.md: cryoSPARC rotation vectors
    are transposed into RELION's Euler angles, cryoDRGN translations are fractions of the box,
    Å and degrees everywhere); columns cryoglass does not interpret are kept.  The cryoDRGN
    pickles are the arrays of cryoDRGN's parse_pose_star / parse_ctf_star (and
    parse_pose_csparc / parse_ctf_csparc for a .cs).  cryoSPARC 2D-classification particles
    (alignments2D: an in-plane angle) become a RELION Class2D-like file (rlnAnglePsi,
    rlnClassNumber) and are refused as cryoDRGN poses, which are 3D.  Image paths are kept as
    written where they still find the images (RELION reads them from its project folder);
    --datadir says where to look for moved images.  docs/bring-your-data.md walks through it.

    \b
    Examples:
      cryoglass convert Refine3D/job012/run_data.star --to cryodrgn-poses --out poses.pkl
      cryoglass convert Refine3D/job012/run_data.star --to cryodrgn-ctf --out ctf.pkl
      cryoglass convert poses.pkl --ctf ctf.pkl --stack particles.mrcs --to relion \\
          --out particles.star
      cryoglass convert J24_particles.cs --passthrough J24_passthrough_particles.cs \\
          --to relion --out particles.star --datadir /data/cryosparc/P12
      cryoglass convert run_data.star --to relion-3.0 --out run_data_30.star
    """
    extras = {"--ctf": ctf_pkl, "--stack": stack, "--passthrough": passthrough}
    _check_paths(source, out, to, extras, overwrite=overwrite)
    if apix is not None and not apix > 0:
        fail(f"--apix must be > 0 Å, got {apix}")
    if amplitude_contrast is not None and not 0.0 <= amplitude_contrast < 1.0:
        fail(f"--amplitude-contrast must satisfy 0 <= Q0 < 1, got {amplitude_contrast}")
    particles = _read(
        source,
        extras,
        apix=apix,
        box=box,
        amplitude_contrast=amplitude_contrast,
        datadir=datadir,
        read_ctf=TARGETS[to][0] != "poses",
    )
    if len(particles) == 0:
        fail(f"{source}: no particles")
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(particles, out, to, source=source, overwrite=overwrite)
    pixel = particles.pixel_size_angstrom
    summary = {
        "headline": HEADLINE,
        "input": str(source),
        "output": str(out),
        "to": to,
        "particles": len(particles),
        "image_size": particles.image_size,
        "pixel_size_angstrom": [float(pixel.min()), float(pixel.max())],
        "optics_groups": len(set(particles.optics_group.tolist())),
        "poses": "2D (in-plane)"
        if particles.in_plane_only
        else ("3D" if particles.euler_deg is not None else None),
        "ctf": particles.ctf is not None,
    }
    if json_output:
        print_json(summary)
        return
    typer.echo(
        f"wrote {out}: {len(particles)} particles, box {particles.image_size}, "
        f"{float(pixel.min()):g} Å/px, poses {summary['poses'] or 'none'}, "
        f"CTF {'yes' if summary['ctf'] else 'no'} ({to})"
    )
