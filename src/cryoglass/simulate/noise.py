r"""Noise for simulated images: Gaussian noise at a target SNR, and Poisson shot noise at a dose.

Definition of SNR used everywhere in cryoglass
----------------------------------------------
For noise-free images ``s_i`` (CTF applied) and a particle mask ``M`` (a set of pixels),

.. math:: \mathrm{SNR} = \frac{\tfrac{1}{B}\sum_i \operatorname{Var}_{p \in M}\, s_i(p)}
                              {\sigma_n^2},

the mean over images of the variance of the clean signal *inside the mask*, divided by the
variance of the (white, zero-mean) noise.  The mask is either a centred circle of a given
diameter (:func:`circular_mask`; the default in datasets is the particle's diameter) or the
pixels where the noise-free CTF-free projection exceeds a small fraction of its maximum
(:func:`threshold_mask`).  Because the variance is taken inside the particle, not over the
whole box, the SNR does not depend on how much empty background the box holds.  (Other
programs use the whole box, or the signal power over a frequency band: quote the definition
when comparing numbers.)

Shot noise
----------
With a dose ``D`` [e⁻/Å²] and pixel area ``a = p²`` [Å²], a pixel of relative intensity
``1 + c`` (``c`` the image contrast) receives ``N ~ Poisson(D a (1 + c))`` electrons.  The
normalised image ``N / (D a) − 1`` is an unbiased estimate of ``c`` with variance
``(1 + c) / (D a)``.

References
----------
Baxter, W. T., Grassucci, R. A., Gao, H. & Frank, J. (2009). Determination of signal-to-noise
ratios and spectral SNRs in cryo-EM low-dose imaging of molecules. J. Struct. Biol. 166, 126-132.
https://doi.org/10.1016/j.jsb.2009.02.012
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "add_gaussian_noise",
    "add_shot_noise",
    "circular_mask",
    "electron_counts",
    "measured_snr",
    "noise_std_for_snr",
    "signal_variance",
    "threshold_mask",
]


def circular_mask(
    box: int, *, diameter_px: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """A centred disc: pixels whose distance from (N//2, N//2) is ≤ diameter/2.

    Parameters
    ----------
    box : int
        Image size N [pixels].
    diameter_px : float
        Diameter of the disc [pixels] (> 0).
    device : optional

    Returns
    -------
    Tensor, bool, shape (N, N)
    """
    if not diameter_px > 0:
        raise ValueError(f"diameter_px must be > 0, got {diameter_px}")
    axis = torch.arange(box, device=device, dtype=torch.float64) - box // 2
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    return r2 <= (diameter_px / 2) ** 2


def threshold_mask(projections: torch.Tensor, *, fraction: float = 0.05) -> torch.Tensor:
    """Pixels where a noise-free projection exceeds ``fraction`` of its own maximum.

    Parameters
    ----------
    projections : Tensor, shape (..., h, w)
        Noise-free projections *without* CTF (the CTF spreads the particle over the box).
    fraction : float
        Threshold relative to each image's maximum, in (0, 1).

    Returns
    -------
    Tensor, bool, shape (..., h, w)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    peak = projections.amax(dim=(-2, -1), keepdim=True)
    return projections > fraction * peak


def signal_variance(clean: torch.Tensor, *, mask: torch.Tensor) -> torch.Tensor:
    """Variance of each clean image over the pixels of the mask.

    Parameters
    ----------
    clean : Tensor, shape (..., h, w)
        Noise-free images.
    mask : Tensor, bool, shape broadcastable to (..., h, w)
        At least two pixels per image.

    Returns
    -------
    Tensor, shape (...)
        ``Var_{p∈M} s(p)`` (population variance, divided by the pixel count).
    """
    weights = mask.to(clean.dtype).expand_as(clean)
    count = weights.sum(dim=(-2, -1))
    if bool((count < 2).any()):
        raise ValueError("the mask must hold at least 2 pixels per image")
    mean = (clean * weights).sum(dim=(-2, -1)) / count
    centred = (clean - mean[..., None, None]) * weights
    return (centred**2).sum(dim=(-2, -1)) / count


def noise_std_for_snr(clean: torch.Tensor, *, snr: float, mask: torch.Tensor) -> float:
    """Noise standard deviation σ_n that gives ``snr`` for these clean images (module docstring).

    Parameters
    ----------
    clean : Tensor, shape (B, h, w)
        Representative noise-free images (CTF applied).
    snr : float
        Target SNR (> 0).
    mask : Tensor, bool, broadcastable to (B, h, w)

    Returns
    -------
    float
        ``σ_n = √(mean_i Var_M(s_i) / SNR)``.
    """
    if not snr > 0 or not math.isfinite(snr):
        raise ValueError(f"snr must be a positive number, got {snr}")
    power = float(signal_variance(clean, mask=mask).mean())
    if not power > 0:
        raise ValueError("the clean images are constant inside the mask: SNR is undefined")
    return math.sqrt(power / snr)


def measured_snr(clean: torch.Tensor, noisy: torch.Tensor, *, mask: torch.Tensor) -> float:
    """SNR of noisy images against their clean versions, with the module's definition.

    Parameters
    ----------
    clean, noisy : Tensor, shape (B, h, w)
    mask : Tensor, bool, broadcastable to (B, h, w)

    Returns
    -------
    float
        ``mean_i Var_M(s_i) / Var(noisy − clean)`` (noise variance over all pixels).
    """
    noise = noisy - clean
    return float(signal_variance(clean, mask=mask).mean() / noise.var(unbiased=False))


def add_gaussian_noise(
    images: torch.Tensor, *, noise_std: float, generator: torch.Generator
) -> torch.Tensor:
    """``images + σ_n · 𝒩(0, 1)``: white Gaussian noise, a new tensor.

    Parameters
    ----------
    images : Tensor, shape (..., h, w)
    noise_std : float
        σ_n [image units] (e.g. from :func:`noise_std_for_snr`).
    generator : torch.Generator
        On the images' device.

    Returns
    -------
    Tensor, same shape, device and dtype as ``images``.
    """
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return images + noise_std * noise


def electron_counts(
    contrast: torch.Tensor,
    *,
    dose_e_per_a2: float,
    pixel_size_angstrom: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Electron counts per pixel: ``Poisson(D · p² · (1 + c))``.

    Parameters
    ----------
    contrast : Tensor, shape (..., h, w)
        Relative intensity change ``c`` (intensity = 1 + c; values below −1 count as 0).
    dose_e_per_a2 : float
        Dose D [e⁻/Å²] (> 0).
    pixel_size_angstrom : float
        Pixel size p [Å].
    generator : torch.Generator
        On the contrast's device.

    Returns
    -------
    Tensor, same shape/dtype: integer-valued counts.
    """
    if not dose_e_per_a2 > 0 or not pixel_size_angstrom > 0:
        raise ValueError(
            f"dose_e_per_a2 and pixel_size_angstrom must be > 0, got {dose_e_per_a2}, "
            f"{pixel_size_angstrom}"
        )
    rate = dose_e_per_a2 * pixel_size_angstrom**2 * (1.0 + contrast).clamp_min(0.0)
    return torch.poisson(rate, generator=generator)


def add_shot_noise(
    contrast: torch.Tensor,
    *,
    dose_e_per_a2: float,
    pixel_size_angstrom: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Shot-noisy contrast: ``N / (D p²) − 1`` with ``N`` from :func:`electron_counts`.

    Parameters
    ----------
    contrast : Tensor, shape (..., h, w)
        Noise-free contrast ``c``.
    dose_e_per_a2, pixel_size_angstrom : float
    generator : torch.Generator

    Returns
    -------
    Tensor, same shape
        Unbiased estimate of ``c`` with per-pixel variance ``(1 + c)/(D p²)``.
    """
    counts = electron_counts(
        contrast,
        dose_e_per_a2=dose_e_per_a2,
        pixel_size_angstrom=pixel_size_angstrom,
        generator=generator,
    )
    return counts / (dose_e_per_a2 * pixel_size_angstrom**2) - 1.0
