"""`cryoglass simulate-movies`: movies of particles in ice, RELION's movies.star, and the truth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cryoglass.cli._common import fail, failing, print_json
from cryoglass.cli._micrograph_steps import run_per_micrograph
from cryoglass.cli.options import Apix, JsonOutput, Overwrite, Scheduler, Workers

#: Keys of the --json output shown first by reports and ``cryoglass serve``.
HEADLINE = ["micrographs", "particles", "frames", "total_dose_e_per_a2", "seconds"]

_VolumePath = Annotated[
    Path | None, typer.Option("--volume", help="Map of the particle (.mrc) in volts, cubic.")
]
_ModelPath = Annotated[
    Path | None, typer.Option("--model", help="Atomic model (.pdb/.cif) instead of a map.")
]
_NMicrographs = Annotated[int, typer.Option("--n-micrographs", help="Number of movies (≥ 1).")]
_Out = Annotated[Path, typer.Option("--out", help="Output folder (created; must be empty).")]
_Size = Annotated[
    str, typer.Option("--size", help="Micrograph size [px]: N (square) or WxH, e.g. 1024x768.")
]
_NParticles = Annotated[
    int | None,
    typer.Option("--n-particles", help="Particles per micrograph canvas (instead of --crowding)."),
]
_Crowding = Annotated[
    float,
    typer.Option("--crowding", help="Fraction of the hole's area covered by particles (0–0.5)."),
]
_Ice = Annotated[
    float, typer.Option("--ice-thickness-angstrom", help="Vitreous ice thickness [Å].")
]
_Carbon = Annotated[
    bool, typer.Option("--carbon-edge/--no-carbon-edge", help="A carbon film across the field.")
]
_CarbonThickness = Annotated[
    float, typer.Option("--carbon-thickness-angstrom", help="Carbon film thickness [Å].")
]
_DefocusMin = Annotated[float, typer.Option("--defocus-min", help="Smallest defocus [Å].")]
_DefocusMax = Annotated[float, typer.Option("--defocus-max", help="Largest defocus [Å].")]
_Astigmatism = Annotated[
    float, typer.Option("--astigmatism-angstrom", help="Largest ΔU − ΔV [Å] (random angle).")
]
_Voltage = Annotated[float, typer.Option("--voltage-kv", help="Voltage [kV].")]
_Cs = Annotated[float, typer.Option("--cs-mm", help="Spherical aberration [mm].")]
_Q0 = Annotated[float, typer.Option("--amplitude-contrast", help="Amplitude contrast Q0.")]
_Frames = Annotated[int, typer.Option("--frames", help="Frames per movie (≥ 3).")]
_Dose = Annotated[float, typer.Option("--dose-per-frame", help="Exposure per frame [e⁻/Å²].")]
_Drift = Annotated[
    float, typer.Option("--drift-angstrom", help="Length of the global drift path [Å].")
]
_Local = Annotated[
    float,
    typer.Option("--local-motion-angstrom", help="RMS local deformation at the last frame [Å]."),
]
_Gain = Annotated[
    float,
    typer.Option("--gain-spread", help="Per-pixel gain spread (0: no gain reference; 0.05: ±5 %)."),
]
_NoMovies = Annotated[
    bool,
    typer.Option(
        "--no-movies", help="Write motion-free summed micrographs (micrographs.star) instead."
    ),
]
_Seed = Annotated[int, typer.Option("--seed", help="Seed of the whole dataset.")]


def _parse_size(text: str) -> tuple[int, int]:
    """``N`` or ``WxH`` → (h, w)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        fail(f"--size {text}: give N or WxH in pixels, e.g. 1024 or 1024x768")
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 64 or any(v % 2 for v in values):
        fail(f"--size {text}: need even sizes of at least 64 px (N or WxH)")
    return values[1], values[0]


def _check(n, volume_path, model_path, frames, dose, defocus, out, overwrite, movies) -> None:
    """Refuse option values that cannot make a dataset, before anything is read."""
    if n < 1:
        fail(f"--n-micrographs {n}: need at least 1")
    if (volume_path is None) == (model_path is None):
        fail("give exactly one of --volume MAP.mrc or --model MODEL.pdb|cif")
    if movies and frames < 3:
        fail(f"--frames {frames}: motion correction needs at least 3 frames")
    if not dose > 0:
        fail(f"--dose-per-frame {dose}: must be > 0 e⁻/Å²")
    if not 0 <= defocus[0] <= defocus[1]:
        fail(f"--defocus-min {defocus[0]:g} / --defocus-max {defocus[1]:g} Å: need 0 ≤ min ≤ max")
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        fail(f"--out {out}: folder is not empty; pass --overwrite to replace cryoglass outputs")
    for path in (volume_path, model_path):
        if path is not None and out.resolve() in path.resolve().parents:
            fail(f"{path}: is inside --out {out}, which the outputs would overwrite")


