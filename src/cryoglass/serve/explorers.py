"""Teaching explorers: PNG figures computed on request from slider values.

* CTF explorer — :func:`ctf_profile_png` (1D CTF along the defocus-u and -v axes with the
  envelope) and :func:`ctf_image_png` (the 2D CTF), from :mod:`cryoglass.ctf`.
* Blur/sharpen explorer — :func:`blur_png`: low-pass and B-factor (exp(−B k²/4)) applied to
  the bundled TRPV1 map (:func:`cryoglass.data.model_map`, 64³ at 2 Å), a slice or projection
  before and after, and the radially averaged power spectra.
* Fourier-slice explorer — :func:`fourier_slice_png`: for Euler angles (rot, tilt, psi) the
  central slice |F| of the map's transform (:func:`cryoglass.projection.extract_slices`) and
  the projection (:func:`cryoglass.projection.project`).

Figures use matplotlib's object API (no pyplot), so requests may render in parallel threads.
"""

from __future__ import annotations

import functools
import io
import threading

import torch

#: The bundled map of the blur and Fourier-slice explorers.
MAP_BOX, MAP_PIXEL_ANGSTROM, MAP_SIGMA_ANGSTROM = 64, 2.0, 2.0
_lock = threading.Lock()


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


@functools.cache
def _bundled_map_cached() -> torch.Tensor:
    from cryoglass.data import model_map

    volume, _, _ = model_map(
        box=MAP_BOX, pixel_size_angstrom=MAP_PIXEL_ANGSTROM, sigma_angstrom=MAP_SIGMA_ANGSTROM
    )
    return volume / volume.std()


def bundled_map() -> torch.Tensor:
    """The TRPV1 sum-of-Gaussians map (64³, 2 Å, unit standard deviation), made once."""
    with _lock:
        return _bundled_map_cached()


@functools.cache
def _prepared_map():
    from cryoglass.projection import prepare_volume_fourier

    return prepare_volume_fourier(bundled_map())


# ----------------------------------------------------------------------------- CTF


def ctf_params(
    *,
    defocus_angstrom: float,
    astigmatism_angstrom: float,
    astigmatism_angle_deg: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    phase_shift_deg: float,
    bfactor_a2: float,
):
    """CTFParams with Δu = mean + astigmatism/2 and Δv = mean − astigmatism/2."""
    from cryoglass.ctf import CTFParams

    return CTFParams(
        defocus_u_angstrom=defocus_angstrom + 0.5 * astigmatism_angstrom,
        defocus_v_angstrom=defocus_angstrom - 0.5 * astigmatism_angstrom,
        astigmatism_angle_deg=astigmatism_angle_deg,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_shift_deg=phase_shift_deg,
        bfactor_a2=bfactor_a2,
    )


def ctf_profile_png(params, *, pixel_size_angstrom: float) -> bytes:
    """1D CTF from k = 0 to Nyquist along the u and v axes, with the B envelope."""
    from cryoglass.ctf import ctf_1d, electron_wavelength_angstrom

    k = torch.linspace(0.0, 0.5 / pixel_size_angstrom, 800, dtype=torch.float64)
    angle = float(params.astigmatism_angle_deg)
    along_u = ctf_1d(params, k, azimuth_deg=angle)
    along_v = ctf_1d(params, k, azimuth_deg=angle + 90.0)
    envelope = torch.exp(-float(params.bfactor_a2) * k**2 / 4.0)
    fig = _figure(7.0, 3.4)
    ax = fig.add_subplot()
    ax.plot(k, along_u, lw=1.2, label=f"along u (Δu = {params.defocus_u_angstrom:.0f} Å)")
    if params.defocus_u_angstrom != params.defocus_v_angstrom:
        ax.plot(k, along_v, lw=1.0, label=f"along v (Δv = {params.defocus_v_angstrom:.0f} Å)")
    if params.bfactor_a2 != 0:
        ax.plot(k, envelope, "k--", lw=0.8, label="envelope exp(−Bk²/4)")
        ax.plot(k, -envelope, "k--", lw=0.8)
    ax.axhline(0.0, color="0.7", lw=0.5)
    wavelength = electron_wavelength_angstrom(float(params.voltage_kv))
    ax.set(
        xlabel="spatial frequency k [1/Å]",
        ylabel="CTF",
        xlim=(0, float(k[-1])),
        ylim=(-1.05, 1.05),
        title=f"λ = {wavelength:.4f} Å; pixel {pixel_size_angstrom:g} Å (Nyquist at right)",
    )
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return _png(fig)


