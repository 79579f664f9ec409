"""The demo pipeline behind ``cryoglass demo``.

A tour of what cryoglass computes, on a bundled atomic model (TRPV1, PDB 3J5P):

1. a map from atoms (a sum of Gaussians, one per atom, weighted by atomic number);
2. projections at a few poses by the Fourier-slice theorem, checked against exact projections;
3. a CTF defocus series (1D, 2D, zeros in Å);
4. Thon rings: the power spectrum of noisy CTF-modulated projections against CTF²;
5. blur and sharpen: the map filtered by B-factors.

Every figure goes to a PNG beside ``report.html``; every map shown is an MRC file in the folder.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from cryoglass.ctf import CTFParams, ctf_1d, ctf_2d, ctf_zeros_angstrom
from cryoglass.data import trpv1_model_path
from cryoglass.fourier import apply_bfactor, fft2_centered, radial_power_spectrum, shell_frequencies
from cryoglass.geometry import euler_to_matrix, matrix_to_euler, random_rotations
from cryoglass.io import read_structure, write_mrc
from cryoglass.projection import project
from cryoglass.report.html import Section, save_figure, write_html_report
from cryoglass.simulate import gaussian_map, gaussian_map_projections

__all__ = ["run_demo", "model_map"]

#: Atomic numbers used as Gaussian weights for the demo map (others count as carbon).
_ATOMIC_NUMBER = {"H": 1, "C": 6, "N": 7, "O": 8, "P": 15, "S": 16}


def model_map(
    *, box: int, pixel_size_angstrom: float, sigma_angstrom: float, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The bundled TRPV1 model as a sum-of-Gaussians map centred on its centre of mass.

    Returns the map (box³), the centred atom coordinates (M, 3) [Å] and the weights (M,).
    """
    model = read_structure(trpv1_model_path(), hydrogens=False, waters=False)
    weights = torch.tensor([_ATOMIC_NUMBER.get(e, 6) for e in model.elements], dtype=torch.float64)
    coords = model.coordinates_angstrom
    centre = (coords * weights[:, None]).sum(0) / weights.sum()
    coords = (coords - centre).to(device=device, dtype=torch.float32)
    weights = weights.to(device=device, dtype=torch.float32)
    volume = gaussian_map(
        coords,
        shape=(box, box, box),
        pixel_size_angstrom=pixel_size_angstrom,
        sigma_angstrom=sigma_angstrom,
        weights=weights,
    )
    return volume, coords, weights


