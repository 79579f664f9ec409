r"""The contrast transfer function, with RELION 3.1's formula and sign.

One notation throughout (all lengths in Å, frequencies in 1/Å, angles in radians inside):

.. math::

    \Delta f(\alpha) &= \tfrac12\big[(\Delta_u + \Delta_v)
                        + (\Delta_u - \Delta_v)\cos 2(\alpha - \alpha_{ast})\big] \\
    \chi(\mathbf k) &= \pi \lambda \,\Delta f(\alpha)\, k^2
                       - \tfrac{\pi}{2} C_s \lambda^3 k^4 + \varphi + w,
                       \qquad w = \arctan\frac{Q_0}{\sqrt{1 - Q_0^2}} \\
    \mathrm{CTF}(\mathbf k) &= s \, \sin\chi(\mathbf k)\, e^{-B k^2 / 4}

with ``k = |k|``, ``α`` the angle of ``k`` from the x axis (counter-clockwise), defocus positive
for underfocus, ``φ`` the phase-plate shift, ``Q0`` the amplitude contrast, ``s`` the scale.
So ``CTF(0) = s·sin(φ + w) = Q0`` without a phase plate, and the first lobe is positive in
underfocus.  RELION writes the same function as ``-sin(K1·δf·k² + K2·k⁴ − K5 − K3)`` with
``δf = −Δf``; the agreement is pinned by ``tests/reference/test_relion_ctf.py``.

Speed: ``χ`` is linear in five per-particle coefficients on five fixed frequency maps
(``k²``, ``k_x² − k_y²``, ``2 k_x k_y``, ``k⁴``, ``1``), because
``k² cos 2(α − α_ast) = (k_x² − k_y²) cos 2α_ast + 2 k_x k_y sin 2α_ast``.  A batch of CTFs is
therefore one matrix product ``(B, 5) @ (5, pixels)`` followed by ``sin``; the frequency maps are
computed once per call, never per particle.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from cryoglass.constants import ELECTRON_REST_ENERGY_EV, HC_EV_ANGSTROM
from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.grids import frequency_axis

__all__ = [
    "electron_wavelength_angstrom",
    "amplitude_contrast_phase",
    "aberration_phase",
    "ctf_1d",
    "ctf_2d",
    "ctf_at_frequencies",
    "ctf_zeros_inv_angstrom",
    "ctf_zeros_angstrom",
]

_REFERENCES = """
    References
    ----------
    Scheres, S. H. W. (2012). RELION: implementation of a Bayesian approach to cryo-EM structure
    determination. J. Struct. Biol. 180, 519-530. https://doi.org/10.1016/j.jsb.2012.09.006
