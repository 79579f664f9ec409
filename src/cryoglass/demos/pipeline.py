"""The demo pipeline behind ``cryoglass demo``: from an atomic model to a sharpened map.

A tour of what cryoglass computes, on a bundled atomic model (TRPV1, PDB 3J5P, ≈ 230 kDa of
modelled atoms):

1. the electrostatic potential of the model (Peng et al. 1996 scattering factors);
2. projections by the Fourier-slice theorem, checked against projections computed from atoms;
3. a CTF defocus series (1D, 2D, zeros in Å);
4. a simulated dataset: particles at random orientations with CTF and noise, their Thon rings;
5. 3D reconstruction of two half sets by direct Fourier inversion, FSC against the truth;
6. post-processing: corrected FSC, Guinier plot and B-factor, blurred vs sharpened map;
7. the sections of the other topics (2D classification, orientations, local resolution, NMA,
   VAE) when present.

Every figure is a PNG beside ``report.html``; every map shown is an MRC file in the folder.
Each step is a function that returns its report section, so the steps read one at a time.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from cryoglass.ctf import CTFParams, ctf_1d, ctf_2d, ctf_zeros_angstrom
from cryoglass.data import trpv1_model_path
from cryoglass.fourier import apply_bfactor, fft2_centered, radial_power_spectrum, shell_frequencies
from cryoglass.geometry import matrix_to_euler, random_rotations
from cryoglass.io import read_structure, write_mrc
from cryoglass.projection import project
from cryoglass.report.figures import (
    image_tiles,
    plot_fsc,
    plot_guinier,
    pyplot,
    save_figure,
    save_fsc_figure,
)
from cryoglass.report.html import Section, write_html_report
from cryoglass.simulate import potential_map, projected_potential
from cryoglass.simulate.dataset import ParticleDistributions, ParticleParameters, simulate_dataset

__all__ = ["EXTRA_TOPICS", "TOPIC_SECTIONS", "DemoSettings", "run_demo"]

#: Topic sections contributed by other modules: ``cryoglass.demos.<name>.run(out, seed=)``.
TOPIC_SECTIONS = ("class2d", "refine", "orientations", "localres", "nma", "vae")
#: Longer topics, run only when named (``cryoglass demo --topics preprocessing``).
EXTRA_TOPICS = ("preprocessing",)


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo (the defaults run in about a minute on 2 cores)."""

    box: int = 128
    pixel_size_angstrom: float = 1.3
    n_particles: int = 3000
    snr: float = 0.05
    defocus_min_um: float = 0.8
    defocus_max_um: float = 2.0
    device: str = "cpu"
    seed: int = 0
    topics: tuple[str, ...] = field(default=TOPIC_SECTIONS)


class _Clock:
    """Wall-clock timings of the demo's steps, for the report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, name: str):
        clock = self

        class _Timer:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                clock.seconds[name] = time.perf_counter() - self.start

        return _Timer()


def _potential(out: Path, s: DemoSettings, clock: _Clock):
    """Step 1: the model's Coulomb potential on the demo grid."""
    model = read_structure(trpv1_model_path(), hydrogens=False, waters=False)
    shape = (s.box,) * 3
    with clock.time(f"potential of {len(model.elements):,} atoms, {s.box}³"):
        volume = potential_map(
            model.coordinates_angstrom,
            model.elements,
            shape=shape,
            pixel_size_angstrom=s.pixel_size_angstrom,
            bfactors_a2=model.bfactors_a2,
            occupancies=model.occupancies,
            dtype=torch.float32,
        ).to(s.device)
    write_mrc(out / "truth.mrc", volume, pixel_size_angstrom=s.pixel_size_angstrom, overwrite=True)
    c = s.box // 2
    image_tiles(
        torch.stack([volume[c], volume[:, c], volume[:, :, c]]),
        ["central z slice [y, x]", "central y slice [z, x]", "central x slice [z, y]"],
        out / "map_slices.png",
    )
    section = Section(
        "1. The potential of an atomic model",
        (
            f"Each of the {len(model.elements):,} heavy atoms of TRPV1 (PDB 3J5P) adds its "
            "electron scattering potential: Peng et al. (1996) five-Gaussian scattering factors, "
            "broadened by the atom's B-factor, V(r) = (h²/2πm₀e) Σᵢ aᵢ (4π/(bᵢ+B))^{3/2} "
            "exp(−4π²r²/(bᵢ+B)) in volts, averaged over each voxel. "
            f"Grid {s.box}³ at {s.pixel_size_angstrom} Å/pixel, origin at voxel N//2 = {c}, "
            "centred on the model's centre of mass; the four-fold axis runs along z.",
        ),
        (("file", "truth.mrc"), ("max potential", f"{float(volume.max()):.2f} V")),
        (("map_slices.png", "Central slices of the potential (arrays indexed [z, y, x])."),),
    )
    return volume, model, section


