"""Fourier filters: raised-cosine low/high/band-pass, Gaussian, Butterworth and B-factor.

Each filter comes twice: ``*_filter(shape, ...)`` returns its values on a centred (or centred
rfft) Fourier grid of a real-space ``shape`` (multiply a spectrum by it), and a function with
the bare name (``lowpass``, ``bandpass``, ``apply_bfactor`` ...) applies it to real images
(``ndim=2``) or volumes (``ndim=3``) and returns real arrays.  ``pixel_size_angstrom`` is one
number or one per axis, ordered (x, y[, z]) (non-cubic voxels).  Frequencies ``k`` are in 1/Å,
resolutions ``d`` in Å (``k = 1/d``), B-factors in Å².

Raised-cosine edge (RELION's ``lowPassFilterMap`` shape): for a cutoff ``k_c = 1/d`` and full
edge width ``Δ`` [1/Å],

.. math:: L(k) = \\begin{cases} 1 & k \\le k_c - Δ/2 \\\\
    \\tfrac12\\big(1 + \\cos(\\pi\\,(k - k_c + Δ/2)/Δ)\\big) & |k - k_c| < Δ/2 \\\\
    0 & k \\ge k_c + Δ/2 \\end{cases}

so ``L(k_c) = 1/2``.  The default width is two Fourier pixels, ``Δ = 2 / (w * pixel_size)``
(RELION's default ``filter_edge_width = 2``); ``Δ = 0`` gives a hard edge (``k <= k_c`` kept).
"""

from __future__ import annotations

import math

import torch

from cryoglass.fourier.fft import irfftn_centered, rfftn_centered
from cryoglass.fourier.grids import axis_pixel_sizes, frequency_radius

__all__ = [
    "apply_fourier_filter",
    "lowpass_filter",
    "highpass_filter",
    "bandpass_filter",
    "gaussian_lowpass_filter",
    "butterworth_lowpass_filter",
    "bfactor_filter",
    "lowpass",
    "highpass",
    "bandpass",
    "gaussian_lowpass",
    "butterworth_lowpass",
    "apply_bfactor",
]


# ----------------------------------------------------------------------------- helpers
def _radius(shape, pixel_size_angstrom, rfft, device, dtype) -> torch.Tensor:
    if len(shape) not in (2, 3):
        raise ValueError(f"filter shape must be (h, w) or (d, h, w), got {tuple(shape)}")
    if min(axis_pixel_sizes(pixel_size_angstrom, len(shape))) <= 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    return frequency_radius(
        tuple(shape),
        pixel_size_angstrom=pixel_size_angstrom,
        rfft=rfft,
        device=device,
        dtype=dtype,
    )


def _edge_width(edge_width_inv_angstrom, shape, pixel_size_angstrom) -> float:
    if edge_width_inv_angstrom is None:  # two Fourier pixels of the x axis
        return 2.0 / (shape[-1] * axis_pixel_sizes(pixel_size_angstrom, len(shape))[-1])
    if edge_width_inv_angstrom < 0:
        raise ValueError(f"edge_width_inv_angstrom must be >= 0, got {edge_width_inv_angstrom}")
    return float(edge_width_inv_angstrom)


def _raised_cosine(k: torch.Tensor, cutoff: float, width: float) -> torch.Tensor:
    """1 below ``cutoff - width/2``, 0 above ``cutoff + width/2``, cosine in between."""
    if width == 0:
        return (k <= cutoff).to(k.dtype)
    t = ((k - (cutoff - width / 2)) / width).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(math.pi * t))


