r"""Detector response: MTF and DQE, parametrised (counting camera) or from a table.

Frequencies are in units of the detector Nyquist frequency, ``ω = k / k_Ny = 2 k·pixel``
(``ω = 1`` at Nyquist), or, for tables, in RELION's 1/pixel (``rlnResolutionInversePixel``,
0…0.5).  Curves are returned on a 2D Fourier grid in the same layout as
:func:`cryoglass.ctf.ctf_2d`: rfft half-plane (default) or full grid, centred (default) or plain
FFT order.

Counting-detector model
-----------------------
An electron counted at the pixel it lands in is blurred by the square pixel aperture only, so
the MTF is the pixel's transfer function, while counting resets the noise to white (Poisson
per pixel, NTF = 1).  Hence the ideal counting detector (McMullan et al. 2014) has

.. math:: \mathrm{MTF}(\omega_x, \omega_y) = \mathrm{sinc}\frac{\pi\omega_x}{2}\,
          \mathrm{sinc}\frac{\pi\omega_y}{2}, \qquad
          \mathrm{DQE}(\omega) = \mathrm{DQE}(0)\, \mathrm{MTF}(\omega)^2

(``sinc x = sin x / x``; ``MTF = 2/π ≈ 0.64`` and ``DQE = 0.41·DQE(0)`` at Nyquist along an
axis).  Real counting cameras add a little charge spread; a Gaussian point-spread of standard
deviation ``s`` pixels multiplies the MTF by ``exp(−π² s² ω² / 2)``, the ``charge_spread_px``
parameter.  The square aperture is *separable* (a product over x and y), not radial: the
familiar 1D curve is the profile along an axis, and the diagonal falls off faster.
``separable=False`` uses the radial ``sinc(π|ω|/2)`` instead, which is what applying a 1D
curve "in 2D by radius" amounts to (a question of the forward-model lesson).

Applying the DQE
----------------
With white noise added after the detector, filtering the *signal* (the image minus its mean)
by ``√DQE(ω)`` makes the spectral SNR ``DQE(ω)`` times that of a perfect detector, which is the
definition of the DQE: :func:`apply_dqe`.  The mean is kept, so a later Poisson step at a dose
still has the right number of electrons.  :func:`apply_mtf` filters the whole image by the MTF
(signal and, if already present, noise).

References
----------
McMullan, G., Faruqi, A. R., Clare, D. & Henderson, R. (2014). Comparison of optimal performance
at 300 keV of three direct electron detectors for use in low dose electron microscopy.
Ultramicroscopy 147, 156-163. https://doi.org/10.1016/j.ultramic.2014.08.002

Ruskin, A. I., Yu, Z. & Grigorieff, N. (2013). Quantitative characterization of electron
detectors for transmission electron microscopy. J. Struct. Biol. 184, 385-393.
https://doi.org/10.1016/j.jsb.2013.10.016

Vulović, M. et al. (2013). J. Struct. Biol. 183, 19-32 (eq. 7).
https://doi.org/10.1016/j.jsb.2013.05.008
"""

from __future__ import annotations

import math

import torch

from cryoglass.fourier.fft import irfft2_centered, rfft2_centered

__all__ = [
    "nyquist_frequency_grid",
    "counting_detector_mtf",
    "counting_detector_dqe",
    "tabulated_detector_curve",
    "apply_mtf",
    "apply_dqe",
]


