"""`cryoglass select-micrographs`: keep micrographs by CTF fit, defocus, astigmatism, drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryoglass.cli._common import fail, failing, print_json
from cryoglass.cli.options import JsonOutput, Overwrite

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["micrographs", "selected", "rejected"]

_Star = Annotated[
    Path,
    typer.Argument(metavar="MICROGRAPHS_CTF", help="Micrographs with CTF columns (ctffind's)."),
]
_Out = Annotated[Path, typer.Option("--out", help="Selected micrographs (.star).")]
_MaxRes = Annotated[
    float | None,
    typer.Option(
        "--max-res", help="Reject fits worse than this resolution [Å] (rlnCtfMaxResolution)."
    ),
]
_DefocusMin = Annotated[
    float | None, typer.Option("--defocus-min", help="Reject a mean defocus below this [Å].")
]
_DefocusMax = Annotated[
    float | None, typer.Option("--defocus-max", help="Reject a mean defocus above this [Å].")
]
_MaxAstig = Annotated[
    float | None,
    typer.Option("--max-astigmatism", help="Reject |U − V| above this [Å] (rlnCtfAstigmatism)."),
]
_MinFom = Annotated[
    float | None,
    typer.Option(
        "--min-fom", help="Reject a CTF figure of merit below this (rlnCtfFigureOfMerit)."
    ),
]
_MaxDrift = Annotated[
    float | None,
    typer.Option(
        "--max-drift",
        help="Reject a total drift above this [Å] (rlnAccumMotionTotal, or the motion STAR files).",
    ),
]


def _drift(table, pixels) -> list[float] | None:
    """Total drift [Å] per micrograph: rlnAccumMotionTotal, else summed from the motion files."""
    import torch

    from cryoglass.io import read_motion_star

    total = table.column("rlnAccumMotionTotal")
    if total is not None:
        return [float(v) for v in total]
    if "rlnMicrographMetadata" not in table.table.columns:
        return None
    drifts = []
    for name, pixel in zip(table.table["rlnMicrographMetadata"], pixels, strict=True):
        path = Path(name) if Path(name).is_absolute() else table.path.parent / name
        if not path.is_file() and Path(name).is_file():
            path = Path(name)
        with failing(ValueError, OSError, KeyError):
            track = read_motion_star(path)
        steps = torch.diff(track.global_shifts_px, dim=0).norm(dim=-1).sum()
        drifts.append(float(steps) * (track.pixel_size_angstrom or pixel))
    return drifts


def _values(table, pixels) -> dict:
    """The quantities the cuts act on, one per micrograph."""
    if table.ctf is None:
        fail(f"{table.path}: no CTF columns (rlnDefocusU/V); run cryoglass ctffind first")
    u, v = table.ctf.defocus_u_angstrom, table.ctf.defocus_v_angstrom
    values = {
        "defocus_mean_angstrom": (0.5 * (u + v)).tolist(),
        "astigmatism_angstrom": (u - v).abs().tolist(),
    }
    for key, column in (
        ("max_resolution_angstrom", "rlnCtfMaxResolution"),
        ("figure_of_merit", "rlnCtfFigureOfMerit"),
    ):
        if table.column(column) is not None:
            values[key] = [float(x) for x in table.column(column)]
    drift = _drift(table, pixels)
    if drift is not None:
        values["drift_angstrom"] = drift
    return values


def _cuts(values: dict, **limits) -> dict:
    """{key: (low, high)} of the cuts asked for; exits when a cut's column is missing."""
    wanted = {
        "max_resolution_angstrom": (None, limits["max_res"], "--max-res", "rlnCtfMaxResolution"),
        "defocus_mean_angstrom": (limits["defocus_min"], limits["defocus_max"], "--defocus-min/max",
                                  "rlnDefocusU/V"),
        "astigmatism_angstrom": (None, limits["max_astigmatism"], "--max-astigmatism",
                                 "rlnDefocusU/V"),
        "figure_of_merit": (limits["min_fom"], None, "--min-fom", "rlnCtfFigureOfMerit"),
        "drift_angstrom": (None, limits["max_drift"], "--max-drift",
                           "rlnAccumMotionTotal or rlnMicrographMetadata"),
    }  # fmt: skip
    cuts = {}
    for key, (low, high, option, column) in wanted.items():
        if low is None and high is None:
            continue
        if key not in values:
            fail(f"{option}: the micrographs have no {column} to select on")
        cuts[key] = (low, high)
    if limits["defocus_min"] is not None and limits["defocus_max"] is not None:
        if limits["defocus_min"] > limits["defocus_max"]:
            fail("--defocus-min is larger than --defocus-max")
    return cuts


