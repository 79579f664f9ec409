"""Sub-pixel translations by the Fourier shift theorem.

A translation of the content of an image by ``s`` (Å) multiplies its Fourier transform by a
phase ramp:

.. math:: f'(\\mathbf r) = f(\\mathbf r - \\mathbf s)
    \\;\\Longleftrightarrow\\;
    F'(\\mathbf k) = F(\\mathbf k)\\, e^{-2\\pi i\\, \\mathbf k\\cdot\\mathbf s}

with ``k`` in 1/Å (:func:`cryoglass.fourier.grids.frequency_grid`).  Shift vectors are ordered
(x, y[, z]) like every vector in cryoglass.  With RELION's origin meaning (docs/conventions.md),
an image with ``rlnOriginX/YAngst = o`` is re-centred by ``shift_image(image, +o, ...)``.

Even boxes: a Nyquist bin (index ``-N/2`` on a centred axis, ``+N/2`` on the rfft axis) stands
for both ``+N/2`` and ``-N/2``, which are the same sample but get opposite phases.  cryoglass
takes every Nyquist component as ``-N/2`` (also on the rfft axis) and averages the ramp with
the one for all Nyquist components flipped; on bins whose axes in the set ``S`` are at
Nyquist (``p`` the pixel size)

.. math:: R(\\mathbf k) = e^{-2\\pi i\\,\\mathbf k_{\\notin S}\\cdot\\mathbf s}
    \\,\\cos\\Big(\\pi \\sum_{a\\in S} s_a / p\\Big).

This keeps real images real and gives identical results on the full and the rfft grids.
Integer shifts are exact (``cos = ±1``, equal to :func:`torch.roll`); a sub-pixel shift
attenuates the (usually negligible) Nyquist components and is exactly invertible only for odd
boxes or signals without Nyquist content.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cryoglass.fourier.fft import irfftn_centered, rfftn_centered
from cryoglass.fourier.grids import frequency_grid

__all__ = ["phase_ramp", "phase_shift_fourier", "shift_image"]


def _as_shift(
    shift_angstrom: torch.Tensor | Sequence[float],
    *,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> torch.Tensor:
    shift = torch.as_tensor(shift_angstrom, device=device)
    if not shift.is_floating_point():
        shift = shift.to(torch.get_default_dtype())
    if dtype is not None:
        shift = shift.to(dtype)
    if shift.ndim == 0 or shift.shape[-1] not in (2, 3):
        raise ValueError(
            f"shift_angstrom must have shape (..., 2) ordered (x, y) or (..., 3) ordered "
            f"(x, y, z); got shape {tuple(shift.shape)}"
        )
    return shift


def phase_ramp(
    shift_angstrom: torch.Tensor | Sequence[float],
    *,
    pixel_size_angstrom: float,
    image_shape: tuple[int, ...],
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Phase ramp ``exp(-2πi k·s)`` on a centred (or centred-rfft) Fourier grid.

    Parameters
    ----------
    shift_angstrom : Tensor (..., ndim) or sequence of floats
        Translation [Å], ordered (x, y) or (x, y, z); ``ndim = len(image_shape)``.
    pixel_size_angstrom : float
        Pixel size [Å].
    image_shape : (h, w) or (d, h, w)
        Real-space shape of the images/volumes the ramp applies to.
    rfft : bool
        Half grid (last axis ``w//2 + 1``, DC at 0) instead of the full centred grid.
    device, dtype
        Of the output's real part; default: those of ``shift_angstrom``.

    Returns
    -------
    Tensor, complex, shape (..., *fourier_shape)

    Notes
    -----
    :math:`R(\\mathbf k) = \\exp(-2\\pi i\\,\\mathbf k\\cdot\\mathbf s)`, ``k`` in 1/Å, ``s`` in Å,
    averaged over the two signs of the Nyquist components (module docstring) so ``|R| <= 1``
    there.  Multiplying a transform by ``R`` moves the real-space content by ``+s``.
    """
    shift = _as_shift(shift_angstrom, device=device, dtype=dtype)
    ndim = len(image_shape)
    if shift.shape[-1] != ndim:
        raise ValueError(
            f"shift_angstrom has {shift.shape[-1]} components but image_shape {image_shape} "
            f"has {ndim} axes"
        )
    k = frequency_grid(
        image_shape,
        pixel_size_angstrom=pixel_size_angstrom,
        rfft=rfft,
        device=shift.device,
        dtype=shift.dtype,
    )
    if rfft and image_shape[-1] % 2 == 0:  # represent the rfft Nyquist column as -N/2 too
        fix = torch.ones(ndim, image_shape[-1] // 2 + 1, device=k.device, dtype=k.dtype)
        fix[0, -1] = -1.0
        k = k * fix.T
    s = shift.reshape(*shift.shape[:-1], *([1] * ndim), ndim)
    k_flipped = k * _nyquist_sign(image_shape, rfft=rfft, device=k.device, dtype=k.dtype)
    ramp = torch.exp(-2j * math.pi * (k * s).sum(dim=-1))
    ramp_flipped = torch.exp(-2j * math.pi * (k_flipped * s).sum(dim=-1))
    return (ramp + ramp_flipped) / 2


def _nyquist_sign(
    image_shape: tuple[int, ...], *, rfft: bool, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(*fourier_shape, ndim): -1 on the components that sit on a Nyquist bin, else +1."""
    ndim = len(image_shape)
    signs = []
    for axis, n in enumerate(image_shape):
        last = axis == ndim - 1
        size = n // 2 + 1 if (rfft and last) else n
        sign = torch.ones(size, device=device, dtype=dtype)
        if n % 2 == 0:
            sign[-1 if (rfft and last) else 0] = -1.0
        signs.append(sign)
    mesh = torch.meshgrid(*signs, indexing="ij")
    return torch.stack(mesh[::-1], dim=-1)


def phase_shift_fourier(
    f: torch.Tensor,
    shift_angstrom: torch.Tensor | Sequence[float],
    *,
    pixel_size_angstrom: float,
    image_shape: tuple[int, ...],
    rfft: bool,
) -> torch.Tensor:
    """Translate already-transformed images/volumes by ``+shift`` (multiply by the phase ramp).

    Parameters
    ----------
    f : Tensor, complex, (..., *fourier_shape)
        Centred transform (:func:`fftn_centered`) or centred half transform
        (:func:`rfftn_centered`, with ``rfft=True``).
    shift_angstrom : Tensor (..., ndim)
        Translation [Å] ordered (x, y[, z]); batch axes broadcast with those of ``f``.
    pixel_size_angstrom : float
        Pixel size [Å].
    image_shape : (h, w) or (d, h, w)
        Real-space shape (needed to tell the rfft width and the frequency spacing).
    rfft : bool
        Whether ``f`` is a half (rfft) grid.

    Returns
    -------
    Tensor, complex, broadcast shape of ``f`` and the ramp.

    Notes
    -----
    :math:`F'(\\mathbf k) = F(\\mathbf k)\\,e^{-2\\pi i\\,\\mathbf k\\cdot\\mathbf s}`
    (Fourier shift theorem; Bracewell, *The Fourier Transform and its Applications*).
    """
    if not f.is_complex():
        raise ValueError("phase_shift_fourier: f must be a complex Fourier transform")
    ndim = len(image_shape)
    fourier_shape = tuple(image_shape[:-1]) + (
        (image_shape[-1] // 2 + 1) if rfft else image_shape[-1],
    )
    if tuple(f.shape[-ndim:]) != fourier_shape:
        raise ValueError(
            f"phase_shift_fourier: f has trailing shape {tuple(f.shape[-ndim:])} but "
            f"image_shape {tuple(image_shape)} with rfft={rfft} needs {fourier_shape}"
        )
    ramp = phase_ramp(
        shift_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
        image_shape=tuple(image_shape),
        rfft=rfft,
        device=f.device,
        dtype=f.real.dtype,
    )
    return f * ramp


def shift_image(
    images: torch.Tensor,
    shift_angstrom: torch.Tensor | Sequence[float],
    *,
    pixel_size_angstrom: float,
) -> torch.Tensor:
    """Translate real images (…, h, w) or volumes (…, d, h, w) by ``+shift`` (sub-pixel).

    Parameters
    ----------
    images : Tensor, real, (..., h, w) or (..., d, h, w)
    shift_angstrom : Tensor (..., 2) ordered (x, y), or (..., 3) ordered (x, y, z)
        Translation [Å]; its last axis decides 2D or 3D; batch axes broadcast with ``images``.
    pixel_size_angstrom : float

    Returns
    -------
    Tensor, real, same dtype/device as ``images``: ``out(r) = images(r - shift)`` (periodic).

    Notes
    -----
    Implemented as ``irfft(rfft(images) * exp(-2πi k·s))`` on the centred half grid; the
    translation is circular (content leaving one edge enters at the other).  See the module
    docstring for the Nyquist bin of even boxes.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(8, 8); x[4, 4] = 1.0
    >>> y = shift_image(x, torch.tensor([2.0, -1.0]), pixel_size_angstrom=1.0)
    >>> (y.argmax() // 8).item(), (y.argmax() % 8).item()
    (3, 6)
    """
    if images.is_complex():
        raise ValueError("shift_image expects real images; use phase_shift_fourier for spectra")
    shift = _as_shift(shift_angstrom, device=images.device, dtype=images.dtype)
    ndim = shift.shape[-1]
    if images.ndim < ndim:
        raise ValueError(
            f"shift_image: a {ndim}-component shift needs images with at least {ndim} axes, "
            f"got shape {tuple(images.shape)}"
        )
    image_shape = tuple(images.shape[-ndim:])
    f = rfftn_centered(images, ndim=ndim)
    f = phase_shift_fourier(
        f, shift, pixel_size_angstrom=pixel_size_angstrom, image_shape=image_shape, rfft=True
    )
    return irfftn_centered(f, ndim=ndim, last_size=image_shape[-1])
