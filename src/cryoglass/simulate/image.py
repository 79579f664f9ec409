r"""Image formation from a projected potential: weak-phase and full phase-object models.

Units: projected potential ``V_p = ∫ V dz`` [V Å]; phase ``σ_e V_p`` [rad]; intensities are
relative to the incident beam (vacuum = 1).

Conventions (and why the sign is what it is)
--------------------------------------------
*Specimen.*  A fast electron gains phase ``σ_e V_p`` in a positive potential (it speeds up).
Amplitude contrast (electrons scattered outside the objective aperture, and the small
genuinely absorptive part) is modelled as an imaginary potential proportional to the real
one, so the exit wave of a thin specimen is

.. math:: \psi(\mathbf r) = \exp\!\big[(i - \eta)\,\sigma_e V_p(\mathbf r)\big],
          \qquad \eta = \frac{Q_0}{\sqrt{1 - Q_0^2}}

with ``Q0`` the amplitude contrast of :class:`cryoglass.ctf.CTFParams`.

*Lens.*  The objective multiplies the wave's spectrum by ``exp(+iχ₀(k))`` where ``χ₀`` is
cryoglass's (RELION's) ``χ`` *without* the amplitude-contrast phase ``asin(Q0)``:
``χ₀ = πλΔf k² − ½πC_sλ³k⁴ + φ`` (``Δf > 0`` underfocus, ``φ`` a phase plate).
This is Kirkland's ``exp(−iχ_K)`` with ``χ_K = −χ₀``: underfocus means the image is conjugate
to a plane ``Δf`` *upstream* of the exit surface, i.e. the exit wave back-propagated by ``Δf``,
and the Fresnel propagator over ``Δz`` is ``exp(−iπλΔz k²)``.

*Weak-phase image.*  Expanding ``ψ ≈ 1 + (i − η)σ_eV_p`` and keeping first order,

.. math:: I(\mathbf r) = 1 - \frac{2}{\sqrt{1-Q_0^2}}\,
          \mathcal F^{-1}\!\big[\mathrm{CTF}(\mathbf k)\,\mathcal F[\sigma_e V_p]\big],
          \qquad \mathrm{CTF} = \sin(\chi_0 + \arcsin Q_0)

(since ``sin χ₀ + η cos χ₀ = sin(χ₀ + asin Q0)/√(1−Q0²)``), with the CTF exactly as
:func:`cryoglass.ctf.ctf_2d` defines it.  Underfocused protein is therefore *dark* in ``I``,
as on the microscope.  RELION's particle images are contrast-inverted (protein white) and
modelled as ``CTF · projection``; :func:`weak_phase_contrast` returns that quantity,
``F⁻¹[CTF · F[σ_e V_p]] = (1 − I)·√(1−Q0²)/2``, which equals
``cryoglass.ctf.multiply_ctf(σ_e V_p, ...)`` and is what a simulated RELION dataset stores.

*Envelopes* (:func:`spatial_coherence_envelope`, :func:`temporal_coherence_envelope`) multiply
the wave transfer; with the unscattered beam at ``k = 0`` (where they are 1) this multiplies the
linear (weak-phase) transfer by the same factor.  For the non-linear ``|scattered|²`` term this
is the usual quasi-coherent approximation, not a full transmission cross-coefficient.

Fourier grids here are full (not rfft) and in plain FFT order (DC at index 0), matching
``torch.fft.fft2`` of an image whose origin is anywhere (the transfer functions are real-space
shift-invariant filters).

References
----------
Kirkland, E. J. (2020). Advanced Computing in Electron Microscopy, 3rd ed., ch. 3, 5, 6.
https://doi.org/10.1007/978-3-030-33260-0

Vulović, M. et al. (2013). Image formation modeling in cryo-electron microscopy.
J. Struct. Biol. 183, 19-32. https://doi.org/10.1016/j.jsb.2013.05.008

Frank, J. (1973). The envelope of electron microscopic transfer functions for partially coherent
illumination. Optik 38, 519-536.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from cryoglass.constants import ELECTRON_REST_ENERGY_EV, HC_EV_ANGSTROM
from cryoglass.ctf import CTFParams, aberration_phase, ctf_2d, electron_wavelength_angstrom

__all__ = [
    "interaction_constant_rad_per_volt_angstrom",
    "fft_frequencies",
    "wave_aberration_phase",
    "spatial_coherence_envelope",
    "temporal_coherence_envelope",
    "focal_spread_angstrom",
    "exit_wave",
    "image_from_exit_wave",
    "phase_object_image",
    "weak_phase_contrast",
    "weak_phase_image",
]


def interaction_constant_rad_per_volt_angstrom(
    voltage_kv: float | torch.Tensor,
) -> float | torch.Tensor:
    r"""Interaction constant ``σ_e`` [rad / (V Å)] that turns projected potential into phase.

    Parameters
    ----------
    voltage_kv : float or Tensor
        Acceleration voltage [kV].

    Returns
    -------
    float or Tensor
        ``σ_e`` (≈ 0.000653 at 300 kV, 0.000729 at 200 kV, 0.000924 at 100 kV).

    Notes
    -----
    .. math:: \sigma_e = \frac{2\pi m e \lambda}{h^2}
                       = \frac{2\pi}{\lambda V}\,\frac{m_0c^2 + eV}{2m_0c^2 + eV},
              \qquad m = \gamma m_0 = m_0\,(1 + eV/m_0c^2)

    using ``λ = hc / sqrt(eV(2m₀c² + eV))``.  Kirkland (2020) quotes 0.00065 rad/(V Å) at 300 kV.

    References
    ----------
    Kirkland (2020), eq. 5.6, https://doi.org/10.1007/978-3-030-33260-0

    Examples
    --------
    >>> round(interaction_constant_rad_per_volt_angstrom(300.0), 7)
    0.0006526
    """
    energy_ev = voltage_kv * 1e3
    rest = ELECTRON_REST_ENERGY_EV
    product = energy_ev * (2.0 * rest + energy_ev)
    wavelength = HC_EV_ANGSTROM / (product**0.5)
    return 2 * math.pi / (wavelength * energy_ev) * (rest + energy_ev) / (2 * rest + energy_ev)


def fft_frequencies(
    image_size: int | tuple[int, int],
    *,
    pixel_size_angstrom: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Frequency vectors ``(k_x, k_y)`` [1/Å] of a full 2D FFT grid in plain FFT order.

    Returns
    -------
    Tensor, shape (h, w, 2)
        Even sizes put the Nyquist frequency at ``−1/(2·pixel)`` (as ``torch.fft.fftfreq``).
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    ky = torch.fft.fftfreq(h, d=pixel_size_angstrom, device=device, dtype=dtype)
    kx = torch.fft.fftfreq(w, d=pixel_size_angstrom, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ky, kx, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def _params_dtype(ctf: CTFParams, fallback: torch.dtype) -> tuple[torch.device, torch.dtype]:
    for value in vars(ctf).values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.device, value.dtype
    return torch.device("cpu"), fallback


def wave_aberration_phase(
    ctf: CTFParams,
    *,
    image_size: int | tuple[int, int],
    pixel_size_angstrom: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The lens phase ``χ₀(k)`` [rad] on a full FFT-ordered grid (no amplitude-contrast term).

    Parameters
    ----------
    ctf : CTFParams
        Batch shape ``batch``; ``amplitude_contrast`` is ignored here (it enters the exit wave).
    image_size : int or (h, w)
    pixel_size_angstrom : float
    device, dtype : optional
        Default: those of the tensors in ``ctf`` (else CPU float64).

    Returns
    -------
    Tensor, shape (*batch, h, w)
        ``χ₀ = πλΔf(α)k² − ½πC_sλ³k⁴ + φ``; the lens multiplies the wave by ``exp(+iχ₀)``.
    """
    default_device, default_dtype = _params_dtype(ctf, torch.float64)
    device = device or default_device
    dtype = dtype or default_dtype
    k = fft_frequencies(
        image_size, pixel_size_angstrom=pixel_size_angstrom, device=device, dtype=dtype
    )
    no_q0 = replace(ctf, amplitude_contrast=0.0)
    return aberration_phase(no_q0, k, device=device, dtype=dtype)


