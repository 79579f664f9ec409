"""Fourier cropping and padding: resampling images and volumes to a new box or pixel size.

Cropping the centred spectrum of an ``N``-box to its central ``M`` bins is exact band-limited
down-sampling (pixel size grows by ``N/M``); zero-padding it is sinc (trigonometric)
interpolation (pixel size shrinks by ``N/M``).  The field of view ``N * pixel_size`` is kept.

Normalisation: spectra use the unscaled forward DFT, so the DC bin is ``N * mean``.  The real →
real functions multiply by ``M_total / N_total`` so that the **mean value (and every sampled
value of a band-limited function) is preserved**, as RELION's ``--rescale_angpix`` does.

Nyquist bins of even boxes (``M`` or ``N`` even), handled per axis:

* crop to an even ``M``: the new Nyquist bin ``-M/2`` receives the **sum** of the old bins
  ``-M/2`` and ``+M/2`` — both alias onto it when sampling at the coarser spacing;
* pad from an even ``N``: the old Nyquist bin ``-N/2`` (a pure cosine) is **split in half**
  between the new bins ``-N/2`` and ``+N/2``, keeping the spectrum Hermitian and the result real.

With these rules ``crop(pad(x)) == x`` exactly, and ``pad(crop(x)) == x`` for any ``x`` whose
spectrum lies strictly inside the smaller box.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "resize_spectrum",
    "resize_fourier",
    "fourier_crop",
    "fourier_pad",
    "rescale",
    "rescaled_box_size",
    "center_window",
]


def _zeros_along(f: torch.Tensor, dim: int, n: int) -> torch.Tensor:
    shape = list(f.shape)
    shape[dim] = n
    return f.new_zeros(shape)


def _resize_axis(f: torch.Tensor, dim: int, new_n: int) -> torch.Tensor:
    """Crop or zero-pad one centred Fourier axis from ``n`` to ``new_n`` bins (see module doc)."""
    n = f.shape[dim]
    if new_n == n:
        return f
    if new_n < n:
        out = f.narrow(dim, n // 2 - new_n // 2, new_n)
        if new_n % 2 == 0:  # fold the +new_n/2 bin onto the new Nyquist bin -new_n/2
            plus = f.narrow(dim, n // 2 + new_n // 2, 1)
            out = torch.cat([out.narrow(dim, 0, 1) + plus, out.narrow(dim, 1, new_n - 1)], dim)
        return out
    body = f
    if n % 2 == 0:  # split the old Nyquist bin -n/2 between -n/2 and +n/2
        half = f.narrow(dim, 0, 1) / 2
        body = torch.cat([half, f.narrow(dim, 1, n - 1), half], dim)
    before = new_n // 2 - n // 2
    after = new_n - before - body.shape[dim]
    return torch.cat([_zeros_along(f, dim, before), body, _zeros_along(f, dim, after)], dim)


def resize_spectrum(f: torch.Tensor, new_shape: tuple[int, ...]) -> torch.Tensor:
    """Crop and/or zero-pad a centred full spectrum to ``new_shape`` (no rescaling of values).

    Parameters
    ----------
    f : Tensor, complex, (..., *shape)
        Centred transform (DC at ``N//2``) over the last ``len(new_shape)`` axes.
    new_shape : tuple of int
        New box, e.g. (h', w') or (d', h', w'); each axis may shrink or grow.

    Returns
    -------
    Tensor, complex, (..., *new_shape), DC at ``new_shape[i]//2``.

    Notes
    -----
    Bins with ``-M//2 <= index_from_DC <= (M-1)//2`` are kept; the Nyquist rules for even
    boxes are in the module docstring.
    """
    ndim = len(new_shape)
    if f.ndim < ndim or any(int(m) < 1 for m in new_shape):
        raise ValueError(
            f"resize_spectrum: cannot resize trailing axes of shape {tuple(f.shape)} to "
            f"{tuple(new_shape)}"
        )
    for axis, m in enumerate(new_shape):
        f = _resize_axis(f, axis - ndim, int(m))
    return f


def _resize_axis_fft_order(f: torch.Tensor, dim: int, new_n: int) -> torch.Tensor:
    """:func:`_resize_axis` for an axis in plain FFT order (DC at 0, negative frequencies last)."""
    n = f.shape[dim]
    if new_n == n:
        return f
    if new_n < n:
        positive = f.narrow(dim, 0, (new_n + 1) // 2)  # 0 … ⌈M/2⌉ − 1
        negative = f.narrow(dim, n - new_n // 2, new_n // 2)  # −⌊M/2⌋ … −1
        if new_n % 2 == 0:  # fold +M/2 onto the new Nyquist bin −M/2
            plus = f.narrow(dim, new_n // 2, 1)
            rest = negative.narrow(dim, 1, new_n // 2 - 1)
            negative = torch.cat([negative.narrow(dim, 0, 1) + plus, rest], dim)
        return torch.cat([positive, negative], dim)
    positive = f.narrow(dim, 0, (n + 1) // 2)
    negative = f.narrow(dim, (n + 1) // 2, n // 2)
    if n % 2 == 0:  # split the old Nyquist bin (index n/2) between +n/2 and −n/2
        half = negative.narrow(dim, 0, 1) / 2
        positive = torch.cat([positive, half], dim)
        negative = torch.cat([half, negative.narrow(dim, 1, n // 2 - 1)], dim)
    gap = new_n - positive.shape[dim] - negative.shape[dim]
    return torch.cat([positive, _zeros_along(f, dim, gap), negative], dim)


def _origin_phase(shape: tuple[int, ...], *, sign: int, device, dtype) -> torch.Tensor:
    """``exp(sign · 2πi Σ_a k_a (n_a//2) / n_a)`` on the plain rfft grid of ``shape``.

    Multiplying a spectrum by it (``sign = +1``) moves the real-space origin from ``n//2`` to
    index 0, as ``ifftshift`` does before a transform; ``sign = −1`` moves it back (``fftshift``
    after the inverse) — one pass over the spectrum instead of copies of the images.
    """
    phase = torch.zeros((), dtype=torch.float64, device=device)
    for axis, n in enumerate(shape):
        last = axis == len(shape) - 1
        k = (
            torch.arange(n // 2 + 1, dtype=torch.float64, device=device)
            if last
            else (torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=device))
        )
        view = [1] * len(shape)
        view[axis] = -1
        phase = phase + (k * (n // 2) / n).reshape(view)
    return torch.polar(torch.ones_like(phase), sign * 2 * math.pi * phase).to(dtype)


def _resize_last_half_axis(f: torch.Tensor, n: int, new_n: int, ndim: int) -> torch.Tensor:
    """Resize the half (rfft) last axis of a real signal's spectrum from ``n`` to ``new_n``.

    The rules of :func:`_resize_axis`, written for the half grid: cropping to an even ``M``
    folds ``F(k, −M/2) = conj F(−k, +M/2)`` (Hermitian symmetry, ``k`` the other axes) onto
    the kept column ``+M/2``; padding from an even ``n`` halves the old Nyquist column, which
    stands for both ``±n/2`` of the full spectrum.
    """
    if new_n == n:
        return f
    if new_n < n:
        out = f[..., : new_n // 2 + 1]
        if new_n % 2 == 0:
            column = f[..., new_n // 2 : new_n // 2 + 1]
            other = tuple(range(-ndim, -1))
            mirrored = column.flip(other).roll([1] * len(other), other) if other else column
            out = torch.cat([out[..., :-1], column + mirrored.conj()], dim=-1)
        return out
    body = f
    if n % 2 == 0:
        body = torch.cat([f[..., :-1], f[..., -1:] / 2], dim=-1)
    return torch.cat([body, _zeros_along(f, -1, new_n // 2 + 1 - body.shape[-1])], dim=-1)


def resize_fourier(x: torch.Tensor, new_shape: tuple[int, ...]) -> torch.Tensor:
    """Resample real images/volumes to a new box by Fourier cropping/padding.

    Parameters
    ----------
    x : Tensor, real, (..., h, w) or (..., d, h, w)
    new_shape : (h', w') or (d', h', w')
        Its length sets the number of transformed axes.

    Returns
    -------
    Tensor, real, (..., *new_shape); mean preserved; new pixel size is
    ``pixel_size * N_i / M_i`` along axis ``i``.

    Notes
    -----
    :math:`y = \\frac{M_{tot}}{N_{tot}}\\,\\mathcal F^{-1}_M[\\mathrm{resize}(\\mathcal F_N x)]`.

    Examples
    --------
    >>> import torch
    >>> resize_fourier(torch.ones(2, 6, 6), (4, 4)).shape
    torch.Size([2, 4, 4])
    """
    if x.is_complex():
        raise ValueError("resize_fourier expects real images/volumes")
    ndim = len(new_shape)
    old_shape = tuple(x.shape[-ndim:])
    new_shape = tuple(int(m) for m in new_shape)
    if x.ndim < ndim or any(m < 1 for m in new_shape):
        raise ValueError(f"resize_fourier: cannot resize {tuple(x.shape)} to {new_shape}")
    # The same numbers as ifftn_centered(resize_spectrum(fftn_centered(x))) with a fraction of
    # the work: a real transform in plain FFT order; the origin N//2 moved to index 0 and back
    # by phase ramps (the Fourier shift theorem) instead of rolling the images.
    dims = tuple(range(-ndim, 0))
    f = torch.fft.rfftn(x, dim=dims)
    f = f * _origin_phase(old_shape, sign=1, device=f.device, dtype=f.dtype)
    f = _resize_last_half_axis(f, old_shape[-1], new_shape[-1], ndim)
    for dim, m in zip(dims[:-1], new_shape[:-1], strict=True):
        f = _resize_axis_fft_order(f, dim, m)
    f = f * _origin_phase(new_shape, sign=-1, device=f.device, dtype=f.dtype)
    scale = math.prod(new_shape) / math.prod(old_shape)
    return torch.fft.irfftn(f, s=new_shape, dim=dims) * scale


def fourier_crop(x: torch.Tensor, new_shape: tuple[int, ...]) -> torch.Tensor:
    """Down-sample (bin) by Fourier cropping to a smaller box; see :func:`resize_fourier`."""
    if any(m > n for m, n in zip(new_shape, x.shape[-len(new_shape) :], strict=True)):
        raise ValueError(
            f"fourier_crop: new_shape {tuple(new_shape)} is larger than "
            f"{tuple(x.shape[-len(new_shape) :])}; use fourier_pad"
        )
    return resize_fourier(x, new_shape)


def fourier_pad(x: torch.Tensor, new_shape: tuple[int, ...]) -> torch.Tensor:
    """Up-sample (sinc-interpolate) by Fourier zero-padding; see :func:`resize_fourier`."""
    if any(m < n for m, n in zip(new_shape, x.shape[-len(new_shape) :], strict=True)):
        raise ValueError(
            f"fourier_pad: new_shape {tuple(new_shape)} is smaller than "
            f"{tuple(x.shape[-len(new_shape) :])}; use fourier_crop"
        )
    return resize_fourier(x, new_shape)


def rescale(
    x: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    new_pixel_size_angstrom: float,
    ndim: int,
) -> tuple[torch.Tensor, float]:
    """Resample images/volumes to (as nearly as the box allows) a new pixel size.

    Parameters
    ----------
    x : Tensor, real, (..., h, w) or (..., d, h, w)
    pixel_size_angstrom, new_pixel_size_angstrom : float
        Current and requested pixel sizes [Å].
    ndim : {2, 3}
        Number of trailing spatial axes.

    Returns
    -------
    y : Tensor, real, (..., *new_box)
        ``new_box_i = round(N_i * pixel_size / new_pixel_size)``; mean preserved.
    actual_pixel_size_angstrom : float
        ``pixel_size * N / new_box`` — differs slightly from the request because boxes are
        integers.

    Raises
    ------
    ValueError
        If rounding gives different pixel sizes along different axes (non-square/cubic box):
        pad or crop to a square/cubic box first.

    Notes
    -----
    The field of view ``N * pixel_size`` is unchanged; see :func:`resize_fourier`.
    """
    if ndim not in (2, 3) or x.ndim < ndim:
        raise ValueError(f"rescale: ndim must be 2 or 3 and <= x.ndim, got ndim={ndim}")
    if pixel_size_angstrom <= 0 or new_pixel_size_angstrom <= 0:
        raise ValueError(
            f"rescale: pixel sizes must be positive, got {pixel_size_angstrom} and "
            f"{new_pixel_size_angstrom}"
        )
    old_shape = tuple(x.shape[-ndim:])
    ratio = pixel_size_angstrom / new_pixel_size_angstrom
    new_shape = tuple(max(1, round(n * ratio)) for n in old_shape)
    actual = [pixel_size_angstrom * n / m for n, m in zip(old_shape, new_shape, strict=True)]
    if max(actual) - min(actual) > 1e-9 * max(actual):
        raise ValueError(
            f"rescale: box {old_shape} rescaled to {new_shape} gives different pixel sizes "
            f"{actual} per axis; use a square/cubic box"
        )
    return resize_fourier(x, new_shape), actual[-1]


def rescaled_box_size(
    box: int, *, pixel_size_angstrom: float, new_pixel_size_angstrom: float
) -> tuple[int, float]:
    """The even box RELION resamples to for a requested pixel size, and the pixel size it gives.

    Parameters
    ----------
    box : int
        Current box ``N`` [px].
    pixel_size_angstrom, new_pixel_size_angstrom : float
        Current and requested pixel sizes [Å].

    Returns
    -------
    new_box : int
        ``M = ROUND(N · pixel / new_pixel)``, then made even (``M − M mod 2``), as
        ``relion_image_handler --rescale_angpix`` does.
    actual_pixel_size_angstrom : float
        ``N · pixel / M`` — the field of view ``N · pixel`` is kept, so the pixel size follows
        the integer box.

    Raises
    ------
    ValueError
        Non-positive sizes, or a box that would shrink below 2 pixels.

    Examples
    --------
    >>> box, pixel = rescaled_box_size(256, pixel_size_angstrom=1.06, new_pixel_size_angstrom=2.5)
    >>> box, round(pixel, 4)
    (108, 2.5126)
    """
    if box < 1 or not pixel_size_angstrom > 0 or not new_pixel_size_angstrom > 0:
        raise ValueError(
            f"rescaled_box_size: need a positive box and pixel sizes, got {box}, "
            f"{pixel_size_angstrom}, {new_pixel_size_angstrom}"
        )
    new_box = math.floor(box * pixel_size_angstrom / new_pixel_size_angstrom + 0.5)
    new_box -= new_box % 2
    if new_box < 2:
        raise ValueError(
            f"rescaled_box_size: {new_pixel_size_angstrom} Å pixels leave less than 2 pixels of "
            f"a {box}-pixel box at {pixel_size_angstrom} Å"
        )
    return new_box, box * pixel_size_angstrom / new_box


def center_window(x: torch.Tensor, new_shape: tuple[int, ...]) -> torch.Tensor:
    """Crop or zero-pad the trailing axes in real space, keeping voxel ``N//2`` at ``M//2``.

    RELION's ``window`` (``relion_image_handler --new_box``): the pixel size and the origin
    stay; the field of view changes.

    Parameters
    ----------
    x : Tensor, (..., *shape)
    new_shape : tuple of int
        New sizes of the last ``len(new_shape)`` axes, each ``>= 1``.

    Returns
    -------
    Tensor, (..., *new_shape)
        ``x`` itself when nothing changes, else a new tensor (zeros where padded).

    Examples
    --------
    >>> v = torch.zeros(4, 4); v[2, 2] = 1.0
    >>> float(center_window(v, (7, 7))[3, 3]), float(center_window(v, (3, 3))[1, 1])
    (1.0, 1.0)
    """
    ndim = len(new_shape)
    old = tuple(x.shape[-ndim:])
    if any(int(m) < 1 for m in new_shape) or x.ndim < ndim:
        raise ValueError(f"center_window: cannot window {tuple(x.shape)} to {tuple(new_shape)}")
    if old == tuple(new_shape):
        return x
    out = x.new_zeros((*x.shape[: x.ndim - ndim], *new_shape))
    src, dst = [], []
    for n, m in zip(old, new_shape, strict=True):
        lo_x = max(0, n // 2 - m // 2)
        lo_o = max(0, m // 2 - n // 2)
        length = min(n - lo_x, m - lo_o)
        src.append(slice(lo_x, lo_x + length))
        dst.append(slice(lo_o, lo_o + length))
    out[(..., *dst)] = x[(..., *src)]
    return out
