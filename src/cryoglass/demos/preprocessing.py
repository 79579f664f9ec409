"""Demo section: from movies to 2D classes, every step scored against the simulation's truth.

Simulated movies of TRPV1 in vitreous ice (drift, local deformation, radiation damage, a
counting detector) → motion correction (global + 3 × 3 patches, dose weighting) → CTF
estimation → reference-free picking (LoG) → extraction (RELION's normalisation) → 2D
classification.  The same library calls the commands make (``simulate-movies``,
``motioncorr``, ``ctffind``, ``pick``, ``extract``, ``class2d``), in memory, on 4 small movies.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from cryoglass.report.html import Section

__all__ = ["run"]

PIXEL, SIZE, FRAMES, DOSE, MOVIES = 2.0, 512, 16, 2.5, 4


def _potential() -> torch.Tensor:
    """TRPV1's Coulomb potential [V] at 2 Å, in the smallest even box holding it."""
    from cryoglass.data import trpv1_model_path
    from cryoglass.io import read_structure
    from cryoglass.simulate.box import fit_to_box, particle_box_size
    from cryoglass.simulate.potential import (
        model_center_angstrom,
        potential_map,
        required_box_size,
    )

    model = read_structure(trpv1_model_path(), hydrogens=True, waters=False)
    centre = model_center_angstrom(model.coordinates_angstrom, model.elements)
    size = required_box_size(
        model.coordinates_angstrom, pixel_size_angstrom=PIXEL, origin_angstrom=centre
    )
    size += size % 2
    volume = potential_map(
        model.coordinates_angstrom,
        model.elements,
        shape=(size, size, size),
        pixel_size_angstrom=PIXEL,
        bfactors_a2=model.bfactors_a2,
        occupancies=model.occupancies,
        origin_angstrom=centre,
        dtype=torch.float32,
    )
    needed = particle_box_size(volume, pixel_size_angstrom=PIXEL)
    return fit_to_box(volume, needed + 4 + needed % 2)


def _motion_error(estimate, truth) -> float:
    """RMS [px] of the total shift over frames at the centres of 4 × 4 cells."""
    grid = (torch.arange(4, dtype=torch.float64) + 0.5) / 4 * SIZE
    ys, xs = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xs, ys], dim=-1).reshape(-1, 2)
    error = estimate.shifts_at(points) - truth.relion_shifts_px(points)
    return float(error.norm(dim=-1).pow(2).mean().sqrt())


def _pick(micrograph: torch.Tensor, diameter: float):
    """LoG picks as ``cryoglass pick`` makes them, with its automatic threshold."""
    from cryoglass.preprocess import pick

    working = pick.working_pixel_size(PIXEL, diameter)
    image, binning = pick.bin_micrograph(
        micrograph, pixel_size_angstrom=PIXEL, working_pixel_size_angstrom=working
    )
    diameter_px = diameter / (PIXEL * 0.5 * sum(binning.scale))
    fom, _ = pick.log_figure_of_merit(
        image, diameters_px=torch.linspace(0.75, 1.25, 5) * diameter_px, invert=True
    )
    xy, values = pick.find_peaks(
        fom, min_distance_px=0.8 * diameter_px, border_px=0.4 * diameter_px
    )
    return binning.to_original(xy), values


def run(out: Path, *, seed: int = 0) -> list[Section]:
    """Simulate, correct, estimate, pick, extract and classify; one report section.

    Runs on one intra-op thread, as the commands' per-micrograph tasks do (small tensors
    gain nothing from a second thread; on a busy machine they lose much).
    """
    from cryoglass._allocator import single_thread

    with single_thread():
        return _run(Path(out), seed=seed)