def ctf_image_png(params, *, pixel_size_angstrom: float, image_size: int = 256) -> bytes:
    """The 2D CTF on a full centred Fourier grid (DC in the middle)."""
    from cryoglass.ctf import ctf_2d

    image = ctf_2d(
        params,
        image_size=image_size,
        pixel_size_angstrom=pixel_size_angstrom,
        rfft=False,
        dtype=torch.float64,
    )
    nyquist = 0.5 / pixel_size_angstrom
    fig = _figure(3.6, 3.4)
    ax = fig.add_subplot()
    shown = ax.imshow(
        image.numpy(),
        cmap="gray",
        vmin=-1,
        vmax=1,
        origin="lower",
        extent=(-nyquist, nyquist, -nyquist, nyquist),
    )
    fig.colorbar(shown, ax=ax, shrink=0.8)
    ax.set(xlabel="kx [1/Å]", ylabel="ky [1/Å]", title="2D CTF")
    return _png(fig)


# ----------------------------------------------------------------------------- blur/sharpen


def blur_png(
    *, lowpass_angstrom: float, bfactor_a2: float, axis: str, index: int, view: str
) -> bytes:
    """The bundled map before/after a low-pass and a B-factor, and their power spectra.

    ``lowpass_angstrom`` 0 means no low-pass; ``view`` is ``"slice"`` (plane ``index`` across
    ``axis`` ∈ z, y, x) or ``"projection"`` (sum along ``axis``).
    """
    from cryoglass.fourier import apply_bfactor, lowpass, radial_power_spectrum

    volume = bundled_map()
    filtered = apply_bfactor(
        volume, ndim=3, bfactor_a2=bfactor_a2, pixel_size_angstrom=MAP_PIXEL_ANGSTROM
    )
    if lowpass_angstrom > 0:
        filtered = lowpass(
            filtered,
            ndim=3,
            resolution_angstrom=lowpass_angstrom,
            pixel_size_angstrom=MAP_PIXEL_ANGSTROM,
        )
    dim = "zyx".index(axis)

    def view_of(v: torch.Tensor) -> torch.Tensor:
        return v.select(dim, index) if view == "slice" else v.sum(dim)

    fig = _figure(10.5, 3.4)
    axes = fig.subplots(1, 3)
    for ax, v, title in (
        (axes[0], volume, "bundled map"),
        (axes[1], filtered, f"low-pass {lowpass_angstrom:g} Å, B = {bfactor_a2:g} Å²"),
    ):
        ax.imshow(view_of(v).numpy(), cmap="gray", origin="lower")
        ax.set(title=title, xticks=[], yticks=[])
    what = f"slice {axis} = {index}" if view == "slice" else f"projection along {axis}"
    axes[0].set_xlabel(what)
    for v, label in ((volume, "before"), (filtered, "after")):
        power, k = radial_power_spectrum(v, ndim=3, pixel_size_angstrom=MAP_PIXEL_ANGSTROM)
        keep = power > 0
        axes[2].semilogy(k[keep][1:], power[keep][1:], label=label)
    axes[2].set(xlabel="k [1/Å]", ylabel="radial power", title="power spectrum")
    axes[2].legend(fontsize=8)
    return _png(fig)


# ----------------------------------------------------------------------------- Fourier slice


def _full_plane(half: torch.Tensor) -> torch.Tensor:
    """Centred rfft half plane (N, N//2+1) → full centred plane (N, N) by Friedel symmetry."""
    n = half.shape[-2]
    # row r holds ky = r - n//2; row of -ky: n - r (mod n) for even n, n - 1 - r for odd n
    mirrored = torch.roll(torch.flip(half, dims=[-2]), shifts=1 - n % 2, dims=-2).conj()
    left = torch.flip(mirrored[..., 1 : n // 2 + 1], dims=[-1])
    return torch.cat([left, half[..., : n - n // 2]], dim=-1)


def fourier_slice_png(*, rot_deg: float, tilt_deg: float, psi_deg: float) -> bytes:
    """Central slice log|F| and projection of the bundled map at Euler angles (RELION ZYZ)."""
    from cryoglass.geometry import euler_to_matrix
    from cryoglass.projection import extract_slices, project

    euler = torch.tensor([[rot_deg, tilt_deg, psi_deg]], dtype=torch.float32)
    rotation = euler_to_matrix(euler)
    central = _full_plane(extract_slices(_prepared_map(), rotation)[0])
    image = project(bundled_map(), euler_deg=euler, pixel_size_angstrom=MAP_PIXEL_ANGSTROM)[0]
    direction = rotation[0, 2].tolist()  # viewing direction d = Aᵀ e_z = third row of A
    nyquist = 0.5 / MAP_PIXEL_ANGSTROM
    fig = _figure(8.0, 3.8)
    left, right = fig.subplots(1, 2)
    left.imshow(
        torch.log1p(central.abs()).numpy(),
        cmap="magma",
        origin="lower",
        extent=(-nyquist, nyquist, -nyquist, nyquist),
    )
    left.set(xlabel="kx [1/Å]", ylabel="ky [1/Å]", title="central slice log(1 + |F|)")
    right.imshow(image.numpy(), cmap="gray", origin="lower")
    right.set(
        xticks=[],
        yticks=[],
        title="projection",
        xlabel="view direction ({:.2f}, {:.2f}, {:.2f})".format(*direction),
    )
    return _png(fig)