def _projections(out: Path, s: DemoSettings, volume, model, generator, clock: _Clock) -> Section:
    """Step 2: Fourier-slice projections against projections computed directly from atoms."""
    named = torch.tensor([[0.0, 0.0, 0.0], [0.0, 90.0, 0.0], [45.0, 90.0, 0.0], [0.0, 180.0, 0.0]])
    rand = matrix_to_euler(random_rotations(4, generator=generator, dtype=torch.float64)).float()
    euler = torch.cat([named, rand]).to(s.device)
    with clock.time("8 projections, pad 2"):
        images = project(volume, euler_deg=euler, pixel_size_angstrom=s.pixel_size_angstrom, pad=2)
    images = images * s.pixel_size_angstrom  # sum over voxels × voxel length: V·Å
    with clock.time("8 projected potentials from atoms"):
        exact = projected_potential(
            model.coordinates_angstrom,
            model.elements,
            image_size=s.box,
            pixel_size_angstrom=s.pixel_size_angstrom,
            euler_deg=euler.double().cpu(),
            bfactors_a2=model.bfactors_a2,
            occupancies=model.occupancies,
        ).to(images)
    a = images - images.mean(dim=(-2, -1), keepdim=True)
    b = exact - exact.mean(dim=(-2, -1), keepdim=True)
    ncc = ((a * b).sum(dim=(-2, -1)) / (a.norm(dim=(-2, -1)) * b.norm(dim=(-2, -1)))).min().item()
    write_mrc(
        out / "projections.mrcs",
        images,
        pixel_size_angstrom=s.pixel_size_angstrom,
        stack=True,
        overwrite=True,
    )
    titles = [f"rot {x:.0f}, tilt {y:.0f}, psi {z:.0f}" for x, y, z in euler.cpu().tolist()]
    image_tiles(images, titles, out / "projections.png")
    return Section(
        "2. Projections by the Fourier-slice theorem",
        (
            "The 2D Fourier transform of a projection is a central slice of the map's 3D "
            "transform, perpendicular to the viewing direction: P̂(k) = V̂(Aᵀ(kx, ky, 0)). The map "
            "is zero-padded twice (as RELION pads its reference), transformed once, and every "
            "image is a slice sampled by trilinear interpolation. Angles are RELION's (rot, tilt, "
            "psi): tilt 0 looks down the four-fold axis, tilt 90 from the side.",
            "Check: the same projections computed directly from the atoms (2D Gaussians, no "
            f"grid) agree with normalised cross-correlation ≥ {ncc:.4f} on all eight images.",
        ),
        (("file", "projections.mrcs (V·Å)"), ("min NCC against atoms", f"{ncc:.4f}")),
        (("projections.png", "Projected potential at RELION Euler angles."),),
    )


def _ctf_series(out: Path, clock: _Clock) -> Section:
    """Step 3: the CTF for four defoci."""
    plt = pyplot()
    pixel, box = 2.0, 256  # Nyquist 1/4 Å⁻¹: the rings stay resolved (no aliasing) up to 3 µm
    defoci = torch.tensor([5000.0, 10000.0, 20000.0, 30000.0])
    params = CTFParams(defocus_u_angstrom=defoci, defocus_v_angstrom=defoci)
    k = torch.linspace(0, 0.5 / pixel, 1000)
    with clock.time("CTF: 4 × 256² and 1D"):
        curves = ctf_1d(params, k)
        ctfs = ctf_2d(params, image_size=box, pixel_size_angstrom=pixel, rfft=False)
    zeros = ctf_zeros_angstrom(params, 3)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    for curve, df in zip(curves, defoci.tolist(), strict=True):
        axes[0].plot(k.numpy(), curve.numpy(), lw=1, label=f"{df / 1e4:.1f} µm")
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_xlabel("spatial frequency k [1/Å]")
    axes[0].set_ylabel("CTF (RELION sign)")
    axes[0].legend(title="defocus", fontsize=8)
    axes[1].imshow(ctfs[2].numpy(), cmap="gray", origin="lower")
    axes[1].set_title(f"2D CTF, 2.0 µm, {pixel:g} Å/px")
    axes[1].axis("off")
    save_figure(fig, out / "ctf_defocus_series.png")
    table = tuple(
        (f"defocus {df / 1e4:.1f} µm", ", ".join(f"{z:.1f} Å" for z in zs))
        for df, zs in zip(defoci.tolist(), zeros.tolist(), strict=True)
    )
    return Section(
        "3. The contrast transfer function, a defocus series",
        (
            "CTF(k) = sin χ(k) in RELION's sign convention (positive first lobe in underfocus), "
            "χ(k) = πλΔf k² − (π/2) C_s λ³ k⁴ + arctan(Q₀/√(1−Q₀²)), at 300 kV "
            "(λ = 0.0197 Å), C_s = 2.7 mm, Q₀ = 0.1. More defocus brings the first zero to lower "
            "resolution and packs the rings closer. The table lists the first three zeros.",
        ),
        table,
        (("ctf_defocus_series.png", "1D CTF for four defoci, and the 2D CTF at 2 µm."),),
    )


