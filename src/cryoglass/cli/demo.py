"""`cryoglass demo`: the main job — from a bundled atomic model to a sharpened map."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json
from cryoglass.cli.options import JsonOutput, Overwrite


def main(
    out: Path = typer.Option(Path("demo"), "--out", help="Output folder (created if missing)."),
    box: int = typer.Option(128, "--box", min=32, help="Box size of maps and images [pixels]."),
    pixel_size_angstrom: float = typer.Option(1.3, "--apix", help="Pixel size [Å]."),
    n_particles: int = typer.Option(3000, "--n-particles", min=100, help="Simulated particles."),
    snr: float = typer.Option(0.05, "--snr", help="Signal-to-noise ratio of the particles."),
    topics: str = typer.Option(
        "all",
        "--topics",
        help="Extra topic sections: 'all' (the quick ones), 'none' or a comma list of "
        "class2d,refine,orientations,localres,nma,vae,preprocessing "
        "(movies → motioncorr → ctffind → pick → extract → class2d, a few minutes).",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed for poses, defocus and noise."),
    json_output: JsonOutput = False,
    overwrite: Overwrite = False,
) -> None:
    """Run the tour on bundled data: model → potential → particles → map → FSC → sharpened map.

    Writes DIR/report.html with its figures, and the maps it shows as MRC files in DIR
    (truth.mrc, half1.mrc, half2.mrc, postprocess.mrc, ...). About 2 minutes of CPU time.

    \b
    Example:
      cryoglass demo --out demo && xdg-open demo/report.html
      cryoglass demo --out quick --box 64 --apix 2.6 --n-particles 1000 --topics none
      cryoglass demo --out pre --box 64 --apix 2.6 --n-particles 1000 --topics preprocessing
    """
    from cryoglass.demos.pipeline import EXTRA_TOPICS, TOPIC_SECTIONS, DemoSettings, run_demo

    if topics == "all":
        chosen = TOPIC_SECTIONS
    elif topics == "none":
        chosen = ()
    else:
        chosen = tuple(t.strip() for t in topics.split(",") if t.strip())
        known = (*TOPIC_SECTIONS, *EXTRA_TOPICS)
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            fail(f"--topics: unknown {unknown}; choose from {', '.join(known)}")
    if out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        fail(f"{out}: folder is not empty; pass --overwrite to replace its files")
    settings = DemoSettings(
        box=box,
        pixel_size_angstrom=pixel_size_angstrom,
        n_particles=n_particles,
        snr=snr,
        device=device,
        seed=seed,
        topics=chosen,
    )
    import time

    started = time.perf_counter()
    report = run_demo(out, settings, progress=lambda line: typer.echo(line, err=True))
    seconds = time.perf_counter() - started
    if json_output:
        print_json(
            {
                "headline": ["report", "seconds"],
                "report": str(report),
                "seconds": round(seconds, 1),
                "settings": {k: v for k, v in vars(settings).items() if k != "topics"}
                | {"topics": list(settings.topics)},
            }
        )
        return
    typer.echo(f"report: {report} ({seconds:.0f} s)")