def _defocus_gradient_norm(ctf: CTFParams, k: torch.Tensor) -> torch.Tensor:
    """``|∇_k χ₀| / 2π`` [Å] = ``|λ D k − C_s λ³ |k|² k|`` with the astigmatic defocus matrix D."""
    p = ctf.as_tensors(device=k.device, dtype=k.dtype)
    lam = electron_wavelength_angstrom(p.voltage_kv)
    mean = 0.5 * (p.defocus_u_angstrom + p.defocus_v_angstrom)
    half = 0.5 * (p.defocus_u_angstrom - p.defocus_v_angstrom)
    two = 2.0 * torch.deg2rad(p.astigmatism_angle_deg)
    batch = torch.broadcast_shapes(
        p.defocus_u_angstrom.shape,
        p.defocus_v_angstrom.shape,
        p.astigmatism_angle_deg.shape,
        p.voltage_kv.shape,
        p.cs_mm.shape,
    )
    extra = (1,) * (k.ndim - 1)

    def field(x: torch.Tensor) -> torch.Tensor:
        return x.expand(batch).reshape(*batch, *extra)

    kx, ky = k[..., 0], k[..., 1]
    k2 = kx * kx + ky * ky
    c, s = field(half * torch.cos(two)), field(half * torch.sin(two))
    dx = field(mean) * kx + c * kx + s * ky
    dy = field(mean) * ky + s * kx - c * ky
    cs = field(p.cs_mm * 1e7 * lam**3)
    gx = field(lam) * dx - cs * k2 * kx
    gy = field(lam) * dy - cs * k2 * ky
    return torch.sqrt(gx * gx + gy * gy)


