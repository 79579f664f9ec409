r"""Multislice wave propagation through a 3D potential, and its comparison to projection.

The specimen's potential ``V[z, y, x]`` [V] is cut along the beam into slices of thickness
``Δz`` (a whole number of voxels).  Electrons travel towards **+z** (slice 0, the lowest z,
first).  Each slice acts as a thin phase object at its centre plane and the wave propagates
through vacuum between centres:

.. math:: t_j(\mathbf r) = \exp\big[(i - \eta)\,\sigma_e V_j(\mathbf r)\big], \quad
          V_j = \int_{\text{slice } j} V\,dz \;[\text{V Å}], \qquad
          \psi_{j+1} = \mathcal F^{-1}\big[P_{\delta_j}(\mathbf k)\,
          \mathcal F[t_j\,\psi_j]\big], \quad
          P_{\delta}(\mathbf k) = e^{-i\pi\lambda\delta k^2}

(Fresnel propagator, Kirkland 2020 eq. 6.92; ``δ_j`` the distance between slice centres, and
half a slice after the last one, so the returned wave is at the exit surface; the incident
plane wave needs no propagation to the first centre).  ``η = Q0/√(1−Q0²)`` adds amplitude
contrast as in :mod:`cryoglass.simulate.image`.  The objective lens then applies ``exp(+iχ₀)``
with the defocus referred to the plane ``z = 0`` (voxel ``d//2``), the plane at which the
projection approximation places the whole specimen, so the two models are compared at the
same focus: the exit surface lies ``z_exit = (d − d//2 − ½)·pixel`` below it, and the exit wave
is imaged with defocus ``Δf + z_exit``.

Band limit: products ``t_j ψ_j`` create frequencies up to twice those present and would wrap
around the FFT grid; limiting the transmission and propagator to ``2/3`` of the Nyquist
frequency (``bandlimit=True``, default; Kirkland 2020 §6.8) prevents that aliasing, at the
cost of discarding frequencies above it (and hence of ``Σ|ψ|²``).  ``bandlimit=False`` keeps
the propagation exactly unitary (``Σ|ψ|²`` conserved when ``Q0 = 0``).

Not modelled: inelastic scattering and its energy loss (only the imaginary-potential
amplitude contrast), backscattering and the paraxial approximation's error at high angles,
solvent/ice beyond what the potential contains, radiation damage, beam-induced motion.

References
----------
Cowley, J. M. & Moodie, A. F. (1957). The scattering of electrons by atoms and crystals.
Acta Cryst. 10, 609-619. https://doi.org/10.1107/S0365110X57002194

Kirkland, E. J. (2020). Advanced Computing in Electron Microscopy, 3rd ed., ch. 6.
https://doi.org/10.1007/978-3-030-33260-0

Himes, B. & Grigorieff, N. (2021). Cryo-TEM simulations of amorphous radiation-sensitive samples
using multislice wave propagation. IUCrJ 8, 943-953. https://doi.org/10.1107/S2052252521008538
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from cryoglass.ctf import CTFParams, electron_wavelength_angstrom
from cryoglass.simulate.image import (
    exit_wave,
    fft_frequencies,
    image_from_exit_wave,
    interaction_constant_rad_per_volt_angstrom,
    phase_object_image,
    weak_phase_image,
)

__all__ = [
    "bandlimit_mask",
    "fresnel_propagator",
    "slice_potential",
    "multislice_exit_wave_from_slices",
    "multislice_exit_wave",
    "multislice_image",
    "stack_volume",
    "compare_to_projection",
    "thickness_voltage_table",
]


def bandlimit_mask(
    image_size: int | tuple[int, int],
    *,
    fraction: float = 2.0 / 3.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """1 where ``|k| ≤ fraction · k_Nyquist``, else 0, on a full FFT-ordered grid (h, w)."""
    k = fft_frequencies(image_size, pixel_size_angstrom=1.0, device=device, dtype=dtype)
    radius = torch.sqrt((k * k).sum(dim=-1))
    return (radius <= fraction * 0.5 + 1e-9).to(dtype)


def fresnel_propagator(
    *,
    image_size: int | tuple[int, int],
    pixel_size_angstrom: float,
    voltage_kv: float,
    distance_angstrom: float,
    bandlimit: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""Fresnel propagator ``exp(−iπλΔz k²)`` on a full FFT-ordered grid.

    Parameters
    ----------
    image_size : int or (h, w)
    pixel_size_angstrom : float
    voltage_kv : float
    distance_angstrom : float
        Propagation distance ``Δz`` [Å] (negative: back-propagation).
    bandlimit : bool
        Zero beyond 2/3 Nyquist (module docstring).
    device, dtype : optional
        ``dtype`` is the real dtype; the result is the matching complex dtype.

    Returns
    -------
    Tensor, shape (h, w), complex

    Notes
    -----
    .. math:: P(\mathbf k) = \exp(-i\pi\lambda\,\Delta z\,k^2)

    Propagating by ``Δz`` and imaging with defocus ``Δf`` equals imaging the unpropagated wave
    with defocus ``Δf − Δz`` (see :func:`cryoglass.simulate.image.wave_aberration_phase`).

    References
    ----------
    Kirkland (2020), eq. 6.92, https://doi.org/10.1007/978-3-030-33260-0
    """
    k = fft_frequencies(
        image_size, pixel_size_angstrom=pixel_size_angstrom, device=device, dtype=dtype
    )
    k2 = (k * k).sum(dim=-1)
    lam = electron_wavelength_angstrom(voltage_kv)
    phase = -math.pi * lam * distance_angstrom * k2
    magnitude = torch.ones_like(phase)
    if bandlimit:
        magnitude = bandlimit_mask(image_size, device=device, dtype=dtype)
    return torch.polar(magnitude, phase)


