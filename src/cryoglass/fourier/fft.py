"""Centred discrete Fourier transforms.

Convention (docs/conventions.md): the real-space origin is the pixel at index ``N//2`` of every
axis, and centred transforms put the zero frequency (DC) at index ``N//2`` too:

.. math:: \\hat f = \\mathrm{fftshift}\\big(\\mathrm{FFT}(\\mathrm{ifftshift}(f))\\big)

so that a real, centro-symmetric object has a real transform.  The ``rfft`` variants keep the
half-plane ``k_x >= 0`` along the last axis (length ``N//2 + 1``) and centre the other axes.

All transforms act on the trailing ``ndim`` axes; leading axes are batch axes.  ``norm``
follows :func:`torch.fft.fftn` (``"backward"``: no scaling forward, ``1/N`` inverse).
"""

from __future__ import annotations

import torch

__all__ = [
    "fftn_centered",
    "ifftn_centered",
    "rfftn_centered",
    "irfftn_centered",
    "fft2_centered",
    "ifft2_centered",
    "fft3_centered",
    "ifft3_centered",
    "rfft2_centered",
    "irfft2_centered",
    "rfft3_centered",
    "irfft3_centered",
    "next_fast_size",
]


def _dims(ndim: int) -> tuple[int, ...]:
    return tuple(range(-ndim, 0))


def fftn_centered(x: torch.Tensor, *, ndim: int, norm: str = "backward") -> torch.Tensor:
    """Centred FFT over the last ``ndim`` axes (origin and DC at index N//2)."""
    dims = _dims(ndim)
    return torch.fft.fftshift(
        torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims, norm=norm), dim=dims
    )


def ifftn_centered(x: torch.Tensor, *, ndim: int, norm: str = "backward") -> torch.Tensor:
    """Inverse of :func:`fftn_centered` (complex output)."""
    dims = _dims(ndim)
    return torch.fft.fftshift(
        torch.fft.ifftn(torch.fft.ifftshift(x, dim=dims), dim=dims, norm=norm), dim=dims
    )


def rfftn_centered(x: torch.Tensor, *, ndim: int, norm: str = "backward") -> torch.Tensor:
    """Centred real FFT over the last ``ndim`` axes.

    Output shape ``(..., n_1, ..., n_{ndim-1}, n_last//2 + 1)``: the half-space ``k_x >= 0``;
    all other axes are centred (DC at index ``n//2``) and the last starts at DC (index 0).
    """
    dims = _dims(ndim)
    f = torch.fft.rfftn(torch.fft.ifftshift(x, dim=dims), dim=dims, norm=norm)
    return torch.fft.fftshift(f, dim=dims[:-1]) if ndim > 1 else f


def irfftn_centered(
    x: torch.Tensor, *, ndim: int, last_size: int, norm: str = "backward"
) -> torch.Tensor:
    """Inverse of :func:`rfftn_centered`; ``last_size``: real-space length of the last axis."""
    dims = _dims(ndim)
    if ndim > 1:
        x = torch.fft.ifftshift(x, dim=dims[:-1])
    shape = list(x.shape[-ndim:-1]) + [last_size]
    f = torch.fft.irfftn(x, s=shape, dim=dims, norm=norm)
    return torch.fft.fftshift(f, dim=dims)


def fft2_centered(x: torch.Tensor, *, norm: str = "backward") -> torch.Tensor:
    """Centred 2D FFT of images ``(..., h, w)``."""
    return fftn_centered(x, ndim=2, norm=norm)


def ifft2_centered(x: torch.Tensor, *, norm: str = "backward") -> torch.Tensor:
    """Inverse centred 2D FFT ``(..., h, w)`` (complex output; take ``.real`` for images)."""
    return ifftn_centered(x, ndim=2, norm=norm)


def fft3_centered(x: torch.Tensor, *, norm: str = "backward") -> torch.Tensor:
    """Centred 3D FFT of volumes ``(..., d, h, w)``."""
    return fftn_centered(x, ndim=3, norm=norm)


def ifft3_centered(x: torch.Tensor, *, norm: str = "backward") -> torch.Tensor:
    """Inverse centred 3D FFT ``(..., d, h, w)`` (complex output)."""
    return ifftn_centered(x, ndim=3, norm=norm)


def rfft2_centered(x: torch.Tensor, *, norm: str = "backward") -> torch.Tensor:
    """Centred 2D real FFT: ``(..., h, w)`` → ``(..., h, w//2 + 1)``."""
    return rfftn_centered(x, ndim=2, norm=norm)


def irfft2_centered(x: torch.Tensor, *, width: int, norm: str = "backward") -> torch.Tensor:
    """Inverse of :func:`rfft2_centered`; ``width`` is the real-space image width."""
    return irfftn_centered(x, ndim=2, last_size=width, norm=norm)


def rfft3_centered(x: torch.Tensor, *, norm: str = "backward") -> torch.Tensor:
    """Centred 3D real FFT: ``(..., d, h, w)`` → ``(..., d, h, w//2 + 1)``."""
    return rfftn_centered(x, ndim=3, norm=norm)


def irfft3_centered(x: torch.Tensor, *, width: int, norm: str = "backward") -> torch.Tensor:
    """Inverse of :func:`rfft3_centered`; ``width`` is the real-space width of the volume."""
    return irfftn_centered(x, ndim=3, last_size=width, norm=norm)


def next_fast_size(n: int) -> int:
    """Smallest integer ``>= n`` whose only prime factors are 2, 3, 5 and 7.

    FFT libraries (pocketfft on CPU, cuFFT on GPU) are fastest for such "smooth" lengths; a
    prime length can be several times slower.  Pad to this size when the exact length is free
    (e.g. the zero padding of a linear convolution).
    """
    if n < 1:
        raise ValueError(f"next_fast_size: n must be >= 1, got {n}")
    m = n
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1
