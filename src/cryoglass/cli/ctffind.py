"""`cryoglass ctffind`: CTF estimation of every micrograph (CTFFIND4's method), RELION's outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cryoglass.cli._common import fail, failing, print_json
from cryoglass.cli.options import Apix, JsonOutput, Overwrite, Scheduler, Workers

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = [
    "micrographs",
    "defocus_mean_median_angstrom",
    "max_resolution_median_angstrom",
    "figure_of_merit_median",
    "seconds_per_micrograph",
]

_Star = Annotated[
    Path, typer.Argument(metavar="MICROGRAPHS", help="Micrographs (RELION 3.1 STAR file).")
]
_Out = Annotated[Path, typer.Option("--out", help="Output folder (created if missing).")]
_PhasePlate = Annotated[
    bool, typer.Option("--phase-plate", help="Also fit a phase shift (Volta phase plate).")
]
_MinRes = Annotated[
    float, typer.Option("--min-res", help="Lowest resolution fitted [Å] (CTFFIND: 30).")
]
_MaxRes = Annotated[
    float, typer.Option("--max-res", help="Highest resolution fitted [Å] (CTFFIND: 5).")
]
_DefocusMin = Annotated[
    float, typer.Option("--defocus-min", help="Smallest mean defocus searched [Å].")
]
_DefocusMax = Annotated[
    float, typer.Option("--defocus-max", help="Largest mean defocus searched [Å].")
]
_DefocusStep = Annotated[
    float, typer.Option("--defocus-step", help="Step of the exhaustive 1D search [Å].")
]
_MaxAstig = Annotated[
    float,
    typer.Option("--max-astigmatism", help="Largest U − V of the 2D grid search [Å]."),
]
_Tile = Annotated[
    int, typer.Option("--tile-size", help="Side of the averaged spectrum [px] (even, ≥ 64).")
]
_Voltage = Annotated[
    float | None, typer.Option("--voltage-kv", help="Override the STAR file's voltage [kV].")
]
_Cs = Annotated[float | None, typer.Option("--cs-mm", help="Override C_s [mm].")]
_Q0 = Annotated[
    float | None, typer.Option("--amplitude-contrast", help="Override the amplitude contrast Q0.")
]


def _search(**options):
    """The CTFSearch of the options; exits with one line when they cannot work."""
    from cryoglass.preprocess import CTFSearch

    with failing(ValueError, TypeError, prefix="ctffind: "):
        return CTFSearch(**options)


def _check_micrographs(table, pixels, shapes, search) -> None:
    """Every micrograph holds a tile and reaches the fit's highest resolution."""
    for file, pixel, (h, w) in zip(table.files, pixels, shapes, strict=True):
        if min(h, w) < search.tile_size:
            fail(
                f"{file}: {w} × {h} px is smaller than the spectrum tile ({search.tile_size} px); "
                "use a smaller --tile-size"
            )
        if search.max_resolution_angstrom < 2.0 * pixel:
            fail(
                f"{file}: --max-res {search.max_resolution_angstrom:g} Å is beyond Nyquist "
                f"({2 * pixel:g} Å at {pixel:g} Å/px)"
            )


def _optics(table, voltage, cs, q0) -> list[tuple[float, float, float]]:
    values = []
    for o in table.optics:
        values.append(
            (
                o.voltage_kv if voltage is None else voltage,
                o.cs_mm if cs is None else cs,
                o.amplitude_contrast if q0 is None else q0,
            )
        )
    for v, c, q in values:
        if not v > 0 or c < 0 or not 0 <= q < 1:
            fail(f"optics: voltage {v:g} kV, Cs {c:g} mm, Q0 {q:g}: need V > 0, Cs ≥ 0, 0 ≤ Q0 < 1")
    return values