def _slice_bounds(depth: int, voxels_per_slice: int) -> list[tuple[int, int]]:
    return [(s, min(s + voxels_per_slice, depth)) for s in range(0, depth, voxels_per_slice)]


def _voxels_per_slice(slice_thickness_angstrom: float | None, pixel_size_angstrom: float) -> int:
    if slice_thickness_angstrom is None:
        return 1
    ratio = slice_thickness_angstrom / pixel_size_angstrom
    n = round(ratio)
    if n < 1 or abs(ratio - n) > 1e-6:
        raise ValueError(
            f"slice_thickness_angstrom ({slice_thickness_angstrom}) must be a positive whole "
            f"multiple of pixel_size_angstrom ({pixel_size_angstrom})"
        )
    return n


def slice_potential(
    volume_volt: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    slice_thickness_angstrom: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a potential map into slices along z and project each one.

    Parameters
    ----------
    volume_volt : Tensor, shape (..., d, h, w)
        Potential ``V`` [V].
    pixel_size_angstrom : float
    slice_thickness_angstrom : float, optional
        A whole multiple of the pixel size (default: one voxel per slice); the last slice is
        thinner when ``d`` is not a multiple.

    Returns
    -------
    slices : Tensor, shape (..., n, h, w)
        ``∫_slice V dz`` [V Å] (sum over the slice's voxels × pixel size).
    centers_angstrom : Tensor, shape (n,)
        z of each slice's centre [Å], voxel ``d//2`` at 0.
    """
    if volume_volt.ndim < 3:
        raise ValueError(
            f"volume_volt must have shape (..., d, h, w), got {tuple(volume_volt.shape)}"
        )
    depth = volume_volt.shape[-3]
    bounds = _slice_bounds(depth, _voxels_per_slice(slice_thickness_angstrom, pixel_size_angstrom))
    slices = (
        torch.stack([volume_volt[..., a:b, :, :].sum(dim=-3) for a, b in bounds], dim=-3)
        * pixel_size_angstrom
    )
    centers = torch.tensor(
        [(0.5 * (a + b - 1) - depth // 2) * pixel_size_angstrom for a, b in bounds],
        dtype=torch.float64,
    )
    return slices, centers


def multislice_exit_wave_from_slices(
    slices_volt_angstrom: torch.Tensor,
    centers_angstrom: torch.Tensor,
    *,
    exit_surface_angstrom: float,
    pixel_size_angstrom: float,
    voltage_kv: float,
    amplitude_contrast: float = 0.0,
    bandlimit: bool = True,
) -> torch.Tensor:
    """Multislice exit wave from already projected slices.

    Parameters
    ----------
    slices_volt_angstrom : Tensor, shape (..., n, h, w)
        Projected potential of each slice [V Å], in beam order (+z).
    centers_angstrom : Tensor, shape (n,)
        z of each slice's centre [Å], increasing.
    exit_surface_angstrom : float
        z of the exit surface [Å] (the wave is propagated there from the last centre).
    pixel_size_angstrom, voltage_kv : float
    amplitude_contrast : float
        ``Q0`` (imaginary potential ratio ``η = Q0/√(1−Q0²)``).
    bandlimit : bool
        2/3-Nyquist band limit (module docstring).

    Returns
    -------
    Tensor, shape (..., h, w), complex
        Exit wave (incident plane wave = 1).
    """
    n = slices_volt_angstrom.shape[-3]
    size = tuple(slices_volt_angstrom.shape[-2:])
    real = slices_volt_angstrom.dtype
    options = {
        "image_size": size,
        "pixel_size_angstrom": pixel_size_angstrom,
        "voltage_kv": voltage_kv,
        "bandlimit": bandlimit,
        "device": slices_volt_angstrom.device,
        "dtype": real,
    }
    z = [float(c) for c in centers_angstrom] + [float(exit_surface_angstrom)]
    propagators: dict[float, torch.Tensor] = {}
    wave = None
    for j in range(n):
        transmission = exit_wave(
            slices_volt_angstrom[..., j, :, :],
            voltage_kv=voltage_kv,
            amplitude_contrast=amplitude_contrast,
        )
        wave = transmission if wave is None else wave * transmission
        step = round(z[j + 1] - z[j], 9)
        if step not in propagators:
            propagators[step] = fresnel_propagator(distance_angstrom=step, **options)
        wave = torch.fft.ifft2(torch.fft.fft2(wave) * propagators[step])
    return wave


def multislice_exit_wave(
    volume_volt: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    voltage_kv: float,
    slice_thickness_angstrom: float | None = None,
    amplitude_contrast: float = 0.0,
    bandlimit: bool = True,
) -> torch.Tensor:
    """Exit wave of a 3D potential by the multislice method (beam along +z).

    Parameters
    ----------
    volume_volt : Tensor, shape (..., d, h, w)
        Potential [V] (rotate it to the pose first; leading dims are a batch).
    pixel_size_angstrom, voltage_kv : float
    slice_thickness_angstrom : float, optional
        Whole multiple of the pixel size (default: the pixel size).
    amplitude_contrast : float
    bandlimit : bool

    Returns
    -------
    Tensor, shape (..., h, w), complex
        Wave at the exit surface ``z = (d − d//2 − ½)·pixel``.
    """
    slices, centers = slice_potential(
        volume_volt,
        pixel_size_angstrom=pixel_size_angstrom,
        slice_thickness_angstrom=slice_thickness_angstrom,
    )
    return multislice_exit_wave_from_slices(
        slices,
        centers,
        exit_surface_angstrom=_exit_surface(volume_volt, pixel_size_angstrom),
        pixel_size_angstrom=pixel_size_angstrom,
        voltage_kv=voltage_kv,
        amplitude_contrast=amplitude_contrast,
        bandlimit=bandlimit,
    )


def _exit_surface(volume: torch.Tensor, pixel_size_angstrom: float) -> float:
    depth = volume.shape[-3]
    return (depth - depth // 2 - 0.5) * pixel_size_angstrom


def multislice_image(
    volume_volt: torch.Tensor,
    ctf: CTFParams,
    *,
    pixel_size_angstrom: float,
    slice_thickness_angstrom: float | None = None,
    bandlimit: bool = True,
    envelope: torch.Tensor | None = None,
) -> torch.Tensor:
    """Image intensity of a 3D potential: multislice, then the objective lens, then ``|ψ|²``.

    Parameters
    ----------
    volume_volt : Tensor, shape (..., d, h, w)
        Potential [V].
    ctf : CTFParams
        Scalar voltage and amplitude contrast; defocus referred to the plane ``z = 0``.
    pixel_size_angstrom : float
    slice_thickness_angstrom : float, optional
    bandlimit : bool
    envelope : Tensor, optional
        Real envelope on the full FFT grid, as :func:`cryoglass.simulate.image_from_exit_wave`.

    Returns
    -------
    Tensor, shape (..., h, w)
        Intensity (vacuum = 1); compare with :func:`cryoglass.simulate.phase_object_image` of
        ``volume.sum(-3)·pixel``.
    """
    wave = multislice_exit_wave(
        volume_volt,
        pixel_size_angstrom=pixel_size_angstrom,
        voltage_kv=float(ctf.voltage_kv),
        slice_thickness_angstrom=slice_thickness_angstrom,
        amplitude_contrast=float(ctf.amplitude_contrast),
        bandlimit=bandlimit,
    )
    z_exit = _exit_surface(volume_volt, pixel_size_angstrom)
    at_exit = replace(
        ctf,
        defocus_u_angstrom=ctf.defocus_u_angstrom + z_exit,
        defocus_v_angstrom=ctf.defocus_v_angstrom + z_exit,
    )
    return image_from_exit_wave(
        wave, at_exit, pixel_size_angstrom=pixel_size_angstrom, envelope=envelope
    )


def stack_volume(
    volume_volt: torch.Tensor,
    *,
    thickness_angstrom: float,
    pixel_size_angstrom: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A thick specimen: copies of a map stacked along z, each rolled laterally at random.

    Parameters
    ----------
    volume_volt : Tensor, shape (d, h, w)
    thickness_angstrom : float
        Target thickness; the stack is cut to ``round(thickness / pixel)`` voxels.
    pixel_size_angstrom : float
    generator : torch.Generator, optional
        Seeds the lateral (circular) rolls, so copies do not project on top of each other.

    Returns
    -------
    Tensor, shape (round(thickness / pixel), h, w)
    """
    depth = max(1, round(thickness_angstrom / pixel_size_angstrom))
    d, h, w = volume_volt.shape
    copies = []
    for _ in range(math.ceil(depth / d)):
        dy, dx = (int(torch.randint(0, n, (1,), generator=generator)) for n in (h, w))
        copies.append(torch.roll(volume_volt, shifts=(dy, dx), dims=(-2, -1)))
    return torch.cat(copies, dim=0)[:depth]


def _ncc(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))


def _highpass(x: torch.Tensor, pixel_size_angstrom: float, cutoff_inv_angstrom: float):
    k = fft_frequencies(
        tuple(x.shape[-2:]), pixel_size_angstrom=pixel_size_angstrom, device=x.device, dtype=x.dtype
    )
    mask = (torch.sqrt((k * k).sum(dim=-1)) >= cutoff_inv_angstrom).to(x.dtype)
    return torch.fft.ifft2(torch.fft.fft2(x) * mask).real


def compare_to_projection(
    volume_volt: torch.Tensor,
    ctf: CTFParams,
    *,
    pixel_size_angstrom: float,
    slice_thickness_angstrom: float | None = None,
    bandlimit: bool = True,
    high_resolution_angstrom: float = 4.0,
) -> dict[str, float]:
    """How far the projection and weak-phase approximations are from multislice.

    Parameters
    ----------
    volume_volt : Tensor, shape (d, h, w)
        Potential [V] of the specimen.
    ctf : CTFParams
        Scalar fields; defocus referred to ``z = 0``.
    pixel_size_angstrom : float
    slice_thickness_angstrom : float, optional
    bandlimit : bool
        Also applied (as an envelope) to the projection images, so all share one band.
    high_resolution_angstrom : float
        The ``*_high`` numbers use only frequencies beyond ``1 / high_resolution_angstrom``.

    Returns
    -------
    dict
        ``ncc_projection``, ``relative_error_projection``, ``ncc_projection_high``: multislice
        vs the phase-object image of the projected potential (the projection assumption);
        ``relative_error_weak_phase``: phase object vs its weak-phase expansion (the
        weak-phase assumption); ``max_phase_rad``: the largest ``σ_e ∫V dz``.  Relative errors
        are ``‖c_a − c_b‖ / ‖c_b‖`` on the contrast ``c = I − 1``.
    """
    size = tuple(volume_volt.shape[-2:])
    envelope = (
        bandlimit_mask(size, device=volume_volt.device, dtype=volume_volt.dtype)
        if (bandlimit)
        else None
    )
    multislice = (
        multislice_image(
            volume_volt,
            ctf,
            pixel_size_angstrom=pixel_size_angstrom,
            slice_thickness_angstrom=slice_thickness_angstrom,
            bandlimit=bandlimit,
        )
        - 1
    )
    projected = volume_volt.sum(dim=-3) * pixel_size_angstrom
    options = {"pixel_size_angstrom": pixel_size_angstrom, "envelope": envelope}
    phase_object = phase_object_image(projected, ctf, **options) - 1
    weak = weak_phase_image(projected, ctf, **options) - 1
    cutoff = 1.0 / high_resolution_angstrom

    def relative(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm() / b.norm())

    sigma = interaction_constant_rad_per_volt_angstrom(float(ctf.voltage_kv))
    return {
        "ncc_projection": _ncc(multislice, phase_object),
        "relative_error_projection": relative(multislice, phase_object),
        "ncc_projection_high": _ncc(
            _highpass(multislice, pixel_size_angstrom, cutoff),
            _highpass(phase_object, pixel_size_angstrom, cutoff),
        ),
        "relative_error_weak_phase": relative(weak, phase_object),
        "max_phase_rad": float(projected.max()) * sigma,
    }


def thickness_voltage_table(
    volume_volt: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    thicknesses_angstrom: list[float],
    voltages_kv: list[float],
    defocus_angstrom: float = 10000.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    slice_thickness_angstrom: float | None = None,
    high_resolution_angstrom: float = 4.0,
    generator: torch.Generator | None = None,
) -> list[dict[str, float]]:
    """Multislice vs projection approximation over specimen thickness and voltage.

    Parameters
    ----------
    volume_volt : Tensor, shape (d, h, w)
        A particle's potential [V]; thicker specimens are stacks of rolled copies
        (:func:`stack_volume`, one stack per thickness, shared by all voltages).
    pixel_size_angstrom : float
    thicknesses_angstrom, voltages_kv : list of float
    defocus_angstrom, cs_mm, amplitude_contrast : float
        Imaging conditions (no astigmatism).
    slice_thickness_angstrom, high_resolution_angstrom
        As :func:`compare_to_projection`.
    generator : torch.Generator, optional
        Seeds the stacking.

    Returns
    -------
    list of dict
        One row per (thickness, voltage): ``thickness_angstrom``, ``voltage_kv`` and the keys of
        :func:`compare_to_projection`.
    """
    rows = []
    for thickness in thicknesses_angstrom:
        specimen = stack_volume(
            volume_volt,
            thickness_angstrom=thickness,
            pixel_size_angstrom=pixel_size_angstrom,
            generator=generator,
        )
        for voltage in voltages_kv:
            ctf = CTFParams(
                defocus_u_angstrom=defocus_angstrom,
                defocus_v_angstrom=defocus_angstrom,
                voltage_kv=voltage,
                cs_mm=cs_mm,
                amplitude_contrast=amplitude_contrast,
            )
            numbers = compare_to_projection(
                specimen,
                ctf,
                pixel_size_angstrom=pixel_size_angstrom,
                slice_thickness_angstrom=slice_thickness_angstrom,
                high_resolution_angstrom=high_resolution_angstrom,
            )
            rows.append(
                {"thickness_angstrom": float(thickness), "voltage_kv": float(voltage), **numbers}
            )
    return rows