def _dataset(out: Path, s: DemoSettings, volume, clock: _Clock):
    """Step 4: a simulated dataset (kept in memory; a sample is written)."""
    plt = pyplot()
    distributions = ParticleDistributions(
        defocus_min_um=s.defocus_min_um,
        defocus_max_um=s.defocus_max_um,
        astigmatism_angstrom=300.0,
        shift_scale_angstrom=3.0,
    )
    images, parts = [], []
    with clock.time(f"simulate {s.n_particles:,} particles, {s.box}²"):
        for chunk in simulate_dataset(
            volume,
            n=s.n_particles,
            pixel_size_angstrom=s.pixel_size_angstrom,
            distributions=distributions,
            snr=s.snr,
            seed=s.seed,
            device=s.device,
        ):
            images.append(chunk.images)
            parts.append(chunk.parameters)
    images = torch.cat(images)
    params = ParticleParameters.concatenate(parts)
    write_mrc(
        out / "particles_sample.mrcs",
        images[:32],
        pixel_size_angstrom=s.pixel_size_angstrom,
        stack=True,
        overwrite=True,
    )
    power, _ = radial_power_spectrum(images, ndim=2, pixel_size_angstrom=s.pixel_size_angstrom)
    mean_power = power.mean(0).cpu()
    freqs = shell_frequencies(
        mean_power.shape[0], box_size=s.box, pixel_size_angstrom=s.pixel_size_angstrom
    )
    spectrum_2d = (fft2_centered(images[:200]).abs() ** 2).mean(0).log().cpu()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), gridspec_kw={"width_ratios": [1, 1, 2]})
    axes[0].imshow(images[0].cpu().numpy(), cmap="gray", origin="lower")
    axes[0].set_title(f"one particle (SNR {s.snr})")
    axes[1].imshow(spectrum_2d.numpy(), cmap="gray", origin="lower")
    axes[1].set_title("mean power spectrum (log)")
    for ax in axes[:2]:
        ax.axis("off")
    axes[2].semilogy(freqs.numpy(), mean_power.numpy())
    axes[2].set_xlabel("k [1/Å]")
    axes[2].set_ylabel("mean radial power")
    save_figure(fig, out / "dataset.png")
    section = Section(
        "4. A simulated dataset",
        (
            f"{s.n_particles:,} particles at uniformly random orientations, origins drawn with "
            "3 Å spread (RELION's rlnOriginX/YAngst meaning), astigmatic defocus "
            f"{s.defocus_min_um}–{s.defocus_max_um} µm, the CTF applied on the image grid as "
            f"relion_project does, and white Gaussian noise at SNR {s.snr} (signal variance "
            "inside the particle over noise variance). Averaged over particles, the power "
            "spectrum shows the Thon rings blurred by the spread of defocus. `cryoglass "
            "simulate` writes such datasets to disk (RELION star, cryoDRGN pickles).",
        ),
        (("sample", "particles_sample.mrcs (first 32 particles)"),),
        (("dataset.png", "A particle, the mean 2D power spectrum and its radial profile."),),
    )
    return (images, params), section