def spatial_coherence_envelope(
    ctf: CTFParams,
    *,
    illumination_semiangle_mrad: float,
    image_size: int | tuple[int, int],
    pixel_size_angstrom: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Partial spatial coherence envelope (Frank 1973) on a full FFT-ordered grid.

    Parameters
    ----------
    ctf : CTFParams
        Defocus, astigmatism, Cs and voltage are used; batch shape ``batch``.
    illumination_semiangle_mrad : float
        Illumination (source) semi-angle ``α_s`` [mrad] (typically 0.005–0.05 for a FEG).
    image_size, pixel_size_angstrom, device, dtype
        As :func:`wave_aberration_phase`.

    Returns
    -------
    Tensor, shape (*batch, h, w)
        Values in (0, 1].

    Notes
    -----
    For a Gaussian distribution of incidence angles with 1/e semi-angle ``α_s``

    .. math:: E_s(\mathbf k) = \exp\!\Big[-\Big(\frac{\alpha_s}{2\lambda}\Big)^2
                                |\nabla_{\mathbf k}\chi_0|^2\Big]
              = \exp\!\Big[-\Big(\frac{\pi\alpha_s}{\lambda}\Big)^2
                (\lambda\Delta f k - C_s\lambda^3 k^3)^2\Big]

    (the second form without astigmatism; the code uses the full gradient).  It vanishes
    where ``χ₀`` is stationary, e.g. at ``k = 0`` (value 1).

    References
    ----------
    Frank, J. (1973). Optik 38, 519-536.  Kirkland (2020), eq. 3.72,
    https://doi.org/10.1007/978-3-030-33260-0
    """
    default_device, default_dtype = _params_dtype(ctf, torch.float64)
    device = device or default_device
    dtype = dtype or default_dtype
    k = fft_frequencies(
        image_size, pixel_size_angstrom=pixel_size_angstrom, device=device, dtype=dtype
    )
    lam = electron_wavelength_angstrom(torch.as_tensor(ctf.voltage_kv, device=device, dtype=dtype))
    alpha = illumination_semiangle_mrad * 1e-3
    gradient = _defocus_gradient_norm(ctf, k)  # |∇χ|/2π
    lam = lam.reshape(*lam.shape, *((1,) * 2)) if lam.ndim else lam
    return torch.exp(-((math.pi * alpha / lam) ** 2) * gradient**2)


def focal_spread_angstrom(
    *,
    cc_mm: float,
    energy_spread_ev: float,
    voltage_kv: float,
    voltage_stability: float = 0.0,
    lens_current_stability: float = 0.0,
) -> float:
    r"""Standard deviation of defocus ``Δ`` [Å] from chromatic aberration and instabilities.

    Parameters
    ----------
    cc_mm : float
        Chromatic aberration coefficient [mm] (≈ 2.7 mm on a Krios).
    energy_spread_ev : float
        Standard deviation of the beam energy [eV] (≈ 0.3 eV for a cold FEG, 0.7 for a
        Schottky FEG; these are FWHM-ish numbers, divide by 2.355 for a Gaussian σ).
    voltage_kv : float
    voltage_stability, lens_current_stability : float
        Relative standard deviations ``ΔV/V`` and ``ΔI/I``.

    Notes
    -----
    .. math:: \Delta = C_c \sqrt{(\Delta E / eV)^2 + (\Delta V/V)^2 + (2\Delta I/I)^2}

    (Kirkland 2020, eq. 3.78, non-relativistic form.)
    """
    relative = math.sqrt(
        (energy_spread_ev / (voltage_kv * 1e3)) ** 2
        + voltage_stability**2
        + (2 * lens_current_stability) ** 2
    )
    return cc_mm * 1e7 * relative


def temporal_coherence_envelope(
    *,
    voltage_kv: float,
    focal_spread_angstrom: float,
    image_size: int | tuple[int, int],
    pixel_size_angstrom: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Partial temporal coherence envelope on a full FFT-ordered grid, shape (h, w).

    Notes
    -----
    A Gaussian spread of defocus with standard deviation ``Δ`` [Å] (:func:`focal_spread_angstrom`)
    averages ``exp(iπλΔf k²)`` into

    .. math:: E_t(k) = \exp\!\big[-\tfrac12 (\pi\lambda\Delta k^2)^2\big].

    References
    ----------
    Kirkland (2020), eq. 3.77, https://doi.org/10.1007/978-3-030-33260-0
    """
    k = fft_frequencies(
        image_size, pixel_size_angstrom=pixel_size_angstrom, device=device, dtype=dtype
    )
    k2 = (k * k).sum(dim=-1)
    lam = electron_wavelength_angstrom(voltage_kv)
    return torch.exp(-0.5 * (math.pi * lam * focal_spread_angstrom * k2) ** 2)


def _eta(amplitude_contrast: float | torch.Tensor) -> float | torch.Tensor:
    """η = Q0 / sqrt(1 − Q0²): imaginary-to-real potential ratio giving amplitude contrast Q0."""
    q0 = amplitude_contrast
    if isinstance(q0, torch.Tensor):
        if bool(((q0 < 0) | (q0 >= 1)).any()):
            raise ValueError("amplitude_contrast must satisfy 0 <= Q0 < 1")
        return q0 / torch.sqrt(1 - q0 * q0)
    if not 0.0 <= q0 < 1.0:
        raise ValueError(f"amplitude_contrast must satisfy 0 <= Q0 < 1, got {q0}")
    return q0 / math.sqrt(1 - q0 * q0)


def exit_wave(
    projected_potential_volt_angstrom: torch.Tensor,
    *,
    voltage_kv: float,
    amplitude_contrast: float = 0.0,
) -> torch.Tensor:
    r"""Exit wave of a thin (projection-approximation) specimen.

    Parameters
    ----------
    projected_potential_volt_angstrom : Tensor, shape (..., h, w)
        ``V_p = ∫ V dz`` [V Å].
    voltage_kv : float
    amplitude_contrast : float
        ``Q0`` in [0, 1) (module docstring).

    Returns
    -------
    Tensor, shape (..., h, w), complex
        ``ψ = exp[(i − η) σ_e V_p]``, ``η = Q0/√(1−Q0²)``; ``|ψ| = 1`` when ``Q0 = 0``.
    """
    phase = (
        interaction_constant_rad_per_volt_angstrom(voltage_kv) * projected_potential_volt_angstrom
    )
    eta = _eta(amplitude_contrast)
    return torch.exp(torch.complex(-eta * phase, phase))


def _lens_transfer(
    ctf: CTFParams,
    image_size: tuple[int, int],
    pixel_size_angstrom: float,
    envelope: torch.Tensor | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``E · exp(+iχ₀)`` (*batch, h, w) complex, FFT order."""
    chi = wave_aberration_phase(
        ctf,
        image_size=image_size,
        pixel_size_angstrom=pixel_size_angstrom,
        device=device,
        dtype=dtype,
    )
    transfer = torch.polar(torch.ones_like(chi), chi)
    if envelope is not None:
        transfer = transfer * envelope.to(device=device, dtype=dtype)
    return transfer


def image_from_exit_wave(
    wave: torch.Tensor,
    ctf: CTFParams,
    *,
    pixel_size_angstrom: float,
    envelope: torch.Tensor | None = None,
) -> torch.Tensor:
    """Intensity ``|F⁻¹[E · exp(iχ₀) · F[ψ]]|²`` of an exit wave through the objective lens.

    Parameters
    ----------
    wave : Tensor, shape (..., h, w), complex
        Exit wave (vacuum = 1).
    ctf : CTFParams
        Lens parameters, broadcasting against the leading shape of ``wave``;
        ``amplitude_contrast`` is ignored (it belongs to the exit wave).
    pixel_size_angstrom : float
    envelope : Tensor, broadcastable to (..., h, w), optional
        Real envelope on the full FFT-ordered grid (coherence, aperture, MTF of the wave).

    Returns
    -------
    Tensor, shape (..., h, w), real
        Image intensity (vacuum = 1, no noise, no detector).
    """
    real_dtype = wave.real.dtype
    transfer = _lens_transfer(
        ctf, tuple(wave.shape[-2:]), pixel_size_angstrom, envelope, wave.device, real_dtype
    )
    image_wave = torch.fft.ifft2(torch.fft.fft2(wave) * transfer)
    return image_wave.real**2 + image_wave.imag**2


def phase_object_image(
    projected_potential_volt_angstrom: torch.Tensor,
    ctf: CTFParams,
    *,
    pixel_size_angstrom: float,
    envelope: torch.Tensor | None = None,
) -> torch.Tensor:
    """Image of the full phase object ``exp[(i−η)σ_e V_p]`` (no weak-phase expansion).

    Parameters
    ----------
    projected_potential_volt_angstrom : Tensor, shape (..., h, w)
        [V Å].
    ctf : CTFParams
        Voltage, defocus, Cs, phase shift and amplitude contrast ``Q0``; scalar fields
        (a batched voltage or Q0 is not supported here).
    pixel_size_angstrom : float
    envelope : Tensor, optional
        As :func:`image_from_exit_wave`.

    Returns
    -------
    Tensor, shape (..., h, w)
        Intensity (vacuum = 1).  To first order in ``σ_e V_p`` equals :func:`weak_phase_image`.
    """
    wave = exit_wave(
        projected_potential_volt_angstrom,
        voltage_kv=float(ctf.voltage_kv),
        amplitude_contrast=float(ctf.amplitude_contrast),
    )
    return image_from_exit_wave(
        wave, ctf, pixel_size_angstrom=pixel_size_angstrom, envelope=envelope
    )


def weak_phase_contrast(
    projected_potential_volt_angstrom: torch.Tensor,
    ctf: CTFParams,
    *,
    pixel_size_angstrom: float,
    envelope: torch.Tensor | None = None,
) -> torch.Tensor:
    """RELION-sign weak-phase image ``F⁻¹[CTF · E · F[σ_e V_p]]`` (protein white, dimensionless).

    Parameters
    ----------
    projected_potential_volt_angstrom : Tensor, shape (..., h, w)
        [V Å].
    ctf : CTFParams
        Broadcasts against the leading shape; the CTF is :func:`cryoglass.ctf.ctf_2d`'s
        (``sin(χ₀ + asin Q0)`` times its B-factor envelope and scale).
    pixel_size_angstrom : float
    envelope : Tensor, broadcastable to (..., h, w), optional
        Extra real envelope on the full FFT-ordered grid (coherence, detector).

    Returns
    -------
    Tensor, shape (..., h, w)
        Equals ``multiply_ctf(σ_e V_p, ctf, ...)`` and ``(1 − weak_phase_image)·√(1−Q0²)/2``.
        This is what RELION's forward model (``CTF × projection``) expects in a particle stack.
    """
    x = projected_potential_volt_angstrom
    voltage = torch.as_tensor(ctf.voltage_kv, device=x.device, dtype=x.dtype)
    sigma = interaction_constant_rad_per_volt_angstrom(voltage)
    sigma = sigma.reshape(*sigma.shape, 1, 1) if sigma.ndim else sigma
    h, w = x.shape[-2:]
    transfer = ctf_2d(
        ctf,
        image_size=(h, w),
        pixel_size_angstrom=pixel_size_angstrom,
        rfft=True,
        centered=False,
        device=x.device,
        dtype=x.dtype,
    )
    if envelope is not None:
        transfer = transfer * envelope.to(device=x.device, dtype=x.dtype)[..., : w // 2 + 1]
    return torch.fft.irfft2(torch.fft.rfft2(x) * transfer, s=(h, w)) * sigma


def weak_phase_image(
    projected_potential_volt_angstrom: torch.Tensor,
    ctf: CTFParams,
    *,
    pixel_size_angstrom: float,
    envelope: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weak-phase intensity ``I = 1 − 2·c/√(1−Q0²)`` with ``c`` = :func:`weak_phase_contrast`.

    Parameters and shapes as :func:`weak_phase_contrast`; the result is the first-order
    expansion of :func:`phase_object_image` (vacuum = 1, underfocused protein dark).
    """
    contrast = weak_phase_contrast(
        projected_potential_volt_angstrom,
        ctf,
        pixel_size_angstrom=pixel_size_angstrom,
        envelope=envelope,
    )
    q0 = torch.as_tensor(ctf.amplitude_contrast, device=contrast.device, dtype=contrast.dtype)
    q0 = q0.reshape(*q0.shape, 1, 1) if q0.ndim else q0
    return 1.0 - 2.0 * contrast / torch.sqrt(1 - q0 * q0)
