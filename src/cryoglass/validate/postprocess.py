"""Map post-processing: Guinier plot, automatic B-factor, FSC weighting, sharpening.

What a B-factor models
----------------------
Everything that smears a map by a roughly Gaussian amount — beam-induced motion, ice and
charging, alignment errors, detector MTF, conformational spread — multiplies its amplitudes by
an envelope :math:`\\exp(-B k^2/4)` (``k = 1/d`` in 1/Å, ``B`` in Å²; a Gaussian blur of
standard deviation ``σ`` [Å] is ``B = 8π²σ²``).  On a Guinier plot, :math:`\\ln|F|` against
:math:`k^2`, that envelope is a straight line of slope :math:`-B/4`.  Sharpening multiplies by
:math:`\\exp(-B_s k^2/4)` with the *negative* :math:`B_s = 4 \\times` slope fitted at
intermediate-to-high resolution (10 Å to the final resolution), which flattens the fall-off;
noise is kept in check by the FSC weight :math:`\\sqrt{2\\,\\mathrm{FSC}/(1+\\mathrm{FSC})}`
per shell and a low-pass at the final resolution.  Positive ``B`` blurs.  Signs follow
RELION: the reported B-factor is negative when the map is sharpened.

References
----------
Rosenthal & Henderson (2003) J. Mol. Biol. 333, 721–745, doi:10.1016/j.jmb.2003.07.013.
Chen et al. (2013) Ultramicroscopy 135, 24–35, doi:10.1016/j.ultramic.2013.06.004.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryoglass.fourier.fft import irfftn_centered, rfftn_centered
from cryoglass.fourier.filters import bfactor_filter, lowpass_filter
from cryoglass.fourier.radial import shell_frequencies
from cryoglass.validate.fsc import (
    _shell_sums,
    fourier_shell_correlation,
    fsc_weight,
    masked_fsc,
    resolution_at_threshold,
    shell_values_to_grid,
)

__all__ = [
    "guinier_rows",
    "BFactorFit",
    "PostprocessResult",
    "guinier_plot",
    "fit_bfactor",
    "fsc_weighting_filter",
    "sharpen",
    "postprocess",
]


# ----------------------------------------------------------------------------- Guinier, B
def guinier_plot(
    volume: torch.Tensor, *, pixel_size_angstrom: float, ndim: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Guinier plot data: log of the shell-averaged Fourier amplitude against ``k²``.

    Parameters
    ----------
    volume : Tensor, real, (..., d, h, w)
    pixel_size_angstrom : float
    ndim : {2, 3}

    Returns
    -------
    k2 : Tensor, float64, (n_shells,)
        :math:`k_i^2 = (i / (w \\cdot \\text{pixel}))^2` [1/Å²], shells 0 .. ``w//2``.
    ln_amplitude : Tensor, float64, (..., n_shells)
        :math:`\\ln \\langle |F(k)| \\rangle_{k \\in S_i}` of the unscaled DFT (``-inf`` for a
        shell with zero amplitude).
    """
    shape = tuple(volume.shape[-ndim:])
    n_shells = shape[-1] // 2 + 1
    f = rfftn_centered(volume.to(torch.float64), ndim=ndim).abs()
    ones = torch.ones_like(f[(0,) * (f.ndim - ndim)])
    sums = _shell_sums(f, shape, rfft=True, n_shells=n_shells)
    counts = _shell_sums(ones, shape, rfft=True, n_shells=n_shells)
    k = shell_frequencies(
        n_shells,
        box_size=shape[-1],
        pixel_size_angstrom=pixel_size_angstrom,
        device=volume.device,
        dtype=torch.float64,
    )
    return k.square(), torch.log(sums / counts.clamp_min(1))