def _write_star(path: Path, table, results, settings, *, overwrite: bool) -> None:
    """micrographs_ctf.star: the input rows' names and motion columns, the fits, the optics."""
    import torch

    from cryoglass.cli._micrograph_steps import names_for, optics_groups
    from cryoglass.ctf import CTFParams
    from cryoglass.io import write_micrograph_table

    out = path.parent
    groups, rows = optics_groups(table)
    values = {k: torch.tensor([r[k] for r in results], dtype=torch.float64) for k in results[0]
              if isinstance(results[0][k], float)}  # fmt: skip
    optics = torch.tensor(settings.optics, dtype=torch.float64)
    ctf = CTFParams(
        defocus_u_angstrom=values["defocus_u_angstrom"],
        defocus_v_angstrom=values["defocus_v_angstrom"],
        astigmatism_angle_deg=values["astigmatism_angle_deg"],
        phase_shift_deg=values["phase_shift_deg"],
        voltage_kv=optics[:, 0],
        cs_mm=optics[:, 1],
        amplitude_contrast=optics[:, 2],
    )
    extra = {}
    for option, column in (
        ("motion_total_px", "rlnAccumMotionTotal"),
        ("motion_early_px", "rlnAccumMotionEarly"),
        ("motion_late_px", "rlnAccumMotionLate"),
    ):
        if table.column(column) is not None:
            extra[option] = list(table.column(column))
    if "rlnMicrographMetadata" in table.table.columns:
        metadata = [Path(table.path).parent / n for n in table.table["rlnMicrographMetadata"]]
        extra["metadata_names"] = names_for(out, table, metadata)
    with failing():
        write_micrograph_table(
            path,
            names_for(out, table),
            kind="micrographs",
            optics=groups,
            optics_group=rows,
            ctf=ctf,
            ctf_image_names=[f"{r['ctf_image']}:mrc" for r in results],
            ctf_max_resolution_angstrom=values["max_resolution_angstrom"].tolist(),
            ctf_figure_of_merit=values["figure_of_merit"].tolist(),
            overwrite=overwrite,
            **extra,
        )


def _summary(table, results, run, started, out: Path) -> dict:
    import statistics

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in results), 4)

    means = [0.5 * (r["defocus_u_angstrom"] + r["defocus_v_angstrom"]) for r in results]
    per = [{"micrograph": name, **{k: v for k, v in r.items() if k != "timings"}}
           for name, r in zip(table.names, results, strict=True)]  # fmt: skip
    return {
        "headline": HEADLINE,
        "micrographs": len(results),
        "defocus_mean_median_angstrom": round(statistics.median(means), 1),
        "max_resolution_median_angstrom": median("max_resolution_angstrom"),
        "figure_of_merit_median": median("figure_of_merit"),
        "seconds_per_micrograph": median("seconds"),
        "seconds": round(time.perf_counter() - started, 3),
        "star": str(out / "micrographs_ctf.star"),
        "per_micrograph": per,
        **{k: v for k, v in run.items() if k != "seconds"},
    }