def _reconstruction(out: Path, s: DemoSettings, volume, data, clock: _Clock):
    """Step 5: two half maps by direct Fourier inversion, FSC between them and to the truth."""
    from cryoglass.reconstruct import reconstruct
    from cryoglass.validate import fourier_shell_correlation, fsc_summary

    images, params = data
    halves = []
    with clock.time(f"reconstruct 2 half maps ({s.n_particles:,} particles)"):
        for half in (1, 2):
            idx = (params.random_subset == half).nonzero().squeeze(1)
            halves.append(
                reconstruct(
                    images[idx],
                    euler_deg=params.euler_deg[idx].float(),
                    shift_angstrom=params.shift_angstrom[idx].float(),
                    ctf=params.ctf[idx],
                    pixel_size_angstrom=s.pixel_size_angstrom,
                    device=s.device,
                )
            )
    average = (halves[0] + halves[1]) / 2
    for i, half in enumerate(halves, start=1):
        write_mrc(
            out / f"half{i}.mrc", half, pixel_size_angstrom=s.pixel_size_angstrom, overwrite=True
        )
    kwargs = {"box_size": s.box, "pixel_size_angstrom": s.pixel_size_angstrom}
    halves_fsc = fsc_summary(
        fourier_shell_correlation(halves[0], halves[1]), label="half map 1 vs half map 2", **kwargs
    )
    truth_fsc = fsc_summary(
        fourier_shell_correlation(average, volume), label="average vs truth", **kwargs
    )
    res_halves = halves_fsc.resolution_0143_angstrom
    res_truth = truth_fsc.resolution_05_angstrom
    save_fsc_figure(
        out / "fsc.png",
        halves_fsc.frequency_inv_angstrom.tolist(),
        {summary.label: summary.fsc.tolist() for summary in (halves_fsc, truth_fsc)},
    )
    c = s.box // 2
    image_tiles(
        torch.stack([volume[:, c], average[:, c]]),
        ["truth (y slice)", "reconstruction"],
        out / "reconstruction.png",
    )
    section = Section(
        "5. 3D reconstruction by direct Fourier inversion",
        (
            "Each particle's transform, multiplied by its CTF, is inserted as a central slice into "
            "a twice-padded 3D grid together with CTF² weights (the exact adjoint of the "
            "projector); the map is Σ CTF·F / (Σ CTF² + ε), corrected for the interpolation "
            "kernel and masked by RELION's soft sphere. Particles are split into two half sets "
            "(rlnRandomSubset); the FSC between the half maps estimates resolution at 0.143, the "
            "FSC of their average against the known truth at 0.5.",
        ),
        (
            ("half-map FSC = 0.143", f"{res_halves:.2f} Å"),
            ("FSC to truth = 0.5", f"{res_truth:.2f} Å"),
            ("files", "half1.mrc, half2.mrc"),
        ),
        (
            ("fsc.png", "FSC curves with the 0.143 (dashed) and 0.5 (dotted) thresholds."),
            ("reconstruction.png", "Central slices of the truth and the reconstruction."),
        ),
    )
    return halves, section


def _postprocess(out: Path, s: DemoSettings, halves, clock: _Clock) -> Section:
    """Step 6: masked, corrected FSC, Guinier B-factor, sharpening and blurring."""
    from cryoglass.validate import auto_mask, postprocess

    plt = pyplot()

    average = (halves[0] + halves[1]) / 2
    with clock.time("post-process (mask, corrected FSC, B, sharpen)"):
        mask = auto_mask(average, pixel_size_angstrom=s.pixel_size_angstrom)
        result = postprocess(
            halves[0],
            halves[1],
            pixel_size_angstrom=s.pixel_size_angstrom,
            mask=mask,
            generator=torch.Generator().manual_seed(s.seed),
        )
        blurred = apply_bfactor(
            average, ndim=3, bfactor_a2=200.0, pixel_size_angstrom=s.pixel_size_angstrom
        )
    write_mrc(
        out / "postprocess.mrc",
        result.sharpened * mask,
        pixel_size_angstrom=s.pixel_size_angstrom,
        overwrite=True,
    )
    write_mrc(
        out / "blurred_B200.mrc", blurred, pixel_size_angstrom=s.pixel_size_angstrom, overwrite=True
    )
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    plot_guinier(axes[0], result, title=f"Guinier plot, B = {result.bfactor_a2:.0f} Å²")
    curves = {"unmasked": result.fsc_unmasked}
    if result.fsc_masked is not None:
        curves.update({"masked": result.fsc_masked, "phase-randomised": result.fsc_randomized})
    curves["corrected"] = result.fsc_corrected
    plot_fsc(
        axes[1],
        result.frequency_inv_angstrom.tolist(),
        {label: curve.tolist() for label, curve in curves.items()},
        emphasise="corrected",
    )
    save_figure(fig, out / "postprocess.png")
    c = s.box // 2
    image_tiles(
        torch.stack([blurred[:, c], average[:, c], result.sharpened[:, c]]),
        ["blurred, B = +200 Å²", "average of halves", f"sharpened, B = {result.bfactor_a2:.0f} Å²"],
        out / "blur_sharpen.png",
    )
    return Section(
        "6. Resolution, B-factor, blur and sharpen",
        (
            "A soft mask made from the map itself raises the FSC; phase randomisation beyond "
            "the resolution where the unmasked FSC falls below 0.8 measures how much of that "
            "rise the mask alone causes, and the corrected FSC removes it (Chen et al. 2013). "
            "A straight line fitted to ln⟨|F|⟩ against k² from 10 Å to the resolution gives "
            "the B-factor (RELION's sign: negative sharpens); the map is multiplied by "
            "exp(−B k²/4), weighted by √(2FSC/(1+FSC)) and low-passed at the resolution. "
            "Blurring is the same filter with B > 0.",
        ),
        (
            ("resolution (corrected FSC = 0.143)", f"{result.resolution_angstrom:.2f} Å"),
            ("B-factor", f"{result.bfactor_a2:.1f} Å²"),
            ("files", "postprocess.mrc (sharpened, masked), blurred_B200.mrc"),
        ),
        (
            ("postprocess.png", "Guinier plot and the FSC curves of post-processing."),
            ("blur_sharpen.png", "The same map blurred, as reconstructed, and sharpened."),
        ),
    )


