"""Fourier shell correlation (FSC), resolution, SSNR and the phase-randomisation correction.

Shells
------
cryoglass has one shell definition (:mod:`cryoglass.fourier.radial`): with ``r`` the distance
of a Fourier voxel from DC in Fourier pixels of the x axis (``r = |k| * w * pixel_size``),

.. math:: \\text{shell}(k) = \\lfloor r + \\tfrac12 \\rfloor ,

so shell ``i`` holds ``i - 1/2 <= r < i + 1/2`` and has frequency ``k_i = i / (w * pixel)``
[1/Å] and resolution ``d_i = w * pixel / i`` [Å] — RELION's ``ROUND(sqrt(kx²+ky²+kz²))``.
FSC curves have ``w//2 + 1`` entries, shells ``0`` (DC) to ``w//2`` (Nyquist); the corners of
the Fourier cube beyond the Nyquist shell (outside the inscribed sphere) are left out.
On an rfft half grid the columns ``1 <= kx <= (w-1)//2`` stand for two voxels of the full grid
(``k`` and ``-k``) and are counted twice, so half and full grids give identical sums.
(RELION sums its half grid with every voxel once, which over-weights the ``kx = 0`` plane;
the two differ by up to ~0.02 in the lowest shells and negligibly at high resolution.)

FSC
---
.. math:: \\mathrm{FSC}_i = \\frac{\\mathrm{Re}\\sum_{k\\in S_i} F_1(k) F_2^*(k)}
          {\\sqrt{\\sum_{k\\in S_i} |F_1(k)|^2 \\; \\sum_{k\\in S_i} |F_2(k)|^2}}

(Harauer & van Heel 1986; the 0.143 threshold for half maps: Rosenthal & Henderson 2003).
Sums are accumulated in float64.

References
----------
Rosenthal & Henderson (2003) J. Mol. Biol. 333, 721–745, doi:10.1016/j.jmb.2003.07.013.
Chen, McMullan, Faruqi, Murshudov, Short, Scheres & Henderson (2013) Ultramicroscopy 135,
24–35, doi:10.1016/j.ultramic.2013.06.004.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from cryoglass.fourier.radial import crossing_shell

__all__ = [
    "FSCSummary",
    "fsc_summary",
    "MaskedFSC",
    "fourier_shell_index",
    "fourier_shell_sizes",
    "shell_values_to_grid",
    "fourier_shell_correlation",
    "fourier_shell_correlation_spectra",
    "resolution_at_threshold",
    "ssnr_from_fsc",
    "fsc_weight",
    "randomize_phases_beyond",
    "phase_randomization_shell",
    "corrected_fsc",
    "masked_fsc",
    "fsc_against_reference",
]


# ----------------------------------------------------------------------------- shells
def _check_ndim(ndim: int, x: torch.Tensor, name: str) -> None:
    if ndim not in (2, 3) or x.ndim < ndim:
        raise ValueError(f"{name}: ndim must be 2 or 3 and <= x.ndim ({x.ndim}), got {ndim}")


@functools.lru_cache(maxsize=16)
def _shell_index_cached(
    shape: tuple[int, ...], rfft: bool, centered: bool, device: str
) -> torch.Tensor:
    w = shape[-1]
    axes = []
    for n in shape[:-1]:
        if centered:
            offsets = torch.arange(n, dtype=torch.float64, device=device) - n // 2
        else:
            offsets = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=device)
        axes.append(offsets * (w / n))
    if rfft:
        axes.append(torch.arange(w // 2 + 1, dtype=torch.float64, device=device))
    elif centered:
        axes.append(torch.arange(w, dtype=torch.float64, device=device) - w // 2)
    else:
        axes.append(torch.fft.fftfreq(w, d=1.0 / w, dtype=torch.float64, device=device))
    r2 = torch.zeros((), dtype=torch.float64, device=device)
    for a, axis in enumerate(axes):
        view = [1] * len(axes)
        view[a] = -1
        r2 = r2 + axis.reshape(view).square()
    return torch.floor(r2.sqrt() + 0.5).long()


def fourier_shell_index(
    shape: tuple[int, ...],
    *,
    rfft: bool = True,
    centered: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Shell of every voxel of a Fourier grid.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)
        Real-space shape.
    rfft : bool
        Half grid (last axis ``w//2 + 1``, DC at column 0) instead of the full grid.
    centered : bool
        Centred layout (DC at index ``n//2``, as :func:`cryoglass.fourier.rfftn_centered`)
        or plain FFT order (DC at index 0, as :func:`torch.fft.rfftn`).
    device : torch device, optional

    Returns
    -------
    LongTensor, fourier_shape
        ``floor(r + 1/2)`` with ``r`` in Fourier pixels of the x axis; for the centred layout
        identical to :func:`cryoglass.fourier.radial_shell_index`.  Computed from integer axes
        and cached per shape and device.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    key = (tuple(int(n) for n in shape), bool(rfft), bool(centered), str(device))
    return _shell_index_cached(*key)


@functools.lru_cache(maxsize=16)
def _clamped_index_cached(
    shape: tuple[int, ...], rfft: bool, centered: bool, device: str, n_shells: int
) -> torch.Tensor:
    return _shell_index_cached(shape, rfft, centered, device).clamp_max(n_shells)


def _sum_by_index(values: torch.Tensor, index: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Float64 sums of ``values`` (..., *F) into ``n_bins`` bins by ``index`` (*F)."""
    batch = values.shape[: values.ndim - index.ndim]
    n_batch = 1
    for n in batch:
        n_batch *= n
    flat = values.reshape(n_batch, -1).to(torch.float64)
    idx = index.reshape(-1)
    if n_batch > 1:
        offsets = torch.arange(n_batch, device=idx.device).unsqueeze(-1) * n_bins
        idx = (offsets + idx).reshape(-1)
    out = flat.new_zeros(n_batch * n_bins).index_add_(0, idx, flat.reshape(-1))
    return out.reshape(*batch, n_bins)


