"""Radial (shell) averages on centred Fourier grids and rotationally averaged power spectra.

Shell definition (used by every shell-based quantity in cryoglass: power spectra, FSC, ...):
with ``r = |k| * N * pixel_size`` the distance from DC in Fourier pixels of the x axis
(``N = w``), shell ``i`` holds the frequencies with

.. math:: i - \\tfrac12 \\le r < i + \\tfrac12, \\qquad i = \\lfloor r + \\tfrac12 \\rfloor,

i.e. shells are centred on integer radii (RELION's ``ROUND(sqrt(kx²+ky²+kz²))`` for
cubic boxes, except that halves always round up).  Shell ``i`` has frequency
``i / (N * pixel_size)`` [1/Å]; shells ``0 .. N//2`` (up to Nyquist) are returned by default,
the corners beyond are dropped.
"""

from __future__ import annotations

import torch

from cryoglass.fourier.fft import rfftn_centered
from cryoglass.fourier.grids import frequency_radius

__all__ = [
    "radial_shell_index",
    "shell_frequencies",
    "radial_average",
    "radial_power_spectrum",
    "crossing_shell",
]


def radial_shell_index(
    shape: tuple[int, ...],
    *,
    rfft: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Integer shell of every bin of a centred (or centred-rfft) Fourier grid.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)
        Real-space shape.
    rfft : bool
        Half grid (last axis ``w//2 + 1``) instead of the full grid.

    Returns
    -------
    LongTensor, shape fourier_shape: ``floor(|k| * w * pixel_size + 1/2)``.
    """
    r = frequency_radius(tuple(shape), rfft=rfft, device=device, dtype=torch.float64)
    return torch.floor(r * shape[-1] + 0.5).long()


def shell_frequencies(
    n_shells: int,
    *,
    box_size: int,
    pixel_size_angstrom: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Frequency of shells ``0 .. n_shells-1`` [1/Å]: ``i / (box_size * pixel_size)``."""
    dtype = dtype or torch.get_default_dtype()
    return torch.arange(n_shells, device=device, dtype=dtype) / (box_size * pixel_size_angstrom)


def _rfft_weights(shape: tuple[int, ...], *, device, dtype) -> torch.Tensor:
    """Multiplicity of each half-grid column in the full grid: 2 for 1 <= kx <= (w-1)//2."""
    w = shape[-1]
    kx = torch.arange(w // 2 + 1, device=device)
    return torch.where((kx >= 1) & (kx <= (w - 1) // 2), 2.0, 1.0).to(dtype)


def radial_average(
    x: torch.Tensor,
    *,
    ndim: int,
    rfft: bool = False,
    width: int | None = None,
    n_shells: int | None = None,
) -> torch.Tensor:
    """Average a centred 2D/3D Fourier-space quantity over shells of equal ``|k|``.

    Parameters
    ----------
    x : Tensor, real or complex, (..., h, w_f) or (..., d, h, w_f)
        Values on a centred grid (``w_f = w``) or a centred rfft half grid
        (``w_f = w//2 + 1``), e.g. ``|F|**2``.
    ndim : {2, 3}
        Number of trailing Fourier axes.
    rfft : bool
        Whether ``x`` is on the half grid.  Half-grid columns ``1 .. (w-1)//2`` stand for two
        bins of the full grid (``k`` and ``-k``) and are weighted 2, so a Hermitian-symmetric
        quantity gives the same average as on the full grid.
    width : int, optional
        Real-space width ``w`` (rfft only); default ``h``, i.e. a square/cubic box.
    n_shells : int, optional
        Number of shells returned; default ``w//2 + 1`` (DC to Nyquist).

    Returns
    -------
    Tensor, (..., n_shells), dtype of ``x``; empty shells give 0.

    Notes
    -----
    :math:`\\bar x_i = \\sum_{k \\in S_i} w_k x_k / \\sum_{k \\in S_i} w_k` with the shells
    :math:`S_i` of the module docstring; computed for all batch items at once with
    ``scatter_add`` over the flattened grid.
    """
    if ndim not in (2, 3) or x.ndim < ndim:
        raise ValueError(f"radial_average: ndim must be 2 or 3 and <= x.ndim, got ndim={ndim}")
    if x.is_complex():
        real = radial_average(x.real, ndim=ndim, rfft=rfft, width=width, n_shells=n_shells)
        imag = radial_average(x.imag, ndim=ndim, rfft=rfft, width=width, n_shells=n_shells)
        return torch.complex(real, imag)
    fourier_shape = tuple(x.shape[-ndim:])
    if rfft:
        w = width if width is not None else fourier_shape[-2]
        if fourier_shape[-1] != w // 2 + 1:
            raise ValueError(
                f"radial_average: rfft grid last axis {fourier_shape[-1]} does not match "
                f"width {w} (expected {w // 2 + 1}); pass width="
            )
        shape = fourier_shape[:-1] + (w,)
    else:
        shape = fourier_shape
    n_shells = n_shells if n_shells is not None else shape[-1] // 2 + 1
    index = radial_shell_index(shape, rfft=rfft, device=x.device).clamp_max(n_shells).flatten()
    if rfft:
        weights = _rfft_weights(shape, device=x.device, dtype=x.dtype).expand(fourier_shape)
    else:
        weights = torch.ones(fourier_shape, device=x.device, dtype=x.dtype)
    weights = weights.flatten()
    batch = x.shape[:-ndim]
    values = (x * weights.reshape(fourier_shape)).reshape(*batch, -1)
    sums = x.new_zeros(*batch, n_shells + 1).scatter_add(-1, index.expand(*batch, -1), values)
    counts = torch.bincount(index, weights=weights, minlength=n_shells + 1)
    return sums[..., :n_shells] / counts[:n_shells].clamp_min(1).to(x.dtype)


def radial_power_spectrum(
    x: torch.Tensor,
    *,
    ndim: int,
    pixel_size_angstrom: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotationally averaged power spectrum of real images or volumes.

    Parameters
    ----------
    x : Tensor, real, (..., h, w) or (..., d, h, w)
    ndim : {2, 3}
    pixel_size_angstrom : float

    Returns
    -------
    power : Tensor (..., w//2 + 1)
        :math:`P_i = \\langle |F(k)|^2 \\rangle_{k\\in S_i} / N_{tot}` with ``F`` the unscaled
        DFT and ``N_tot`` the number of pixels; white noise of variance ``σ²`` has
        ``E[P_i] = σ²`` in every shell, and by Parseval
        :math:`\\sum_k |F|^2 / N_{tot} = \\sum_r x^2`.
    frequency_inv_angstrom : Tensor (w//2 + 1,)
        Shell frequencies [1/Å].
    """
    if x.is_complex():
        raise ValueError("radial_power_spectrum expects real images/volumes")
    if ndim not in (2, 3) or x.ndim < ndim:
        raise ValueError(f"radial_power_spectrum: ndim must be 2 or 3, got ndim={ndim}")
    shape = tuple(x.shape[-ndim:])
    n_total = 1
    for n in shape:
        n_total *= n
    f = rfftn_centered(x, ndim=ndim)
    power = radial_average(f.abs().square() / n_total, ndim=ndim, rfft=True, width=shape[-1])
    freq = shell_frequencies(
        power.shape[-1],
        box_size=shape[-1],
        pixel_size_angstrom=pixel_size_angstrom,
        device=x.device,
        dtype=x.dtype,
    )
    return power, freq


def crossing_shell(
    curves: torch.Tensor,
    threshold: float | torch.Tensor,
    *,
    inside_shells: int = 0,
    interpolate: bool = True,
) -> torch.Tensor:
    """Shell where curves first drop below ``threshold``: the one threshold crossing of cryoglass.

    Used for FSC resolution (:func:`cryoglass.validate.resolution_at_threshold`), conical FSCs
    and the 3DFSC surface (:mod:`cryoglass.validate.fsc3d`) and the SSNR = 1 resolution of 2D
    classes (:mod:`cryoglass.classify.em2d`).

    Parameters
    ----------
    curves : Tensor, (..., n_shells)
        Per-shell values (FSC, SSNR …), shell 0 the DC term.
    threshold : float or Tensor broadcastable to ``curves``
        Per-shell thresholds allowed (e.g. ``max(0.143, 3/√n)``).
    inside_shells : int
        Shells ``0 … inside_shells`` count as above the threshold: their values are raised to
        at least ``max(1, threshold)`` (shell 0, DC, always is).
    interpolate : bool
        True: linear interpolation between the last shell above and the first below.  False:
        the last shell above (an integer, as RELION's reported resolution).

    Returns
    -------
    Tensor, floating, (...)
        Fractional shell ``s*``; ``n_shells − 1`` (Nyquist) where the curve never drops below.
        Resolution is ``box · pixel / s*`` [Å].

    Notes
    -----
    With ``i`` the first shell where ``c_i < t_i`` and ``e_j = c_j − t_j``,

    .. math:: s^* = (i - 1) + \\frac{e_{i-1}}{e_{i-1} - e_i} .

    Examples
    --------
    >>> crossing_shell(torch.tensor([1.0, 0.8, 0.4, 0.0]), 0.5)
    tensor(1.7500)
    """
    dtype = curves.dtype if curves.is_floating_point() else torch.get_default_dtype()
    c = curves.to(dtype).clone()
    n = c.shape[-1]
    t = torch.as_tensor(threshold, dtype=dtype, device=c.device).expand_as(c)
    forced = max(int(inside_shells), 0) + 1
    c[..., :forced] = torch.maximum(c[..., :forced], t[..., :forced].clamp_min(1.0))
    excess = c - t
    below = excess < 0
    crosses = below.any(dim=-1)
    first = torch.argmax(below.to(torch.int8), dim=-1).clamp_min(1)
    shell = (first - 1).to(dtype)
    if interpolate:
        upper = torch.gather(excess, -1, (first - 1).unsqueeze(-1)).squeeze(-1)
        lower = torch.gather(excess, -1, first.unsqueeze(-1)).squeeze(-1)
        shell = shell + upper / (upper - lower)
    return torch.where(crosses, shell, torch.full_like(shell, n - 1))