def _particle_map(volume_path, model_path, apix, shape, size: str):
    """The particle's potential at its pixel size, in the smallest even box that holds it."""
    from cryoglass.cli.simulate import _load_model, _load_volume
    from cryoglass.simulate.box import fit_to_box, particle_box_size

    if volume_path is not None:
        volume, pixel = _load_volume(volume_path, apix)
        source = str(volume_path)
    else:
        volume, pixel = _load_model(model_path, apix, None)
        source = str(model_path)
    with failing(ValueError, prefix=f"{source}: "):
        needed = particle_box_size(volume, pixel_size_angstrom=pixel)
    box = needed + 4 + needed % 2
    if min(shape) < 2 * box:
        fail(
            f"--size {size}: too small for particles in a {box} px box at {pixel:g} Å/px; "
            f"make each side at least {2 * box} px"
        )
    return fit_to_box(volume, box), pixel, source


def _truth_files(out: Path, names, truths, settings, pixel) -> None:
    """truth/micrographs_ctf.star, truth/coordinates.star, truth/motion.star."""
    import torch

    from cryoglass.ctf.params import CTFParams
    from cryoglass.io.micrographs import (
        MicrographOptics,
        write_coordinates_star,
        write_micrograph_table,
        write_motion_truth,
    )

    mic = settings.microscope
    optics = MicrographOptics(
        original_pixel_size_angstrom=pixel,
        pixel_size_angstrom=pixel,
        voltage_kv=mic.voltage_kv,
        cs_mm=mic.cs_mm,
        amplitude_contrast=mic.amplitude_contrast,
    )
    stacked = {
        f: torch.tensor([float(getattr(t.ctf, f)) for t in truths], dtype=torch.float64)
        for f in ("defocus_u_angstrom", "defocus_v_angstrom", "astigmatism_angle_deg")
    }
    ctf = CTFParams(
        **stacked,
        voltage_kv=mic.voltage_kv,
        cs_mm=mic.cs_mm,
        amplitude_contrast=mic.amplitude_contrast,
    )
    (out / "truth").mkdir(exist_ok=True)
    write_micrograph_table(
        out / "truth" / "micrographs_ctf.star",
        names,
        kind="micrographs",
        optics=optics,
        ctf=ctf,
        overwrite=True,
    )
    rows = [i for i, t in enumerate(truths) for _ in range(len(t.coordinates_px))]
    write_coordinates_star(
        out / "truth" / "coordinates.star",
        torch.cat([t.coordinates_px for t in truths]),
        micrograph_names=[names[i] for i in rows],
        euler_deg=torch.cat([t.euler_deg for t in truths]),
        ctf=ctf[torch.tensor(rows, dtype=torch.long)],
        diameter_angstrom=truths[0].diameter_angstrom,
        overwrite=True,
    )
    if truths[0].motion is not None:
        h, w = settings.specimen.shape_px
        grid = (torch.arange(6, dtype=torch.float64) + 0.5) / 6  # centres of 6 × 6 cells
        ys, xs = torch.meshgrid(grid * h, grid * w, indexing="ij")
        points = torch.stack([xs, ys], dim=-1).reshape(-1, 2)
        write_motion_truth(
            out / "truth" / "motion.star",
            names,
            [t.motion.relion_shifts_px() for t in truths],
            points_px=points,
            local_shifts_px=[t.motion.relion_shifts_px(points) for t in truths],
            overwrite=True,
        )