def _shell_sums(
    values: torch.Tensor,
    shape: tuple[int, ...],
    *,
    rfft: bool,
    n_shells: int,
    centered: bool = True,
) -> torch.Tensor:
    """Sum ``values`` (..., *fourier_shape) over shells 0..n_shells-1, full-grid counting.

    On the half grid, columns ``1 .. (w-1)//2`` count twice: the full-grid sum is
    ``2 * (sum over the half grid) - (column 0) - (column w/2 for even w)``.
    """
    device = str(values.device)
    index = _clamped_index_cached(tuple(int(n) for n in shape), rfft, centered, device, n_shells)
    sums = _sum_by_index(values, index, n_shells + 1)
    if rfft:
        sums = 2.0 * sums - _sum_by_index(values[..., :1], index[..., :1], n_shells + 1)
        if shape[-1] % 2 == 0:
            sums = sums - _sum_by_index(values[..., -1:], index[..., -1:], n_shells + 1)
    return sums[..., :n_shells]


def fourier_shell_sizes(
    shape: tuple[int, ...],
    *,
    n_shells: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Number of voxels of the full Fourier grid in each shell.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)
        Real-space shape.
    n_shells : int, optional
        Default ``w//2 + 1``.

    Returns
    -------
    Tensor, float64, (n_shells,)
        ``N_i``; for two independent noise maps ``FSC_i`` has standard deviation
        ``≈ 1/sqrt(N_i)`` (van Heel & Schatz 2005, doi:10.1016/j.jsb.2005.05.009).
    """
    n_shells = shape[-1] // 2 + 1 if n_shells is None else n_shells
    ones = torch.ones(shape[:-1] + (shape[-1] // 2 + 1,), dtype=torch.float64, device=device)
    return _shell_sums(ones, tuple(shape), rfft=True, n_shells=n_shells)


def shell_values_to_grid(
    values: torch.Tensor, shape: tuple[int, ...], *, rfft: bool = True, fill: float = 0.0
) -> torch.Tensor:
    """Spread per-shell values onto a Fourier grid (each voxel gets its shell's value).

    Parameters
    ----------
    values : Tensor, (..., n_shells)
        E.g. an FSC curve or a per-shell weight.
    shape : (h, w) or (d, h, w)
        Real-space shape of the grid.
    rfft : bool
        Half grid (default) or full centred grid.
    fill : float
        Value of voxels in shells ``>= n_shells`` (the corners beyond Nyquist by default).

    Returns
    -------
    Tensor, (..., *fourier_shape), dtype of ``values``.
    """
    n_shells = values.shape[-1]
    index = fourier_shell_index(shape, rfft=rfft, device=values.device)
    padded = torch.cat([values, values.new_full((*values.shape[:-1], 1), fill)], dim=-1)
    return padded[..., index.clamp_max(n_shells)]


# ----------------------------------------------------------------------------- FSC
def fourier_shell_correlation_spectra(
    f1: torch.Tensor,
    f2: torch.Tensor,
    *,
    ndim: int = 3,
    rfft: bool = True,
    width: int | None = None,
    n_shells: int | None = None,
) -> torch.Tensor:
    """FSC of two centred spectra (full grid or rfft half grid).

    Parameters
    ----------
    f1, f2 : Tensor, complex, (..., *fourier_shape)
        Spectra of the same real-space shape; batch axes broadcast.
    ndim : {2, 3}
        Number of Fourier axes (2 gives the Fourier ring correlation).
    rfft : bool
        Whether the spectra are rfft half grids (last axis ``w//2 + 1``).
    width : int, optional
        Real-space width ``w`` (rfft only); default: the first Fourier axis (cubic box).
    n_shells : int, optional
        Default ``w//2 + 1`` (DC to Nyquist).

    Returns
    -------
    Tensor, float64, (..., n_shells)
        FSC per shell (module docstring); 0 for empty shells or zero power.
    """
    _check_ndim(ndim, f1, "fourier_shell_correlation_spectra")
    if f1.shape[-ndim:] != f2.shape[-ndim:]:
        raise ValueError(
            f"FSC: spectra of different shapes {tuple(f1.shape[-ndim:])} and "
            f"{tuple(f2.shape[-ndim:])}"
        )
    fourier_shape = tuple(f1.shape[-ndim:])
    if rfft:
        w = width if width is not None else fourier_shape[0]
        if fourier_shape[-1] != w // 2 + 1:
            raise ValueError(
                f"FSC: rfft grid last axis {fourier_shape[-1]} does not match width {w}; "
                "pass width="
            )
        shape = fourier_shape[:-1] + (w,)
    else:
        shape = fourier_shape
    n_shells = shape[-1] // 2 + 1 if n_shells is None else n_shells
    return _fsc_from_spectra(f1, f2, shape, rfft=rfft, centered=True, n_shells=n_shells)


def _fsc_from_spectra(f1, f2, shape, *, rfft: bool, centered: bool, n_shells: int):
    """Shell sums of Re F1 F2*, |F1|², |F2|² (float64) and their ratio."""
    f1, f2 = torch.broadcast_tensors(f1, f2)
    common = dict(rfft=rfft, centered=centered, n_shells=n_shells)
    num = _shell_sums(torch.addcmul(f1.real * f2.real, f1.imag, f2.imag), shape, **common)
    p1 = _shell_sums(torch.addcmul(f1.real.square(), f1.imag, f1.imag), shape, **common)
    p2 = _shell_sums(torch.addcmul(f2.real.square(), f2.imag, f2.imag), shape, **common)
    den = (p1 * p2).sqrt()
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def fourier_shell_correlation(
    map1: torch.Tensor,
    map2: torch.Tensor,
    *,
    ndim: int = 3,
    n_shells: int | None = None,
) -> torch.Tensor:
    """FSC between real maps (or FRC between images, ``ndim=2``).

    Parameters
    ----------
    map1, map2 : Tensor, real, (..., d, h, w) or (..., h, w)
        Same trailing shape; batch axes broadcast.
    ndim : {2, 3}
    n_shells : int, optional
        Default ``w//2 + 1``: shells 0 (DC) .. ``w//2`` (Nyquist), see the module docstring.

    Returns
    -------
    Tensor, (..., n_shells), dtype of ``map1`` (float32 or float64)
        :math:`\\mathrm{FSC}_i = \\mathrm{Re}\\sum F_1F_2^* / \\sqrt{\\sum|F_1|^2\\sum|F_2|^2}`
        over shell ``i``; frequencies ``i / (w * pixel)`` from
        :func:`cryoglass.fourier.shell_frequencies`.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(16, 16, 16, generator=g)
    >>> bool(torch.allclose(fourier_shell_correlation(x, x), torch.ones(9)))
    True
    """
    _check_ndim(ndim, map1, "fourier_shell_correlation")
    if map1.is_complex() or map2.is_complex():
        raise ValueError("fourier_shell_correlation expects real maps; use the _spectra variant")
    if map1.shape[-ndim:] != map2.shape[-ndim:]:
        raise ValueError(
            f"FSC: maps of different shapes {tuple(map1.shape[-ndim:])} and "
            f"{tuple(map2.shape[-ndim:])}"
        )
    shape = tuple(map1.shape[-ndim:])
    n_shells = shape[-1] // 2 + 1 if n_shells is None else n_shells
    dims = tuple(range(-ndim, 0))
    # Plain (uncentred) transforms: centring multiplies both spectra by the same phase, which
    # cancels in F1 F2*, so only the shell index needs the FFT-order layout.
    f1 = torch.fft.rfftn(map1, dim=dims)
    f2 = torch.fft.rfftn(map2.to(map1.dtype), dim=dims)
    fsc = _fsc_from_spectra(f1, f2, shape, rfft=True, centered=False, n_shells=n_shells)
    return fsc.to(map1.dtype if map1.is_floating_point() else torch.get_default_dtype())


# ----------------------------------------------------------------------------- resolution, SSNR
def resolution_at_threshold(
    fsc: torch.Tensor,
    *,
    threshold: float = 0.143,
    box_size: int,
    pixel_size_angstrom: float,
    interpolate: bool = True,
) -> torch.Tensor:
    """Resolution [Å] where an FSC curve first drops below ``threshold``.

    Parameters
    ----------
    fsc : Tensor, (..., n_shells)
        FSC per shell (shell ``i`` at ``k_i = i / (box_size * pixel)``).
    threshold : float
        0.143 for half maps (gold standard), 0.5 for a map against a reference.
    box_size : int
        Real-space box width ``w`` [pixels].
    pixel_size_angstrom : float
    interpolate : bool
        True: linear interpolation between the last shell above and the first below the
        threshold.  False: the resolution of the last shell above it (RELION 3.1's reported
        ``rlnFinalResolution``).

    Returns
    -------
    Tensor, (...), dtype of ``fsc``
        Resolution ``1/k*`` [Å].

    Notes
    -----
    The crossing is :func:`cryoglass.fourier.crossing_shell`, the one threshold crossing of
    cryoglass.  Shell 0 (DC) counts as correlated (``FSC_0 := 1``).  With ``i`` the first
    shell ``>= 1`` where ``FSC_i < t``,

    .. math:: k^* = \\frac{(i-1) + (F_{i-1} - t)/(F_{i-1} - F_i)}{w \\cdot \\text{pixel}}

    with ``F`` the FSC.

    If the curve never drops below the threshold, the Nyquist shell's resolution
    ``w * pixel / (n_shells - 1)`` (≈ 2 pixels) is returned: a bound, not an estimate.
    With ``interpolate=False`` and ``i = 1`` the result is ``inf``.
    """
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    if fsc.shape[-1] < 2:
        raise ValueError(f"resolution_at_threshold: need >= 2 shells, got {fsc.shape[-1]}")
    shell = crossing_shell(fsc, threshold, interpolate=interpolate)
    return box_size * pixel_size_angstrom / shell


def ssnr_from_fsc(fsc: torch.Tensor, *, full_map: bool = False) -> torch.Tensor:
    """Spectral signal-to-noise ratio from a half-map FSC.

    Parameters
    ----------
    fsc : Tensor, (..., n_shells)
        FSC between two half maps of equal SNR.
    full_map : bool
        False: SSNR of each half map, ``FSC / (1 - FSC)``.  True: SSNR of the average of the
        two halves (twice the data), ``2 FSC / (1 - FSC)``.

    Returns
    -------
    Tensor, (..., n_shells), >= 0
        FSC is clamped to ``[0, 1 - 1e-6]`` first.

    Notes
    -----
    For halves ``X_j = S + N_j`` with independent noise of equal power,
    ``FSC = |S|²/(|S|² + |N|²) = SNR/(1 + SNR)``; averaging halves the noise power, doubling
    the SNR.  (Frank & Al-Ali 1975; Penczek 2010, doi:10.1016/S0076-6879(10)82003-8.)
    """
    f = fsc.clamp(0.0, 1.0 - 1e-6)
    snr = f / (1.0 - f)
    return 2.0 * snr if full_map else snr


def fsc_weight(fsc: torch.Tensor) -> torch.Tensor:
    """Rosenthal–Henderson weight ``C_ref = sqrt(2 FSC / (1 + FSC))`` (0 where FSC <= 0).

    Parameters
    ----------
    fsc : Tensor, (..., n_shells)
        Half-map FSC.

    Returns
    -------
    Tensor, (..., n_shells) in [0, 1]
        The expected correlation of the full map with the true structure; multiplying each
        shell of the full map by it is the figure-of-merit (Wiener-like) weighting of
        Rosenthal & Henderson (2003), doi:10.1016/j.jmb.2003.07.013.
    """
    f = fsc.clamp(0.0, 1.0)
    return torch.sqrt(2.0 * f / (1.0 + f))


# ----------------------------------------------------------------------------- masked FSC
@dataclass(frozen=True)
class MaskedFSC:
    """FSC curves of two half maps with and without a mask (all (..., n_shells)).

    Attributes
    ----------
    unmasked : Tensor
        FSC of the half maps as given.
    masked : Tensor
        FSC of the masked half maps (inflated by the mask's convolution in Fourier space).
    randomized : Tensor
        FSC of the masked half maps after randomising their phases beyond
        ``randomize_shell``: the correlation the mask alone creates.
    corrected : Tensor
        ``masked`` below ``randomize_shell + 2``, :func:`corrected_fsc` above.
    randomize_shell : Tensor, long, (...)
        First shell where ``unmasked < 0.8`` (``n_shells`` when it never drops).
    """

    unmasked: torch.Tensor
    masked: torch.Tensor
    randomized: torch.Tensor
    corrected: torch.Tensor
    randomize_shell: torch.Tensor


def randomize_phases_beyond(
    volume: torch.Tensor,
    *,
    shell: int | torch.Tensor,
    ndim: int = 3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace the Fourier phases at radius ``r >= shell`` by random ones (amplitudes kept).

    Parameters
    ----------
    volume : Tensor, real, (..., d, h, w)
    shell : int or LongTensor (...)
        Radius in Fourier pixels from which on phases are random (RELION: ``r² >= shell²``);
        a tensor gives one radius per batch item.
    ndim : {2, 3}
    generator : torch.Generator, optional
        Seeds the random phases; each batch item gets independent phases.

    Returns
    -------
    Tensor, real, same shape and dtype.

    Notes
    -----
    The random phases are those of the transform of real white noise, which are uniform on
    ``[0, 2π)`` and Hermitian-symmetric, so the result is exactly real.
    """
    _check_ndim(ndim, volume, "randomize_phases_beyond")
    shape = tuple(volume.shape[-ndim:])
    dims = tuple(range(-ndim, 0))
    f = torch.fft.rfftn(volume, dim=dims)  # FFT order; amplitudes and radii are what matter
    noise = torch.randn(volume.shape, generator=generator, dtype=volume.dtype, device="cpu")
    phase = torch.fft.rfftn(noise.to(volume.device), dim=dims)
    phase = phase / phase.abs().clamp_min(1e-30)
    w = shape[-1]
    axes = [
        torch.fft.fftfreq(n, d=1.0 / n, device=volume.device, dtype=torch.float64) * (w / n)
        for n in shape[:-1]
    ]
    axes.append(torch.arange(w // 2 + 1, device=volume.device, dtype=torch.float64))
    r2 = sum(
        axis.reshape([-1 if a == b else 1 for b in range(ndim)]).square()
        for a, axis in enumerate(axes)
    )
    shell_t = torch.as_tensor(shell, device=volume.device, dtype=torch.float64)
    shell_t = shell_t.reshape(*shell_t.shape, *([1] * ndim))
    beyond = r2 >= shell_t.square()
    out = torch.where(beyond, f.abs() * phase, f)
    return torch.fft.irfftn(out, s=shape, dim=dims).to(volume.dtype)


def phase_randomization_shell(
    fsc_unmasked: torch.Tensor, *, threshold: float = 0.8
) -> torch.Tensor:
    """First shell ``i >= 1`` where the unmasked FSC drops below ``threshold`` (RELION: 0.8).

    Returns
    -------
    LongTensor, (...)
        ``n_shells`` where the curve never drops below the threshold.
    """
    below = fsc_unmasked[..., 1:] < threshold
    first = torch.argmax(below.to(torch.int8), dim=-1) + 1
    return torch.where(below.any(dim=-1), first, torch.full_like(first, fsc_unmasked.shape[-1]))


def corrected_fsc(
    fsc_masked: torch.Tensor,
    fsc_randomized: torch.Tensor,
    *,
    randomize_shell: int | torch.Tensor,
    offset: int = 2,
) -> torch.Tensor:
    """Remove the mask-induced correlation from a masked FSC (Chen et al. 2013).

    Parameters
    ----------
    fsc_masked : Tensor, (..., n_shells)
        FSC of the masked half maps, :math:`\\mathrm{FSC}_t`.
    fsc_randomized : Tensor, (..., n_shells)
        FSC of the masked phase-randomised half maps, :math:`\\mathrm{FSC}_n`.
    randomize_shell : int or LongTensor (...)
        Shell from which phases were randomised.
    offset : int
        The correction starts ``offset`` shells above ``randomize_shell`` (RELION uses 2: the
        sharp phase cut leaves small artefacts in the shells right next to it).

    Returns
    -------
    Tensor, (..., n_shells)

    Notes
    -----
    .. math:: \\mathrm{FSC}_{true} = \\frac{\\mathrm{FSC}_t - \\mathrm{FSC}_n}{1 - \\mathrm{FSC}_n}
              \\quad (i \\ge i_r + \\text{offset}), \\qquad \\mathrm{FSC}_t \\text{ below.}

    References
    ----------
    Chen et al. (2013) Ultramicroscopy 135, 24–35, doi:10.1016/j.ultramic.2013.06.004.
    """
    n = fsc_masked.shape[-1]
    shells = torch.arange(n, device=fsc_masked.device)
    start = torch.as_tensor(randomize_shell, device=fsc_masked.device).unsqueeze(-1) + offset
    denominator = (1.0 - fsc_randomized).clamp_min(1e-12)
    true = (fsc_masked - fsc_randomized) / denominator
    return torch.where(shells >= start, true, fsc_masked)


def masked_fsc(
    half1: torch.Tensor,
    half2: torch.Tensor,
    mask: torch.Tensor,
    *,
    randomize_below: float = 0.8,
    generator: torch.Generator | None = None,
) -> MaskedFSC:
    """Masked half-map FSC corrected by phase randomisation (RELION's post-processing FSC).

    Parameters
    ----------
    half1, half2 : Tensor, real, (..., d, h, w)
        Independent half maps.
    mask : Tensor, (d, h, w) or broadcastable, values in [0, 1]
        Soft solvent mask.
    randomize_below : float
        Randomise phases from the first shell where the unmasked FSC drops below this
        (RELION's ``--randomize_at_fsc``, 0.8).
    generator : torch.Generator, optional
        Seeds the random phases (two independent draws, one per half).

    Returns
    -------
    MaskedFSC

    Notes
    -----
    1. ``FSC_u`` = FSC(h1, h2); ``FSC_t`` = FSC(m h1, m h2).
    2. ``i_r`` = first shell with ``FSC_u < 0.8``; ``h_j'`` = ``h_j`` with random phases at
       ``r >= i_r`` (independent for the two halves); ``FSC_n`` = FSC(m h1', m h2'): the
       correlation a mask creates between unrelated high-resolution components.
    3. :func:`corrected_fsc`.  If ``FSC_u`` never drops below 0.8, nothing is randomised and
       ``corrected = masked``.

    References
    ----------
    Chen et al. (2013) Ultramicroscopy 135, 24–35, doi:10.1016/j.ultramic.2013.06.004.
    """
    if half1.shape != half2.shape:
        raise ValueError(
            f"masked_fsc: half maps of different shapes {tuple(half1.shape)} and "
            f"{tuple(half2.shape)}"
        )
    if mask.shape[-3:] != half1.shape[-3:]:
        raise ValueError(
            f"masked_fsc: mask shape {tuple(mask.shape)} does not match the maps "
            f"{tuple(half1.shape[-3:])}"
        )
    mask = mask.to(device=half1.device, dtype=half1.dtype)
    unmasked = fourier_shell_correlation(half1, half2)
    masked = fourier_shell_correlation(half1 * mask, half2 * mask)
    shell = phase_randomization_shell(unmasked, threshold=randomize_below)
    r1 = randomize_phases_beyond(half1, shell=shell, generator=generator)
    r2 = randomize_phases_beyond(half2, shell=shell, generator=generator)
    randomized = fourier_shell_correlation(r1 * mask, r2 * mask)
    corrected = corrected_fsc(masked, randomized, randomize_shell=shell)
    return MaskedFSC(unmasked, masked, randomized, corrected, shell)


def fsc_against_reference(
    volume: torch.Tensor,
    reference: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    mask: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FSC of a map against a reference (e.g. a map from the atomic model or the truth).

    Parameters
    ----------
    volume, reference : Tensor, real, (..., d, h, w)
    pixel_size_angstrom : float
    mask : Tensor, optional
        Applied to both maps before the FSC.
    threshold : float
        0.5 by default: a full map against a noise-free reference (``C_ref = 0.5`` is the
        model-to-map criterion; half-map 0.143 corresponds to ``C_ref = 0.5``).

    Returns
    -------
    fsc : Tensor, (..., n_shells)
    resolution_angstrom : Tensor, (...)
        Interpolated crossing of ``threshold`` (see :func:`resolution_at_threshold`).
    """
    if mask is not None:
        mask = mask.to(device=volume.device, dtype=volume.dtype)
        volume, reference = volume * mask, reference * mask
    fsc = fourier_shell_correlation(volume, reference)
    res = resolution_at_threshold(
        fsc,
        threshold=threshold,
        box_size=volume.shape[-1],
        pixel_size_angstrom=pixel_size_angstrom,
    )
    return fsc, res


# ----------------------------------------------------------------------------- one summary
#: The two thresholds every FSC summary reports: 0.143 (half maps) and 0.5 (map vs reference).
FSC_THRESHOLDS = (0.143, 0.5)


@dataclass(frozen=True)
class FSCSummary:
    """An FSC curve with everything commands report about it (the one summary of cryoglass).

    Made by :func:`fsc_summary`; used by ``fsc``, ``reconstruct --halves``, ``postprocess``,
    ``3dfsc``, the demo and ``serve`` (through the commands' JSON, :meth:`to_dict`).

    Attributes
    ----------
    fsc : Tensor, float64, (n_shells,)
        The curve, shells ``0 … box//2`` (CPU).
    box_size : int
    pixel_size_angstrom : float
    label : str
        Name of the curve in the shell table and plots (``"fsc"``, ``"fsc_corrected"`` …).
    curves : dict of str → Tensor (n_shells,)
        Further curves on the same shells (``fsc_unmasked``, ``fsc_masked`` …).
    resolution_angstrom : dict of float → float
        Interpolated crossing per threshold (:func:`resolution_at_threshold`); the Nyquist
        resolution where the curve never crosses.
    crossed : dict of float → bool
        Whether the curve drops below the threshold before Nyquist.  False means the resolution
        is limited by the pixel size: the reported value is a bound, not an estimate.
    """

    fsc: torch.Tensor
    box_size: int
    pixel_size_angstrom: float
    label: str
    curves: dict
    resolution_angstrom: dict
    crossed: dict

    @property
    def frequency_inv_angstrom(self) -> torch.Tensor:
        """Shell frequencies ``i / (box · pixel)`` [1/Å], float64 (n_shells,)."""
        n = self.fsc.shape[-1]
        return torch.arange(n, dtype=torch.float64) / (self.box_size * self.pixel_size_angstrom)

    @property
    def nyquist_angstrom(self) -> float:
        """Resolution of the last shell, ``box · pixel / (n_shells − 1)`` [Å]."""
        return self.box_size * self.pixel_size_angstrom / (self.fsc.shape[-1] - 1)

    @property
    def resolution_0143_angstrom(self) -> float:
        return self.resolution_angstrom[0.143]

    @property
    def resolution_05_angstrom(self) -> float:
        return self.resolution_angstrom[0.5]

    @property
    def crossed_0143(self) -> bool:
        return self.crossed[0.143]

    @property
    def crossed_05(self) -> bool:
        return self.crossed[0.5]

    def shells(self) -> list[dict]:
        """One row per shell: ``shell``, frequency [1/Å], resolution [Å] and every curve."""
        freq = self.frequency_inv_angstrom
        rows = []
        for i in range(self.fsc.shape[-1]):
            row = {
                "shell": i,
                "frequency_inv_angstrom": float(freq[i]),
                "resolution_angstrom": self.box_size * self.pixel_size_angstrom / i if i else None,
                self.label: float(self.fsc[i]),
            }
            row.update({name: float(curve[i]) for name, curve in self.curves.items()})
            rows.append(row)
        return rows

    def describe(self, threshold: float = 0.143) -> str:
        """One line for people: the resolution, or that the curve never crossed."""
        res = self.resolution_angstrom[threshold]
        if self.crossed[threshold]:
            return f"resolution at FSC = {threshold:g}: {res:.3f} Å"
        return (
            f"resolution at FSC = {threshold:g}: {res:.3f} Å or better (Nyquist-limited: the FSC "
            f"never drops below {threshold:g}; a smaller pixel size would show more)"
        )

    def to_dict(self) -> dict:
        """The JSON form: resolutions, whether each threshold was crossed, and the shell table."""
        return {
            "resolution_0143_angstrom": self.resolution_0143_angstrom,
            "resolution_05_angstrom": self.resolution_05_angstrom,
            "crossed_0143": self.crossed_0143,
            "crossed_05": self.crossed_05,
            "nyquist_angstrom": self.nyquist_angstrom,
            "pixel_size_angstrom": self.pixel_size_angstrom,
            "box_size": self.box_size,
            "shells": self.shells(),
        }


def fsc_summary(
    fsc: torch.Tensor,
    *,
    box_size: int,
    pixel_size_angstrom: float,
    label: str = "fsc",
    curves: dict | None = None,
) -> FSCSummary:
    """Summarise an FSC curve: resolution at 0.143 and 0.5 and whether each was crossed.

    Parameters
    ----------
    fsc : Tensor, (n_shells,)
        FSC on the shells of :func:`fourier_shell_index` (e.g. from
        :func:`fourier_shell_correlation` or :func:`masked_fsc`).
    box_size : int
        Real-space box ``w`` [pixels].
    pixel_size_angstrom : float
    label : str
        Name of the main curve in tables and plots.
    curves : dict of str → Tensor (n_shells,), optional
        Further curves reported beside it.

    Returns
    -------
    FSCSummary

    Notes
    -----
    The resolution is :func:`resolution_at_threshold` (linear interpolation between the last
    shell above and the first below the threshold).  A curve that never drops below a
    threshold gets the Nyquist resolution and ``crossed = False``.

    Examples
    --------
    >>> s = fsc_summary(torch.tensor([1.0, 0.9, 0.6, 0.1]), box_size=6, pixel_size_angstrom=2.0)
    >>> round(s.resolution_0143_angstrom, 3), s.crossed_0143
    (4.118, True)
    """
    curve = torch.as_tensor(fsc).detach().to("cpu", torch.float64)
    if curve.ndim != 1 or curve.shape[0] < 2:
        raise ValueError(f"fsc_summary: need one curve of >= 2 shells, got {tuple(curve.shape)}")
    extra = {
        name: torch.as_tensor(values).detach().to("cpu", torch.float64)
        for name, values in (curves or {}).items()
    }
    resolution, crossed = {}, {}
    for t in FSC_THRESHOLDS:
        resolution[t] = float(
            resolution_at_threshold(
                curve, threshold=t, box_size=box_size, pixel_size_angstrom=pixel_size_angstrom
            )
        )
        crossed[t] = bool((curve[1:] < t).any())
    return FSCSummary(
        fsc=curve,
        box_size=int(box_size),
        pixel_size_angstrom=float(pixel_size_angstrom),
        label=label,
        curves=extra,
        resolution_angstrom=resolution,
        crossed=crossed,
    )
