"""`cryoglass demo`: the main job — what cryoglass computes today, on bundled data."""

from __future__ import annotations

from pathlib import Path

import typer


def main(
    out: Path = typer.Option(Path("demo"), "--out", help="Output folder (created if missing)."),
    box: int = typer.Option(64, "--box", help="Map box size [pixels]."),
    pixel_size_angstrom: float = typer.Option(2.5, "--pixel-size", help="Map pixel size [Å]."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random poses and noise."),
) -> None:
    """Run the tour on bundled data and write DIR/report.html with figures and maps.

    Example: cryoglass demo --out demo && xdg-open demo/report.html
    """
    from cryoglass.demo import run_demo

    report = run_demo(
        out, box=box, pixel_size_angstrom=pixel_size_angstrom, device=device, seed=seed
    )
    typer.echo(f"report: {report}")