def _check_resolution(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be a positive resolution in Å, got {value}")
    return float(value)


def apply_fourier_filter(x: torch.Tensor, filt: torch.Tensor, *, ndim: int) -> torch.Tensor:
    """Multiply the spectrum of real images/volumes by a filter on the centred rfft grid.

    Parameters
    ----------
    x : Tensor, real, (..., h, w) or (..., d, h, w)
    filt : Tensor, real or complex, (..., *rfft_shape)
        E.g. ``lowpass_filter(x.shape[-2:], ..., rfft=True)``; batch axes broadcast.
    ndim : {2, 3}

    Returns
    -------
    Tensor, real: :math:`\\mathcal F^{-1}[H \\cdot \\mathcal F x]` (circular convolution with
    the filter's real-space kernel).
    """
    if ndim not in (2, 3) or x.ndim < ndim:
        raise ValueError(f"apply_fourier_filter: ndim must be 2 or 3 and <= x.ndim, got {ndim}")
    shape = tuple(x.shape[-ndim:])
    expected = shape[:-1] + (shape[-1] // 2 + 1,)
    if tuple(filt.shape[-ndim:]) != expected:
        raise ValueError(
            f"apply_fourier_filter: filter trailing shape {tuple(filt.shape[-ndim:])} is not "
            f"the rfft grid {expected} of images with shape {shape}"
        )
    f = rfftn_centered(x, ndim=ndim) * filt.to(x.device)
    return irfftn_centered(f, ndim=ndim, last_size=shape[-1]).to(x.dtype)


# ----------------------------------------------------------------------------- grids
def lowpass_filter(
    shape: tuple[int, ...],
    *,
    resolution_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    edge_width_inv_angstrom: float | None = None,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Raised-cosine low-pass at ``1/resolution_angstrom`` on a centred Fourier grid.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)
        Real-space shape.
    resolution_angstrom : float
        Cutoff resolution ``d`` [Å]; the filter is 1/2 at ``k = 1/d``.
    pixel_size_angstrom : float or tuple of float (x, y[, z])
    edge_width_inv_angstrom : float, optional
        Full width of the cosine edge [1/Å]; default two Fourier pixels ``2/(w * pixel)``.
    rfft : bool
        Half grid (last axis ``w//2 + 1``).

    Returns
    -------
    Tensor, real, fourier_shape, values in [0, 1].

    Notes
    -----
    See the module docstring for the formula.
    """
    k = _radius(shape, pixel_size_angstrom, rfft, device, dtype)
    cutoff = 1.0 / _check_resolution("resolution_angstrom", resolution_angstrom)
    return _raised_cosine(
        k, cutoff, _edge_width(edge_width_inv_angstrom, shape, pixel_size_angstrom)
    )


def highpass_filter(
    shape: tuple[int, ...],
    *,
    resolution_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    edge_width_inv_angstrom: float | None = None,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Raised-cosine high-pass: ``1 - lowpass_filter(...)``; removes features larger than ``d``."""
    return 1.0 - lowpass_filter(
        shape,
        resolution_angstrom=resolution_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        edge_width_inv_angstrom=edge_width_inv_angstrom,
        rfft=rfft,
        device=device,
        dtype=dtype,
    )


def bandpass_filter(
    shape: tuple[int, ...],
    *,
    low_resolution_angstrom: float,
    high_resolution_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    edge_width_inv_angstrom: float | None = None,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Band-pass keeping ``1/low_resolution < k < 1/high_resolution`` (raised-cosine edges).

    Parameters
    ----------
    low_resolution_angstrom : float
        The coarse limit ``d_low`` [Å] (high-pass cutoff), e.g. 50.
    high_resolution_angstrom : float
        The fine limit ``d_high`` [Å] (low-pass cutoff), e.g. 8; must be < ``d_low``.

    Notes
    -----
    :math:`B(k) = H_{d_{low}}(k)\\,L_{d_{high}}(k)`.
    """
    if not high_resolution_angstrom < low_resolution_angstrom:
        raise ValueError(
            f"bandpass: high_resolution_angstrom ({high_resolution_angstrom}) must be smaller "
            f"than low_resolution_angstrom ({low_resolution_angstrom})"
        )
    high = highpass_filter(
        shape,
        resolution_angstrom=low_resolution_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        edge_width_inv_angstrom=edge_width_inv_angstrom,
        rfft=rfft,
        device=device,
        dtype=dtype,
    )
    low = lowpass_filter(
        shape,
        resolution_angstrom=high_resolution_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        edge_width_inv_angstrom=edge_width_inv_angstrom,
        rfft=rfft,
        device=device,
        dtype=dtype,
    )
    return high * low


def gaussian_lowpass_filter(
    shape: tuple[int, ...],
    *,
    sigma_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Gaussian low-pass: the transform of a unit-area real-space Gaussian of std ``σ`` [Å].

    Notes
    -----
    :math:`G(k) = \\exp(-2\\pi^2\\sigma^2 k^2)`, the Fourier transform of
    :math:`g(r) = (2\\pi\\sigma^2)^{-n/2} \\exp(-r^2 / 2\\sigma^2)`; applying it equals
    convolving with ``g``.  ``G = 1/2`` at ``k = sqrt(ln 2 / 2) / (π σ)``.
    """
    if sigma_angstrom < 0:
        raise ValueError(f"sigma_angstrom must be >= 0, got {sigma_angstrom}")
    k = _radius(shape, pixel_size_angstrom, rfft, device, dtype)
    return torch.exp(-2.0 * math.pi**2 * sigma_angstrom**2 * k.square())


def butterworth_lowpass_filter(
    shape: tuple[int, ...],
    *,
    resolution_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    order: int = 4,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Butterworth low-pass of the given order, ``1/sqrt(2)`` at ``k = 1/d``.

    Notes
    -----
    :math:`H(k) = 1 / \\sqrt{1 + (k d)^{2n}}` — maximally flat in the pass band, no ringing-prone
    hard edge; larger ``n`` approaches the ideal (hard) low-pass.
    """
    if order < 1:
        raise ValueError(f"butterworth order must be >= 1, got {order}")
    d = _check_resolution("resolution_angstrom", resolution_angstrom)
    k = _radius(shape, pixel_size_angstrom, rfft, device, dtype)
    return torch.rsqrt(1.0 + (k * d) ** (2 * order))


def bfactor_filter(
    shape: tuple[int, ...],
    *,
    bfactor_a2: float | torch.Tensor,
    pixel_size_angstrom: float | tuple[float, ...],
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """B-factor envelope ``exp(-B k² / 4)``: blur for ``B > 0``, sharpen for ``B < 0``.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)
    bfactor_a2 : float or Tensor (...)
        B [Å²]; a tensor gives a batch of filters of shape (..., *fourier_shape).
    pixel_size_angstrom : float or tuple of float (x, y[, z])
    rfft : bool

    Notes
    -----
    Amplitudes are multiplied by :math:`\\exp(-B k^2/4)` with ``k = 1/d`` in 1/Å — the
    Debye–Waller/temperature factor convention for amplitudes used by RELION (CTF envelope,
    post-processing) and by Rosenthal & Henderson (2003), doi:10.1016/j.jmb.2003.07.013.
    A real-space Gaussian blur of std ``σ`` corresponds to ``B = 8π²σ²``.
    """
    if isinstance(bfactor_a2, torch.Tensor):
        device = device if device is not None else bfactor_a2.device
        dtype = (
            dtype
            if dtype is not None
            else (bfactor_a2.dtype if bfactor_a2.is_floating_point() else None)
        )
    k2 = _radius(shape, pixel_size_angstrom, rfft, device, dtype).square()
    b = torch.as_tensor(bfactor_a2, device=k2.device, dtype=k2.dtype)
    b = b.reshape(*b.shape, *([1] * len(shape)))
    return torch.exp(-b * k2 / 4.0)


# ----------------------------------------------------------------------------- apply
def _rfft_shape(x: torch.Tensor, ndim: int) -> tuple[int, ...]:
    if ndim not in (2, 3) or x.ndim < ndim:
        raise ValueError(f"ndim must be 2 or 3 and <= x.ndim ({x.ndim}), got {ndim}")
    return tuple(x.shape[-ndim:])


def lowpass(
    x: torch.Tensor,
    *,
    ndim: int,
    resolution_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    edge_width_inv_angstrom: float | None = None,
) -> torch.Tensor:
    """Low-pass real images/volumes at ``resolution_angstrom`` (see :func:`lowpass_filter`)."""
    shape = _rfft_shape(x, ndim)
    filt = lowpass_filter(
        shape,
        resolution_angstrom=resolution_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        edge_width_inv_angstrom=edge_width_inv_angstrom,
        rfft=True,
        device=x.device,
        dtype=x.dtype,
    )
    return apply_fourier_filter(x, filt, ndim=ndim)


def highpass(
    x: torch.Tensor,
    *,
    ndim: int,
    resolution_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    edge_width_inv_angstrom: float | None = None,
) -> torch.Tensor:
    """High-pass real images/volumes at ``resolution_angstrom`` (see :func:`highpass_filter`)."""
    shape = _rfft_shape(x, ndim)
    filt = highpass_filter(
        shape,
        resolution_angstrom=resolution_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        edge_width_inv_angstrom=edge_width_inv_angstrom,
        rfft=True,
        device=x.device,
        dtype=x.dtype,
    )
    return apply_fourier_filter(x, filt, ndim=ndim)


def bandpass(
    x: torch.Tensor,
    *,
    ndim: int,
    low_resolution_angstrom: float,
    high_resolution_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    edge_width_inv_angstrom: float | None = None,
) -> torch.Tensor:
    """Band-pass real images/volumes (see :func:`bandpass_filter`)."""
    shape = _rfft_shape(x, ndim)
    filt = bandpass_filter(
        shape,
        low_resolution_angstrom=low_resolution_angstrom,
        high_resolution_angstrom=high_resolution_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        edge_width_inv_angstrom=edge_width_inv_angstrom,
        rfft=True,
        device=x.device,
        dtype=x.dtype,
    )
    return apply_fourier_filter(x, filt, ndim=ndim)


def gaussian_lowpass(
    x: torch.Tensor, *, ndim: int, sigma_angstrom: float, pixel_size_angstrom: float
) -> torch.Tensor:
    """Gaussian blur of std ``sigma_angstrom`` (see :func:`gaussian_lowpass_filter`)."""
    shape = _rfft_shape(x, ndim)
    filt = gaussian_lowpass_filter(
        shape,
        sigma_angstrom=sigma_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        rfft=True,
        device=x.device,
        dtype=x.dtype,
    )
    return apply_fourier_filter(x, filt, ndim=ndim)


def butterworth_lowpass(
    x: torch.Tensor,
    *,
    ndim: int,
    resolution_angstrom: float,
    pixel_size_angstrom: float | tuple[float, ...],
    order: int = 4,
) -> torch.Tensor:
    """Butterworth low-pass of real images/volumes (see :func:`butterworth_lowpass_filter`)."""
    shape = _rfft_shape(x, ndim)
    filt = butterworth_lowpass_filter(
        shape,
        resolution_angstrom=resolution_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        order=order,
        rfft=True,
        device=x.device,
        dtype=x.dtype,
    )
    return apply_fourier_filter(x, filt, ndim=ndim)


def apply_bfactor(
    x: torch.Tensor,
    *,
    ndim: int,
    bfactor_a2: float | torch.Tensor,
    pixel_size_angstrom: float | tuple[float, ...],
) -> torch.Tensor:
    """Blur (``B > 0``) or sharpen (``B < 0``) real images/volumes by ``exp(-B k²/4)``.

    ``bfactor_a2`` may be a tensor (...) broadcasting with the batch axes of ``x``.
    """
    shape = _rfft_shape(x, ndim)
    filt = bfactor_filter(
        shape,
        bfactor_a2=bfactor_a2,
        pixel_size_angstrom=pixel_size_angstrom,
        rfft=True,
        device=x.device,
        dtype=x.dtype,
    )
    return apply_fourier_filter(x, filt, ndim=ndim)