@dataclass(frozen=True)
class BFactorFit:
    """Straight-line fit of a Guinier plot (tensors of the batch shape ``(...)``).

    Attributes
    ----------
    bfactor_a2 : Tensor
        ``4 * slope`` [Å²]: negative for a map whose amplitudes fall off (the sharpening B).
    slope : Tensor
        [Å²] per unit ``k²``.
    intercept : Tensor
        ``ln|F|`` at ``k = 0``.
    correlation : Tensor
        Pearson correlation of the fitted points (close to -1 for a clean fall-off).
    n_points : Tensor
        Number of shells in the fit.
    """

    bfactor_a2: torch.Tensor
    slope: torch.Tensor
    intercept: torch.Tensor
    correlation: torch.Tensor
    n_points: torch.Tensor


def fit_bfactor(
    k2: torch.Tensor,
    ln_amplitude: torch.Tensor,
    *,
    low_resolution_angstrom: float = 10.0,
    high_resolution_angstrom: float,
) -> BFactorFit:
    """Fit ``ln|F| = a + s k²`` between two resolutions; ``B = 4 s`` (RELION's ``--auto_bfac``).

    Parameters
    ----------
    k2 : Tensor, (n_shells,)
        [1/Å²], from :func:`guinier_plot`.
    ln_amplitude : Tensor, (..., n_shells)
    low_resolution_angstrom : float
        Coarsest resolution in the fit (RELION's ``--autob_lowres``, 10 Å).
    high_resolution_angstrom : float
        Finest resolution in the fit, usually the final (FSC = 0.143) resolution.

    Returns
    -------
    BFactorFit

    Raises
    ------
    ValueError
        Fewer than 2 usable shells between the two resolutions.

    Notes
    -----
    Ordinary least squares over the shells with
    :math:`1/d_{low}^2 \\le k^2 \\le 1/d_{high}^2` and a finite ``ln|F|``:
    :math:`s = \\sum (x-\\bar x)(y-\\bar y) / \\sum (x - \\bar x)^2`.  For amplitudes
    :math:`|F| \\propto \\exp(-B_0 k^2/4)` the fit gives :math:`B = -B_0`.
    """
    if not high_resolution_angstrom < low_resolution_angstrom:
        raise ValueError(
            f"fit_bfactor: the fit range is empty: high resolution {high_resolution_angstrom} Å "
            f"must be finer than low resolution {low_resolution_angstrom} Å"
        )
    x = k2.to(ln_amplitude.device, torch.float64)
    y = ln_amplitude.to(torch.float64)
    tol = 1e-9
    inside = (x >= 1.0 / low_resolution_angstrom**2 - tol) & (
        x <= 1.0 / high_resolution_angstrom**2 + tol
    )
    w = (inside & torch.isfinite(y)).to(torch.float64)
    n = w.sum(-1)
    if bool((n < 2).any()):
        raise ValueError(
            f"fit_bfactor: fewer than 2 shells between {low_resolution_angstrom} Å and "
            f"{high_resolution_angstrom} Å (box too small or resolution too low for a B fit)"
        )
    y = torch.where(w > 0, y, torch.zeros_like(y))
    xm = (w * x).sum(-1) / n
    ym = (w * y).sum(-1) / n
    dx = (x - xm.unsqueeze(-1)) * w
    dy = (y - ym.unsqueeze(-1)) * w
    sxx, syy, sxy = dx.square().sum(-1), dy.square().sum(-1), (dx * dy).sum(-1)
    slope = sxy / sxx
    corr = sxy / (sxx * syy).sqrt().clamp_min(1e-300)
    return BFactorFit(4.0 * slope, slope, ym - slope * xm, corr, n)


