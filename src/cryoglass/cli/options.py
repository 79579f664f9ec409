"""Options shared by the commands: one spelling and one meaning per concept (``docs/cli.md``).

A command declares ``apix: Apix = None`` instead of writing the option again, so every command
spells pixel size, devices, Dask, seeds, ``--overwrite`` and ``--json`` the same way.
:data:`ALIASES` lists the other spellings still accepted (hidden from ``--help``): older
cryoglass names and RELION's; :func:`rewrite_aliases` applies them before typer parses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "ALIASES",
    "Apix",
    "BatchSize",
    "ChunkSize",
    "ContinueRun",
    "DataDir",
    "Device",
    "JsonOutput",
    "OffsetRange",
    "OffsetStep",
    "Overwrite",
    "Oversampling",
    "RefApix",
    "Scheduler",
    "UseCTF",
    "Workers",
    "rewrite_aliases",
]

Apix = Annotated[
    float | None,
    typer.Option(
        "--apix",
        help="Pixel size [Å] (default: from the file's metadata or header).",
        show_default=False,
    ),
]
Device = Annotated[str, typer.Option("--device", help="cpu or cuda (cuda:0, ...).")]
Oversampling = Annotated[
    int,
    typer.Option(
        "--oversampling",
        min=0,
        max=2,
        help="Adaptive oversampling order, as RELION's: rescore the likely poses on a psi and "
        "offset grid 2^order times finer (0: the coarse grid only).",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--datadir",
        help="Folder to look for the particle image files in first (the path in rlnImageName, "
        "then its file name). Without it, as RELION: the current folder (run from the RELION "
        "project folder), then the STAR file's folder.",
        show_default=False,
    ),
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Run on a local Dask cluster of N processes."),
]
Scheduler = Annotated[
    str | None,
    typer.Option("--scheduler", help="Run on an existing Dask cluster (tcp://host:8786)."),
]
ChunkSize = Annotated[
    int,
    typer.Option(
        "--chunk-size", min=1, help="Particles per Dask task (with --workers/--scheduler)."
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace existing outputs (inputs are never replaced)."),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")]

# Options of the 3D commands (refine3d, class3d, abinitio); each command sets its default.
UseCTF = Annotated[bool, typer.Option("--ctf/--no-ctf", help="Use the CTF (needs CTF columns).")]
RefApix = Annotated[
    float | None,
    typer.Option("--ref-apix", help="Pixel size of the reference [Å] (default: its header)."),
]
OffsetRange = Annotated[float, typer.Option("--offset-range", help="Origin search radius [px].")]
OffsetStep = Annotated[float, typer.Option("--offset-step", help="Origin search step [px].")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")]
ContinueRun = Annotated[bool, typer.Option("--continue", help="Resume from DIR's checkpoint.")]

#: Hidden spellings → the documented one, for every command ("*") or one command.
ALIASES: dict[str, dict[str, str]] = {
    "*": {
        "--pixel-size": "--apix",
        "--pixel-size-angstrom": "--apix",
        "--angpix": "--apix",
    },
    "simulate": {"--n": "--n-particles"},
    "nma-dataset": {"--n": "--n-particles"},
    "reconstruct": {"--mask": "--sphere-mask", "--no-mask": "--no-sphere-mask"},
    # resample: --apix is the output's pixel size; the input's older spellings mean the input's
    "resample": {
        "--pixel-size": "--input-apix",
        "--pixel-size-angstrom": "--input-apix",
        "--angpix": "--input-apix",
        "--rescale-angpix": "--apix",
        "--new-box": "--box",
    },
    "demo": {"--topic": "--topics"},
    "ctffind": {"--min-defocus": "--defocus-min", "--max-defocus": "--defocus-max"},
}


def rewrite_aliases(args: Sequence[str]) -> list[str]:
    """Replace hidden option spellings by the documented ones (``--x=v`` forms too).

    The command is the first argument that is not an option; its own aliases and the global
    ones apply to every later argument.  Option values are never rewritten: a value follows an
    option, and only arguments in the alias table (which are all options) change.

    Examples
    --------
    >>> rewrite_aliases(["reconstruct", "p.star", "--pixel-size=1.2", "--no-mask"])
    ['reconstruct', 'p.star', '--apix=1.2', '--no-sphere-mask']
    """
    args = list(args)
    command = next((a for a in args if not a.startswith("-")), None)
    table = {**ALIASES["*"], **ALIASES.get(command or "", {})}
    out = []
    for arg in args:
        name, sep, value = arg.partition("=")
        out.append(table.get(name, name) + sep + value if name in table else arg)
    return out