def main(
    star: _Star,
    out: _Out,
    phase_plate: _PhasePlate = False,
    min_res: _MinRes = 30.0,
    max_res: _MaxRes = 5.0,
    defocus_min: _DefocusMin = 5000.0,
    defocus_max: _DefocusMax = 50000.0,
    defocus_step: _DefocusStep = 100.0,
    max_astigmatism: _MaxAstig = 3000.0,
    tile_size: _Tile = 512,
    voltage_kv: _Voltage = None,
    cs_mm: _Cs = None,
    amplitude_contrast: _Q0 = None,
    apix: Apix = None,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Estimate the CTF of every micrograph (CTFFIND4's method), as RELION's CTF-estimation job.

    For each micrograph: the power spectra of overlapping tiles are averaged (--tile-size; small
    pixels are resampled to ≥ 1.4 Å as CTFFIND does), the smooth background is subtracted, and
    the rings between --min-res and --max-res are fitted by |CTF| (RELION's formula): an
    exhaustive 1D search of the mean defocus (every --defocus-step from --defocus-min to
    --defocus-max), a 2D grid of astigmatisms around the best 1D maxima, and a local L-BFGS
    refinement of U, V, angle (and the phase shift with --phase-plate).  The figure of merit is
    the normalised cross-correlation of the fit with the spectrum; the fit resolution is where
    the rings stop matching the fit.  The science is cryoglass.preprocess.ctffind (Rohou &
    Grigorieff 2015, doi:10.1016/j.jsb.2015.08.008).

    Writes into OUT: micrographs_ctf.star (RELION 3.1: the input rows with rlnCtfImage,
    rlnDefocusU/V, rlnCtfAstigmatism, rlnDefocusAngle, rlnCtfFigureOfMerit, rlnCtfMaxResolution,
    rlnPhaseShift with --phase-plate), and per micrograph <stem>.ctf (CTFFIND's diagnostic image,
    MRC: the fit in the left half, the spectrum in the right) and <stem>_ctf.png (that image and
    the 1D average of the spectrum against the fit, with the fit resolution).

    \b
    Examples:
      cryoglass ctffind MotionCorr/corrected_micrographs.star --out CtfFind
      cryoglass ctffind micrographs.star --out CtfFind --max-res 4 --defocus-max 40000 --workers 2
      cryoglass ctffind micrographs.star --out CtfFind --phase-plate --json
    The RELION 3.1 job it stands for:
      relion_run_ctffind --i micrographs.star --o CtfFind/ --Box 512 --ResMin 30 --ResMax 5 \\
        --dFMin 5000 --dFMax 50000 --FStep 500 --dAst 100 --use_ctffind4 --ctffind_exe ctffind
    """
    from cryoglass.cli._micrograph_steps import (
        check_output_folder,
        micrograph_shapes,
        read_micrographs,
        run_per_micrograph,
    )
    from cryoglass.distributed.ctffind_pick import CtffindSettings, ctffind_task

    started = time.perf_counter()
    search = _search(
        min_resolution_angstrom=min_res, max_resolution_angstrom=max_res,
        min_defocus_angstrom=defocus_min, max_defocus_angstrom=defocus_max,
        defocus_step_angstrom=defocus_step, max_astigmatism_angstrom=max_astigmatism,
        phase_plate=phase_plate, tile_size=tile_size,
    )  # fmt: skip
    table, pixels = read_micrographs(star, apix=apix)
    _check_micrographs(table, pixels, micrograph_shapes(table), search)
    optics = _optics(table, voltage_kv, cs_mm, amplitude_contrast)
    star_out = out / "micrographs_ctf.star"
    check_output_folder(out, [star_out], [star, *table.files], overwrite)
    settings = CtffindSettings(
        files=tuple(str(f.resolve()) for f in table.files), stems=table.stems,
        pixel_sizes_angstrom=tuple(pixels), optics=tuple(optics), search=search,
        out=str(out.resolve()),
    )  # fmt: skip
    results, run = run_per_micrograph(
        ctffind_task, len(table), settings, workers=workers, scheduler=scheduler,
        label="estimating CTFs",
    )  # fmt: skip
    _write_star(star_out, table, results, settings, overwrite=overwrite)
    summary = _summary(table, results, run, started, out)
    if json_output:
        print_json(summary)
        return
    for name, r in zip(table.names, results, strict=True):
        typer.echo(
            f"{name}: U {r['defocus_u_angstrom']:.0f} V {r['defocus_v_angstrom']:.0f} Å, "
            f"angle {r['astigmatism_angle_deg']:.1f}°, "
            f"fit to {r['max_resolution_angstrom']:.2f} Å, "
            f"CC {r['figure_of_merit']:.3f}",
            err=True,
        )
    typer.echo(f"wrote {star_out} and the diagnostics of {len(results)} micrographs "
               f"({summary['seconds_per_micrograph']:.2f} s per micrograph)", err=True)  # fmt: skip