def _run(out: Path, *, seed: int) -> list[Section]:
    from cryoglass.classify import Class2DSettings, classify_2d
    from cryoglass.ctf import CTFParams
    from cryoglass.preprocess import (
        MotionSettings,
        correct_movie,
        estimate_ctf,
        preprocess_particles,
    )
    from cryoglass.preprocess.pick import match_picks, mixture_threshold
    from cryoglass.report.ctffind import save_ctffind_figure
    from cryoglass.report.figures import image_tiles
    from cryoglass.report.preprocess import save_micrograph_figure, save_motion_figure
    from cryoglass.simulate.micrograph import Exposure, Microscope, Specimen, simulate_micrograph

    clock: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        clock[name] = clock.get(name, 0.0) + time.perf_counter() - started

    started = time.perf_counter()
    volume = _potential()
    timed("potential", started)
    microscope = Microscope(
        pixel_size_angstrom=PIXEL, defocus_min_angstrom=12000, defocus_max_angstrom=22000
    )
    specimen = Specimen(shape_px=(SIZE, SIZE), crowding=0.3, ice_thickness_angstrom=250.0)
    exposure = Exposure(
        n_frames=FRAMES, dose_per_frame=DOSE, drift_angstrom=20.0, local_motion_angstrom=4.0
    )
    motion = MotionSettings(patches=(3, 3), group_frames=2)
    rows, particles, ctfs, motion_errors, defocus_errors = [], [], [], [], []
    matches = []
    for index in range(MOVIES):
        started = time.perf_counter()
        movie = simulate_micrograph(
            volume, index=index, seed=seed, microscope=microscope, specimen=specimen,
            exposure=exposure,
        )  # fmt: skip
        timed("simulate movies", started)
        truth = movie.truth
        started = time.perf_counter()
        image, estimate = correct_movie(
            movie.frames, pixel_size_angstrom=PIXEL, settings=motion, dose_per_frame=DOSE
        )
        timed("motion correction", started)
        motion_errors.append(_motion_error(estimate, truth.motion))
        started = time.perf_counter()
        fit = estimate_ctf(
            image, pixel_size_angstrom=PIXEL, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.1
        )
        timed("CTF estimation", started)
        mean_true = 0.5 * (truth.ctf.defocus_u_angstrom + truth.ctf.defocus_v_angstrom)
        mean_fit = 0.5 * (fit.defocus_u_angstrom + fit.defocus_v_angstrom)
        defocus_errors.append(100 * abs(mean_fit - mean_true) / mean_true)
        started = time.perf_counter()
        xy, fom = _pick(image, truth.diameter_angstrom)
        timed("picking", started)
        rows.append((index, image, estimate, fit, xy, fom, truth))
    threshold = mixture_threshold(torch.cat([r[5] for r in rows]))
    box = 4 * math.ceil(0.65 * rows[0][6].diameter_angstrom / PIXEL / 2)  # binned by 2: even
    for _, image, _, fit, xy, fom, truth in rows:
        picked = xy[fom >= threshold]
        matches.append(
            match_picks(
                picked, truth.coordinates_px, tolerance_px=truth.diameter_angstrom / 4 / PIXEL
            )
        )
        started = time.perf_counter()
        inside = (picked[:, 0] < SIZE) & (picked[:, 1] < SIZE)
        stack = preprocess_particles(
            image, picked[inside], box=box, bin_factor=2, invert_contrast=True
        )
        timed("extraction", started)
        particles.append(stack)
        ctfs += [(fit.defocus_u_angstrom, fit.defocus_v_angstrom, fit.astigmatism_angle_deg)] * len(
            stack
        )
    images = torch.cat(particles)
    values = torch.tensor(ctfs, dtype=torch.float64)
    ctf = CTFParams(
        defocus_u_angstrom=values[:, 0],
        defocus_v_angstrom=values[:, 1],
        astigmatism_angle_deg=values[:, 2],
    )
    started = time.perf_counter()
    result = classify_2d(
        images,
        settings=Class2DSettings(
            n_classes=4,
            pixel_size_angstrom=2 * PIXEL,
            psi_step_deg=10.0,
            offset_range_angstrom=3 * 2 * PIXEL,
            particle_diameter_angstrom=rows[0][6].diameter_angstrom,
        ),
        iterations=6,
        ctf=ctf,
        generator=torch.Generator().manual_seed(seed),
    )
    timed("2D classification", started)

    index, image, estimate, fit, xy, fom, truth = rows[0]
    picked = xy[fom >= threshold]
    radius = truth.diameter_angstrom / 2 / PIXEL
    save_micrograph_figure(
        out / "preprocessing_micrograph.png",
        image,
        circles_px={"truth": truth.coordinates_px, "picked (LoG)": picked},
        radius_px=radius,
        title="motion-corrected, dose-weighted sum (protein dark); truth and picks",
    )
    grid = (torch.arange(3, dtype=torch.float64) + 0.5) / 3 * SIZE
    ys, xs = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xs, ys], dim=-1).reshape(-1, 2)
    save_motion_figure(
        out / "preprocessing_motion.png",
        estimate.global_shifts_px,
        shape_px=(SIZE, SIZE),
        local_tracks_px=estimate.shifts_at(points) - estimate.global_shifts_px[:, None],
        local_points_px=points,
        truth_shifts_px=truth.motion.relion_shifts_px(),
        title="movie 1",
    )
    save_ctffind_figure(out / "preprocessing_ctf.png", fit, title="movie 1")
    model = result.model
    order = sorted(range(model.classes.shape[0]), key=lambda c: -float(model.class_prior[c]))
    image_tiles(
        [model.classes[c].cpu() for c in order],
        [f"class {c + 1}: {100 * float(model.class_prior[c]):.0f} %" for c in order],
        out / "preprocessing_classes.png",
    )
    tp = sum(m.true_positives for m in matches)
    fp = sum(m.false_positives for m in matches)
    fn = sum(m.false_negatives for m in matches)
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    motion_error = sum(motion_errors) / MOVIES
    defocus = f"{sum(defocus_errors) / MOVIES:.2f} % (max {max(defocus_errors):.2f} %)"
    movies = f"{MOVIES} × {FRAMES} frames of {SIZE}² px at {PIXEL:g} Å, {DOSE:g} e⁻/Å²/frame"
    extracted = f"{len(images)} ({box // 2}² px at {2 * PIXEL:g} Å, inverted, normalised)"
    table = (
        ("movies", movies),
        ("motion: RMS trajectory error (global + local, 4 × 4 points)", f"{motion_error:.2f} px"),
        ("CTF: mean defocus error", defocus),
        ("picking (LoG, automatic threshold): precision / recall / F1",
         f"{precision:.2f} / {recall:.2f} / {f1:.2f}"),
        ("particles extracted", extracted),
        *((f"time: {name}", f"{seconds:.1f} s") for name, seconds in clock.items()),
    )  # fmt: skip
    return [
        Section(
            "From movies to 2D classes (preprocessing)",
            (
                "Four movies are simulated with known motion, defocus and particle positions, "
                "then processed as a study group's first day does: motion correction "
                "(<code>cryoglass motioncorr</code>), CTF estimation (<code>ctffind</code>), "
                "picking (<code>pick</code>), extraction (<code>extract</code>) and 2D "
                "classification (<code>class2d</code>). Each step is scored against the truth.",
            ),
            table,
            (
                (
                    "preprocessing_motion.png",
                    "Drift of movie 1: estimated (blue) and true "
                    "(dashed) global track; right, the local tracks at the patches.",
                ),
                (
                    "preprocessing_ctf.png",
                    "Its Thon rings with the fitted CTF in one half, and "
                    "the 1D average against the fit.",
                ),
                (
                    "preprocessing_micrograph.png",
                    "Its corrected sum: true particles (green) and LoG picks (red).",
                ),
                ("preprocessing_classes.png", "2D class averages of the extracted particles."),
            ),  # fmt: skip
        )
    ]