"""


def electron_wavelength_angstrom(voltage_kv: float | torch.Tensor) -> float | torch.Tensor:
    r"""Relativistic electron wavelength [Å] at an acceleration voltage [kV].

    Parameters
    ----------
    voltage_kv : float or Tensor, any shape
        Acceleration voltage [kV].

    Returns
    -------
    float or Tensor (same shape)
        Wavelength λ [Å] (≈ 0.019687 Å at 300 kV, 0.025079 Å at 200 kV).

    Notes
    -----
    .. math:: \lambda = \frac{h}{\sqrt{2 m_0 e V \,(1 + \frac{eV}{2 m_0 c^2})}}
                      = \frac{hc}{\sqrt{E\,(2 m_0 c^2 + E)}}, \qquad E = eV \text{ [eV]}.

    RELION writes the same with rounded constants, ``12.2643247 / sqrt(V (1 + 0.978466e-6 V))``
    (V in volts); the two agree to better than 1e-6 relative.

    Examples
    --------
    >>> round(electron_wavelength_angstrom(300.0), 6)
    0.019687
    """
    energy_ev = voltage_kv * 1e3
    product = energy_ev * (2.0 * ELECTRON_REST_ENERGY_EV + energy_ev)
    if isinstance(product, torch.Tensor):
        return HC_EV_ANGSTROM / torch.sqrt(product)
    return HC_EV_ANGSTROM / math.sqrt(product)


def amplitude_contrast_phase(amplitude_contrast: float | torch.Tensor) -> float | torch.Tensor:
    r"""Phase ``w = atan(Q0 / sqrt(1 − Q0²)) = asin(Q0)`` [rad] that mixes in amplitude contrast.

    ``sin(χ_0 + w) = sqrt(1 − Q0²) sin χ_0 + Q0 cos χ_0``: phase contrast weighted by
    ``sqrt(1 − Q0²)`` plus amplitude contrast weighted by ``Q0``.
    """
    if isinstance(amplitude_contrast, torch.Tensor):
        if ((amplitude_contrast < 0) | (amplitude_contrast >= 1)).any():
            raise ValueError("amplitude_contrast must satisfy 0 <= Q0 < 1")
        return torch.asin(amplitude_contrast)
    if not 0.0 <= amplitude_contrast < 1.0:
        raise ValueError(f"amplitude_contrast must satisfy 0 <= Q0 < 1, got {amplitude_contrast}")
    return math.asin(amplitude_contrast)


def _tensors(
    params: CTFParams, device: torch.device | str | None, dtype: torch.dtype | None
) -> CTFParams:
    """Params as tensors; device/dtype default to those of the first tensor field."""
    first = next((v for v in vars(params).values() if isinstance(v, torch.Tensor)), None)
    if dtype is None:
        dtype = first.dtype if first is not None and first.is_floating_point() else None
    if device is None and first is not None:
        device = first.device
    return params.as_tensors(device=device, dtype=dtype)


def _phase_coefficients(p: CTFParams) -> torch.Tensor:
    """Per-particle coefficients (*batch, 5) of χ on the maps (k², kx²−ky², 2kxky, k⁴, 1)."""
    lam = electron_wavelength_angstrom(p.voltage_kv)
    mean = 0.5 * (p.defocus_u_angstrom + p.defocus_v_angstrom)
    half_diff = 0.5 * (p.defocus_u_angstrom - p.defocus_v_angstrom)
    two_angle = 2.0 * torch.deg2rad(p.astigmatism_angle_deg)
    coefficients = torch.broadcast_tensors(
        math.pi * lam * mean,
        math.pi * lam * half_diff * torch.cos(two_angle),
        math.pi * lam * half_diff * torch.sin(two_angle),
        -0.5 * math.pi * (p.cs_mm * 1e7) * lam**3,
        torch.deg2rad(p.phase_shift_deg) + amplitude_contrast_phase(p.amplitude_contrast),
    )
    return torch.stack(coefficients, dim=-1)


def _frequency_maps(kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
    """The five maps (5, *k.shape) that χ is linear in: k², kx²−ky², 2kxky, k⁴, 1."""
    k2 = kx * kx + ky * ky
    return torch.stack([k2, kx * kx - ky * ky, 2.0 * kx * ky, k2 * k2, torch.ones_like(k2)])


def _apply_envelope(values: torch.Tensor, p: CTFParams, k2: torch.Tensor) -> torch.Tensor:
    """values · scale · exp(−B k²/4); the work is skipped when all B = 0 or all scales = 1."""
    batch = values.shape[: values.ndim - k2.ndim]
    extra = (1,) * k2.ndim
    if bool((p.bfactor_a2 != 0).any()):
        bfactor = p.bfactor_a2.expand(batch).reshape(*batch, *extra)
        values = values * torch.exp(-0.25 * bfactor * k2)
    if bool((p.scale != 1).any()):
        values = values * p.scale.expand(batch).reshape(*batch, *extra)
    return values


def aberration_phase(
    params: CTFParams,
    frequency_inv_angstrom: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""The phase ``χ(k)`` [rad] whose sine is the CTF (astigmatism, Cs, phase shift, Q0).

    Parameters
    ----------
    params : CTFParams
        Batch shape ``batch``.
    frequency_inv_angstrom : Tensor, shape (*grid, 2)
        Frequency vectors ``(k_x, k_y)`` [1/Å].
    device, dtype : optional
        Default: those of the tensors in ``params``, else of ``frequency_inv_angstrom``.

    Returns
    -------
    Tensor, shape (*batch, *grid)
        ``χ`` [rad].

    Notes
    -----
    .. math:: \chi = \pi\lambda\,\Delta f(\alpha)\,k^2 - \tfrac{\pi}{2} C_s\lambda^3 k^4
                     + \varphi + \arctan\frac{Q_0}{\sqrt{1-Q_0^2}}

    with ``Δf(α) = ½[(Δu+Δv) + (Δu−Δv) cos 2(α−α_ast)]`` (see the module docstring).
    """
    if frequency_inv_angstrom.shape[-1:] != (2,):
        raise ValueError(
            "frequency_inv_angstrom must have a last axis of length 2 (k_x, k_y), "
            f"got shape {tuple(frequency_inv_angstrom.shape)}"
        )
    dtype = dtype or (
        frequency_inv_angstrom.dtype if frequency_inv_angstrom.is_floating_point() else None
    )
    p = _tensors(params, device, dtype)
    k = frequency_inv_angstrom.to(device=p.voltage_kv.device, dtype=p.voltage_kv.dtype)
    maps = _frequency_maps(k[..., 0], k[..., 1])
    grid = maps.shape[1:]
    coefficients = _phase_coefficients(p)
    chi = coefficients.reshape(-1, 5) @ maps.reshape(5, -1)
    return chi.reshape(*coefficients.shape[:-1], *grid)