def _write_tables(out: Path, names, settings, pixel, gain: bool) -> None:
    """movies.star (or micrographs.star with --no-movies) and gain.mrc."""
    from cryoglass.io import write_mrc
    from cryoglass.io.micrographs import MicrographOptics, write_micrograph_table
    from cryoglass.simulate.micrograph import detector_gain

    mic = settings.microscope
    optics = MicrographOptics(
        original_pixel_size_angstrom=pixel,
        pixel_size_angstrom=None if settings.movie else pixel,
        voltage_kv=mic.voltage_kv,
        cs_mm=mic.cs_mm,
        amplitude_contrast=mic.amplitude_contrast,
        gain_name="gain.mrc" if gain else None,
    )
    kind = "movies" if settings.movie else "micrographs"
    write_micrograph_table(out / f"{kind}.star", names, kind=kind, optics=optics, overwrite=True)
    if gain:
        spread = settings.exposure.gain_spread
        reference = detector_gain(
            settings.specimen.shape_px, gain_spread=spread, seed=settings.seed
        )
        write_mrc(out / "gain.mrc", reference, pixel_size_angstrom=pixel, overwrite=True)


def _settings(volume, out: Path, n: int, *, pixel, bundles, movies, seed):
    """Write truth/potential.mrc (the workers read it) and the frozen bundle every task gets."""
    from cryoglass.distributed.micrographs import SimulateMoviesSettings
    from cryoglass.io import write_mrc

    folder = "Movies" if movies else "Micrographs"
    for name in ("truth", folder):
        (out / name).mkdir(parents=True, exist_ok=True)
    potential = out / "truth" / "potential.mrc"
    write_mrc(potential, volume, pixel_size_angstrom=pixel, overwrite=True)
    return SimulateMoviesSettings(
        volume_path=str(potential.resolve()),
        out=str(out.resolve()),
        names=tuple(f"{folder}/mic_{i + 1:04d}.mrc" for i in range(n)),
        seed=seed,
        movie=movies,
        **bundles,
    )


def _summary(settings, truths, results, run, *, source: str, box: int) -> dict:
    """The --json summary."""
    exposure, specimen = settings.exposure, settings.specimen
    n = len(truths)
    return {
        "headline": HEADLINE,
        "micrographs": n,
        "particles": sum(len(t.coordinates_px) for t in truths),
        "frames": exposure.n_frames if settings.movie else 0,
        "total_dose_e_per_a2": exposure.total_dose,
        "size_px": [specimen.shape_px[1], specimen.shape_px[0]],
        "pixel_size_angstrom": round(settings.microscope.pixel_size_angstrom, 6),
        "particle_box_px": box,
        "particle_diameter_angstrom": round(truths[0].diameter_angstrom, 2),
        "mean_counts_per_pixel": round(sum(r["mean_counts_per_pixel"] for _, r in results) / n, 3),
        "source": source,
        "seed": settings.seed,
        "out": str(Path(settings.out)),
        "star": str(Path(settings.out) / ("movies.star" if settings.movie else "micrographs.star")),
        **{k: v for k, v in run.items() if k != "seconds"},
    }


