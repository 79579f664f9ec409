"""`cryoglass select`: keep the particles of chosen 2D classes."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import check_outputs, fail, failing, print_json
from cryoglass.cli.options import DataDir


def _class_list(text: str) -> list[int]:
    """``"1,3,5-7"`` → [1, 3, 5, 6, 7] (1-based class numbers)."""
    numbers: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                low, high = (int(v) for v in part.split("-", 1))
                numbers.extend(range(low, high + 1))
            else:
                numbers.append(int(part))
        except ValueError:
            fail(f"--classes {text!r}: expected class numbers like 1,3,5-7")
    if not numbers or min(numbers) < 1:
        fail(f"--classes {text!r}: class numbers start at 1")
    return sorted(set(numbers))


def main(
    star: Path = typer.Argument(..., metavar="IN", help="particles.star written by class2d."),
    classes: str = typer.Option(..., "--classes", help="Class numbers to keep, e.g. 1,3,5-7."),
    out: Path = typer.Option(..., "--out", help="Output .star with the selected particles."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    datadir: DataDir = None,
) -> None:
    """Write the particles whose rlnClassNumber is in --classes (all columns kept).

    \b
    Example:
      cryoglass select class2d/particles.star --classes 1,3 --out good.star
    (RELION: relion_star_handler or the Subset selection job.)
    """
    import torch

    from cryoglass.io import class_numbers, read_particles, write_relion_star

    if not star.is_file():
        fail(f"{star}: particle file not found")
    # the folder is made as RELION makes Select/jobNNN/ (below)
    check_outputs([out], inputs=[star], overwrite=overwrite, creates=[out.parent])
    keep_classes = _class_list(classes)
    with failing(ValueError, KeyError, OSError, prefix=f"{star}: "):
        particles = read_particles(star, datadir=datadir)
    number = class_numbers(particles)
    if number is None:
        fail(f"{star}: no rlnClassNumber column (run cryoglass class2d first)")
    present = sorted(set(number.tolist()))
    absent = [c for c in keep_classes if c not in present]
    if absent:
        fail(f"{star}: class(es) {absent} have no particles (present: {present})")
    keep = torch.isin(number, torch.tensor(keep_classes))
    selected = particles.subset(keep)
    out.parent.mkdir(parents=True, exist_ok=True)  # as RELION makes Select/jobNNN/
    with failing():
        write_relion_star(out, selected, overwrite=overwrite)
    typer.echo(f"wrote {out}: {int(keep.sum())} of {len(particles)} particles", err=True)
    if json_output:
        print_json({"selected": int(keep.sum()), "total": len(particles), "classes": keep_classes})