# ----------------------------------------------------------------------------- sharpening
def fsc_weighting_filter(fsc: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Per-voxel FSC weight on the rfft grid: ``sqrt(2 FSC/(1+FSC))`` of the voxel's shell.

    Parameters
    ----------
    fsc : Tensor, (..., n_shells)
        Half-map FSC (corrected, when masked).
    shape : (d, h, w)
        Real-space shape.

    Returns
    -------
    Tensor, (..., d, h, w//2 + 1)
        Zero from the first shell where the FSC drops below ``1e-4`` on, and in the corners
        beyond Nyquist (RELION's rule: no signal is assumed past the first FSC zero).
    """
    weights = fsc_weight(fsc)
    shells = torch.arange(fsc.shape[-1], device=fsc.device)
    dead = fsc < 1e-4
    first_dead = torch.where(
        dead.any(-1), torch.argmax(dead.to(torch.int8), dim=-1), torch.full_like(shells[0], 10**9)
    )
    weights = torch.where(shells < first_dead.unsqueeze(-1), weights, torch.zeros_like(weights))
    return shell_values_to_grid(weights, shape, rfft=True, fill=0.0)


def sharpen(
    volume: torch.Tensor,
    *,
    bfactor_a2: float | torch.Tensor,
    pixel_size_angstrom: float,
    fsc: torch.Tensor | None = None,
    resolution_angstrom: float | None = None,
) -> torch.Tensor:
    """FSC-weight, apply a B-factor and low-pass a map in one Fourier pass.

    Parameters
    ----------
    volume : Tensor, real, (..., d, h, w)
    bfactor_a2 : float or Tensor (...)
        ``B`` [Å²]: negative sharpens, positive blurs (amplitudes × ``exp(-B k²/4)``).
    pixel_size_angstrom : float
    fsc : Tensor, (..., n_shells), optional
        Half-map FSC for the weight :func:`fsc_weighting_filter` (skipped when None).
    resolution_angstrom : float, optional
        Raised-cosine low-pass at this resolution (edge two Fourier pixels, RELION's
        ``--filter_edge_width 2``); skipped when None.

    Returns
    -------
    Tensor, real, same shape and dtype

    Notes
    -----
    .. math:: F'(k) = F(k)\\, \\sqrt{\\tfrac{2\\mathrm{FSC}(k)}{1+\\mathrm{FSC}(k)}}\\,
              e^{-B k^2/4}\\, L_{d}(k)
    """
    shape = tuple(volume.shape[-3:])
    f = rfftn_centered(volume, ndim=3)
    filt = bfactor_filter(
        shape,
        bfactor_a2=bfactor_a2,
        pixel_size_angstrom=pixel_size_angstrom,
        rfft=True,
        device=volume.device,
        dtype=torch.float64,
    )
    if fsc is not None:
        filt = filt * fsc_weighting_filter(fsc.to(volume.device, torch.float64), shape)
    if resolution_angstrom is not None:
        filt = filt * lowpass_filter(
            shape,
            resolution_angstrom=resolution_angstrom,
            pixel_size_angstrom=pixel_size_angstrom,
            rfft=True,
            device=volume.device,
            dtype=torch.float64,
        )
    out = irfftn_centered(f * filt.to(f.real.dtype), ndim=3, last_size=shape[-1])
    return out.to(volume.dtype)


# ----------------------------------------------------------------------------- pipeline
@dataclass(frozen=True)
class PostprocessResult:
    """Everything :func:`postprocess` computes (curves are float64 on the maps' device).

    Attributes
    ----------
    frequency_inv_angstrom : Tensor (n_shells,)
        Shell frequencies ``i / (w * pixel)``.
    fsc_unmasked : Tensor (n_shells,)
    fsc_masked, fsc_randomized : Tensor (n_shells,) or None
        Masked FSC and masked phase-randomised FSC (None without a mask).
    fsc_corrected : Tensor (n_shells,)
        The FSC used for resolution and weighting (``fsc_unmasked`` without a mask).
    randomize_shell : int or None
        Shell from which phases were randomised.
    resolution_angstrom : float
        Where ``fsc_corrected`` crosses 0.143, interpolated between shells.
    resolution_shell_angstrom : float
        The last shell above 0.143 (RELION's ``rlnFinalResolution`` rule).
    bfactor_a2 : float
        Applied B-factor [Å²], RELION's sign (negative sharpens).
    fit : BFactorFit or None
        The Guinier fit when ``bfactor="auto"``.
    guinier_k2 : Tensor (n_shells,)
    guinier_input, guinier_weighted, guinier_sharpened : Tensor (n_shells,)
        ``ln<|F|>`` of the average map, after FSC weighting, after the B-factor.
    sharpened : Tensor (d, h, w)
        FSC-weighted, B-factor-sharpened, low-passed average of the halves (unmasked).
    unsharpened : Tensor (d, h, w)
        The same without the B-factor (FSC-weighted and low-passed).
    mask : Tensor (d, h, w) or None
    warnings : tuple of str
        What the caller should tell the user, e.g. that the resolution was too low for the
        automatic B-factor (then ``fit`` is None and ``bfactor_a2`` 0).
    """

    frequency_inv_angstrom: torch.Tensor
    fsc_unmasked: torch.Tensor
    fsc_masked: torch.Tensor | None
    fsc_randomized: torch.Tensor | None
    fsc_corrected: torch.Tensor
    randomize_shell: int | None
    resolution_angstrom: float
    resolution_shell_angstrom: float
    bfactor_a2: float
    fit: BFactorFit | None
    guinier_k2: torch.Tensor
    guinier_input: torch.Tensor
    guinier_weighted: torch.Tensor
    guinier_sharpened: torch.Tensor
    sharpened: torch.Tensor
    unsharpened: torch.Tensor
    mask: torch.Tensor | None
    warnings: tuple[str, ...] = ()


def _auto_bfactor(
    k2: torch.Tensor, ln_amplitude: torch.Tensor, *, low: float, high: float
) -> tuple[BFactorFit | None, str | None]:
    """The Guinier fit between ``low`` and ``high`` Å, or (None, why) when there is no range.

    relion_postprocess (3.1) sharpens with B = 0 when its fit range holds no shells (a map
    worse than ``--autob_lowres``, 10 Å); so does this, and says so.
    """
    k_low, k_high = 1.0 / low**2, 1.0 / high**2
    usable = (k2 >= k_low - 1e-9) & (k2 <= k_high + 1e-9) & torch.isfinite(ln_amplitude)
    if high < low and int(usable.sum()) >= 2:
        return fit_bfactor(
            k2, ln_amplitude, low_resolution_angstrom=low, high_resolution_angstrom=high
        ), None
    return None, (
        f"the resolution limit of the B-factor fit ({high:.1f} Å) is not finer than its "
        f"low-resolution end ({low:g} Å), so fewer than 2 shells lie between them: no automatic "
        "B-factor; the map is FSC-weighted and low-passed but not sharpened (B = 0), as "
        "relion_postprocess does; give a B-factor explicitly to sharpen it."
    )


def _check_inputs(half1, half2, mask) -> None:
    if half1.ndim != 3 or half1.shape != half2.shape:
        raise ValueError(
            "postprocess: half maps must be two volumes (d, h, w) of the same shape, got "
            f"{tuple(half1.shape)} and {tuple(half2.shape)}"
        )
    if mask is not None:
        if mask.shape != half1.shape:
            raise ValueError(
                f"postprocess: mask shape {tuple(mask.shape)} differs from the half maps' "
                f"{tuple(half1.shape)}"
            )
        lo, hi = float(mask.min()), float(mask.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(f"postprocess: mask values must lie in [0, 1], got [{lo:g}, {hi:g}]")


def postprocess(
    half1: torch.Tensor,
    half2: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    mask: torch.Tensor | None = None,
    bfactor: str | float = "auto",
    fit_low_resolution_angstrom: float = 10.0,
    fit_high_resolution_angstrom: float | None = None,
    fsc_weighting: bool = True,
    lowpass: bool = True,
    randomize_below: float = 0.8,
    generator: torch.Generator | None = None,
) -> PostprocessResult:
    """Post-process two half maps: masked corrected FSC, resolution, B-factor, sharpened map.

    Parameters
    ----------
    half1, half2 : Tensor, real, (d, h, w)
        Independent, unfiltered half maps.
    pixel_size_angstrom : float
    mask : Tensor (d, h, w), optional
        Soft solvent mask in [0, 1] (e.g. :func:`cryoglass.validate.auto_mask`).
    bfactor : "auto" or float
        "auto": fit ``ln|F|`` of the FSC-weighted map between ``fit_low_resolution_angstrom``
        and ``fit_high_resolution_angstrom`` (RELION's ``--auto_bfac``); a number: use it
        (RELION's ``--adhoc_bfac``; negative sharpens).
    fit_low_resolution_angstrom : float
        10 Å (RELION's ``--autob_lowres``).
    fit_high_resolution_angstrom : float, optional
        Default (None): the final resolution.  0: up to Nyquist, i.e. every shell whose FSC
        weight is not zero — what ``relion_postprocess --auto_bfac`` 3.1 does with its default
        ``--autob_highres 0``.  That range ends wherever the noisy FSC first dips below
        1e-4, and shells just before it, with tiny weights, can dominate the slope: the fitted B
        is then unstable (we measured -1336 Å² against RELION's own -95 Å² on one test case),
        which is why the final resolution is the default.
    fsc_weighting : bool
        Multiply shells by ``sqrt(2 FSC/(1 + FSC))`` (``--skip_fsc_weighting`` turns it off).
    lowpass : bool
        Low-pass the output at the final resolution.
    randomize_below : float
        Phase-randomisation threshold on the unmasked FSC (0.8).
    generator : torch.Generator, optional
        Seeds the phase randomisation.

    Returns
    -------
    PostprocessResult

    Notes
    -----
    The steps follow ``relion_postprocess`` (3.1): FSCs of the unmasked and masked halves and
    the phase-randomisation correction (:func:`cryoglass.validate.masked_fsc`); the average
    ``(h1 + h2)/2`` of the *unmasked* halves; its Guinier plot; FSC weighting with the
    corrected FSC; the B-factor fit ``B = 4 × slope``; ``exp(-B k²/4)``; the low-pass.
    Differences: the resolution is interpolated between shells (RELION reports the last shell
    above 0.143, also returned as ``resolution_shell_angstrom``), the fit stops at the final
    resolution (RELION 3.1's default ``--autob_highres 0`` fits up to the first FSC zero;
    pass ``fit_high_resolution_angstrom=0`` for that),
    the output is low-passed at the resolution (RELION 3.1 only with ``--low_pass``), and the
    unmasked FSC is not substituted when it extends further than the corrected one.  When the
    fit range holds fewer than two shells (a map worse than ``fit_low_resolution_angstrom``)
    the automatic B-factor is skipped: B = 0, ``fit`` None, and a note in ``warnings`` (RELION
    3.1 fits an empty range to slope 0, i.e. the same B = 0).
    """
    _check_inputs(half1, half2, mask)
    shape = tuple(half1.shape)
    n_shells = shape[-1] // 2 + 1
    freq = shell_frequencies(
        n_shells,
        box_size=shape[-1],
        pixel_size_angstrom=pixel_size_angstrom,
        device=half1.device,
        dtype=torch.float64,
    )
    h1, h2 = half1.to(torch.float64), half2.to(torch.float64)
    if mask is not None:
        curves = masked_fsc(
            h1, h2, mask.to(h1), randomize_below=randomize_below, generator=generator
        )
        fsc_u, fsc_m, fsc_r, fsc_c = (
            curves.unmasked,
            curves.masked,
            curves.randomized,
            curves.corrected,
        )
        randomize_shell = int(curves.randomize_shell)
    else:
        fsc_u = fourier_shell_correlation(h1, h2)
        fsc_m = fsc_r = None
        fsc_c = fsc_u
        randomize_shell = None
    common = dict(box_size=shape[-1], pixel_size_angstrom=pixel_size_angstrom)
    resolution = float(resolution_at_threshold(fsc_c, threshold=0.143, **common))
    resolution_shell = float(
        resolution_at_threshold(fsc_c, threshold=0.143, interpolate=False, **common)
    )

    average = 0.5 * (h1 + h2)
    k2, g_in = guinier_plot(average, pixel_size_angstrom=pixel_size_angstrom)
    weighted = sharpen(
        average,
        bfactor_a2=0.0,
        pixel_size_angstrom=pixel_size_angstrom,
        fsc=fsc_c if fsc_weighting else None,
    )
    _, g_w = guinier_plot(weighted, pixel_size_angstrom=pixel_size_angstrom)
    fit, notes = None, []
    if isinstance(bfactor, str):
        if bfactor != "auto":
            raise ValueError(f"postprocess: bfactor must be 'auto' or a number, got {bfactor!r}")
        if fit_high_resolution_angstrom is None:
            high = resolution
        elif fit_high_resolution_angstrom == 0:
            high = pixel_size_angstrom * shape[-1] / (n_shells - 1)  # Nyquist
        else:
            high = fit_high_resolution_angstrom
        fit, note = _auto_bfactor(k2, g_w, low=fit_low_resolution_angstrom, high=high)
        b = 0.0 if fit is None else float(fit.bfactor_a2)
        notes += [note] if note else []
    else:
        b = float(bfactor)
    if not math.isfinite(b):
        raise ValueError(f"postprocess: B-factor is not finite ({b})")
    sharpened_unfiltered = sharpen(weighted, bfactor_a2=b, pixel_size_angstrom=pixel_size_angstrom)
    _, g_s = guinier_plot(sharpened_unfiltered, pixel_size_angstrom=pixel_size_angstrom)
    cutoff = resolution if lowpass else None
    sharpened = sharpen(
        average,
        bfactor_a2=b,
        pixel_size_angstrom=pixel_size_angstrom,
        fsc=fsc_c if fsc_weighting else None,
        resolution_angstrom=cutoff,
    )
    unsharpened = sharpen(
        average,
        bfactor_a2=0.0,
        pixel_size_angstrom=pixel_size_angstrom,
        fsc=fsc_c if fsc_weighting else None,
        resolution_angstrom=cutoff,
    )
    dtype = half1.dtype
    return PostprocessResult(
        frequency_inv_angstrom=freq,
        fsc_unmasked=fsc_u,
        fsc_masked=fsc_m,
        fsc_randomized=fsc_r,
        fsc_corrected=fsc_c,
        randomize_shell=randomize_shell,
        resolution_angstrom=resolution,
        resolution_shell_angstrom=resolution_shell,
        bfactor_a2=b,
        fit=fit,
        guinier_k2=k2,
        guinier_input=g_in,
        guinier_weighted=g_w,
        guinier_sharpened=g_s,
        sharpened=sharpened.to(dtype),
        unsharpened=unsharpened.to(dtype),
        mask=None if mask is None else mask.to(dtype),
        warnings=tuple(notes),
    )


def guinier_rows(result: PostprocessResult) -> list[dict]:
    """The Guinier curves of ``result`` as rows (k² [1/Å²], ln⟨|F|⟩ input/weighted/sharpened).

    Shells without amplitude (``ln 0``, stored as ``−inf``/very negative) give None.
    """

    def clean(value: float) -> float | None:
        return value if value > -1e30 else None

    return [
        {
            "k2_inv_angstrom2": float(result.guinier_k2[i]),
            "ln_amplitude_input": clean(float(result.guinier_input[i])),
            "ln_amplitude_weighted": clean(float(result.guinier_weighted[i])),
            "ln_amplitude_sharpened": clean(float(result.guinier_sharpened[i])),
        }
        for i in range(result.guinier_k2.shape[-1])
    ]
