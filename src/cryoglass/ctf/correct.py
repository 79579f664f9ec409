r"""Apply or correct the CTF of images: multiply, phase flip, Wiener filter.

All three work on the image's own Fourier grid (no padding, as ``relion_project --ctf`` does):
``image → rfft2 → × filter(k) → irfft2``.  The filters are real and even in ``k``, so the result
does not depend on where the real-space origin is; the FFT makes the convolution circular
(information delocalised past an edge wraps around to the opposite edge).  On the Nyquist row
and column of even-sized images ``+k`` and ``−k`` are the same sample, so an astigmatic filter
cannot act there exactly on a real image; those few coefficients follow ``torch.fft.irfft2``.
"""

from __future__ import annotations

import torch

from cryoglass.ctf.ctf import ctf_2d
from cryoglass.ctf.params import CTFParams

__all__ = ["multiply_ctf", "phase_flip", "wiener_filter"]


def _check_images(images: torch.Tensor) -> None:
    if images.ndim < 2 or images.is_complex() or not images.is_floating_point():
        raise ValueError(
            f"images must be a real floating tensor of shape (..., h, w), got {images.dtype} "
            f"{tuple(images.shape)}"
        )


def _filter(images: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
    """irfft2(rfft2(images) · transfer) on the image grid (transfer in plain FFT order)."""
    h, w = images.shape[-2:]
    spectrum = torch.fft.rfft2(images) * transfer
    return torch.fft.irfft2(spectrum, s=(h, w))


def _ctf_for(images: torch.Tensor, params: CTFParams, pixel_size_angstrom: float) -> torch.Tensor:
    return ctf_2d(
        params,
        image_size=tuple(images.shape[-2:]),
        pixel_size_angstrom=pixel_size_angstrom,
        rfft=True,
        centered=False,
        device=images.device,
        dtype=images.dtype,
    )


def multiply_ctf(
    images: torch.Tensor, params: CTFParams, *, pixel_size_angstrom: float
) -> torch.Tensor:
    """Apply the CTF to images (the forward model ``I = F⁻¹[CTF · F[image]]``).

    Parameters
    ----------
    images : Tensor, shape (*batch, h, w)
        Real images (e.g. projections).
    params : CTFParams
        Batch shape broadcastable with ``batch``.
    pixel_size_angstrom : float
        Pixel size [Å].

    Returns
    -------
    Tensor, shape (*broadcast(batch, params.batch_shape), h, w)

    Notes
    -----
    The CTF is evaluated on the image's own rfft grid, without padding, as
    ``relion_project --ctf`` does; see :func:`cryoglass.ctf.ctf_2d` for the formula.
    """
    _check_images(images)
    return _filter(images, _ctf_for(images, params, pixel_size_angstrom))


def phase_flip(
    images: torch.Tensor, params: CTFParams, *, pixel_size_angstrom: float
) -> torch.Tensor:
    r"""Flip the phases of the frequencies where the CTF is negative.

    Parameters
    ----------
    images : Tensor, shape (*batch, h, w)
    params : CTFParams
        Batch shape broadcastable with ``batch``.
    pixel_size_angstrom : float
        Pixel size [Å].

    Returns
    -------
    Tensor, shape (*broadcast(batch, params.batch_shape), h, w)

    Notes
    -----
    .. math:: \hat I'(\mathbf k) = \operatorname{sign}(\mathrm{CTF}(\mathbf k))\,\hat I(\mathbf k)

    with ``sign(0) = +1``.  Amplitudes are untouched; only the contrast reversal is undone.
    """
    _check_images(images)
    ctf = _ctf_for(images, params, pixel_size_angstrom)
    sign = torch.where(ctf < 0, -1.0, 1.0).to(ctf.dtype)
    return _filter(images, sign)


def wiener_filter(
    images: torch.Tensor,
    params: CTFParams,
    *,
    pixel_size_angstrom: float,
    snr: float | None = None,
    wiener_constant: float | None = None,
) -> torch.Tensor:
    r"""CTF correction by a Wiener filter ``CTF / (CTF² + ε)``.

    Parameters
    ----------
    images : Tensor, shape (*batch, h, w)
    params : CTFParams
        Batch shape broadcastable with ``batch``.
    pixel_size_angstrom : float
        Pixel size [Å].
    snr : float, optional
        Spectral signal-to-noise ratio assumed at every frequency; ``ε = 1/snr``.
    wiener_constant : float, optional
        ``ε`` directly.  Give ``snr`` or ``wiener_constant``, not both; default ``ε = 0.1``.

    Returns
    -------
    Tensor, shape (*broadcast(batch, params.batch_shape), h, w)

    Notes
    -----
    .. math:: \hat I'(\mathbf k) = \frac{\mathrm{CTF}(\mathbf k)}{\mathrm{CTF}(\mathbf k)^2
              + \varepsilon}\,\hat I(\mathbf k)

    The minimum-mean-square-error estimate of the object for a white signal of power ``S``
    and white noise of power ``N`` has ``ε = N/S = 1/SNR``.  Near CTF zeros the filter goes
    to zero instead of blowing up (compare plain division ``1/CTF``).

    References
    ----------
    Penczek, P. A. (2010). Image restoration in cryo-electron microscopy. Methods Enzymol. 482,
    35-72. https://doi.org/10.1016/S0076-6879(10)82002-6
    """
    _check_images(images)
    if snr is not None and wiener_constant is not None:
        raise ValueError("give either snr or wiener_constant, not both")
    if snr is not None:
        if snr <= 0:
            raise ValueError(f"snr must be > 0, got {snr}")
        wiener_constant = 1.0 / snr
    epsilon = 0.1 if wiener_constant is None else wiener_constant
    if epsilon <= 0:
        raise ValueError(f"wiener_constant must be > 0, got {epsilon}")
    ctf = _ctf_for(images, params, pixel_size_angstrom)
    return _filter(images, ctf / (ctf * ctf + epsilon))