def _tiles(images: torch.Tensor, titles: list[str], path: Path, *, cmap: str = "gray") -> None:
    import matplotlib.pyplot as plt

    n = images.shape[0]
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images.cpu(), titles, strict=False):
        ax.imshow(image.numpy(), cmap=cmap, origin="lower")
        ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def run_demo(
    out: Path,
    *,
    box: int = 64,
    pixel_size_angstrom: float = 2.5,
    device: str = "cpu",
    seed: int = 0,
) -> Path:
    """Run the demo into folder ``out``; returns the path of ``report.html``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    timings: dict[str, float] = {}
    sections: list[Section] = []

    # 1. Map from atoms -------------------------------------------------------------------
    t0 = time.perf_counter()
    sigma = max(pixel_size_angstrom, 1.0)
    volume, coords, weights = model_map(
        box=box, pixel_size_angstrom=pixel_size_angstrom, sigma_angstrom=sigma, device=device
    )
    timings["map from 15,820 atoms"] = time.perf_counter() - t0
    write_mrc(
        out / "trpv1_map.mrc", volume, pixel_size_angstrom=pixel_size_angstrom, overwrite=True
    )
    centre = box // 2
    _tiles(
        torch.stack([volume[centre], volume[:, centre], volume[:, :, centre]]),
        ["central z slice [y, x]", "central y slice [z, x]", "central x slice [z, y]"],
        out / "map_slices.png",
    )
    sections.append(
        Section(
            "1. A map from an atomic model",
            (
                "Each of the 15,820 heavy atoms of TRPV1 (PDB 3J5P) becomes an isotropic Gaussian "
                f"(σ = {sigma:.1f} Å) weighted by its atomic number, sampled on a {box}³ grid at "
                f"{pixel_size_angstrom} Å/pixel, origin at voxel N//2 = {centre}. The four-fold "
                "axis of the channel runs along z. (The forward-model module replaces these "
                "Gaussians by electron scattering factors.)",
            ),
            (("file", "trpv1_map.mrc"),),
            (("map_slices.png", "Central slices of the map (arrays indexed [z, y, x])."),),
        )
    )

    # 2. Projections ------------------------------------------------------------------------
    named = torch.tensor([[0.0, 0.0, 0.0], [0.0, 90.0, 0.0], [45.0, 90.0, 0.0], [0.0, 180.0, 0.0]])
    rand = matrix_to_euler(random_rotations(4, generator=generator, dtype=torch.float64)).float()
    euler = torch.cat([named, rand]).to(device)
    t0 = time.perf_counter()
    images = project(volume, euler_deg=euler, pixel_size_angstrom=pixel_size_angstrom, pad=2)
    timings["8 projections, pad 2"] = time.perf_counter() - t0
    exact = gaussian_map_projections(
        coords,
        euler_to_matrix(euler),
        image_size=box,
        pixel_size_angstrom=pixel_size_angstrom,
        sigma_angstrom=sigma,
        weights=weights,
    )
    rel_err = ((images - exact).norm(dim=(-2, -1)) / exact.norm(dim=(-2, -1))).max().item()
    write_mrc(
        out / "projections.mrcs",
        images,
        pixel_size_angstrom=pixel_size_angstrom,
        stack=True,
        overwrite=True,
    )
    titles = [f"rot {a:.0f}, tilt {b:.0f}, psi {c:.0f}" for a, b, c in euler.cpu().tolist()]
    _tiles(images, titles, out / "projections.png")
    sections.append(
        Section(
            "2. Projections by the Fourier-slice theorem",
            (
                "The 2D Fourier transform of a projection is a central slice of the map's 3D "
                "transform, taken perpendicular to the viewing direction: P̂(k) = V̂(Aᵀ(kx, ky, 0)). "
                "The map is zero-padded twice (as RELION pads its reference), transformed once, "
                "and every image is a slice sampled by trilinear interpolation. Angles are "
                "RELION's (rot, tilt, psi): tilt 0 looks down the four-fold axis, tilt 90 from "
                "the side.",
                f"Largest relative error against the exact (closed-form) projections of the "
                f"Gaussian map: {rel_err:.2e}.",
            ),
            (("file", "projections.mrcs"), ("max relative error", f"{rel_err:.2e}")),
            (("projections.png", "Projections at RELION Euler angles."),),
        )
    )

    # 3. CTF defocus series -----------------------------------------------------------------
    ctf_pixel, ctf_box = 1.0, 256
    defoci = torch.tensor([5000.0, 10000.0, 20000.0, 30000.0])
    params = CTFParams(
        defocus_u_angstrom=defoci,
        defocus_v_angstrom=defoci,
        voltage_kv=300.0,
        cs_mm=2.7,
        amplitude_contrast=0.1,
    )
    k = torch.linspace(0, 0.5 / ctf_pixel, 1000)
    t0 = time.perf_counter()
    curves = ctf_1d(params, k)  # (4, 1000)
    ctfs_2d = ctf_2d(params, image_size=ctf_box, pixel_size_angstrom=ctf_pixel, rfft=False)
    timings["CTF: 4 × 256² + 1D"] = time.perf_counter() - t0
    zeros = ctf_zeros_angstrom(params, 3)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    for curve, df in zip(curves, defoci.tolist(), strict=True):
        axes[0].plot(k.numpy(), curve.numpy(), lw=1, label=f"{df / 1e4:.1f} µm")
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_xlabel("spatial frequency k [1/Å]")
    axes[0].set_ylabel("CTF (RELION sign)")
    axes[0].legend(title="defocus", fontsize=8)
    axes[1].imshow(ctfs_2d[2].numpy(), cmap="gray", origin="lower")
    axes[1].set_title("2D CTF, 2.0 µm, 1 Å/px")
    axes[1].axis("off")
    save_figure(fig, out / "ctf_defocus_series.png")
    table = tuple(
        (f"defocus {df / 1e4:.1f} µm", ", ".join(f"{z:.1f} Å" for z in zs))
        for df, zs in zip(defoci.tolist(), zeros.tolist(), strict=True)
    )
    sections.append(
        Section(
            "3. The contrast transfer function, a defocus series",
            (
                "CTF(k) = sin χ(k) in RELION's sign convention (positive first lobe in "
                "underfocus), "
                "χ(k) = πλΔf k² − (π/2) C_s λ³ k⁴ + arctan(Q₀/√(1−Q₀²)), at 300 kV "
                "(λ = 0.0197 Å), C_s = 2.7 mm, Q₀ = 0.1. More defocus brings the first zero to "
                "lower resolution and packs the rings closer. The table lists the first three "
                "zeros.",
            ),
            table,
            (("ctf_defocus_series.png", "1D CTF for four defoci, and the 2D CTF at 2 µm."),),
        )
    )

    # 4. Thon rings -----------------------------------------------------------------------------
    n_images, df_thon = 64, 10000.0
    rotations = random_rotations(n_images, generator=generator).to(device)
    thon_params = CTFParams(
        defocus_u_angstrom=df_thon, defocus_v_angstrom=df_thon * 0.92, astigmatism_angle_deg=30.0
    )
    t0 = time.perf_counter()
    clean = project(volume, rotations, pixel_size_angstrom=pixel_size_angstrom, ctf=thon_params)
    noise_sd = 1.0 * clean.std().item()
    noisy = clean + noise_sd * torch.randn(clean.shape, generator=generator).to(device)
    power, _ = radial_power_spectrum(noisy, ndim=2, pixel_size_angstrom=pixel_size_angstrom)
    timings["64 CTF projections + spectra"] = time.perf_counter() - t0
    mean_power = power.mean(0).cpu()
    freqs = shell_frequencies(
        mean_power.shape[0], box_size=box, pixel_size_angstrom=pixel_size_angstrom
    )
    fine = torch.linspace(0, float(freqs[-1]), 600)
    ctf_sq = ctf_1d(thon_params, fine) ** 2
    spectrum_2d = (fft2_centered(noisy).abs() ** 2).mean(0).log().cpu()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), gridspec_kw={"width_ratios": [1, 1, 2]})
    axes[0].imshow(noisy[0].cpu().numpy(), cmap="gray", origin="lower")
    axes[0].set_title("one noisy image (SNR = 1)")
    axes[1].imshow(spectrum_2d.numpy(), cmap="gray", origin="lower")
    axes[1].set_title("mean power spectrum (log)")
    for ax in axes[:2]:
        ax.axis("off")
    axes[2].semilogy(freqs.numpy(), mean_power.numpy(), label="mean radial power")
    ax2 = axes[2].twinx()
    ax2.plot(fine.numpy(), ctf_sq.numpy(), color="C1", lw=0.8, label="CTF² (mean defocus)")
    axes[2].set_xlabel("k [1/Å]")
    axes[2].legend(loc="upper right", fontsize=8)
    ax2.legend(loc="center right", fontsize=8)
    save_figure(fig, out / "thon_rings.png")
    sections.append(
        Section(
            "4. Thon rings",
            (
                f"{n_images} projections at random orientations, each multiplied by an astigmatic "
                f"CTF ({df_thon:.0f}/{df_thon * 0.92:.0f} Å at 30°) on the image grid, plus white "
                "noise. Averaged over images, the power spectrum shows the CTF's rings — "
                "elliptical because of astigmatism — on top of the particle's own spectrum and "
                "the flat noise floor.",
            ),
            (),
            (("thon_rings.png", "An image, the mean 2D power spectrum and its radial profile."),),
        )
    )

    # 5. Blur and sharpen ------------------------------------------------------------------------
    bfactors = torch.tensor([-100.0, 0.0, 100.0, 400.0], device=device)
    t0 = time.perf_counter()
    filtered = apply_bfactor(
        volume.expand(4, -1, -1, -1),
        ndim=3,
        bfactor_a2=bfactors,
        pixel_size_angstrom=pixel_size_angstrom,
    )
    timings["B-factor filters, 4 maps"] = time.perf_counter() - t0
    write_mrc(
        out / "trpv1_map_blur_B400.mrc",
        filtered[3],
        pixel_size_angstrom=pixel_size_angstrom,
        overwrite=True,
    )
    write_mrc(
        out / "trpv1_map_sharpen_B-100.mrc",
        filtered[0],
        pixel_size_angstrom=pixel_size_angstrom,
        overwrite=True,
    )
    _tiles(
        filtered[:, :, centre],
        [f"B = {b:.0f} Å²" for b in bfactors.tolist()],
        out / "blur_sharpen.png",
    )
    sections.append(
        Section(
            "5. Blur and sharpen",
            (
                "Multiplying a map's transform by exp(−B k²/4) blurs it for B > 0 (like the "
                "envelope of the microscope and of image processing) and sharpens it for B < 0 "
                "(boosting high frequencies, and noise with them). Shown: central y slices.",
            ),
            (("files", "trpv1_map_blur_B400.mrc, trpv1_map_sharpen_B-100.mrc"),),
            (("blur_sharpen.png", "The same map at four B-factors."),),
        )
    )

    sections.append(
        Section(
            "Timings on this machine",
            (f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads.",),
            tuple((name, f"{seconds * 1000:.0f} ms") for name, seconds in timings.items()),
        )
    )
    report = out / "report.html"
    write_html_report(
        report,
        title="cryoglass demo",
        intro=(
            "Single-particle cryo-EM in a glass box. Conventions: RELION's (ZYZ Euler angles, "
            "origin at N//2, Å, CTF sign) — see docs/conventions.md. Run "
            "<code>cryoglass lessons --out lessons</code> for the math behind each figure."
        ),
        sections=sections,
    )
    return report