def main(
    volume_path: _VolumePath = None,
    model_path: _ModelPath = None,
    n_micrographs: _NMicrographs = ...,
    out: _Out = ...,
    apix: Apix = None,
    size: _Size = "1024",
    n_particles: _NParticles = None,
    crowding: _Crowding = 0.15,
    ice_thickness_angstrom: _Ice = 300.0,
    carbon_edge: _Carbon = False,
    carbon_thickness_angstrom: _CarbonThickness = 120.0,
    defocus_min: _DefocusMin = 8000.0,
    defocus_max: _DefocusMax = 25000.0,
    astigmatism_angstrom: _Astigmatism = 1000.0,
    voltage_kv: _Voltage = 300.0,
    cs_mm: _Cs = 2.7,
    amplitude_contrast: _Q0 = 0.1,
    frames: _Frames = 20,
    dose_per_frame: _Dose = 2.0,
    drift_angstrom: _Drift = 15.0,
    local_motion_angstrom: _Local = 2.0,
    gain_spread: _Gain = 0.0,
    no_movies: _NoMovies = False,
    seed: _Seed = 0,
    overwrite: Overwrite = False,
    json_output: JsonOutput = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Simulate movies of particles in ice: MRC frame stacks, RELION's movies.star, the truth.

    Each micrograph is a field of particles (the map, a Coulomb potential in volts, or --model
    turned into one) at random positions and poses, never overlapping (--crowding: the fraction
    of the area their discs cover), in vitreous ice of --ice-thickness-angstrom (its amorphous
    structure, the 3.7 Å ring, and the contrast lost to inelastic scattering), optionally beside
    a carbon edge; imaged with a random defocus and astigmatism (RELION's CTF), a counting
    detector (DQE) and Poisson noise: raw counts, protein dark.  Each movie's frames move
    (a smooth global drift plus a local deformation, frame 1 at rest) and lose high-resolution
    signal to radiation damage (Grant & Grigorieff's exposure filter).  The science is
    cryoglass.simulate.micrograph (its docstring has the formulas).

    Writes into DIR: Movies/mic_NNNN.mrc (uint16 counts), movies.star (RELION 3.1: optics with
    rlnMicrographOriginalPixelSize, rlnVoltage, rlnSphericalAberration, rlnAmplitudeContrast),
    gain.mrc with --gain-spread (multiply the frames by it; rlnMicrographGainName), and the
    truth: truth/micrographs_ctf.star (defocus U/V/angle), truth/coordinates.star (centres in
    pixels of frame 1, poses, rlnParticleDiameter), truth/motion.star (RELION's
    rlnMicrographShiftX/Y per frame, and at the centres of 6 × 6 cells), truth/potential.mrc.
    With --no-movies: Micrographs/mic_NNNN.mrc (the motion-free sum of the exposure, counts)
    and micrographs.star instead of movies.

    Every micrograph depends only on (--seed, its number): --workers/--scheduler give the same
    files.

    \b
    Examples:
      cryoglass simulate-movies --model 3j5p.cif --apix 1.5 --n-micrographs 4 --out sim
      relion_run_motioncorr --i sim/movies.star --o MC/ --use_own --patch_x 5 --patch_y 5
      cryoglass simulate-movies --volume pot.mrc --n-micrographs 20 --size 2048 --frames 40 \\
        --dose-per-frame 1 --carbon-edge --gain-spread 0.05 --out sim --workers 2
      cryoglass simulate-movies --model 3j5p.cif --n-micrographs 8 --no-movies --out mics
    """
    from cryoglass.simulate.micrograph import Exposure, Microscope, Specimen

    movies = not no_movies
    defocus = (defocus_min, defocus_max)
    _check(n_micrographs, volume_path, model_path, frames, dose_per_frame, defocus, out,
           overwrite, movies)  # fmt: skip
    shape = _parse_size(size)
    started = time.perf_counter()
    volume, pixel, source = _particle_map(volume_path, model_path, apix, shape, size)
    bundles = {
        "microscope": Microscope(
            pixel_size_angstrom=pixel, voltage_kv=voltage_kv, cs_mm=cs_mm,
            amplitude_contrast=amplitude_contrast, defocus_min_angstrom=defocus_min,
            defocus_max_angstrom=defocus_max, astigmatism_max_angstrom=astigmatism_angstrom,
        ),
        "specimen": Specimen(
            shape_px=shape, ice_thickness_angstrom=ice_thickness_angstrom, crowding=crowding,
            n_particles=n_particles, carbon_edge=carbon_edge,
            carbon_thickness_angstrom=carbon_thickness_angstrom,
        ),
        "exposure": Exposure(
            n_frames=frames, dose_per_frame=dose_per_frame, drift_angstrom=drift_angstrom,
            local_motion_angstrom=local_motion_angstrom,
            gain_spread=gain_spread if movies else 0.0,
        ),
    }  # fmt: skip
    with failing(ValueError, TypeError):
        settings = _settings(volume, out, n_micrographs, pixel=pixel, bundles=bundles,
                             movies=movies, seed=seed)  # fmt: skip
    from cryoglass.distributed.micrographs import simulate_movie_task

    results, run = run_per_micrograph(
        simulate_movie_task,
        n_micrographs,
        settings,
        workers=workers,
        scheduler=scheduler,
        label="simulate-movies",
    )
    truths = [truth for truth, _ in results]
    with failing():
        _write_tables(out, settings.names, settings, pixel, gain=movies and gain_spread > 0)
        _truth_files(out, settings.names, truths, settings, pixel)
    summary = _summary(settings, truths, results, run, source=source, box=volume.shape[-1])
    summary["seconds"] = round(time.perf_counter() - started, 3)
    if json_output:
        print_json(summary)
        return
    typer.echo(
        f"wrote {n_micrographs} {'movies' if movies else 'micrographs'} "
        f"({shape[1]}x{shape[0]} px, {pixel:g} Å/px, {summary['particles']} particles) to {out} "
        f"in {summary['seconds']:.1f} s; truth in {out / 'truth'}",
        err=True,
    )