def ctf_1d(
    params: CTFParams,
    frequency_inv_angstrom: torch.Tensor,
    *,
    azimuth_deg: float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The CTF along one radial line (a 1D profile).

    Parameters
    ----------
    params : CTFParams
        Batch shape ``batch``.
    frequency_inv_angstrom : Tensor, shape (*n,)
        Radial frequencies ``k`` [1/Å].
    azimuth_deg : float, optional
        Direction of the line from the x axis [degrees].  ``None`` (default) uses the mean
        defocus ``(Δu + Δv)/2``, i.e. ignores astigmatism.
    device, dtype : optional
        Default: those of the tensors in ``params``, else of ``frequency_inv_angstrom``.

    Returns
    -------
    Tensor, shape (*batch, *n)
        ``scale · sin χ(k) · exp(−B k²/4)``.

    Notes
    -----
    With ``azimuth_deg=None`` the line is taken at ``α = α_ast + 45°``, where
    ``cos 2(α − α_ast) = 0`` so ``Δf(α)`` equals the mean defocus.
    """
    k = torch.as_tensor(frequency_inv_angstrom)
    dtype = dtype or (k.dtype if k.is_floating_point() else None)
    p = _tensors(params, device, dtype)
    k = k.to(device=p.voltage_kv.device, dtype=p.voltage_kv.dtype)
    if azimuth_deg is None:
        mean = 0.5 * (p.defocus_u_angstrom + p.defocus_v_angstrom)
        p = replace(p, defocus_u_angstrom=mean, defocus_v_angstrom=mean)
        azimuth_deg = 0.0
    angle = math.radians(azimuth_deg)
    direction = torch.stack([k * math.cos(angle), k * math.sin(angle)], dim=-1)
    chi = aberration_phase(p, direction)
    return _apply_envelope(torch.sin(chi), p, k * k)


def ctf_at_frequencies(
    params: CTFParams,
    frequency_inv_angstrom: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The CTF at arbitrary frequency vectors (e.g. only the points a projector computes).

    Parameters
    ----------
    params : CTFParams
        Batch shape ``batch``.
    frequency_inv_angstrom : Tensor, shape (*grid, 2)
        Frequency vectors ``(k_x, k_y)`` [1/Å].
    device, dtype : optional
        Default: those of the tensors in ``params``, else of ``frequency_inv_angstrom``.

    Returns
    -------
    Tensor, shape (*batch, *grid)
        ``scale · sin χ(k) · exp(−B k²/4)``, the same values as :func:`ctf_2d` at those ``k``.
    """
    chi = aberration_phase(params, frequency_inv_angstrom, device=device, dtype=dtype)
    p = _tensors(params, chi.device, chi.dtype)
    k = frequency_inv_angstrom.to(device=chi.device, dtype=chi.dtype)
    values = chi.sin_() if not chi.requires_grad else torch.sin(chi)
    return _apply_envelope(values, p, (k * k).sum(-1))


def _fourier_axes(
    image_size: tuple[int, int],
    pixel_size_angstrom: float,
    rfft: bool,
    centered: bool,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(k_y column, k_x row) [1/Å] of a (centred or FFT-ordered, full or rfft) 2D grid."""
    h, w = image_size
    kwargs = {"pixel_size_angstrom": pixel_size_angstrom, "device": device, "dtype": dtype}
    ky = frequency_axis(h, **kwargs)
    kx = frequency_axis(w, rfft=rfft, **kwargs)
    if not centered:
        ky = torch.fft.ifftshift(ky)
        kx = kx if rfft else torch.fft.ifftshift(kx)
    return ky[:, None], kx[None, :]


def ctf_2d(
    params: CTFParams,
    *,
    image_size: int | tuple[int, int],
    pixel_size_angstrom: float,
    rfft: bool = True,
    centered: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """A batch of 2D CTF images on the Fourier grid of an image.

    Parameters
    ----------
    params : CTFParams
        Batch shape ``batch`` (fields broadcast).
    image_size : int or (h, w)
        Real-space image size [pixels].
    pixel_size_angstrom : float
        Pixel size [Å].
    rfft : bool
        ``True`` (default): the half-plane ``k_x >= 0`` (``w//2 + 1`` columns, DC in column 0).
    centered : bool
        ``True`` (default): DC at row ``h//2`` (and column ``w//2`` for the full grid), as
        :func:`cryoglass.fourier.rfft2_centered`.  ``False``: plain FFT order, as
        :func:`torch.fft.rfft2` (DC at index 0).
    device, dtype : optional
        Default: those of the tensors in ``params`` (else CPU, default dtype).

    Returns
    -------
    Tensor, shape (*batch, h, w//2 + 1) or (*batch, h, w)
        ``scale · sin χ(k) · exp(−B k²/4)`` (module docstring).

    Notes
    -----
    The Nyquist row of an even-sized grid is ``k_y = −1/(2·pixel)`` (FFT convention); RELION's
    rfft images use ``+1/(2·pixel)`` there, which differs only for astigmatic CTFs.

    Examples
    --------
    >>> p = CTFParams(defocus_u_angstrom=15000.0, defocus_v_angstrom=14000.0)
    >>> ctf_2d(p, image_size=64, pixel_size_angstrom=1.0).shape
    torch.Size([64, 33])
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    p = _tensors(params, device, dtype)
    ky, kx = _fourier_axes(
        size, pixel_size_angstrom, rfft, centered, p.voltage_kv.device, p.voltage_kv.dtype
    )
    maps = _frequency_maps(*torch.broadcast_tensors(kx, ky))
    coefficients = _phase_coefficients(p)
    batch, grid = coefficients.shape[:-1], maps.shape[1:]
    if coefficients.requires_grad:  # keep autograd usable (e.g. defocus refinement)
        chi = coefficients.reshape(-1, 5) @ maps.reshape(5, -1)
        values = torch.sin(chi).reshape(*batch, *grid)
        rows, columns = _envelope_factors(p, ky, kx, batch)
        return values if rows is None else values * rows * columns
    return _ctf_in_chunks(coefficients.reshape(-1, 5), maps, p, ky, kx, batch)


_CHUNK_ELEMENTS = 2**18  # CTF values computed per pass (about 1 MB in float32: stays in cache)


def _ctf_in_chunks(
    coefficients: torch.Tensor,
    maps: torch.Tensor,
    p: CTFParams,
    ky: torch.Tensor,
    kx: torch.Tensor,
    batch: tuple[int, ...],
) -> torch.Tensor:
    """``sin(coefficients @ maps)`` · envelope, a few particles at a time, written in place.

    Each chunk's matrix product, sine and envelope run while the chunk is still in cache, so the
    (B, h, w) result is written to memory once instead of being streamed four times.
    """
    grid = maps.shape[1:]
    flat_maps = maps.reshape(5, -1)
    out = flat_maps.new_empty((coefficients.shape[0], flat_maps.shape[1]))
    rows, columns = _envelope_factors(p, ky, kx, batch)
    if rows is not None:
        rows, columns = rows.reshape(-1, grid[0], 1), columns.reshape(-1, 1, grid[1])
    step = max(1, _CHUNK_ELEMENTS // flat_maps.shape[1])
    for start in range(0, out.shape[0], step):
        part = slice(start, start + step)
        block = torch.matmul(coefficients[part], flat_maps, out=out[part]).sin_()
        if rows is not None:
            block.view(-1, *grid).mul_(rows[part]).mul_(columns[part])
    return out.reshape(*batch, *grid)


def _envelope_factors(
    p: CTFParams, ky: torch.Tensor, kx: torch.Tensor, batch: tuple[int, ...]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``scale · exp(−B k_y²/4)`` (*batch, h, 1) and ``exp(−B k_x²/4)`` (*batch, 1, w).

    The Gaussian envelope factorises, so it costs two exp's of length h and w per particle and
    two products, not h·w exp's.  ``(None, None)`` when all B = 0 and all scales = 1.
    """
    if not bool((p.bfactor_a2 != 0).any() | (p.scale != 1).any()):
        return None, None
    b = p.bfactor_a2.expand(batch)[..., None, None]
    rows = torch.exp(-0.25 * b * ky * ky) * p.scale.expand(batch)[..., None, None]
    columns = torch.exp(-0.25 * b * kx * kx)
    return rows, columns


def ctf_zeros_inv_angstrom(
    params: CTFParams,
    n_zeros: int,
    *,
    azimuth_deg: float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""The first ``n_zeros`` zeros of the CTF at ``k > 0`` along a line [1/Å], analytically.

    Parameters
    ----------
    params : CTFParams
        Batch shape ``batch``.
    n_zeros : int
        How many zeros (in increasing ``k``).
    azimuth_deg : float, optional
        Direction [degrees from x]; ``None`` uses the mean defocus, as :func:`ctf_1d`.
    device, dtype : optional
        As :func:`ctf_1d`.

    Returns
    -------
    Tensor, shape (*batch, n_zeros)
        Zero positions [1/Å], increasing; ``nan`` where fewer zeros exist.

    Notes
    -----
    With ``x = k²``, ``χ = A x − C x² + P`` (``A = πλΔf``, ``C = ½πC_sλ³``, ``P = φ + w``), a
    zero is ``χ = nπ``: the quadratic ``C x² − A x + (nπ − P) = 0``.  Its two roots are the
    crossings on the rising and on the falling side of ``χ``'s maximum at ``x = A/(2C)``.
    Underfocus (``A > 0``) first crosses ``n = ⌊P/π⌋+1, …, ⌊χ_max/π⌋`` going up, then the
    falling side (only when ``C > 0``) down from ``⌊χ_max/π⌋``; at or over focus (``A ≤ 0``)
    only the falling side exists, from ``n = ⌈P/π⌉ − 1`` down.  The roots are computed in the
    cancellation-free forms ``x_− = 2(nπ−P)/(A + √D)`` and ``x_+ = (A + √D)/(2C)``,
    ``D = A² − 4C(nπ−P)``.  Cs = 0, Q0 = 0 gives ``k_n = √(n/(λΔf))``.

    Examples
    --------
    >>> p = CTFParams(10000.0, 10000.0, cs_mm=0.0, amplitude_contrast=0.0)
    >>> z = ctf_zeros_inv_angstrom(p, 2)
    >>> bool(torch.allclose(z**2 * electron_wavelength_angstrom(300.0) * 1e4,
    ...                     torch.tensor([1.0, 2.0])))
    True
    """
    if n_zeros < 1:
        raise ValueError(f"n_zeros must be >= 1, got {n_zeros}")
    p = _tensors(params, device, dtype)
    coefficients = _phase_coefficients(p)
    if azimuth_deg is None:
        a = coefficients[..., 0]
    else:
        two = 2.0 * math.radians(azimuth_deg)
        a = (
            coefficients[..., 0]
            + coefficients[..., 1] * math.cos(two)
            + coefficients[..., 2] * math.sin(two)
        )
    c = -coefficients[..., 3]
    phase = coefficients[..., 4]
    a, c, phase = (v[..., None] for v in (a, c, phase))
    j = torch.arange(n_zeros, device=a.device, dtype=a.dtype)

    rising = a > 0
    chi_max = torch.where(c > 0, phase + a * a / (4.0 * c), torch.full_like(a, math.inf))
    first_up = torch.floor(phase / math.pi) + 1.0
    top = torch.floor(chi_max / math.pi)
    n_rising = torch.where(rising, torch.clamp(top - first_up + 1.0, min=0.0), torch.zeros_like(a))
    on_rising_side = j < n_rising
    first_down = torch.where(rising, top, torch.ceil(phase / math.pi) - 1.0)
    n = torch.where(on_rising_side, first_up + j, first_down - (j - n_rising))

    target = n * math.pi - phase
    root = torch.sqrt(a * a - 4.0 * c * target)
    x_rising = 2.0 * target / (a + root)
    x_falling_pos = (a + root) / (2.0 * c)  # stable for a >= 0
    x_falling_neg = 2.0 * target / (a - root)  # stable for a < 0 (also c == 0 there)
    x_falling = torch.where(a >= 0, x_falling_pos, x_falling_neg)
    x = torch.where(on_rising_side, x_rising, x_falling)
    x = torch.where(x >= 0, x, torch.full_like(x, math.nan))
    return torch.sqrt(x)


def ctf_zeros_angstrom(
    params: CTFParams,
    n_zeros: int,
    *,
    azimuth_deg: float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The first ``n_zeros`` CTF zeros as resolutions [Å] (``1 / ctf_zeros_inv_angstrom``).

    Returns
    -------
    Tensor, shape (*batch, n_zeros), decreasing (Å).
    """
    zeros = ctf_zeros_inv_angstrom(
        params, n_zeros, azimuth_deg=azimuth_deg, device=device, dtype=dtype
    )
    return 1.0 / zeros


ctf_2d.__doc__ = (ctf_2d.__doc__ or "") + _REFERENCES