def nyquist_frequency_grid(
    image_size: int | tuple[int, int],
    *,
    rfft: bool = True,
    centered: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Frequencies ``(ω_x, ω_y)`` in units of Nyquist on a 2D Fourier grid.

    Returns
    -------
    Tensor, shape (h, w//2 + 1, 2) or (h, w, 2)
        ``ω = 2·k·pixel`` ∈ [−1, 1]; layout as :func:`cryoglass.ctf.ctf_2d` with the same flags.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    wy = torch.fft.fftfreq(h, device=device, dtype=dtype) * 2
    if rfft:
        wx = torch.fft.rfftfreq(w, device=device, dtype=dtype) * 2
    else:
        wx = torch.fft.fftfreq(w, device=device, dtype=dtype) * 2
    if centered:
        wy = torch.fft.fftshift(wy)
        wx = wx if rfft else torch.fft.fftshift(wx)
    grid_y, grid_x = torch.meshgrid(wy, wx, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def _sinc(x: torch.Tensor) -> torch.Tensor:
    """sin(x)/x with the limit 1 at 0."""
    return torch.sinc(x / math.pi)


def counting_detector_mtf(
    image_size: int | tuple[int, int],
    *,
    charge_spread_px: float = 0.0,
    separable: bool = True,
    rfft: bool = True,
    centered: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""MTF of a counting detector: square-pixel aperture times an optional Gaussian spread.

    Parameters
    ----------
    image_size : int or (h, w)
    charge_spread_px : float
        Standard deviation of a Gaussian point-spread [pixels] (0: ideal counting).
    separable : bool
        ``True`` (default): ``sinc(πω_x/2)·sinc(πω_y/2)`` (the square pixel).  ``False``:
        ``sinc(π|ω|/2)`` (a 1D curve applied radially).
    rfft, centered, device, dtype
        Grid layout, as :func:`nyquist_frequency_grid`.

    Returns
    -------
    Tensor, shape (h, w//2 + 1) or (h, w)
        Values in [0, 1]; 1 at DC.

    Notes
    -----
    .. math:: \mathrm{MTF}(\omega) = \mathrm{sinc}\tfrac{\pi\omega_x}{2}\,
              \mathrm{sinc}\tfrac{\pi\omega_y}{2}\; e^{-\pi^2 s^2 |\omega|^2 / 2}

    References
    ----------
    McMullan et al. (2014), https://doi.org/10.1016/j.ultramic.2014.08.002
    """
    omega = nyquist_frequency_grid(
        image_size, rfft=rfft, centered=centered, device=device, dtype=dtype
    )
    w2 = (omega * omega).sum(dim=-1)
    if separable:
        mtf = _sinc(0.5 * math.pi * omega[..., 0]) * _sinc(0.5 * math.pi * omega[..., 1])
    else:
        mtf = _sinc(0.5 * math.pi * torch.sqrt(w2))
    if charge_spread_px > 0:
        mtf = mtf * torch.exp(-0.5 * math.pi**2 * charge_spread_px**2 * w2)
    return mtf


def counting_detector_dqe(
    image_size: int | tuple[int, int],
    *,
    dqe_zero: float = 0.8,
    charge_spread_px: float = 0.0,
    separable: bool = True,
    rfft: bool = True,
    centered: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""DQE of the counting-detector model, ``DQE(0)·MTF(ω)²`` (white noise, NTF = 1).

    Parameters
    ----------
    dqe_zero : float
        ``DQE(0)`` in (0, 1] (≈ 0.8 for a K2/K3/Falcon 4 in counting mode at 300 kV).
    other parameters
        As :func:`counting_detector_mtf`.

    Returns
    -------
    Tensor, same shape as the MTF.

    References
    ----------
    McMullan et al. (2014), https://doi.org/10.1016/j.ultramic.2014.08.002
    """
    if not 0.0 < dqe_zero <= 1.0:
        raise ValueError(f"dqe_zero must be in (0, 1], got {dqe_zero}")
    mtf = counting_detector_mtf(
        image_size,
        charge_spread_px=charge_spread_px,
        separable=separable,
        rfft=rfft,
        centered=centered,
        device=device,
        dtype=dtype,
    )
    return dqe_zero * mtf * mtf


def tabulated_detector_curve(
    frequency_inverse_pixel: torch.Tensor,
    values: torch.Tensor,
    *,
    image_size: int | tuple[int, int],
    rfft: bool = True,
    centered: bool = True,
) -> torch.Tensor:
    """A 1D MTF or DQE table interpolated radially onto a 2D Fourier grid.

    Parameters
    ----------
    frequency_inverse_pixel : Tensor, shape (n,)
        Increasing frequencies [1/pixel], as RELION's ``rlnResolutionInversePixel`` (0…0.5).
    values : Tensor, shape (n,)
        The curve (``rlnMtfValue`` or a DQE).  ``io/`` reads RELION's mtf star files.
    image_size, rfft, centered
        Grid layout, as :func:`nyquist_frequency_grid`.

    Returns
    -------
    Tensor, shape (h, w//2 + 1) or (h, w)
        Linear interpolation in ``|k|`` [1/pixel]; constant beyond the table's ends (the
        corners beyond Nyquist take the last value).
    """
    f = torch.as_tensor(frequency_inverse_pixel)
    v = torch.as_tensor(values).to(f.dtype)
    if f.ndim != 1 or f.shape != v.shape or f.numel() < 2:
        raise ValueError(
            "frequency_inverse_pixel and values must be 1D of the same length >= 2, "
            f"got {tuple(f.shape)} and {tuple(v.shape)}"
        )
    if not bool((f[1:] > f[:-1]).all()):
        raise ValueError("frequency_inverse_pixel must be strictly increasing")
    omega = nyquist_frequency_grid(
        image_size, rfft=rfft, centered=centered, device=f.device, dtype=f.dtype
    )
    k = 0.5 * torch.sqrt((omega * omega).sum(dim=-1)).reshape(-1)  # 1/pixel
    k = k.clamp(f[0], f[-1])
    upper = torch.searchsorted(f, k).clamp(1, f.numel() - 1)
    lower = upper - 1
    t = (k - f[lower]) / (f[upper] - f[lower])
    return (v[lower] + t * (v[upper] - v[lower])).reshape(omega.shape[:-1])


def _check_curve(images: torch.Tensor, curve: torch.Tensor, name: str) -> None:
    h, w = images.shape[-2:]
    if curve.shape[-2:] != (h, w // 2 + 1):
        raise ValueError(
            f"{name} must be on the centred rfft grid of the images, shape (..., {h}, "
            f"{w // 2 + 1}); got {tuple(curve.shape)}"
        )


def apply_mtf(images: torch.Tensor, mtf: torch.Tensor) -> torch.Tensor:
    """Filter images by an MTF: ``F⁻¹[MTF · F[image]]``.

    Parameters
    ----------
    images : Tensor, shape (..., h, w)
    mtf : Tensor, shape (..., h, w//2 + 1)
        On the centred rfft grid (``rfft=True, centered=True``, the defaults here).

    Returns
    -------
    Tensor, shape (..., h, w)
    """
    _check_curve(images, mtf, "mtf")
    w = images.shape[-1]
    return irfft2_centered(rfft2_centered(images) * mtf.to(images.dtype), width=w)


def apply_dqe(images: torch.Tensor, dqe: torch.Tensor) -> torch.Tensor:
    r"""Weight the signal by ``√DQE(ω)`` about the image mean (before noise is added).

    Parameters
    ----------
    images : Tensor, shape (..., h, w)
        Noise-free images (e.g. expected counts per pixel).
    dqe : Tensor, shape (..., h, w//2 + 1)
        DQE on the centred rfft grid, values in [0, 1].

    Returns
    -------
    Tensor, shape (..., h, w)
        ``mean + F⁻¹[√DQE · F[image − mean]]``: adding white noise of the ideal-detector
        variance afterwards gives spectral SNR ``DQE(ω)·SNR_ideal(ω)``.

    Notes
    -----
    ``SNR_out(ω) = |√DQE·S(ω)|² / N = DQE(ω)·|S(ω)|² / N`` (Vulović et al. 2013, eq. 7, with
    the noise made white by counting).
    """
    _check_curve(images, dqe, "dqe")
    if bool((dqe < 0).any()) or bool((dqe > 1 + 1e-6).any()):
        raise ValueError("dqe values must lie in [0, 1]")
    mean = images.mean(dim=(-2, -1), keepdim=True)
    w = images.shape[-1]
    weight = torch.sqrt(dqe.to(images.dtype))
    return mean + irfft2_centered(rfft2_centered(images - mean) * weight, width=w)
