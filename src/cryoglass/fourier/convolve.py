"""Convolution of images and volumes via the FFT (convolution theorem).

.. math:: (x * h)(\\mathbf r) = \\sum_{\\mathbf s} x(\\mathbf r - \\mathbf s)\\, h(\\mathbf s)
    \\;\\Longleftrightarrow\\; \\mathcal F[x * h] = \\mathcal F[x]\\,\\mathcal F[h]

The DFT turns products into **circular** convolutions: content pushed past one edge wraps
around to the other.  :func:`convolve` zero-pads both arrays to at least ``N + K - 1`` per axis
(rounded up to a fast FFT size) so that no wrap-around happens — the result equals direct
(linear) convolution.  :func:`circular_convolve` keeps the periodic result (what multiplying
spectra of equal-size arrays, e.g. applying a Fourier filter, does).

Kernel origin: as everywhere in cryoglass, index ``K//2`` of each kernel axis is ``s = 0``, so a
kernel that is 1 at ``K//2`` and 0 elsewhere leaves the input unchanged (``mode="same"``).
For odd ``K`` this is identical to ``scipy.signal.convolve(mode="same")``; for even ``K``
scipy's window is one sample earlier.
"""

from __future__ import annotations

from typing import Literal

import torch

from cryoglass.fourier.fft import irfftn_centered, next_fast_size, rfftn_centered

__all__ = ["convolve", "circular_convolve"]


def _check(x: torch.Tensor, kernel: torch.Tensor, ndim: int, name: str) -> None:
    if ndim not in (1, 2, 3):
        raise ValueError(f"{name}: ndim must be 1, 2 or 3, got {ndim}")
    if x.ndim < ndim or kernel.ndim < ndim:
        raise ValueError(
            f"{name}: x {tuple(x.shape)} and kernel {tuple(kernel.shape)} need >= {ndim} axes"
        )
    if x.device != kernel.device:
        raise ValueError(f"{name}: x is on {x.device} but kernel on {kernel.device}")


def convolve(
    x: torch.Tensor,
    kernel: torch.Tensor,
    *,
    ndim: int,
    mode: Literal["same", "full"] = "same",
) -> torch.Tensor:
    """Linear (non-periodic) convolution of images/volumes with a kernel, via zero-padded FFTs.

    Parameters
    ----------
    x : Tensor, real or complex, (..., *N)
        Images (``ndim=2``), volumes (``ndim=3``) or signals (``ndim=1``).
    kernel : Tensor, (..., *K)
        Any size; origin at index ``K//2``; batch axes broadcast with those of ``x``.
    ndim : {1, 2, 3}
        Number of trailing axes convolved.
    mode : {"same", "full"}
        ``"same"``: output shape ``N`` aligned with ``x`` (origin ``K//2`` of the kernel);
        ``"full"``: output ``N + K - 1``, element ``j`` is ``sum_i x[i] h[j - i]``.

    Returns
    -------
    Tensor, (..., *N) or (..., *(N + K - 1)); dtype the promotion of the inputs.

    Notes
    -----
    Both arrays are zero-padded to ``L >= N + K - 1`` so the circular convolution of the padded
    arrays equals the linear one; cost ``O(L log L)`` instead of ``O(N K)`` for direct summation.
    ``y_same[i] = y_full[i + K//2]``.
    """
    _check(x, kernel, ndim, "convolve")
    if mode not in ("same", "full"):
        raise ValueError(f"convolve: mode must be 'same' or 'full', got {mode!r}")
    dims = tuple(range(-ndim, 0))
    n = x.shape[-ndim:]
    k = kernel.shape[-ndim:]
    full = [a + b - 1 for a, b in zip(n, k, strict=True)]
    padded = [next_fast_size(m) for m in full]
    if x.is_complex() or kernel.is_complex():
        y = torch.fft.ifftn(
            torch.fft.fftn(x, s=padded, dim=dims) * torch.fft.fftn(kernel, s=padded, dim=dims),
            dim=dims,
        )
    else:
        y = torch.fft.irfftn(
            torch.fft.rfftn(x, s=padded, dim=dims) * torch.fft.rfftn(kernel, s=padded, dim=dims),
            s=padded,
            dim=dims,
        )
    starts = [0] * ndim if mode == "full" else [b // 2 for b in k]
    sizes = full if mode == "full" else list(n)
    for dim, start, size in zip(dims, starts, sizes, strict=True):
        y = y.narrow(dim, start, size)
    return y.to(torch.result_type(x, kernel))


def circular_convolve(x: torch.Tensor, kernel: torch.Tensor, *, ndim: int) -> torch.Tensor:
    """Periodic convolution of real images/volumes with an equal-size kernel (origin ``N//2``).

    Parameters
    ----------
    x : Tensor, real, (..., *N)
    kernel : Tensor, real, (..., *N)
        Same trailing shape as ``x``; origin at index ``N//2``; batch axes broadcast.
    ndim : {1, 2, 3}

    Returns
    -------
    Tensor, real, broadcast batch shape + ``N``:
    :math:`y[\\mathbf r] = \\sum_{\\mathbf s} x[(\\mathbf r-\\mathbf s) \\bmod N]\\,h[\\mathbf s]`.

    Notes
    -----
    ``irfft_c(rfft_c(x) * rfft_c(h))`` with centred transforms; this is exactly what
    multiplying a spectrum by a filter does, wrap-around included.
    """
    _check(x, kernel, ndim, "circular_convolve")
    if x.is_complex() or kernel.is_complex():
        raise ValueError("circular_convolve expects real x and kernel")
    if x.shape[-ndim:] != kernel.shape[-ndim:]:
        raise ValueError(
            f"circular_convolve: kernel trailing shape {tuple(kernel.shape[-ndim:])} must equal "
            f"x's {tuple(x.shape[-ndim:])}; use convolve for smaller kernels"
        )
    f = rfftn_centered(x, ndim=ndim) * rfftn_centered(kernel, ndim=ndim)
    return irfftn_centered(f, ndim=ndim, last_size=x.shape[-1]).to(torch.result_type(x, kernel))