def _keep(values: dict, cuts: dict) -> tuple[list[bool], dict]:
    """Which micrographs pass every cut, and how many each cut rejects."""
    n = len(values["defocus_mean_angstrom"])
    keep = [True] * n
    rejected = {}
    for key, (low, high) in cuts.items():
        fails = [
            (low is not None and x < low) or (high is not None and x > high) for x in values[key]
        ]
        rejected[key] = sum(fails)
        keep = [k and not f for k, f in zip(keep, fails, strict=True)]
    return keep, rejected


def main(
    star: _Star,
    out: _Out,
    max_res: _MaxRes = None,
    defocus_min: _DefocusMin = None,
    defocus_max: _DefocusMax = None,
    max_astigmatism: _MaxAstig = None,
    min_fom: _MinFom = None,
    max_drift: _MaxDrift = None,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
) -> None:
    """Keep the micrographs whose CTF fit (and drift) pass the cuts, with the plots to choose them.

    Reads a micrographs STAR file with CTF columns (cryoglass ctffind's micrographs_ctf.star, or
    RELION's), applies every cut given — fit resolution (rlnCtfMaxResolution), mean defocus,
    astigmatism |U − V|, figure of merit, and total drift (rlnAccumMotionTotal, else summed from
    each micrograph's motion STAR file, rlnMicrographMetadata) — and writes the passing rows
    with every column and the optics table as read.  Without cuts it only draws the plots.

    Writes OUT (the selected micrographs) and OUT_selection.png: histograms of fit resolution,
    defocus, astigmatism, figure of merit and drift with the cuts, and fit resolution against
    defocus, kept and rejected micrographs in two colours — the plots to choose cuts from.

    \b
    Examples:
      cryoglass select-micrographs CtfFind/micrographs_ctf.star --out selected.star --max-res 6
      cryoglass select-micrographs CtfFind/micrographs_ctf.star --out selected.star \\
        --defocus-min 5000 --defocus-max 30000 --max-astigmatism 1000 --max-drift 40 --json
    The RELION 3.1 equivalent is a Subset selection job on rlnCtfMaxResolution:
      relion_star_handler --i micrographs_ctf.star --o selected.star --select rlnCtfMaxResolution \\
        --maxval 6
    """
    from cryoglass.cli._micrograph_steps import names_for, read_micrographs
    from cryoglass.io.star_rows import write_star_rows
    from cryoglass.report.ctffind import save_selection_figure

    table, pixels = read_micrographs(star)
    values = _values(table, pixels)
    cuts = _cuts(values, max_res=max_res, defocus_min=defocus_min, defocus_max=defocus_max,
                 max_astigmatism=max_astigmatism, min_fom=min_fom, max_drift=max_drift)  # fmt: skip
    keep, rejected = _keep(values, cuts)
    figure = out.with_name(out.stem + "_selection.png")
    if out.resolve() == star.resolve():
        fail(f"{out}: output would overwrite the input file")
    if out.exists() and not overwrite:
        fail(f"{out}: exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        fail(f"{out}: folder {out.parent} does not exist")
    replace = {"rlnMicrographName": names_for(out.parent, table)}
    if "rlnCtfImage" in table.table.columns:
        images = [str(n).split(":")[0] for n in table.table["rlnCtfImage"]]
        files = [Path(n) if Path(n).is_absolute() else table.path.parent / n for n in images]
        replace["rlnCtfImage"] = [f"{n}:mrc" for n in names_for(out.parent, table, files)]
    rows = [i for i, k in enumerate(keep) if k]
    with failing():
        write_star_rows(star, out, rows, block="micrographs", replace_columns=replace,
                        overwrite=overwrite)  # fmt: skip
        save_selection_figure(figure, values, keep, cuts=cuts, title=f"{star.name}: "
                              f"{len(rows)} of {len(keep)} micrographs kept")  # fmt: skip
    summary = {
        "headline": HEADLINE,
        "micrographs": len(keep),
        "selected": len(rows),
        "rejected": len(keep) - len(rows),
        "rejected_by": rejected,
        "cuts": {k: {"min": lo, "max": hi} for k, (lo, hi) in cuts.items()},
        "out": str(out),
        "figure": str(figure),
    }
    if json_output:
        print_json(summary)
        return
    by = ", ".join(f"{k}: {v}" for k, v in rejected.items()) or "no cuts"
    typer.echo(f"kept {len(rows)} of {len(keep)} micrographs ({by}); wrote {out} and {figure}",
               err=True)  # fmt: skip