def _topic_sections(
    out: Path, s: DemoSettings, clock: _Clock, progress: Callable[[str], None] | None = None
) -> list[Section]:
    """Sections of the other topics, from ``cryoglass.demos.<topic>.run`` where present.

    A topic whose ``run`` takes ``progress`` gets it (its own lines within the step).
    """
    sections: list[Section] = []
    for topic in s.topics:
        try:
            module = importlib.import_module(f"cryoglass.demos.{topic}")
        except ModuleNotFoundError:
            continue
        options = {"seed": s.seed}
        if "progress" in inspect.signature(module.run).parameters:
            options["progress"] = progress
        with clock.time(f"topic: {topic}"):
            sections.extend(module.run(out, **options))
    return sections


def _steps(progress: Callable[[str], None] | None, total: int):
    """``step(name)``: a context that reports ``[i/total] name …`` and its end with seconds."""
    count = iter(range(1, total + 1))

    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        i, start = next(count), time.perf_counter()
        if progress is not None:
            progress(f"[{i}/{total}] {name} …")
        yield
        if progress is not None:
            progress(f"[{i}/{total}] {name}: done in {time.perf_counter() - start:.1f} s")

    return step


def run_demo(
    out: Path,
    settings: DemoSettings | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Run the demo into folder ``out``; returns the path of ``report.html``.

    ``progress`` (e.g. ``print``) is called with one line when each step starts and ends.
    """
    s = settings or DemoSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(s.seed)
    clock = _Clock()
    step = _steps(progress, 7 + len(s.topics))
    with step(f"potential of the TRPV1 model on a {s.box}³ grid"):
        volume, model, first = _potential(out, s, clock)
    with step("projections: Fourier-slice vs atoms"):
        sections = [first, _projections(out, s, volume, model, generator, clock)]
    with step("CTF defocus series"):
        sections.append(_ctf_series(out, clock))
    with step(f"simulated dataset: {s.n_particles:,} particles"):
        data, dataset_section = _dataset(out, s, volume, clock)
    sections.append(dataset_section)
    with step("reconstruction of two half sets, FSC"):
        halves, reconstruction_section = _reconstruction(out, s, volume, data, clock)
    sections.append(reconstruction_section)
    with step("post-processing: corrected FSC, B-factor, sharpened map"):
        sections.append(_postprocess(out, s, halves, clock))
    for topic in s.topics:
        with step(f"topic: {topic}"):
            sections.extend(_topic_sections(out, replace(s, topics=(topic,)), clock, progress))
    total = sum(clock.seconds.values())
    sections.append(
        Section(
            "Timings on this machine",
            (
                f"torch {torch.__version__}, device {s.device}, {torch.get_num_threads()} threads; "
                f"{total:.1f} s in the steps below.",
            ),
            tuple((name, f"{seconds:.2f} s") for name, seconds in clock.seconds.items()),
        )
    )
    report = out / "report.html"
    with step("report.html"):
        _write_report(report, sections)
    return report


def _write_report(report: Path, sections: list) -> None:
    write_html_report(
        report,
        title="cryoglass demo: from an atomic model to a sharpened map",
        intro=(
            "Single-particle cryo-EM in a glass box. Conventions are RELION's (ZYZ Euler angles, "
            "origin at N//2, Å, CTF sign; see docs/conventions.md). Run "
            "<code>cryoglass lessons --out lessons</code> for the math behind each figure."
        ),
        sections=sections,
    )
