"""`cryoglass lessons`: write the study-group lessons as Jupyter notebooks."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail


def lesson_sources() -> list[Path]:
    """The lesson scripts (jupytext percent format), in syllabus order.

    Installed wheels carry them in ``cryoglass/_lessons``; an editable install reads the
    repository's ``lessons/`` folder.
    """
    here = Path(__file__).resolve()
    for folder in (here.parents[1] / "_lessons", here.parents[3] / "lessons"):
        if folder.is_dir():
            return sorted(p for p in folder.glob("[0-9][0-9]_*.py"))
    return []


#: Lessons written with other issues; ``--list`` names them until their file exists.
COMING: tuple[tuple[str, str], ...] = ()


def lesson_sessions(path: Path) -> str:
    """The syllabus sessions a lesson answers: the ``**Syllabus:**`` paragraph of its header."""
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.removeprefix("#").strip()
        if text.startswith("**Syllabus:**"):
            lines.append(text.removeprefix("**Syllabus:**").strip())
        elif lines and text:
            lines.append(text)
        elif lines:
            break
    return " ".join(lines)


def main(
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the notebooks (created if missing)."
    ),
    execute: bool = typer.Option(
        False, "--execute", help="Run each notebook (fast mode) so it opens with its outputs."
    ),
    list_only: bool = typer.Option(False, "--list", help="Only list the lessons."),
) -> None:
    """Write the lessons (one per syllabus session) as Jupyter notebooks.

    \b
    Examples:
      cryoglass lessons --list
      cryoglass lessons --out lessons_nb && jupyter lab lessons_nb
      cryoglass lessons --out lessons_nb --execute
    """
    sources = lesson_sources()
    if not sources:
        fail("no lessons found in this installation")
    if list_only:
        for path in sources:
            typer.echo(f"{path.stem}  {lesson_sessions(path)}")
        present = {path.name[:2] for path in sources}
        for number, sessions in COMING:
            if number not in present:
                typer.echo(f"{number} (coming)  {sessions}")
        return
    if out is None:
        fail("give --out DIR (the folder for the notebooks), or --list")
    import os

    import jupytext

    from cryoglass.io import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    for path in sources:
        notebook = jupytext.read(path)
        if execute:
            from nbclient import NotebookClient

            os.environ.setdefault("CRYOGLASS_FAST", "1")
            NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
        target = out / f"{path.stem}.ipynb"
        write_text_atomic(target, jupytext.writes(notebook, fmt="ipynb"))
        typer.echo(str(target))
